import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploymentActor } from '../../actors/index.js';
import { startClusterNode, type ClusterNode } from '../../src/cluster/index.js';
import { clusterInspectorSource, startInspector, type ClusterInspectorSource, type Inspector } from '../../src/inspector/index.js';
import { startNatsServer, type NatsServer } from '../../src/testing/index.js';
import { NatsTransport } from '../../src/transport/index.js';

/** `ice inspect --nats`: the inspector over a cluster's JetStream state, not over one node. */
describe('inspector over a cluster', () => {
  let server: NatsServer;
  const nodes: ClusterNode[] = [];
  let t: NatsTransport;
  let source: ClusterInspectorSource;
  let inspector: Inspector;

  beforeAll(async () => {
    server = await startNatsServer({ jetstream: true });
    for (const node of ['ia', 'ib']) nodes.push(await startClusterNode({ servers: server.url, node, actors: [deploymentActor] }));
  });
  afterAll(async () => {
    await inspector?.close();
    await source?.close();
    await t?.close();
    for (const n of nodes) await n.stop();
    await server?.stop();
  });

  const get = async (path: string) => (await fetch(`${inspector.url}${path}`)).json() as Promise<Record<string, unknown>>;
  const until = async (what: string, ok: () => Promise<boolean>) => {
    for (let i = 0; i < 100; i++) {
      if (await ok()) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`timed out waiting for ${what}`);
  };

  it('lists actors with owners, links a transition to its decision and intent, and verifies the chains', async () => {
    const [a, b] = nodes as [ClusterNode, ClusterNode];
    const g = await a.grants.issue({ subject: 'agent:bot', scope: 'deployment/web:*' });
    await b.grants.waitFor(g.id);
    await a.spawn('deployment/web', { service: 'web' });
    const params = { version: '1.2.3', replicas: 2 };
    expect(await b.accept({ id: 'ins-1', proposer: 'agent:bot', target: 'deployment/web', action: 'CONFIGURE', params })).toMatchObject({
      status: 'executed',
    });
    expect(
      await b.accept({
        id: 'ins-2',
        proposer: 'agent:bot',
        target: 'deployment/web',
        action: 'DEPLOY',
        params: { environment: 'staging' },
      }),
    ).toMatchObject({ status: 'denied' });

    t = await NatsTransport.connect({ servers: server.url });
    source = await clusterInspectorSource(t, [deploymentActor]);
    inspector = await startInspector({ runtime: source, port: 0 });

    await until('the actor with its owner', async () => {
      const actors = (await get('/api/actors')).actors as Array<{ address: string; state: string; owner: string }>;
      return actors.some((x) => x.address === 'deployment/web' && x.state === 'draft' && x.owner === 'ia');
    });
    const facts = (await get('/api/facts?limit=100')).facts as Array<{ seq: number; type: string; intentId?: string; causes: number[] }>;
    expect(facts.map((f) => f.type).reverse()).toEqual([
      'actor.started',
      'intent.proposed',
      'decision',
      'transition',
      'intent.proposed',
      'decision',
    ]);
    const transition = facts.find((f) => f.type === 'transition')!;
    const decision = facts.find((f) => f.seq === transition.causes[0])!;
    expect(decision).toMatchObject({ type: 'decision', intentId: 'ins-1' });
    expect(facts.find((f) => f.seq === decision.causes[0])).toMatchObject({ type: 'intent.proposed', intentId: 'ins-1' });
    expect(await get('/api/verify')).toMatchObject({ ok: true, count: 6 });

    // live: a new commit reaches the view, and watchers on ice.fact.<kind>.<id>
    const watched: string[] = [];
    const sub = t.subscribe('ice.fact.deployment.web', (m) => void watched.push((m.data as { type: string }).type));
    await t.flush();
    expect(
      await a.accept({ id: 'ins-3', proposer: 'agent:bot', target: 'deployment/web', action: 'SUBMIT', params: { author: 'bot' } }),
    ).toMatchObject({ status: 'executed' });
    await until('the live transition', async () => ((await get('/api/actors/deployment/web')) as { state?: string }).state === 'in_review');
    await until('the watcher', () => Promise.resolve(watched.includes('transition')));
    expect(watched).toEqual(['intent.proposed', 'decision', 'transition']);
    sub.unsubscribe();
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { deploymentActor } from '../../actors/index.js';
import { createRuntime, type Fact, type Runtime } from '../../src/index.js';
import { requestAdmin } from '../../src/admin/index.js';
import {
  clusterInspectorSource,
  natsInspectorApprovals,
  publishInspection,
  startInspector,
  type ClusterInspectorSource,
  type Inspector,
  type WireInspectRecord,
} from '../../src/inspector/index.js';
import { startNatsServer, type NatsServer } from '../../src/testing/index.js';
import { NatsTransport } from '../../src/transport/index.js';
import { createLogger } from '../../src/util/logger.js';

type Msg = { type: string } & Record<string, unknown>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false): Promise<T> {
  for (let i = 0; i < 500; i++) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    await sleep(20);
  }
  throw new Error(`never: ${what}`);
}

function open(url: string): Promise<{ ws: WebSocket; messages: Msg[] }> {
  const messages: Msg[] = [];
  const ws = new WebSocket(url);
  ws.on('message', (d) => messages.push(JSON.parse(d.toString()) as Msg));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, messages }));
    ws.once('error', reject);
  });
}

/** `ice inspect --nats`: the inspector over a cluster's JetStream state, not over one node. */
describe('inspector over a cluster', () => {
  let server: NatsServer;
  let rt: Runtime;
  let stopPublishing: (() => void) | undefined;
  let t: NatsTransport;
  let source: ClusterInspectorSource;
  let inspector: Inspector;
  const sockets: WebSocket[] = [];

  beforeAll(async () => {
    server = await startNatsServer({ jetstream: true });
    rt = await createRuntime({
      node: 'n1',
      actors: [deploymentActor],
      logger: createLogger({ level: 'silent' }),
      cluster: { servers: server.url },
    });
    // what `ice start --cluster --publish-inspection` does
    stopPublishing = publishInspection(rt, rt.transport);
  });
  afterAll(async () => {
    for (const ws of sockets) ws.close();
    await inspector?.close();
    await source?.close();
    await t?.close();
    stopPublishing?.();
    await rt?.stop();
    await server?.stop();
  });

  const get = async <T = Record<string, unknown>>(path: string): Promise<T> =>
    (await fetch(`${inspector.url}${path}`)).json() as Promise<T>;

  it('lists actors with owners, links a transition to its decision and intent, and verifies the chains', async () => {
    const g = await rt.grants.issue({ subject: 'agent:bot', scope: 'deployment/web:*' });
    await rt.spawn('deployment/web', { service: 'web' });
    const params = { version: '1.2.3', replicas: 2 };
    expect(await rt.propose({ id: 'ins-1', proposer: 'agent:bot', target: 'deployment/web', action: 'CONFIGURE', params })).toMatchObject({
      status: 'executed',
    });
    expect(
      await rt.propose({
        id: 'ins-2',
        proposer: 'agent:bot',
        target: 'deployment/web',
        action: 'DEPLOY',
        params: { environment: 'staging' },
      }),
    ).toMatchObject({ status: 'denied' });

    // the inspector is another process: its own connection, no runtime
    t = await NatsTransport.connect({ servers: server.url });
    source = await clusterInspectorSource(t, [deploymentActor]);
    inspector = await startInspector({ runtime: source, port: 0 });

    const actors = await until('the actor with its owner', async () => {
      const a = (await get<{ actors: Array<Record<string, unknown>> }>('/api/actors')).actors;
      return a.some((x) => x.address === 'deployment/web' && x.owner === 'n1' && x.seq === 6) ? a : undefined;
    });
    expect(actors).toEqual([
      expect.objectContaining({
        address: 'deployment/web',
        kind: 'deployment',
        state: 'draft',
        status: 'active',
        owner: 'n1',
        active: true,
      }),
    ]);
    expect(actors[0]!.stateIds).toEqual(['deployment', 'deployment.draft']);
    const detail = await get('/api/actors/deployment/web');
    expect(detail).toMatchObject({ state: 'draft', seq: 6, context: { version: '1.2.3', replicas: 2 }, snapshot: { value: 'draft' } });

    // the actor's chain
    const facts = (await get<{ facts: Fact[] }>('/api/facts?actor=deployment/web&limit=100')).facts;
    expect(facts.map((f) => f.type).reverse()).toEqual([
      'actor.started',
      'intent.proposed',
      'decision',
      'transition',
      'intent.proposed',
      'decision',
    ]);
    expect(facts.map((f) => f.seq)).toEqual([6, 5, 4, 3, 2, 1]);
    expect(facts.every((f) => f.actor === 'deployment/web')).toBe(true);

    // click-through: transition → decision → intent, within the chain
    const transition = facts.find((f) => f.type === 'transition')!;
    const chain = await get<Record<string, Fact>>(`/api/facts/deployment/web/${transition.seq}`);
    expect(chain.transition).toMatchObject({ seq: transition.seq, intentId: 'ins-1' });
    expect(chain.decision).toMatchObject({ type: 'decision', actor: 'deployment/web', seq: transition.causes[0], intentId: 'ins-1' });
    expect(chain.intent).toMatchObject({
      type: 'intent.proposed',
      actor: 'deployment/web',
      seq: chain.decision!.causes[0],
      intentId: 'ins-1',
    });
    expect((chain.intent!.data as { intent: { params: unknown } }).intent.params).toEqual(params);
    const denied = facts.find((f) => f.type === 'decision' && f.intentId === 'ins-2')!;
    const deniedChain = await get<Record<string, Fact | undefined>>(`/api/facts/deployment/web/${denied.seq}`);
    expect(deniedChain.intent).toMatchObject({ intentId: 'ins-2', type: 'intent.proposed' });
    expect(deniedChain.transition).toBeUndefined();

    // every chain: the grant is on the node's runtime chain
    const all = (await get<{ facts: Fact[] }>('/api/facts?limit=100')).facts;
    expect(all).toHaveLength(7);
    expect(all.find((f) => f.type === 'grant.issued')).toMatchObject({ actor: '_runtime/n1', seq: 1 });
    expect((all.find((f) => f.type === 'grant.issued')!.data as { grant: { id: string } }).grant.id).toBe(g.id);
    const grant = await get<Record<string, Fact>>('/api/facts/_runtime/n1/1');
    expect(grant.fact).toMatchObject({ type: 'grant.issued', actor: '_runtime/n1' });

    expect(await get('/api/verify')).toMatchObject({ ok: true, count: 7, chains: 2 });

    // history: the state at each position, replayed from the journal (4: the CONFIGURE transition)
    const hist = await get<{ positions: Array<{ seq: number; state: string; context?: { version?: string } }> }>(
      '/api/actors/deployment/web/history',
    );
    expect(hist.positions.map((p) => p.seq)).toEqual([6, 5, 4, 3, 2, 1]);
    expect(hist.positions.find((p) => p.seq === 4)!.context).toMatchObject({ version: '1.2.3' });
    expect(hist.positions.find((p) => p.seq === 1)!.context).not.toHaveProperty('version');
  });

  it('pushes live facts and actor updates, and the inspection events a node publishes', async () => {
    const live = await open(inspector.url.replace(/^http/, 'ws') + '/ws');
    const stately = await open(inspector.statelyUrl);
    sockets.push(live.ws, stately.ws);
    await until('hello', () => live.messages.some((m) => m.type === 'hello'));
    const hello = live.messages.find((m) => m.type === 'hello')!;
    expect(hello.actors).toEqual([expect.objectContaining({ address: 'deployment/web', owner: 'n1', state: 'draft' })]);
    expect(hello.verify).toMatchObject({ ok: true, count: 7 });
    await until('the registration of existing actors on /stately', () => stately.messages.some((m) => m.sessionId === 'deployment/web'));
    const received: WireInspectRecord[] = [];
    const off = source.onInspect((r) => received.push(r as WireInspectRecord));
    await t.flush(); // the inspector's subscriptions are in place on the server

    expect(
      await rt.propose({ id: 'ins-3', proposer: 'agent:bot', target: 'deployment/web', action: 'SUBMIT', params: { author: 'bot' } }),
    ).toMatchObject({ status: 'executed' });

    // live facts (from ice.fact.>) and the committed actor update
    await until('the live transition', () =>
      live.messages.some((m) => m.type === 'fact' && (m.fact as Fact).type === 'transition' && (m.fact as Fact).intentId === 'ins-3'),
    );
    const pushed = live.messages.filter((m) => m.type === 'fact').map((m) => m.fact as Fact);
    expect(pushed.map((f) => `${f.actor}#${f.seq} ${f.type}`)).toEqual([
      'deployment/web#7 intent.proposed',
      'deployment/web#8 decision',
      'deployment/web#9 transition',
    ]);
    const tr = live.messages.find((m) => m.type === 'fact' && (m.fact as Fact).type === 'transition')!;
    expect(tr.toIds).toEqual(['deployment', 'deployment.in_review']);
    await until('the actor update', () =>
      live.messages.some((m) => m.type === 'actor' && (m.actor as { state: string; seq: number }).state === 'in_review'),
    );
    await until('the state over HTTP', async () => (await get('/api/actors/deployment/web')).state === 'in_review');
    await until('the journal re-verified', () =>
      live.messages.some((m) => m.type === 'verify' && (m.verify as { count: number }).count === 10),
    );

    // inspection events published by n1 reach the cluster source and both sockets
    await until('the SUBMIT event from n1', () =>
      received.some((r) => r.event.type === '@xstate.event' && (r.event.event as { type?: string }).type === 'SUBMIT'),
    );
    expect(received.every((r) => r.node === 'n1' && r.actor === 'deployment/web')).toBe(true);
    await until('the SUBMIT event on /stately', () =>
      stately.messages.some((m) => m.type === '@xstate.event' && (m.event as { type?: string }).type === 'SUBMIT'),
    );
    await until('the snapshot in review on /ws', () =>
      live.messages.some((m) => m.type === 'inspect' && m.node === 'n1' && (m.stateIds as string[]).includes('deployment.in_review')),
    );
    off();
  });
  it('with approvals, its buttons reach the nodes as admin requests bound to the approver', async () => {
    const ins = await startInspector({
      runtime: source,
      port: 0,
      approvals: natsInspectorApprovals((as, op, args) => requestAdmin(t, as, op, args), 'human:alice'),
    });
    try {
      const listed = (await (await fetch(`${ins.url}/api/approvals`)).json()) as { enabled: boolean; operator: string; pending: unknown[] };
      expect(listed).toEqual({ enabled: true, operator: 'human:alice', pending: [] });
      const token = new URL(ins.operatorUrl!).searchParams.get('token')!;
      const post = (by: string) =>
        fetch(`${ins.url}/api/approvals/ins-nope/approve`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify({ by }),
        });
      const r = await post('human:alice');
      expect(r.status).toBe(400);
      await expect(r.json()).resolves.toMatchObject({ error: { code: 'E_APPROVAL_UNKNOWN_INTENT' } });
      // the node recorded the refusal, with the principal the request was bound to
      const refused = await until('the refusal fact', async () =>
        (await rt.journal.chain(rt.runtimeChain)).find((f) => f.type === 'approval.refused' && f.intentId === 'ins-nope'),
      );
      expect(refused.data).toMatchObject({ by: 'human:alice', refusal: 'unknown_intent' });
      // acting as someone else than the bound principal is refused by the node
      const other = await post('human:mallory');
      expect(other.status).toBe(400);
      await expect(other.json()).resolves.toMatchObject({ error: { code: 'E_VALIDATION' } });
    } finally {
      await ins.close();
    }
  });
});

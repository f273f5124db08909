import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntime, type Decision, type Runtime } from '../../src/index.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { createLogger } from '../../src/util/logger.js';
import { ice } from '../helpers/ice-cli.js';

const CAP = (n: number) => `@id("replica-cap")
@reason("at most ${n} replicas")
forbid (principal, action == Action::"CONFIGURE", resource is Deployment)
when { context.params.replicas > ${n} };
`;

async function decisionOf(rt: Runtime, intentId: string): Promise<Decision> {
  const f = (await rt.journal.factsOfIntent(intentId)).filter((x) => x.type === 'decision').at(-1);
  if (!f) throw new Error(`no decision fact for ${intentId}`);
  return (f.data as { decision: Decision }).decision;
}

/**
 * `ice policy apply --nats` through one node of a cluster takes effect on every node without
 * a restart: the version is a key of the KV bucket ICE_POLICIES that each node watches.
 */
describe('ice policy apply across cluster nodes (real nats-server, JetStream)', () => {
  let srv: NatsServer;
  const nodes: Runtime[] = [];
  let nats: string[];
  const dir = mkdtempSync(join(tmpdir(), 'ice-policy-cluster-'));
  const configure = (id: string, target: string, replicas: number) => ({
    id,
    proposer: 'agent:bot',
    target,
    action: 'CONFIGURE',
    params: { version: '1.0.0', replicas },
  });

  beforeAll(async () => {
    srv = await startNatsServer();
    nats = ['--nats', srv.url];
    const logger = createLogger({ level: 'silent' });
    for (const node of ['n1', 'n2', 'n3']) nodes.push(await createRuntime({ node, logger, cluster: { servers: srv.url } }));
    await nodes[0]!.grants.issue({ subject: 'agent:bot', scope: 'deployment/*:*' });
    writeFileSync(join(dir, 'cap10.cedar'), CAP(10));
    writeFileSync(join(dir, 'cap50.cedar'), CAP(50));
    writeFileSync(join(dir, 'bad.cedar'), 'forbid (principal, action, resource);\n');
  });
  afterAll(async () => {
    for (const n of nodes) await n.stop();
    await srv?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a version applied through one node decides on the others, and a refused set changes nothing', async () => {
    const [n1, n2, n3] = nodes as [Runtime, Runtime, Runtime];
    await n2.spawn('deployment/c1', { service: 'c1' });
    expect((await n2.propose(configure('c1-before', 'deployment/c1', 20))).status).toBe('executed');

    const a = await ice(['policy', 'apply', join(dir, 'cap10.cedar'), '--as', 'operator:dana', ...nats]);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toMatch(/applied version 1 +1 policies +hash [0-9a-f]{12} +by operator:dana/);
    for (const n of nodes) expect(await n.policies.waitFor(1)).toBe(true);

    await n3.spawn('deployment/c2', { service: 'c2' });
    const denied = await n3.propose(configure('c2-after', 'deployment/c2', 20));
    expect(denied.status).toBe('denied');
    expect((await decisionOf(n3, 'c2-after')).policies).toEqual({ version: 1, ids: ['replica-cap'] });
    // on the node whose actor it is, too
    expect((await n2.propose(configure('c1-after', 'deployment/c1', 20))).status).toBe('denied');

    const bad = await ice(['policy', 'apply', join(dir, 'bad.cedar'), '--as', 'operator:dana', ...nats]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('bad.cedar:1');
    expect(bad.stderr).toContain('lock every operator out');

    const b = await ice(['policy', 'apply', join(dir, 'cap50.cedar'), '--as', 'operator:erin', ...nats]);
    expect(b.stdout).toMatch(/applied version 2/);
    for (const n of nodes) expect(await n.policies.waitFor(2)).toBe(true);
    expect((await n1.propose(configure('c2-v2', 'deployment/c2', 20))).status).toBe('executed');
    expect((await decisionOf(n1, 'c2-v2')).policies).toEqual({ version: 2, ids: [] });

    const ls = JSON.parse((await ice(['policy', 'ls', '--json', ...nats])).stdout) as Array<{ version: number; appliedBy: string }>;
    expect(ls.map((r) => [r.version, r.appliedBy])).toEqual([
      [1, 'operator:dana'],
      [2, 'operator:erin'],
    ]);
    const applied = (await n1.journal.tail({ limit: 200 })).filter((f) => f.type === 'policy.applied');
    expect(applied.map((f) => (f.data as { version: number }).version).sort()).toEqual([1, 2]);
  });

  it('a node started later loads the version in force', async () => {
    const n4 = await createRuntime({ node: 'n4', logger: createLogger({ level: 'silent' }), cluster: { servers: srv.url } });
    nodes.push(n4);
    expect(n4.policies.version()).toBe(2);
  });
});

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assign, setup } from 'xstate';
import { z } from 'zod';
import { createRuntime, defineActor, type Fact, type Runtime } from '../../src/index.js';
import { startNatsCluster, type NatsCluster } from '../../src/testing/index.js';
import { createLogger } from '../../src/util/logger.js';
import { ice } from '../helpers/ice-cli.js';
import { startIceDev, type IceProcess } from '../helpers/ice-process.js';
import { tempDir, until } from '../helpers/runtime.js';

const N = 20;
const DELAY_MS = 1500;

const fired = (facts: Fact[]) => facts.filter((f) => f.type === 'transition' && f.data.timer !== undefined);

/**
 * Real processes: `ice dev` holds N actors with a pending `after`, is SIGKILLed, and started
 * again on its data dir: each timer fires exactly once, late by at most the downtime.
 */
describe('durable timers across SIGKILL (embedded, real process)', () => {
  const procs: IceProcess[] = [];
  const cleanups: Array<() => void> = [];
  afterEach(async () => {
    for (const p of procs.splice(0)) await p.kill('SIGKILL');
    for (const c of cleanups.splice(0)) c();
  });

  it('every pending timer fires once after the restart; ice timers ls lists them meanwhile', async () => {
    const t = tempDir('ice-timers-kill-');
    cleanups.push(t.cleanup);
    // inside the repository, so the module resolves xstate and zod like a user's project would
    const dir = join(process.cwd(), 'test-artifacts');
    mkdirSync(dir, { recursive: true });
    const mod = join(dir, `reminder-actor-${process.pid}.mjs`);
    writeFileSync(
      mod,
      `import { setup, assign } from 'xstate';
import { z } from 'zod';
import { defineActor } from '${join(process.cwd(), 'dist/src/index.js')}';
const m = setup({}).createMachine({ id: 'reminder', initial: 'idle', context: { rings: 0 }, states: {
  idle: { on: { ARM: 'waiting' } },
  waiting: { after: { ${DELAY_MS}: { target: 'rung', actions: assign({ rings: ({ context }) => context.rings + 1 }) } } },
  rung: {} } });
export const actors = [defineActor({ kind: 'reminder', machine: m, events: { ARM: z.strictObject({}) } })];
`,
    );
    cleanups.push(() => rmSync(mod, { force: true }));
    const args = ['--actors', mod];
    const first = await startIceDev(t.dir, args);
    procs.push(first);
    await first.admin('grant.issue', { subject: 'agent:t', scope: 'reminder/*:ARM' });
    const armedAt: number[] = [];
    for (let i = 0; i < N; i++) {
      await first.admin('spawn', { address: `reminder/k${i}` });
      await first.admin('propose', {
        intent: { id: `arm-${i}`, proposer: 'agent:t', target: `reminder/k${i}`, action: 'ARM', params: {} },
      });
      armedAt.push(Date.now());
    }
    await first.kill('SIGKILL');
    const killedAt = Date.now();

    // the dead node's dir still lists every pending timer (a read-only read)
    const ls = await ice(['timers', 'ls', '--json', '--data', t.dir, ...args]);
    expect(ls.code).toBe(0);
    const rows = JSON.parse(ls.stdout) as Array<{ actor: string; event: string; dueAt: number }>;
    expect(rows.map((r) => r.actor).sort()).toEqual(Array.from({ length: N }, (_, i) => `reminder/k${i}`).sort());
    expect(new Set(rows.map((r) => r.event))).toEqual(new Set([`xstate.after.${DELAY_MS}.reminder.waiting`]));

    const second = await startIceDev(t.dir, args);
    procs.push(second);
    const startedAt = Date.now();
    const chains = async () => {
      const out: Fact[][] = [];
      for (let i = 0; i < N; i++) out.push((await second.admin('journal.chain', { chain: `reminder/k${i}` })) as Fact[]);
      return out;
    };
    await until('every timer to fire', async () => (await chains()).every((c) => fired(c).length === 1), 30_000);
    // a little longer: nothing fires twice
    await new Promise((r) => setTimeout(r, 300));
    const all = await chains();
    for (const c of all) {
      expect(fired(c)).toHaveLength(1);
      const f = fired(c)[0]!;
      const due = (f.data.timer as { dueAt: number }).dueAt;
      // never early; late by at most the downtime plus the start (and the test's own polling)
      expect(Date.parse(f.at)).toBeGreaterThanOrEqual(due);
      expect(Date.parse(f.at) - due).toBeLessThanOrEqual(Math.max(0, startedAt - killedAt) + (Date.now() - startedAt));
    }
    const after = await ice(['timers', 'ls', '--json', '--data', t.dir, ...args]);
    expect(JSON.parse(after.stdout)).toEqual([]);
    const verify = await ice(['journal', 'verify', '--data', t.dir]);
    expect(verify.code).toBe(0);
  });
});

const reminderMachine = setup({ types: {} as { context: { rings: number } } }).createMachine({
  id: 'reminder',
  initial: 'idle',
  context: { rings: 0 },
  states: {
    idle: { on: { ARM: 'waiting' } },
    waiting: { after: { [DELAY_MS]: { target: 'rung', actions: assign({ rings: ({ context }) => context.rings + 1 }) } } },
    rung: {},
  },
});
const reminderActor = defineActor({ kind: 'reminder', machine: reminderMachine, events: { ARM: z.strictObject({}) } });

/**
 * Cluster: node a holds actors with pending timers and dies (no lease release, no renewal);
 * node b fires every timer once, after a's leases expire, found through the wake-up index.
 */
describe('durable timers across a failover (cluster, 3 NATS servers, R3)', () => {
  let cluster: NatsCluster;
  const nodes: Runtime[] = [];
  beforeAll(async () => {
    cluster = await startNatsCluster(3);
  });
  afterAll(async () => {
    for (const n of nodes) await n.stop().catch(() => {});
    await cluster?.stopAll();
  });
  const start = async (node: string) => {
    const rt = await createRuntime({
      node,
      actors: [reminderActor],
      logger: createLogger({ level: 'silent' }),
      wakeScanMs: 200,
      cluster: { servers: cluster.urls, replicas: 3, leaseTtlMs: 1500 },
    });
    nodes.push(rt);
    return rt;
  };

  it('the new owner fires each timer once after the old one died', async () => {
    const a = await start('ta');
    const b = await start('tb');
    await a.grants.issue({ subject: 'agent:t', scope: 'reminder/*:ARM' });
    await until('the grant on tb', () => b.grants.list().length > 0);
    for (let i = 0; i < N; i++) {
      await a.spawn(`reminder/f${i}`);
      expect((await a.propose({ id: `farm-${i}`, proposer: 'agent:t', target: `reminder/f${i}`, action: 'ARM', params: {} })).status).toBe(
        'executed',
      );
    }
    expect((await b.timers()).length).toBe(N);
    await a.stop({ release: false }); // dies: no renewal, no release
    await until(
      'every timer to fire on tb',
      async () => {
        for (let i = 0; i < N; i++) if (fired(await b.journal.chain(`reminder/f${i}`)).length !== 1) return false;
        return true;
      },
      30_000,
    );
    await new Promise((r) => setTimeout(r, 500));
    for (let i = 0; i < N; i++) {
      const facts = await b.journal.chain(`reminder/f${i}`);
      expect(fired(facts)).toHaveLength(1);
      expect(facts.at(-1)!.type === 'transition' || facts.at(-1)!.type === 'actor.restored').toBe(true);
      expect(b.hosting(`reminder/f${i}`)).toMatchObject({ state: 'rung' });
    }
    expect(await b.timers()).toEqual([]);
    expect((await b.journal.verify()).ok).toBe(true);
  });
});

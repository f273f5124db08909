import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Fact } from '../../src/index.js';
import { requestAdmin } from '../../src/admin/client.js';
import { startNatsCluster, type NatsCluster } from '../../src/testing/index.js';
import { NatsTransport } from '../../src/transport/index.js';
import { ice } from '../helpers/ice-cli.js';
import { startIceDev, type IceProcess } from '../helpers/ice-process.js';
import { tempDir, until } from '../helpers/runtime.js';
import { DIST_INDEX, startClusterNode, writeActorsModule } from '../helpers/real-nodes.js';

const N = 20;
const DELAY_MS = 1500;

/** A module defining the `reminder` kind (an `after` of DELAY_MS). */
function reminderModule(cleanups: Array<() => void>): string {
  return writeActorsModule(
    'reminder-actor',
    `import { setup, assign } from 'xstate';
import { z } from 'zod';
import { defineActor } from '${DIST_INDEX}';
const m = setup({}).createMachine({ id: 'reminder', initial: 'idle', context: { rings: 0 }, states: {
  idle: { on: { ARM: 'waiting' } },
  waiting: { after: { ${DELAY_MS}: { target: 'rung', actions: assign({ rings: ({ context }) => context.rings + 1 }) } } },
  rung: {} } });
export const actors = [defineActor({ kind: 'reminder', machine: m, events: { ARM: z.strictObject({}) } })];
`,
    cleanups,
  );
}

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
    const mod = reminderModule(cleanups);
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

/**
 * Cluster, real processes: node ta (`ice start --cluster`) holds N actors with a pending
 * `after` and is SIGKILLed; node tb, started beside it, fires every timer once after ta's
 * leases expire, found through the wake-up index (ICE_WAKEUPS).
 */
describe('durable timers across a failover (cluster, real processes, 3 NATS servers, R3)', () => {
  let cluster: NatsCluster;
  let client: NatsTransport;
  const procs: IceProcess[] = [];
  const cleanups: Array<() => void> = [];
  beforeAll(async () => {
    cluster = await startNatsCluster(3);
    client = await NatsTransport.connect({ servers: cluster.urls });
  });
  afterAll(async () => {
    for (const p of procs.splice(0)) await p.kill('SIGKILL');
    for (const c of cleanups.splice(0)) c();
    await client?.close();
    await cluster?.stopAll();
  });
  const admin = (op: string, args: unknown) => requestAdmin(client, 'operator:test', op, args, 10_000);
  const startNode = (node: string, mod: string) => startClusterNode(cluster, node, mod, { procs, cleanups });

  it('the new owner fires each timer once after the old one was SIGKILLed', async () => {
    const mod = reminderModule(cleanups);
    const a = await startNode('ta', mod);
    await admin('grant.issue', { subject: 'agent:t', scope: 'reminder/*:ARM' });
    for (let i = 0; i < N; i++) {
      await admin('spawn', { address: `reminder/f${i}` });
      const out = (await requestAdmin(client, 'agent:t', 'propose', {
        intent: { id: `farm-${i}`, proposer: 'agent:t', target: `reminder/f${i}`, action: 'ARM', params: {} },
      })) as { status: string };
      expect(out.status).toBe('executed');
    }
    expect(((await admin('timers.ls', {})) as unknown[]).length).toBe(N);
    await startNode('tb', mod); // after the arming: ta owns every reminder
    await a.kill('SIGKILL');
    const chain = async (i: number) => (await admin('journal.chain', { chain: `reminder/f${i}` })) as Fact[];
    await until(
      'every timer to fire on tb',
      async () => {
        for (let i = 0; i < N; i++) if (fired(await chain(i)).length !== 1) return false;
        return true;
      },
      60_000,
    );
    await new Promise((r) => setTimeout(r, 500));
    for (let i = 0; i < N; i++) {
      const facts = await chain(i);
      expect(fired(facts)).toHaveLength(1);
      const f = fired(facts)[0]!;
      expect(Date.parse(f.at)).toBeGreaterThanOrEqual((f.data.timer as { dueAt: number }).dueAt); // never early
      expect(facts.find((x) => x.type === 'actor.restored')?.data.node).toBe('tb');
    }
    expect(await admin('timers.ls', {})).toEqual([]);
    expect(((await admin('journal.verify', {})) as { ok: boolean }).ok).toBe(true);
  });
});

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Fact } from '../../src/index.js';
import { requestAdmin } from '../../src/admin/client.js';
import { startIceProcess, startNatsCluster, type IceProcess, type NatsCluster } from '../../src/testing/index.js';
import { NatsTransport } from '../../src/transport/index.js';
import { ice } from '../helpers/ice-cli.js';
import { tempDir, until } from '../helpers/runtime.js';
import { DIST_INDEX, startClusterNode, writeActorsModule } from '../helpers/real-nodes.js';

const JOBS = 10;
const CALLERS = 10;

/**
 * Actors that act, under SIGKILL: jobs whose transition starts an effect (400 ms of work that
 * appends a line per run to a log file), and callers whose transition proposes an intent to a
 * callee. The serving process is SIGKILLed right after the proposals that started them were
 * acknowledged (effects running, intents on their way), then started again (embedded) or
 * another node takes over (cluster). Then: every effect ran at least once and its result was
 * applied exactly once; every intent was decided exactly once and answered exactly once.
 */
function actorsModule(cleanups: Array<() => void>): string {
  return writeActorsModule(
    'act-actors',
    `import { appendFileSync } from 'node:fs';
import { setup, assign } from 'xstate';
import { z } from 'zod';
import { defineActor, startEffect, proposeIntent } from '${DIST_INDEX}';
const job = setup({}).createMachine({ id: 'job', initial: 'idle', context: {}, states: {
  idle: { on: { START: 'working' } },
  working: { entry: startEffect('work', ({ context }) => ({})), on: { 'ice.effect.done.work': 'finished', 'ice.effect.failed.work': 'broken' } },
  finished: {}, broken: {} } });
const caller = setup({}).createMachine({ id: 'caller', initial: 'idle', context: {}, states: {
  idle: { on: { CALL: { target: 'waiting', actions: proposeIntent(({ event }) => ({ target: event.target, action: 'PING', params: {} })) } } },
  waiting: { on: { 'ice.outcome.*': { target: 'answered', actions: assign({ status: ({ event }) => event.outcome.status }) } } },
  answered: {} } });
const callee = setup({}).createMachine({ id: 'callee', initial: 'ready', context: { pings: 0 }, states: {
  ready: { on: { PING: { actions: assign({ pings: ({ context }) => context.pings + 1 }) } } } } });
export const actors = [
  defineActor({ kind: 'job', machine: job, events: { START: z.strictObject({}) }, effects: { work: {
    timeoutMs: 5000,
    run: async (_params, ctx) => {
      appendFileSync(process.env.ICE_TEST_EFFECT_LOG, ctx.key + '\\n');
      await new Promise((r) => setTimeout(r, 400));
      return { ok: true };
    } } } }),
  defineActor({ kind: 'caller', machine: caller, events: { CALL: z.strictObject({ target: z.string() }) } }),
  defineActor({ kind: 'callee', machine: callee, events: { PING: z.strictObject({}) } }),
];
`,
    cleanups,
  );
}

type Admin = (op: string, args: unknown, as?: string) => Promise<unknown>;

/** Sets everything up and starts the work; returns once every START and CALL was acknowledged. */
async function startWork(admin: Admin): Promise<void> {
  await admin('grant.issue', { subject: 'agent:t', scope: '*' });
  await admin('grant.issue', { subject: 'actor:*', scope: 'callee/*:PING' });
  await admin('spawn', { address: 'callee/e' });
  for (let i = 0; i < JOBS; i++) await admin('spawn', { address: `job/j${i}` });
  for (let i = 0; i < CALLERS; i++) await admin('spawn', { address: `caller/c${i}` });
  const sends: Array<Promise<unknown>> = [];
  for (let i = 0; i < JOBS; i++)
    sends.push(
      admin('propose', { intent: { id: `start-${i}`, proposer: 'agent:t', target: `job/j${i}`, action: 'START', params: {} } }, 'agent:t'),
    );
  for (let i = 0; i < CALLERS; i++)
    sends.push(
      admin(
        'propose',
        { intent: { id: `call-${i}`, proposer: 'agent:t', target: `caller/c${i}`, action: 'CALL', params: { target: 'callee/e' } } },
        'agent:t',
      ),
    );
  for (const o of (await Promise.all(sends)) as Array<{ status: string }>) expect(o.status).toBe('executed');
}

/** Waits until everything is settled, then checks the exactly-once properties from the journal. */
async function checkSettled(admin: Admin, effectLog: string): Promise<void> {
  const chain = async (a: string) => (await admin('journal.chain', { chain: a })) as Fact[];
  await until(
    'every job finished and every caller answered',
    async () => {
      for (let i = 0; i < JOBS; i++) if (!(await chain(`job/j${i}`)).some((f) => f.data.effectOf !== undefined)) return false;
      for (let i = 0; i < CALLERS; i++) if (!(await chain(`caller/c${i}`)).some((f) => f.data.outcomeOf !== undefined)) return false;
      return true;
    },
    60_000,
  );
  await new Promise((r) => setTimeout(r, 800)); // anything doubled would show by now
  const runs = readFileSync(effectLog, 'utf8').trim().split('\n');
  for (let i = 0; i < JOBS; i++) {
    const facts = await chain(`job/j${i}`);
    const started = facts.filter((f) => f.type === 'effect.started');
    expect(started).toHaveLength(1);
    const id = (started[0]!.data.effect as { id: string }).id;
    expect(runs.filter((k) => k === id).length).toBeGreaterThanOrEqual(1); // ran at least once
    expect(facts.filter((f) => f.data.effectOf === id)).toHaveLength(1); // applied exactly once
    expect(facts.at(-1)!.type === 'transition' ? facts.at(-1)!.data.to : 'finished').toBe('finished');
  }
  const callee = await chain('callee/e');
  for (let i = 0; i < CALLERS; i++) {
    const facts = await chain(`caller/c${i}`);
    const emitted = facts.filter((f) => f.type === 'intent.emitted');
    expect(emitted).toHaveLength(1);
    const id = (emitted[0]!.data.intent as { id: string }).id;
    expect(callee.filter((f) => f.type === 'intent.proposed' && f.intentId === id)).toHaveLength(1); // decided once
    expect(facts.filter((f) => f.data.outcomeOf === id)).toHaveLength(1); // answered once
  }
  expect(callee.filter((f) => f.type === 'transition')).toHaveLength(CALLERS);
  expect(((await admin('journal.verify', {})) as { ok: boolean }).ok).toBe(true);
  expect(await admin('effects.ls', {})).toEqual([]);
}

describe('actors that act, across SIGKILL (embedded, real process)', () => {
  const procs: IceProcess[] = [];
  const cleanups: Array<() => void> = [];
  afterEach(async () => {
    for (const p of procs.splice(0)) await p.kill('SIGKILL');
    for (const c of cleanups.splice(0)) c();
  });

  it('effects run at least once and apply once; intents are decided once and answered once', async () => {
    const t = tempDir('ice-act-kill-');
    cleanups.push(t.cleanup);
    const mod = actorsModule(cleanups);
    const effectLog = join(t.dir, 'effects.log');
    const env = { ICE_TEST_EFFECT_LOG: effectLog };
    const first = await startIceProcess(t.dir, { args: ['--actors', mod], env });
    procs.push(first);
    await startWork((op, args) => first.admin(op, args));
    await first.kill('SIGKILL');
    // the dead node's dir: effects started and not finished are listed
    const ls = await ice(['effects', 'ls', '--json', '--data', t.dir, '--actors', mod]);
    expect(ls.code).toBe(0);
    const pendingAtKill = (JSON.parse(ls.stdout) as unknown[]).length;
    const second = await startIceProcess(t.dir, { args: ['--actors', mod], env });
    procs.push(second);
    await checkSettled((op, args) => second.admin(op, args), effectLog);
    console.log(`[act sigkill embedded] ${pendingAtKill} of ${JOBS} effects were unfinished at the kill`);
    expect(existsSync(effectLog)).toBe(true);
  });
});

describe('actors that act, across a failover (cluster, real processes, 3 NATS servers, R3)', () => {
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

  it('the new owner runs unfinished effects and delivers undelivered intents, each result applied once', async () => {
    const mod = actorsModule(cleanups);
    const t = tempDir('ice-act-cluster-');
    cleanups.push(t.cleanup);
    const effectLog = join(t.dir, 'effects.log');
    const start = (node: string) => startClusterNode(cluster, node, mod, { procs, cleanups }, { ICE_TEST_EFFECT_LOG: effectLog });
    const admin: Admin = (op, args, as = 'operator:test') => requestAdmin(client, as, op, args, 15_000);
    const a = await start('xa');
    await startWork(admin);
    await start('xb'); // after the work started: xa holds every actor
    await a.kill('SIGKILL');
    await checkSettled(admin, effectLog);
  });
});

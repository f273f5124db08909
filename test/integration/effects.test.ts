import { describe, expect, it } from 'vitest';
import { assign, setup } from 'xstate';
import { z } from 'zod';
import { ManualClock, defineActor, startEffect, type Fact } from '../../src/index.js';
import { MODES, iid, tempRuntime, until } from '../helpers/runtime.js';

/** What the `work` effect does, per job id (set by each test). */
const behaviour = new Map<string, (attempt: number, signal: AbortSignal) => Promise<unknown>>();
const calls = new Map<string, Array<{ key: string; attempt: number }>>();

type JobEvent =
  | { type: 'START'; job: string }
  | { type: 'CANCEL' }
  | { type: 'ice.effect.done.work'; output: unknown; id: string }
  | { type: 'ice.effect.failed.work'; error: { message: string; attempts: number }; id: string };

const jobMachine = setup({
  types: {} as { context: { job?: string; output?: unknown; error?: string }; events: JobEvent },
}).createMachine({
  id: 'job',
  initial: 'idle',
  context: {},
  states: {
    idle: { on: { START: { target: 'working', actions: assign({ job: ({ event }) => (event as { job: string }).job }) } } },
    working: {
      entry: startEffect<{ job?: string; output?: unknown; error?: string }, JobEvent>('work', ({ context }) => ({ job: context.job })),
      on: {
        'ice.effect.done.work': { target: 'finished', actions: assign({ output: ({ event }) => (event as { output: unknown }).output }) },
        'ice.effect.failed.work': {
          target: 'broken',
          actions: assign({ error: ({ event }) => (event as { error: { message: string } }).error.message }),
        },
        CANCEL: 'idle',
      },
    },
    finished: {},
    broken: {},
  },
});

const jobActor = defineActor({
  kind: 'job',
  machine: jobMachine,
  events: { START: z.strictObject({ job: z.string() }), CANCEL: z.strictObject({}) },
  effects: {
    work: {
      params: z.strictObject({ job: z.string() }),
      result: z.strictObject({ ok: z.literal(true), job: z.string() }),
      timeoutMs: 300,
      retry: { maxAttempts: 3, backoffMs: 20, maxBackoffMs: 50 },
      run: async (params, ctx) => {
        const { job } = params as { job: string };
        calls.set(job, [...(calls.get(job) ?? []), { key: ctx.key, attempt: ctx.attempt }]);
        const b = behaviour.get(job);
        return b ? b(ctx.attempt, ctx.signal) : { ok: true, job };
      },
    },
  },
});

/** A job whose state also has a timer that throws: the actor fails while its effect runs. */
let release: (() => void) | undefined;
const slowCalls: number[] = [];
const fragileJob = defineActor({
  kind: 'fragjob',
  machine: setup({
    types: {} as { context: object; events: { type: 'START' } },
    actions: {
      boom: () => {
        throw new Error('the timer broke');
      },
    },
  }).createMachine({
    id: 'fragjob',
    initial: 'idle',
    states: {
      idle: { on: { START: 'working' } },
      working: { entry: startEffect('slow', {}), after: { 200: { actions: 'boom' } }, on: { 'ice.effect.done.slow': 'finished' } },
      finished: {},
    },
  }),
  events: { START: z.strictObject({}) },
  supervision: { strategy: 'stop' },
  effects: {
    slow: {
      run: async (_p, ctx) => {
        slowCalls.push(ctx.attempt);
        if (slowCalls.length === 1) await new Promise<void>((r) => (release = r));
        return { ok: true };
      },
    },
  },
});

const of = (facts: Fact[], type: string) => facts.filter((f) => f.type === type);

describe.each(MODES)('durable effects (%s)', (mode) => {
  const start = async (rt: Awaited<ReturnType<typeof tempRuntime>>['rt'], id: string, job: string) => {
    await rt.spawn(`job/${id}`);
    const out = await rt.propose({ id: iid(), proposer: 'agent:t', target: `job/${id}`, action: 'START', params: { job } });
    expect(out.status).toBe('executed');
  };
  // settled once the result's turn is in the journal (the actor in memory is ahead of its commit)
  const settled = (rt: Awaited<ReturnType<typeof tempRuntime>>['rt'], id: string) =>
    until(`job/${id} to settle`, async () => (await rt.journal.chain(`job/${id}`)).some((f) => f.data.effectOf !== undefined), 15_000);

  it('runs after the commit with a stable key, retries, and applies the result once as ice.effect.done', async () => {
    const h = await tempRuntime({ mode, actors: [jobActor] });
    try {
      const rt = h.rt;
      await rt.grants.issue({ subject: 'agent:t', scope: 'job/*:*' });
      const job = `${mode}-retry`;
      behaviour.set(job, async (attempt) => {
        if (attempt < 3) throw new Error(`flaky ${attempt}`);
        return { ok: true, job };
      });
      await start(rt, 'r1', job);
      await settled(rt, 'r1');
      expect(await rt.actor('job/r1')).toMatchObject({ state: 'finished', context: { output: { ok: true, job } } });
      const facts = await rt.journal.chain('job/r1');
      const started = of(facts, 'effect.started');
      expect(started).toHaveLength(1);
      const id = (started[0]!.data.effect as { id: string }).id;
      expect(calls.get(job)!.map((c) => c.attempt)).toEqual([1, 2, 3]);
      expect(new Set(calls.get(job)!.map((c) => c.key))).toEqual(new Set([id])); // one idempotency key
      const applied = facts.filter((f) => f.data.effectOf === id);
      expect(applied).toHaveLength(1);
      expect(applied[0]).toMatchObject({ origin: 'runtime', causes: [started[0]!.seq], data: { to: 'finished', attempts: 3 } });
      expect((await h.storedSnapshot('job/r1'))?.effects).toBeUndefined();
      expect((await rt.journal.verify()).ok).toBe(true);
    } finally {
      await h.close();
    }
  });

  it('a throw on every attempt, a hang past the timeout, a result off its schema: failed with the reason', async () => {
    const h = await tempRuntime({ mode, actors: [jobActor] });
    try {
      const rt = h.rt;
      await rt.grants.issue({ subject: 'agent:t', scope: 'job/*:*' });
      const cases: Array<[string, (a: number, s: AbortSignal) => Promise<unknown>, RegExp]> = [
        [`${mode}-throws`, () => Promise.reject(new Error('the API said no')), /the API said no/],
        [
          `${mode}-hangs`,
          (_a, signal) => new Promise((_, rej) => signal.addEventListener('abort', () => rej(new Error('aborted')))),
          /timed out after 300 ms/,
        ],
        [`${mode}-shape`, () => Promise.resolve({ ok: 'yes' }), /result does not match its schema: ok/],
      ];
      for (const [i, [job, b]] of cases.entries()) {
        behaviour.set(job, b);
        await start(rt, `f${i}`, job);
      }
      for (const [i, [job, , why]] of cases.entries()) {
        await settled(rt, `f${i}`);
        const a = await rt.actor(`job/f${i}`);
        expect(a?.state).toBe('broken');
        expect((a!.context as { error: string }).error).toMatch(why);
        expect(calls.get(job)).toHaveLength(3); // every attempt made
      }
    } finally {
      await h.close();
    }
  });

  it('leaving the state cancels the effect: a fact, its signal aborts, its result is never applied', async () => {
    const h = await tempRuntime({ mode, actors: [jobActor] });
    try {
      const rt = h.rt;
      await rt.grants.issue({ subject: 'agent:t', scope: 'job/*:*' });
      const job = `${mode}-cancel`;
      let aborted = false;
      behaviour.set(
        job,
        (_a, signal) => new Promise((resolve) => signal.addEventListener('abort', () => ((aborted = true), resolve({ ok: true, job })))),
      );
      await start(rt, 'c1', job);
      await until('the effect to run', () => calls.get(job)?.length === 1);
      expect((await rt.effects()).map((x) => [x.actor, x.name, x.running])).toEqual([['job/c1', 'work', true]]);
      await rt.propose({ id: iid(), proposer: 'agent:t', target: 'job/c1', action: 'CANCEL', params: {} });
      await until('the attempt to be aborted', () => aborted);
      await new Promise((r) => setTimeout(r, 200));
      const facts = await rt.journal.chain('job/c1');
      expect(of(facts, 'effect.cancelled')).toMatchObject([{ data: { name: 'work', state: 'working', now: 'idle' } }]);
      expect(facts.filter((f) => f.data.effectOf !== undefined)).toHaveLength(0);
      expect(await rt.actor('job/c1')).toMatchObject({ state: 'idle' });
      expect(await rt.effects()).toEqual([]);
    } finally {
      await h.close();
    }
  });

  it('a failure keeps the actor effects (not cancelled): they run again once it is restarted, one result applied', async () => {
    slowCalls.length = 0;
    const clock = new ManualClock();
    const h = await tempRuntime({ mode, clock, actors: [fragileJob], passivateAfterMs: 0 });
    try {
      const rt = h.rt;
      await rt.grants.issue({ subject: 'agent:t', scope: 'fragjob/*:*' });
      await rt.spawn('fragjob/x');
      await rt.propose({ id: iid(), proposer: 'agent:t', target: 'fragjob/x', action: 'START', params: {} });
      await until('the effect to run', () => slowCalls.length === 1);
      clock.advance(200);
      expect(await rt.fireDueTimers()).toBe(1);
      expect(await rt.actor('fragjob/x')).toMatchObject({ status: 'failed', state: 'working' });
      release!(); // its result arrives while the actor is failed: not applied
      await new Promise((r) => setTimeout(r, 200));
      const facts = await rt.journal.chain('fragjob/x');
      expect(of(facts, 'effect.cancelled')).toHaveLength(0);
      expect(facts.filter((f) => f.data.effectOf !== undefined)).toHaveLength(0);
      expect((await rt.effects()).map((x) => x.name)).toEqual(['slow']);
      await rt.restartActor('fragjob/x', 'operator:ops');
      await until('the effect to run again and apply', async () =>
        (await rt.journal.chain('fragjob/x')).some((f) => f.data.effectOf !== undefined),
      );
      expect(slowCalls).toHaveLength(2);
      expect((await rt.journal.chain('fragjob/x')).filter((f) => f.data.effectOf !== undefined)).toHaveLength(1);
      expect(await rt.actor('fragjob/x')).toMatchObject({ status: 'active', state: 'finished' });
    } finally {
      await h.close();
    }
  });

  it('started and not finished when the process stops: runs on the next start, its result applied once', async () => {
    const h = await tempRuntime({ mode, actors: [jobActor], wakeScanMs: 0 }); // runs nothing by itself
    try {
      let rt = h.rt;
      await rt.grants.issue({ subject: 'agent:t', scope: 'job/*:*' });
      const job = `${mode}-resume`;
      await start(rt, 'k1', job);
      expect((await h.storedSnapshot('job/k1'))?.effects).toMatchObject([{ name: 'work', state: 'working' }]);
      expect(calls.get(job)).toBeUndefined();
      expect((await rt.effects()).map((x) => x.name)).toEqual(['work']);
      rt = await h.restart({ actors: [jobActor], wakeScanMs: 5000 });
      await settled(rt, 'k1');
      await new Promise((r) => setTimeout(r, 200));
      expect(await rt.actor('job/k1')).toMatchObject({ state: 'finished' });
      expect(calls.get(job)).toHaveLength(1);
      expect((await rt.journal.chain('job/k1')).filter((f) => f.data.effectOf !== undefined)).toHaveLength(1);
    } finally {
      await h.close();
    }
  });
});

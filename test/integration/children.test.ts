import { describe, expect, it } from 'vitest';
import { assign, fromCallback, fromPromise, sendParent, sendTo, setup, spawnChild, type AnyActorRef } from 'xstate';
import { z } from 'zod';
import { ManualClock, defineActor, replayActor, type Fact } from '../../src/index.js';
import { MODES, iid, tempRuntime, until, type TempRuntime } from '../helpers/runtime.js';
import { ice } from '../helpers/ice-cli.js';
import { checkInvariants } from '../../src/testing/index.js';

/**
 * Children of hosted actors. A deployment spawns a worker machine (its own state, an `after`
 * that reports back with sendParent) and invokes a promise (fetchConfig) whose settling the
 * test controls. The promise's creator counts its runs: a restore must never run it again.
 */
const runs = { fetch: 0 };
const settlers = new Map<string, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
/** The sendBack of each running listener (a callback child), by key. */
const listeners = new Map<string, (ev: { type: 'PING'; n: number }) => void>();

const workerMachine = setup({
  types: {} as { context: { jobs: number }; events: { type: 'JOB' } | { type: 'PROBE'; key: string } },
  actors: {
    probe: fromPromise<unknown, { key: string }>(({ input }) => {
      runs.fetch++;
      return new Promise((resolve, reject) => settlers.set(input.key, { resolve, reject }));
    }),
  },
}).createMachine({
  id: 'worker',
  initial: 'idle',
  context: { jobs: 0 },
  states: {
    idle: {
      on: {
        JOB: { target: 'busy', actions: assign({ jobs: ({ context }) => context.jobs + 1 }) },
        PROBE: 'probing',
      },
    },
    probing: {
      invoke: {
        id: 'probe',
        src: 'probe',
        input: ({ event }) => ({ key: (event as { key: string }).key }),
        onDone: { target: 'idle', actions: sendParent({ type: 'PROBED' }) },
        onError: { target: 'idle', actions: sendParent({ type: 'PROBE_FAILED' }) },
      },
    },
    busy: { after: { 1000: { target: 'idle', actions: sendParent({ type: 'WORKER_IDLE' }) } } },
  },
});

const deploymentMachine = setup({
  types: {} as {
    context: {
      idled: number;
      config: unknown;
      lastError: unknown;
      probes: number;
      probeFailures: number;
      helper: AnyActorRef | null;
      pings: number[];
    };
    events:
      | { type: 'JOB' }
      | { type: 'FETCH'; key: string }
      | { type: 'WORKER_IDLE' }
      | { type: 'BREAK' }
      | { type: 'PROBE'; key: string }
      | { type: 'PROBED' }
      | { type: 'PROBE_FAILED' }
      | { type: 'HIRE' }
      | { type: 'HELP' }
      | { type: 'LISTEN'; key: string }
      | { type: 'PING'; n: number };
  },
  actors: {
    worker: workerMachine,
    listen: fromCallback<{ type: string }, { key: string }>(({ sendBack, input }) => {
      listeners.set(input.key, sendBack);
      return () => listeners.delete(input.key);
    }),
    fetchConfig: fromPromise<unknown, { key: string }>(({ input }) => {
      runs.fetch++;
      return new Promise((resolve, reject) => settlers.set(input.key, { resolve, reject }));
    }),
  },
}).createMachine({
  id: 'deployment',
  initial: 'running',
  context: { idled: 0, config: null, lastError: null, probes: 0, probeFailures: 0, helper: null, pings: [] },
  entry: spawnChild('worker', { id: 'worker' }),
  on: {
    JOB: { actions: sendTo('worker', { type: 'JOB' }) },
    WORKER_IDLE: { actions: assign({ idled: ({ context }) => context.idled + 1 }) },
    PROBE: { actions: sendTo('worker', ({ event }) => event) },
    PROBED: { actions: assign({ probes: ({ context }) => context.probes + 1 }) },
    PROBE_FAILED: { actions: assign({ probeFailures: ({ context }) => context.probeFailures + 1 }) },
    // a child spawned in assign: its ref lives in the context
    HIRE: { actions: assign({ helper: ({ spawn }) => spawn('worker', { id: 'helper' }) }) },
    HELP: { actions: sendTo(({ context }) => context.helper!, { type: 'JOB' }) },
    LISTEN: { actions: spawnChild('listen', { id: 'listener', input: ({ event }) => ({ key: (event as { key: string }).key }) }) },
    PING: { actions: assign({ pings: ({ context, event }) => [...context.pings, event.n] }) },
  },
  states: {
    running: { on: { FETCH: 'fetching' } },
    fetching: {
      invoke: {
        id: 'fetch',
        src: 'fetchConfig',
        input: ({ event }) => ({ key: (event as { key: string }).key }),
        onDone: { target: 'running', actions: assign({ config: ({ event }) => event.output }) },
        onError: { target: 'degraded', actions: assign({ lastError: ({ event }) => event.error }) },
      },
      on: { BREAK: 'fragile' },
    },
    fragile: {
      invoke: {
        id: 'fetch',
        src: 'fetchConfig',
        input: () => ({ key: 'fragile' }),
        onDone: {
          target: 'running',
          actions: () => {
            throw new Error('the config does not parse');
          },
        },
      },
    },
    degraded: { on: { FETCH: 'fetching' } },
  },
});

const deploymentActor = defineActor({
  kind: 'deployment',
  machine: deploymentMachine,
  events: {
    JOB: z.strictObject({}),
    FETCH: z.strictObject({ key: z.string() }),
    BREAK: z.strictObject({}),
    PROBE: z.strictObject({ key: z.string() }),
    HIRE: z.strictObject({}),
    HELP: z.strictObject({}),
    LISTEN: z.strictObject({ key: z.string() }),
  },
  supervision: { strategy: 'stop' },
});

const actors = [deploymentActor];
const childFacts = (facts: Fact[]) => facts.filter((f) => f.type === 'transition' && f.data.child !== undefined);

async function setupRuntime(mode: (typeof MODES)[number], clock: ManualClock): Promise<TempRuntime> {
  const h = await tempRuntime({ mode, clock, actors, passivateAfterMs: 0 });
  await h.rt.grants.issue({ subject: 'agent:t', scope: 'deployment/*:*' });
  return h;
}

const propose = (h: TempRuntime, target: string, action: string, params: Record<string, unknown> = {}) =>
  h.rt.propose({ id: iid(), proposer: 'agent:t', target, action, params });

/** The journal alone rebuilds the actor as the store holds it, every transition agreeing. */
async function replayAgrees(h: TempRuntime, address: string): Promise<void> {
  const facts = await h.rt.journal.chain(address);
  const runsBefore = runs.fetch;
  const replay = replayActor(deploymentActor, facts);
  expect(runs.fetch).toBe(runsBefore); // a replay runs no effect again
  try {
    const stored = await h.storedSnapshot(address);
    expect(replay.mismatches).toEqual([]);
    expect(replay.state).toBe(stored?.state);
    expect(replay.context).toEqual((stored?.snapshot as { context: unknown }).context);
  } finally {
    replay.actor.stop();
  }
}

/** The chaos kit's journal-only checks hold (embedded: on the stopped data dir). */
async function invariantsHold(h: TempRuntime): Promise<void> {
  if (h.mode === 'embedded') await h.rt.stop();
  const where = h.mode === 'embedded' ? { dataDir: h.dir } : { servers: h.server!.url };
  const report = await checkInvariants({ ...where, actors });
  expect(report.violations).toEqual([]);
  expect(report.ok).toBe(true);
}

describe.each(MODES)('child actors (%s)', (mode) => {
  it('a promise child settling outside a turn becomes a transition fact, and survives a restart (replay equals live)', async () => {
    const clock = new ManualClock();
    const h = await setupRuntime(mode, clock);
    try {
      await h.rt.spawn('deployment/web');
      const key = `ok-${mode}`;
      expect(await propose(h, 'deployment/web', 'FETCH', { key })).toMatchObject({ status: 'executed', to: 'fetching' });
      const before = await h.rt.journal.chain('deployment/web');
      settlers.get(key)!.resolve({ replicas: 3 });
      await until('the child event to be committed', async () => childFacts(await h.rt.journal.chain('deployment/web')).length === 1);
      const facts = await h.rt.journal.chain('deployment/web');
      expect(facts.length).toBe(before.length + 1);
      expect(childFacts(facts)[0]).toMatchObject({
        origin: 'runtime',
        data: {
          from: 'fetching',
          to: 'running',
          child: 'fetch',
          event: { type: 'xstate.done.actor.fetch', actorId: 'fetch', output: { replicas: 3 } },
        },
      });
      expect(await h.storedSnapshot('deployment/web')).toMatchObject({ state: 'running', seq: facts.at(-1)!.seq });
      expect((await h.rt.actor('deployment/web'))?.context).toMatchObject({ config: { replicas: 3 } });

      // a rejection reaches onError as XState's error event, journaled as JSON
      const bad = `bad-${mode}`;
      await propose(h, 'deployment/web', 'FETCH', { key: bad });
      settlers.get(bad)!.reject(new Error('config service down'));
      await until('the error event to be committed', async () => childFacts(await h.rt.journal.chain('deployment/web')).length === 2);
      const err = childFacts(await h.rt.journal.chain('deployment/web'))[1]!;
      expect(err.data).toMatchObject({
        from: 'fetching',
        to: 'degraded',
        child: 'fetch',
        event: { type: 'xstate.error.actor.fetch', error: { name: 'Error', message: 'config service down' } },
      });
      const live = await h.rt.actor('deployment/web');
      expect(live).toMatchObject({ state: 'degraded', context: { lastError: { message: 'config service down' } } });

      const runsBefore = runs.fetch;
      const rt = await h.restart({ clock, actors, passivateAfterMs: 0 });
      expect(await propose(h, 'deployment/web', 'JOB')).toMatchObject({ status: 'executed' }); // activates it
      expect(await rt.actor('deployment/web')).toMatchObject({ state: 'degraded', context: live!.context });
      expect(runs.fetch).toBe(runsBefore);
      await replayAgrees(h, 'deployment/web');
      expect((await rt.journal.verify()).ok).toBe(true);
      await invariantsHold(h);
    } finally {
      await h.close();
    }
  });

  it('a machine child tree comes back whole: passivate, re-activate, restart the process, twice; its after fires with its path', async () => {
    const clock = new ManualClock();
    const h = await setupRuntime(mode, clock);
    try {
      let rt = h.rt;
      await rt.spawn('deployment/tree');
      await propose(h, 'deployment/tree', 'JOB');
      expect(await rt.actor('deployment/tree/worker')).toMatchObject({
        address: 'deployment/tree/worker',
        state: 'busy',
        context: { jobs: 1 },
        active: true,
      });
      expect(await rt.timers()).toEqual([expect.objectContaining({ actor: 'deployment/tree', source: 'worker' })]);

      // passivated: read from the stored snapshot; re-activated by its child's timer
      expect(await rt.passivate('deployment/tree')).toBe(true);
      expect(await rt.actor('deployment/tree/worker')).toMatchObject({ state: 'busy', context: { jobs: 1 }, active: false });
      clock.advance(1000);
      expect(await rt.fireDueTimers()).toBe(1);
      const fired = (await rt.journal.chain('deployment/tree')).filter((f) => f.data.timer !== undefined);
      expect(fired).toMatchObject([
        { data: { from: 'running', to: 'running', timer: { source: 'worker', id: 'xstate.after.1000.worker.busy' } } },
      ]);
      expect(await rt.actor('deployment/tree')).toMatchObject({ context: { idled: 1 } });
      expect(await rt.actor('deployment/tree/worker')).toMatchObject({ state: 'idle', context: { jobs: 1 } });

      // restore → persist → restore, across process restarts; a second child spawned in assign
      await propose(h, 'deployment/tree', 'JOB');
      expect(await propose(h, 'deployment/tree', 'HIRE')).toMatchObject({ status: 'executed' });
      expect((await rt.actor('deployment/tree'))?.context).toMatchObject({ helper: { id: 'helper' } });
      expect(await rt.passivate('deployment/tree')).toBe(true);
      for (let round = 0; round < 2; round++) {
        rt = await h.restart({ clock, actors, passivateAfterMs: 0 });
        expect(await rt.actor('deployment/tree/worker')).toMatchObject({ state: 'busy', context: { jobs: 2 + round } });
        expect(await propose(h, 'deployment/tree', 'FETCH', { key: `tree-${mode}-${round}` })).toMatchObject({ status: 'executed' });
        settlers.get(`tree-${mode}-${round}`)!.resolve({ round });
        await until('the fetch to settle', async () => (await rt.actor('deployment/tree'))?.state === 'running');
        await until('its fact to be stored', async () => (await h.storedSnapshot('deployment/tree'))?.state === 'running');
        expect(await rt.actor('deployment/tree/worker')).toMatchObject({ state: 'busy', context: { jobs: 2 + round }, active: true });
        // the ref in the context is the restored child
        expect(await propose(h, 'deployment/tree', 'HELP')).toMatchObject({ status: 'executed' });
        expect(await rt.actor('deployment/tree/helper')).toMatchObject({ state: 'busy', context: { jobs: round + 1 } });
        if (round === 0) {
          clock.advance(1000);
          expect(await rt.fireDueTimers()).toBe(2); // both children's after, each a fact with its own source
          expect(await rt.actor('deployment/tree/worker')).toMatchObject({ state: 'idle' });
          await propose(h, 'deployment/tree', 'JOB');
          expect(await rt.passivate('deployment/tree')).toBe(true);
        }
      }
      clock.advance(1000);
      expect(await rt.fireDueTimers()).toBe(2);
      expect(await rt.actor('deployment/tree')).toMatchObject({ context: { idled: 5, config: { round: 1 } } });
      expect(await rt.actor('deployment/tree/worker')).toMatchObject({ state: 'idle', context: { jobs: 3 } });
      expect(await rt.actor('deployment/tree/helper')).toMatchObject({ state: 'idle', context: { jobs: 2 } });
      const sources = (await rt.journal.chain('deployment/tree')).flatMap((f) =>
        f.data.timer !== undefined ? [(f.data.timer as { source: string }).source] : [],
      );
      expect(sources.sort()).toEqual(['helper', 'helper', 'worker', 'worker', 'worker']);
      await replayAgrees(h, 'deployment/tree');

      // not found: a child that does not exist
      expect(await rt.actor('deployment/tree/nobody')).toBeUndefined();
      // a child takes no intents: refused with what to do
      const refused = await propose(h, 'deployment/tree/worker', 'JOB');
      expect(refused.status).toBe('rejected');
      expect(JSON.stringify(refused)).toContain('a child actor takes no intents');
      await invariantsHold(h);
    } finally {
      await h.close();
    }
  });

  it('a promise in flight at restore is not run again: a child.lost fact, and the error event its onError handles', async () => {
    const clock = new ManualClock();
    const h = await setupRuntime(mode, clock);
    try {
      await h.rt.spawn('deployment/lost');
      await propose(h, 'deployment/lost', 'FETCH', { key: `never-${mode}` });
      // in flight: not idle, so not passivated (it would be lost)
      expect(await h.rt.passivate('deployment/lost')).toBe(false);
      expect((await h.storedSnapshot('deployment/lost'))?.state).toBe('fetching');
      const runsBefore = runs.fetch;
      const rt = await h.restart({ clock, actors, passivateAfterMs: 0 });
      expect(await propose(h, 'deployment/lost', 'JOB')).toMatchObject({ status: 'executed' });
      expect(runs.fetch).toBe(runsBefore);
      const facts = await rt.journal.chain('deployment/lost');
      const restored = facts.findIndex((f) => f.type === 'actor.restored');
      expect(facts.slice(restored, restored + 3)).toMatchObject([
        { type: 'actor.restored' },
        { type: 'child.lost', origin: 'runtime', data: { child: 'fetch', src: 'fetchConfig' } },
        {
          type: 'transition',
          origin: 'runtime',
          data: {
            from: 'fetching',
            to: 'degraded',
            child: 'fetch',
            event: { type: 'xstate.error.actor.fetch', error: { code: 'E_CHILD_LOST' } },
          },
        },
      ]);
      expect(String(facts[restored + 1]!.data.reason)).toContain('in flight');
      expect(await rt.actor('deployment/lost')).toMatchObject({ state: 'degraded', context: { lastError: { code: 'E_CHILD_LOST' } } });
      // once: the next restore finds nothing lost
      await h.restart({ clock, actors, passivateAfterMs: 0 });
      await propose(h, 'deployment/lost', 'JOB');
      expect((await h.rt.journal.chain('deployment/lost')).filter((f) => f.type === 'child.lost')).toHaveLength(1);
      await replayAgrees(h, 'deployment/lost');
      await invariantsHold(h);
    } finally {
      await h.close();
    }
  });

  it('a child event the machine throws on fails the actor (a fact), not a silent hang', async () => {
    const clock = new ManualClock();
    const h = await setupRuntime(mode, clock);
    try {
      await h.rt.spawn('deployment/frag');
      await propose(h, 'deployment/frag', 'FETCH', { key: `x-${mode}` });
      await propose(h, 'deployment/frag', 'BREAK');
      settlers.get('fragile')!.resolve({});
      await until('the failure', async () => (await h.rt.actor('deployment/frag'))?.status === 'failed');
      const failed = (await h.rt.journal.chain('deployment/frag')).filter((f) => f.type === 'actor.failed');
      expect(failed).toMatchObject([
        { data: { message: 'the config does not parse', state: 'fragile', child: { child: 'fetch', event: 'xstate.done.actor.fetch' } } },
      ]);
      // back at its last snapshot (the fetch in flight, started again: a revert is not a restore);
      // failed, it takes nothing: what the fetch delivers now is recorded, not delivered
      settlers.get('fragile')!.resolve({});
      await until('the undelivered event to be recorded', async () =>
        (await h.rt.journal.chain('deployment/frag')).some((f) => f.type === 'child.lost'),
      );
      expect((await h.rt.journal.chain('deployment/frag')).filter((f) => f.type === 'child.lost')).toMatchObject([
        { data: { child: 'fetch', src: 'fetchConfig', event: 'xstate.done.actor.fetch' } },
      ]);
      expect(await h.rt.actor('deployment/frag')).toMatchObject({ status: 'failed', state: 'fragile' });
      await replayAgrees(h, 'deployment/frag');
      await invariantsHold(h);
    } finally {
      await h.close();
    }
  });

  it('a grandchild: its settling goes to its parent child (target), and in flight at restore it is lost to that child', async () => {
    const clock = new ManualClock();
    const h = await setupRuntime(mode, clock);
    try {
      await h.rt.spawn('deployment/deep');
      const k1 = `probe-${mode}-1`;
      await propose(h, 'deployment/deep', 'PROBE', { key: k1 });
      expect(await h.rt.actor('deployment/deep/worker')).toMatchObject({ state: 'probing', children: ['probe'] });
      expect(await h.rt.actor('deployment/deep/worker/probe')).toMatchObject({ status: 'active', src: 'probe' });
      settlers.get(k1)!.resolve('fine');
      await until('the probe to be recorded', async () => childFacts(await h.rt.journal.chain('deployment/deep')).length === 1);
      expect(childFacts(await h.rt.journal.chain('deployment/deep'))[0]!.data).toMatchObject({
        child: 'worker/probe',
        target: 'worker',
        event: { type: 'xstate.done.actor.probe', output: 'fine' },
      });
      expect(await h.rt.actor('deployment/deep')).toMatchObject({ context: { probes: 1 } });

      await propose(h, 'deployment/deep', 'PROBE', { key: `probe-${mode}-2` });
      expect(await h.rt.passivate('deployment/deep')).toBe(false); // a grandchild in flight
      const runsBefore = runs.fetch;
      await h.restart({ clock, actors, passivateAfterMs: 0 });
      await propose(h, 'deployment/deep', 'JOB');
      expect(runs.fetch).toBe(runsBefore);
      const facts = await h.rt.journal.chain('deployment/deep');
      expect(facts.filter((f) => f.type === 'child.lost')).toMatchObject([{ data: { child: 'worker/probe', src: 'probe' } }]);
      expect(childFacts(facts).at(-1)!.data).toMatchObject({
        child: 'worker/probe',
        target: 'worker',
        event: { type: 'xstate.error.actor.probe', error: { code: 'E_CHILD_LOST' } },
      });
      expect(await h.rt.actor('deployment/deep')).toMatchObject({ context: { probes: 1, probeFailures: 1 } });
      expect(await h.rt.actor('deployment/deep/worker')).toMatchObject({ state: 'busy', context: { jobs: 1 } });
      await replayAgrees(h, 'deployment/deep');
      await invariantsHold(h);
    } finally {
      await h.close();
    }
  });

  it('a callback child: each sendBack is a fact; running at restore, it is lost, and with no onError its parent fails (recorded)', async () => {
    const clock = new ManualClock();
    const h = await setupRuntime(mode, clock);
    try {
      await h.rt.spawn('deployment/cb');
      const key = `cb-${mode}`;
      await propose(h, 'deployment/cb', 'LISTEN', { key });
      listeners.get(key)!({ type: 'PING', n: 1 });
      listeners.get(key)!({ type: 'PING', n: 2 });
      await until('both pings recorded', async () => childFacts(await h.rt.journal.chain('deployment/cb')).length === 2);
      expect(childFacts(await h.rt.journal.chain('deployment/cb')).map((f) => f.data)).toMatchObject([
        { child: 'listener', event: { type: 'PING', n: 1 } },
        { child: 'listener', event: { type: 'PING', n: 2 } },
      ]);
      expect(await h.rt.actor('deployment/cb')).toMatchObject({ context: { pings: [1, 2] } });
      await h.restart({ clock, actors, passivateAfterMs: 0 });
      expect(listeners.has(key)).toBe(false); // stopped with its process, not started again
      await propose(h, 'deployment/cb', 'JOB');
      expect(listeners.has(key)).toBe(false);
      const facts = await h.rt.journal.chain('deployment/cb');
      expect(facts.filter((f) => f.type === 'child.lost')).toMatchObject([{ data: { child: 'listener', src: 'listen' } }]);
      // no handler for it: as in XState, an unhandled child error fails the parent (a fact, its supervision)
      expect(facts.filter((f) => f.type === 'actor.failed')).toMatchObject([
        { data: { state: 'running', child: { child: 'listener', event: 'xstate.error.actor.listener' }, stays: 'supervision: stop' } },
      ]);
      expect(await h.rt.actor('deployment/cb')).toMatchObject({ status: 'failed', state: 'running', context: { pings: [1, 2] } });
      // restarted by hand: active, without the lost child
      expect(await h.rt.restartActor('deployment/cb', 'operator:ops')).toMatchObject({ status: 'active', state: 'running' });
      expect(await h.rt.actor('deployment/cb/listener')).toBeUndefined();
      await replayAgrees(h, 'deployment/cb');
      await invariantsHold(h);
    } finally {
      await h.close();
    }
  });

  it("ice actor show kind/id/child prints the child from its parent's stored snapshot; a missing child is a clear error", async () => {
    const clock = new ManualClock();
    const h = await setupRuntime(mode, clock);
    const where = () => (mode === 'embedded' ? ['--data', h.dir] : ['--nats', h.server!.url]);
    try {
      await h.rt.spawn('deployment/cli');
      await propose(h, 'deployment/cli', 'JOB');
      const json = await ice(['actor', 'show', 'deployment/cli/worker', '--json', ...where()]);
      expect(json.code, json.stderr).toBe(0);
      expect(JSON.parse(json.stdout)).toMatchObject({
        address: 'deployment/cli/worker',
        parent: 'deployment/cli',
        src: 'worker',
        state: 'busy',
        status: 'active',
        context: { jobs: 1 },
        facts: expect.arrayContaining([expect.objectContaining({ actor: 'deployment/cli', type: 'transition' })]),
      });
      const text = await ice(['actor', 'show', 'deployment/cli/worker', ...where()]);
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout).toContain('deployment/cli/worker  busy');
      expect(text.stdout).toContain('child of deployment/cli (worker)');
      expect(text.stdout).toContain('"jobs": 1');
      const parent = await ice(['actor', 'show', 'deployment/cli', ...where()]);
      expect(parent.stdout).toContain('children deployment/cli/worker');
      // commands take top-level actors: refused at once, naming the parent
      const stop = await ice(['actor', 'stop', 'deployment/cli/worker', '--reason', 'x', ...where()]);
      expect(stop.code).not.toBe(0);
      expect(stop.stderr).toContain('deployment/cli/worker is a child of deployment/cli');
      const missing = await ice(['actor', 'show', 'deployment/cli/nobody', ...where()]);
      expect(missing.code).not.toBe(0);
      expect(missing.stderr).toMatch(/nobody/);
    } finally {
      await h.close();
    }
  });
});

describe('child actors across cluster nodes', () => {
  it('a node taking an actor over loses the promise the dead owner had in flight, and records it', async () => {
    const clock = new ManualClock();
    const h = await setupRuntime('cluster', clock);
    try {
      await h.rt.spawn('deployment/tk');
      await propose(h, 'deployment/tk', 'FETCH', { key: 'takeover' });
      const runsBefore = runs.fetch;
      await h.rt.stop(); // n1 gone, its lease released
      const n2 = await h.node('n2', { clock, actors, passivateAfterMs: 0 });
      expect(await n2.propose({ id: iid(), proposer: 'agent:t', target: 'deployment/tk', action: 'JOB', params: {} })).toMatchObject({
        status: 'executed',
      });
      expect(runs.fetch).toBe(runsBefore);
      const facts = await n2.journal.chain('deployment/tk');
      expect(facts.filter((f) => ['actor.restored', 'child.lost'].includes(f.type))).toMatchObject([
        { type: 'actor.restored', data: { node: 'n2' } },
        { type: 'child.lost', data: { child: 'fetch' } },
      ]);
      expect(await n2.actor('deployment/tk')).toMatchObject({ state: 'degraded', context: { lastError: { code: 'E_CHILD_LOST' } } });
    } finally {
      await h.close();
    }
  });
});

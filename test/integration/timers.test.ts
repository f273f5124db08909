import { describe, expect, it } from 'vitest';
import { assign, setup } from 'xstate';
import { z } from 'zod';
import { ManualClock, defineActor, replayActor, type Fact } from '../../src/index.js';
import { startInspector } from '../../src/inspector/server.js';
import { MODES, iid, tempRuntime, until } from '../helpers/runtime.js';

/**
 * A reminder: ARM starts a wait (`after`), which rings; SNOOZE (a delayed raise with an id)
 * rings again later; BOOM arms a timer whose transition throws.
 */
const reminderMachine = setup({
  types: {} as { context: { rings: number; snoozes: number }; events: { type: 'ARM' } | { type: 'SNOOZE' } | { type: 'BOOM' } },
  actions: {
    explode: () => {
      throw new Error('the bell is broken');
    },
  },
}).createMachine({
  id: 'reminder',
  initial: 'idle',
  context: { rings: 0, snoozes: 0 },
  states: {
    idle: { on: { ARM: 'waiting', BOOM: 'fragile' } },
    waiting: {
      after: { 1000: { target: 'rung', actions: assign({ rings: ({ context }) => context.rings + 1 }) } },
      on: { ARM: 'idle' }, // arming again cancels the wait
    },
    fragile: { after: { 500: { target: 'rung', actions: 'explode' } } },
    rung: {
      on: { SNOOZE: { target: 'waiting', actions: assign({ snoozes: ({ context }) => context.snoozes + 1 }) } },
    },
  },
});

const reminderActor = defineActor({
  kind: 'reminder',
  machine: reminderMachine,
  events: { ARM: z.strictObject({}), SNOOZE: z.strictObject({}), BOOM: z.strictObject({}) },
  supervision: { strategy: 'restart', backoffMs: 200, maxBackoffMs: 1000, maxRestarts: 2, withinMs: 60_000 },
});

const stoppingActor = defineActor({
  kind: 'fragile',
  machine: reminderMachine,
  events: { ARM: z.strictObject({}), BOOM: z.strictObject({}) },
  supervision: { strategy: 'stop' },
});

const escalatingActor = defineActor({
  kind: 'watched',
  machine: reminderMachine,
  events: { BOOM: z.strictObject({}) },
  supervision: { strategy: 'escalate', to: ({ address }) => `supervisor/of-${address.slice(address.indexOf('/') + 1)}` },
});

const supervisorMachine = setup({
  types: {} as { context: { failed: string[] }; events: { type: 'ACTOR_FAILED'; actor: string; message: string } },
}).createMachine({
  id: 'supervisor',
  initial: 'calm',
  context: { failed: [] },
  states: {
    calm: {
      on: { ACTOR_FAILED: { target: 'alerted', actions: assign({ failed: ({ context, event }) => [...context.failed, event.actor] }) } },
    },
    alerted: {},
  },
});
const supervisorActor = defineActor({
  kind: 'supervisor',
  machine: supervisorMachine,
  events: {},
  runtimeEvents: { ACTOR_FAILED: z.strictObject({ actor: z.string(), message: z.string() }) },
});

const timerFacts = (facts: Fact[]) => facts.filter((f) => f.type === 'transition' && f.data.timer !== undefined);

describe.each(MODES)('durable timers (%s)', (mode) => {
  it('an after fires as a runtime transition fact, once, and survives a restart with the time left', async () => {
    const clock = new ManualClock();
    const h = await tempRuntime({ mode, clock, actors: [reminderActor], passivateAfterMs: 0 });
    try {
      let rt = h.rt;
      await rt.spawn('reminder/r1');
      await rt.grants.issue({ subject: 'agent:t', scope: 'reminder/*:*' });
      const armed = await rt.propose({ id: iid(), proposer: 'agent:t', target: 'reminder/r1', action: 'ARM', params: {} });
      expect(armed.status).toBe('executed');
      const armedAt = clock.now();
      expect(await rt.timers()).toEqual([
        expect.objectContaining({ actor: 'reminder/r1', event: 'xstate.after.1000.reminder.waiting', dueAt: armedAt + 1000 }),
      ]);
      const stored = await h.storedSnapshot('reminder/r1');
      expect(stored?.timers).toEqual([expect.objectContaining({ source: '', dueAt: armedAt + 1000 })]);
      expect(stored?.wakeAt).toBe(armedAt + 1000);

      clock.advance(400);
      expect(await rt.fireDueTimers()).toBe(0); // not due yet
      // stop the process with the timer pending, and start again 300 ms later
      rt = await h.restart({ clock, actors: [reminderActor], passivateAfterMs: 0 });
      clock.advance(300);
      expect(await rt.fireDueTimers()).toBe(0); // 700 ms of 1000: the time left is honoured
      clock.advance(500);
      expect(await rt.fireDueTimers()).toBe(1);
      expect(await rt.fireDueTimers()).toBe(0); // never twice
      const a = await rt.actor('reminder/r1');
      expect(a).toMatchObject({ state: 'rung', status: 'active' });
      expect((a!.context as { rings: number }).rings).toBe(1);
      const facts = await rt.journal.chain('reminder/r1');
      const fired = timerFacts(facts);
      expect(fired).toHaveLength(1);
      expect(fired[0]).toMatchObject({
        origin: 'runtime',
        data: {
          from: 'waiting',
          to: 'rung',
          timer: { source: '', id: 'xstate.after.1000.reminder.waiting', dueAt: armedAt + 1000, lateMs: 200 },
        },
      });
      expect(await rt.timers()).toEqual([]);
      expect((await h.storedSnapshot('reminder/r1'))?.wakeAt).toBeUndefined();

      // the journal alone rebuilds the same actor (the firing is a fact, delivered as it was)
      const replay = replayActor(reminderActor, facts);
      expect(replay).toMatchObject({ state: 'rung', context: { rings: 1 }, mismatches: [] });
      replay.actor.stop();
      // a fresh restore replays the fired timer and does not fire it again
      rt = await h.restart({ clock, actors: [reminderActor], passivateAfterMs: 0 });
      clock.advance(5000);
      expect(await rt.fireDueTimers()).toBe(0);
      expect(await rt.actor('reminder/r1')).toMatchObject({ state: 'rung' });
      expect((await rt.journal.verify()).ok).toBe(true);
    } finally {
      await h.close();
    }
  });

  it('leaving the state cancels its timer; a passivated actor wakes up for its timer', async () => {
    const clock = new ManualClock();
    const h = await tempRuntime({ mode, clock, actors: [reminderActor], passivateAfterMs: 0 });
    try {
      const rt = h.rt;
      await rt.grants.issue({ subject: 'agent:t', scope: 'reminder/*:*' });
      for (const id of ['c1', 'c2']) {
        await rt.spawn(`reminder/${id}`);
        await rt.propose({ id: iid(), proposer: 'agent:t', target: `reminder/${id}`, action: 'ARM', params: {} });
      }
      // c1 leaves `waiting`: its timer is cancelled
      await rt.propose({ id: iid(), proposer: 'agent:t', target: 'reminder/c1', action: 'ARM', params: {} });
      expect((await rt.timers()).map((t) => t.actor)).toEqual(['reminder/c2']);
      expect(await rt.passivate('reminder/c2')).toBe(true);
      expect(rt.hosting('reminder/c2')).toBeUndefined();
      expect((await rt.timers()).map((t) => t.actor)).toEqual(['reminder/c2']); // from the store
      clock.advance(1000);
      expect(await rt.fireDueTimers()).toBe(1);
      expect(rt.hosting('reminder/c2')).toMatchObject({ state: 'rung' });
      expect(await rt.actor('reminder/c1')).toMatchObject({ state: 'idle' });
      expect(timerFacts(await rt.journal.chain('reminder/c1'))).toHaveLength(0);
    } finally {
      await h.close();
    }
  });

  it('a timer of an actor whose kind is no longer registered is a fact for that actor alone; the node keeps serving', async () => {
    const clock = new ManualClock();
    const h = await tempRuntime({ mode, clock, actors: [reminderActor, stoppingActor], passivateAfterMs: 0 });
    try {
      let rt = h.rt;
      await rt.grants.issue({ subject: 'agent:t', scope: '*' });
      await rt.spawn('fragile/gone');
      await rt.spawn('reminder/stays');
      await rt.propose({ id: iid(), proposer: 'agent:t', target: 'fragile/gone', action: 'ARM', params: {} });
      await rt.propose({ id: iid(), proposer: 'agent:t', target: 'reminder/stays', action: 'ARM', params: {} });
      // a deploy without the `fragile` kind
      rt = await h.restart({ clock, actors: [reminderActor], passivateAfterMs: 0 });
      clock.advance(1000);
      expect(await rt.fireDueTimers()).toBe(1); // reminder/stays only
      expect(await rt.fireDueTimers()).toBe(0); // said once, not retried in a loop
      expect(await rt.actor('reminder/stays')).toMatchObject({ state: 'rung' });
      const failed = (await rt.journal.tail({ limit: 50 })).filter((f) => f.type === 'actor.failed' && f.data.actor === 'fragile/gone');
      expect(failed).toHaveLength(1);
      expect(failed[0]!.data.message).toMatch(/its timers cannot fire: .*kind fragile is not registered/);
      // its data is untouched: a node with the kind fires it
      expect((await h.storedSnapshot('fragile/gone'))?.timers).toHaveLength(1);
      rt = await h.restart({ clock, actors: [reminderActor, stoppingActor], passivateAfterMs: 0 });
      expect(await rt.fireDueTimers()).toBe(1);
      expect(await rt.actor('fragile/gone')).toMatchObject({ state: 'rung' });
    } finally {
      await h.close();
    }
  });

  it('escalate: the failure stays, and the supervisor named by the policy gets ACTOR_FAILED as a runtime transition', async () => {
    const clock = new ManualClock();
    const h = await tempRuntime({ mode, clock, actors: [escalatingActor, supervisorActor], passivateAfterMs: 0 });
    try {
      const rt = h.rt;
      await rt.grants.issue({ subject: 'agent:t', scope: '*' });
      await rt.spawn('supervisor/of-w1');
      await rt.spawn('watched/w1');
      await rt.spawn('watched/w2'); // its supervisor does not exist: the escalation's failure is a fact
      for (const a of ['watched/w1', 'watched/w2'])
        await rt.propose({ id: iid(), proposer: 'agent:t', target: a, action: 'BOOM', params: {} });
      clock.advance(500);
      expect(await rt.fireDueTimers()).toBe(2);
      await until('the supervisor to take the escalation', async () => (await rt.actor('supervisor/of-w1'))?.state === 'alerted');
      expect((await rt.actor('supervisor/of-w1'))!.context).toEqual({ failed: ['watched/w1'] });
      const sup = (await rt.journal.chain('supervisor/of-w1')).find((f) => f.type === 'transition');
      expect(sup).toMatchObject({
        origin: 'runtime',
        data: { event: { type: 'ACTOR_FAILED', actor: 'watched/w1', message: 'the bell is broken' } },
      });
      expect((await rt.journal.chain('watched/w1')).find((f) => f.type === 'actor.failed')!.data).toMatchObject({
        escalatedTo: 'supervisor/of-w1',
        stays: 'supervision: escalate to supervisor/of-w1',
      });
      expect(await rt.actor('watched/w1')).toMatchObject({ status: 'failed' });
      await until('the failed escalation to be recorded', async () =>
        (await rt.journal.tail({ limit: 50 })).some(
          (f) => f.type === 'actor.failed' && /escalation to supervisor\/of-w2 failed/.test(String(f.data.message)),
        ),
      );
    } finally {
      await h.close();
    }
  });

  it('fires on the real clock without being asked', async () => {
    const h = await tempRuntime({ mode, actors: [reminderActor] });
    try {
      const rt = h.rt;
      await rt.spawn('reminder/rc');
      await rt.grants.issue({ subject: 'agent:t', scope: 'reminder/*:*' });
      await rt.propose({ id: iid(), proposer: 'agent:t', target: 'reminder/rc', action: 'ARM', params: {} });
      await until('the timer to fire', async () => timerFacts(await rt.journal.chain('reminder/rc')).length === 1);
      expect(await rt.actor('reminder/rc')).toMatchObject({ state: 'rung' });
    } finally {
      await h.close();
    }
  });

  it('a timer whose transition throws fails the actor (a fact), supervision restarts it; stop keeps it failed until restarted by hand', async () => {
    const clock = new ManualClock();
    const h = await tempRuntime({ mode, clock, actors: [reminderActor, stoppingActor], passivateAfterMs: 0 });
    try {
      let rt = h.rt;
      await rt.grants.issue({ subject: 'agent:t', scope: '*' });
      await rt.spawn('reminder/f1');
      await rt.spawn('fragile/f2');
      for (const a of ['reminder/f1', 'fragile/f2'])
        expect((await rt.propose({ id: iid(), proposer: 'agent:t', target: a, action: 'BOOM', params: {} })).status).toBe('executed');
      clock.advance(500);
      expect(await rt.fireDueTimers()).toBe(2);
      for (const a of ['reminder/f1', 'fragile/f2']) {
        expect(await rt.actor(a)).toMatchObject({ status: 'failed', state: 'fragile' });
        const failed = (await rt.journal.chain(a)).filter((f) => f.type === 'actor.failed');
        expect(failed).toHaveLength(1);
        expect(failed[0]!.data).toMatchObject({ message: 'the bell is broken', timer: { id: 'xstate.after.500.reminder.fragile' } });
      }
      expect((await rt.journal.chain('reminder/f1')).find((f) => f.type === 'actor.failed')!.data.restartAt).toBe(
        new Date(clock.now() + 200).toISOString(),
      );
      expect((await rt.journal.chain('fragile/f2')).find((f) => f.type === 'actor.failed')!.data.stays).toBe('supervision: stop');
      // a failed actor takes no intents: denied, a fact, no transition
      const refused = await rt.propose({ id: iid(), proposer: 'agent:t', target: 'fragile/f2', action: 'ARM', params: {} });
      expect(refused).toMatchObject({ status: 'denied', reasons: [{ code: 'actor_not_active', message: 'fragile/f2 is failed' }] });
      expect((await rt.listActors()).filter((a) => a.status === 'failed').map((a) => a.address)).toEqual(['fragile/f2', 'reminder/f1']);
      // and a metric, on the inspector's /metrics (Prometheus text)
      const ins = await startInspector({ runtime: rt, port: 0 });
      try {
        const text = await (await fetch(`${ins.url}/metrics`)).text();
        expect(text).toMatch(/ice_actor_failures_total\{kind="reminder",node="[^"]+"\} 1/);
        expect(text).toMatch(/ice_actor_failures_total\{kind="fragile",node="[^"]+"\} 1/);
        expect(text).toMatch(/ice_actors_failed_in_memory\{node="[^"]+"\} 2/);
      } finally {
        await ins.close();
      }
      expect((await rt.timers()).map((t) => [t.actor, t.event])).toEqual([['reminder/f1', 'restart']]);

      // the restart survives a process restart: it is in the failed fact and the wake-up index
      rt = await h.restart({ clock, actors: [reminderActor, stoppingActor], passivateAfterMs: 0 });
      clock.advance(200);
      expect(await rt.fireDueTimers()).toBe(1);
      expect(await rt.actor('reminder/f1')).toMatchObject({ status: 'active', state: 'fragile' });
      const restarted = (await rt.journal.chain('reminder/f1')).filter((f) => f.type === 'actor.restarted');
      expect(restarted).toMatchObject([{ origin: 'runtime', data: { by: 'supervision', failures: 1 } }]);
      // the timer that threw went with the failure: nothing fires again
      clock.advance(10_000);
      expect(await rt.fireDueTimers()).toBe(0);
      expect(await rt.actor('fragile/f2')).toMatchObject({ status: 'failed' });

      // by hand: an operator fact; then it takes intents again
      await expect(rt.restartActor('reminder/f1', 'operator:ops')).rejects.toMatchObject({ code: 'E_CONFLICT' });
      expect(await rt.restartActor('fragile/f2', 'operator:ops', 'bell replaced')).toMatchObject({ status: 'active' });
      expect((await rt.journal.chain('fragile/f2')).filter((f) => f.type === 'actor.restarted')).toMatchObject([
        { origin: 'operator', data: { by: 'operator:ops', reason: 'bell replaced' } },
      ]);
      // replay agrees: after a restart of the process both are active
      rt = await h.restart({ clock, actors: [reminderActor, stoppingActor], passivateAfterMs: 0 });
      expect(await rt.actor('fragile/f2')).toMatchObject({ status: 'active', state: 'fragile' });
      // `fragile` has no ARM: the machine's own answer now, not the failure's
      expect(await rt.propose({ id: iid(), proposer: 'agent:t', target: 'fragile/f2', action: 'ARM', params: {} })).toMatchObject({
        status: 'denied',
        reasons: expect.arrayContaining([expect.objectContaining({ code: 'wrong_state' })]),
      });
      expect((await rt.journal.verify()).ok).toBe(true);
    } finally {
      await h.close();
    }
  });
});

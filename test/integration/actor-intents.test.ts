import { describe, expect, it } from 'vitest';
import { assign, setup } from 'xstate';
import { z } from 'zod';
import { defineActor, proposeIntent, type Fact, type OutcomeEvent } from '../../src/index.js';
import { MODES, iid, tempRuntime, until } from '../helpers/runtime.js';

type CallEvent = { type: 'CALL'; target: string; action: string; params?: Record<string, unknown> } | OutcomeEvent;

/** A caller: CALL proposes an intent to another actor and waits for its outcome. */
const callerMachine = setup({
  types: {} as { context: { last?: { status: string; reasons?: string[]; code?: string } }; events: CallEvent },
  actions: {
    call: proposeIntent<{ last?: unknown }, CallEvent>(({ event }) => {
      const e = event as Extract<CallEvent, { type: 'CALL' }>;
      return { target: e.target, action: e.action, params: e.params ?? {} };
    }),
    keep: assign({
      last: ({ event }) => {
        const o = (event as OutcomeEvent).outcome;
        return {
          status: o.status,
          ...('reasons' in o && o.reasons ? { reasons: o.reasons.map((r) => r.code) } : {}),
          ...('error' in o && o.error ? { code: o.error.code } : {}),
        };
      },
    }),
  },
}).createMachine({
  id: 'caller',
  initial: 'idle',
  context: {},
  states: {
    idle: { on: { CALL: { target: 'waiting', actions: 'call' } } },
    waiting: {
      on: {
        'ice.outcome.executed': { target: 'idle', actions: 'keep' },
        'ice.outcome.denied': { target: 'idle', actions: 'keep' },
        'ice.outcome.rejected': { target: 'idle', actions: 'keep' },
        'ice.outcome.failed': { target: 'idle', actions: 'keep' },
        'ice.outcome.pending': { actions: 'keep' },
      },
    },
  },
});
const callerActor = defineActor({
  kind: 'caller',
  machine: callerMachine,
  events: { CALL: z.strictObject({ target: z.string(), action: z.string(), params: z.record(z.string(), z.unknown()).optional() }) },
});

const calleeMachine = setup({ types: {} as { context: { pings: number }; events: { type: 'PING'; n: number } } }).createMachine({
  id: 'callee',
  initial: 'ready',
  context: { pings: 0 },
  states: { ready: { on: { PING: { actions: assign({ pings: ({ context }) => context.pings + 1 }) } } } },
});
const calleeActor = defineActor({ kind: 'callee', machine: calleeMachine, events: { PING: z.strictObject({ n: z.number().int() }) } });

const guardedActor = defineActor({
  kind: 'guarded',
  machine: calleeMachine,
  events: { PING: z.strictObject({ n: z.number().int() }) },
  policies: [
    {
      id: 'actors-need-a-human',
      effect: 'require_approval',
      scope: 'guarded/*:PING',
      proposer: 'actor:*',
      reason: 'an actor may ping only with a human',
    },
  ],
});

const actors = [callerActor, calleeActor, guardedActor];
const of = (facts: Fact[], type: string) => facts.filter((f) => f.type === type);

describe.each(MODES)('intents from actors (%s)', (mode) => {
  it('an actor proposes to another: committed with its transition, decided by the authority, the outcome comes back as an event', async () => {
    const h = await tempRuntime({ mode, actors });
    try {
      const rt = h.rt;
      await rt.spawn('caller/c1');
      await rt.spawn('callee/e1');
      await rt.grants.issue({ subject: 'agent:t', scope: 'caller/*:CALL' });
      await rt.grants.issue({ subject: 'actor:caller.c1', scope: 'callee/e1:PING' });
      const out = await rt.propose({
        id: iid(),
        proposer: 'agent:t',
        target: 'caller/c1',
        action: 'CALL',
        params: { target: 'callee/e1', action: 'PING', params: { n: 1 } },
      });
      expect(out.status).toBe('executed');
      // the answer's turn in the journal (the actor in memory is ahead of its commit)
      await until('the outcome back at the caller', async () =>
        (await rt.journal.chain('caller/c1')).some((f) => f.data.outcomeOf !== undefined),
      );
      expect((await rt.actor('caller/c1'))!.context).toEqual({ last: { status: 'executed' } });
      expect((await rt.actor('callee/e1'))!.context).toEqual({ pings: 1 });

      const caller = await rt.journal.chain('caller/c1');
      const emitted = of(caller, 'intent.emitted');
      expect(emitted).toHaveLength(1);
      const intent = emitted[0]!.data.intent as { id: string; proposer: string; causationId: string };
      const transitionSeq = of(caller, 'transition')[0]!.seq;
      expect(intent).toMatchObject({
        id: `a:caller:c1:${transitionSeq}:0`,
        proposer: 'actor:caller.c1',
        target: 'callee/e1',
        action: 'PING',
        params: { n: 1 },
      });
      expect(intent.causationId).toBe(`caller/c1#${transitionSeq}`);
      expect(emitted[0]!.causes).toEqual([transitionSeq]); // in the same turn as the transition that emitted it
      const answered = caller.filter((f) => f.type === 'transition' && f.data.outcomeOf === intent.id);
      expect(answered).toHaveLength(1);
      expect(answered[0]).toMatchObject({
        origin: 'runtime',
        causes: [emitted[0]!.seq],
        data: { from: 'waiting', to: 'idle', event: { type: 'ice.outcome.executed', intentId: intent.id } },
      });
      // decided like any intent, once, on the callee's chain
      const callee = await rt.journal.chain('callee/e1');
      expect(callee.filter((f) => f.type === 'intent.proposed' && f.intentId === intent.id)).toHaveLength(1);
      expect(of(callee, 'decision')[0]!.data.decision).toMatchObject({ verdict: 'granted' });
      expect((await h.storedSnapshot('caller/c1'))?.outbox).toBeUndefined();
      expect((await rt.journal.verify()).ok).toBe(true);
    } finally {
      await h.close();
    }
  });

  it('denied (no grant), rejected (unknown actor, bad params): each comes back as an event, never a crash', async () => {
    const h = await tempRuntime({ mode, actors });
    try {
      const rt = h.rt;
      await rt.spawn('caller/c2');
      await rt.spawn('callee/e2');
      await rt.grants.issue({ subject: 'agent:t', scope: 'caller/*:CALL' });
      const call = async (params: Record<string, unknown>) => {
        await rt.propose({ id: iid(), proposer: 'agent:t', target: 'caller/c2', action: 'CALL', params });
        await until('the outcome back', async () => (await rt.actor('caller/c2'))?.state === 'idle');
        return (await rt.actor('caller/c2'))!.context as { last: { status: string; reasons?: string[] } };
      };
      expect((await call({ target: 'callee/e2', action: 'PING', params: { n: 1 } })).last).toEqual({
        status: 'denied',
        reasons: ['no_grant'],
      });
      expect((await call({ target: 'callee/nobody', action: 'PING', params: { n: 1 } })).last.status).toBe('rejected');
      expect((await call({ target: 'callee/e2', action: 'PING', params: { n: 'x' } })).last.status).toBe('rejected');
      expect((await call({ target: 'not an address', action: 'PING' })).last.status).toBe('rejected');
      expect((await rt.actor('callee/e2'))!.context).toEqual({ pings: 0 });
      expect(of(await rt.journal.chain('caller/c2'), 'intent.emitted')).toHaveLength(4);
    } finally {
      await h.close();
    }
  });

  it('pending: the proposer hears pending once, and the final outcome once a human approves', async () => {
    const h = await tempRuntime({ mode, actors });
    try {
      const rt = h.rt;
      await rt.spawn('caller/p1');
      await rt.spawn('guarded/g1');
      await rt.grants.issue({ subject: 'agent:t', scope: 'caller/*:CALL' });
      await rt.grants.issue({ subject: 'actor:caller.p1', scope: 'guarded/g1:PING' });
      await rt.propose({
        id: iid(),
        proposer: 'agent:t',
        target: 'caller/p1',
        action: 'CALL',
        params: { target: 'guarded/g1', action: 'PING', params: { n: 1 } },
      });
      const answers = async () => (await rt.journal.chain('caller/p1')).filter((f) => f.data.outcomeOf !== undefined);
      await until('the pending answer', async () => (await answers()).length === 1);
      const [pending] = await answers();
      expect(pending).toMatchObject({ data: { pending: true, event: { type: 'ice.outcome.pending' }, to: 'waiting' } });
      const id = String(pending!.data.outcomeOf);
      expect((await h.storedSnapshot('caller/p1'))?.outbox).toMatchObject([{ pending: true }]); // still waiting, durably
      expect((await rt.approvals.approve(id, 'human:alice')).status).toBe('executed');
      await until('the final answer', async () => (await answers()).length === 2);
      const final = (await answers())[1]!;
      expect(final).toMatchObject({ data: { event: { type: 'ice.outcome.executed' }, to: 'idle', outcomeOf: id } });
      expect(final.data.pending).toBeUndefined();
      expect((await rt.actor('guarded/g1'))!.context).toEqual({ pings: 1 });
      await new Promise((r) => setTimeout(r, 300));
      expect(await answers()).toHaveLength(2); // answered once more, not again
      expect((await h.storedSnapshot('caller/p1'))?.outbox).toBeUndefined();
    } finally {
      await h.close();
    }
  });

  it('Cedar sees an actor proposing as Actor::"<kind>.<id>": a permit lets it through without a grant, a forbid stops it', async () => {
    const h = await tempRuntime({ mode, actors });
    try {
      const rt = h.rt;
      await rt.spawn('caller/k1');
      await rt.spawn('caller/k2');
      await rt.spawn('callee/ck');
      await rt.grants.issue({ subject: 'agent:t', scope: 'caller/*:CALL' });
      await rt.grants.issue({ subject: 'actor:caller.k2', scope: 'callee/ck:PING' });
      await rt.policies
        .apply(
          {
            files: [
              {
                name: 'actors.cedar',
                text: [
                  '@id("callers-may-ping")',
                  'permit (principal is Actor, action == Action::"callee/PING", resource is Callee) when { principal == Actor::"caller.k1" };',
                  '@id("no-k2")',
                  'forbid (principal == Actor::"caller.k2", action, resource);',
                ].join('\n'),
              },
            ],
          },
          'operator:test',
        )
        .catch((e: { issues?: unknown }) => {
          throw new Error(JSON.stringify(e.issues));
        });
      const call = async (who: string) => {
        await rt.propose({
          id: iid(),
          proposer: 'agent:t',
          target: who,
          action: 'CALL',
          params: { target: 'callee/ck', action: 'PING', params: { n: 1 } },
        });
        await until('the answer', async () => (await rt.journal.chain(who)).some((f) => f.data.outcomeOf !== undefined));
        return ((await rt.journal.chain(who)).find((f) => f.data.outcomeOf !== undefined)!.data.event as OutcomeEvent).outcome;
      };
      expect(await call('caller/k1')).toMatchObject({ status: 'executed' }); // the permit, no grant
      const k2 = await call('caller/k2'); // a grant, and the forbid
      expect(k2.status).toBe('denied');
      expect('reasons' in k2 && k2.reasons!.map((r) => r.code)).toContain('policy_forbid');
    } finally {
      await h.close();
    }
  });

  it('committed but not delivered when the process stops: delivered after the restart, decided once, answered once', async () => {
    // wakeScanMs 0: this runtime sends nothing by itself, so the intent stays in the outbox
    const h = await tempRuntime({ mode, actors, wakeScanMs: 0 });
    try {
      let rt = h.rt;
      await rt.spawn('caller/c3');
      await rt.spawn('callee/e3');
      await rt.grants.issue({ subject: 'agent:t', scope: 'caller/*:CALL' });
      await rt.grants.issue({ subject: 'actor:caller.c3', scope: 'callee/e3:PING' });
      await rt.propose({
        id: iid(),
        proposer: 'agent:t',
        target: 'caller/c3',
        action: 'CALL',
        params: { target: 'callee/e3', action: 'PING', params: { n: 3 } },
      });
      const stored = await h.storedSnapshot('caller/c3');
      expect(stored?.outbox).toHaveLength(1);
      expect(stored?.wakeAt).toBeDefined();
      expect((await rt.actor('callee/e3'))!.context).toEqual({ pings: 0 });
      rt = await h.restart({ actors, wakeScanMs: 5000 }); // sends on its own again
      await until('the outcome back after the restart', async () =>
        (await rt.journal.chain('caller/c3')).some((f) => f.data.outcomeOf !== undefined),
      );
      await new Promise((r) => setTimeout(r, 300));
      expect((await rt.actor('callee/e3'))!.context).toEqual({ pings: 1 });
      const id = (stored!.outbox![0]!.intent as { id: string }).id;
      expect((await rt.journal.chain('callee/e3')).filter((f) => f.type === 'intent.proposed' && f.intentId === id)).toHaveLength(1);
      expect((await rt.journal.chain('caller/c3')).filter((f) => f.data.outcomeOf === id)).toHaveLength(1);
      expect((await h.storedSnapshot('caller/c3'))?.outbox).toBeUndefined();
    } finally {
      await h.close();
    }
  });
});

describe('intents from actors across cluster nodes', () => {
  it('the target lives on another node: the intent is forwarded to its owner, the outcome comes back to the proposer', async () => {
    const h = await tempRuntime({ mode: 'cluster', actors });
    try {
      const n1 = h.rt;
      const n2 = await h.node('n2', { actors });
      await n2.spawn('callee/far'); // held by n2
      await n1.spawn('caller/near'); // held by n1
      await n1.grants.issue({ subject: 'agent:t', scope: 'caller/*:CALL' });
      const g = await n1.grants.issue({ subject: 'actor:caller.near', scope: 'callee/*:PING' });
      await until('the grant on n2', () => n2.grants.list().find((x) => x.id === g.id));
      await n1.propose({
        id: iid(),
        proposer: 'agent:t',
        target: 'caller/near',
        action: 'CALL',
        params: { target: 'callee/far', action: 'PING', params: { n: 7 } },
      });
      await until('the outcome back on n1', async () => (n1.hosting('caller/near')?.context as { last?: unknown } | undefined)?.last);
      expect(n1.hosting('caller/near')).toMatchObject({ state: 'idle', context: { last: { status: 'executed' } } });
      expect(n2.hosting('callee/far')).toMatchObject({ context: { pings: 1 } });
      expect(n1.hosting('callee/far')).toBeUndefined();
      const decided = (await n1.journal.chain('callee/far')).filter((f) => f.type === 'decision');
      expect(decided).toHaveLength(1);
    } finally {
      await h.close();
    }
  });
});

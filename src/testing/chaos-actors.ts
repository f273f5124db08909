import { assign, setup } from 'xstate';
import { z } from 'zod';
import { defineActor } from '../host/definition.js';

/**
 * The actor kind the chaos runs drive when the caller brings none: a ledger whose balance is
 * easy to check against a replay. `CRASH` throws inside the machine's action — the actor
 * instance errors mid-transition (a crash, not a stop) and the host restores it from its last
 * durable state. Credits of 900,000 or more wait for a human approval.
 *
 * open ──FREEZE──▶ frozen ──THAW──▶ open;  CREDIT / DEBIT (balance ≥ amount) in open; PING in both.
 */
export const ledgerEvents = {
  CREDIT: z.strictObject({ amount: z.int().min(1).max(1_000_000), ref: z.string().min(1).max(64) }),
  DEBIT: z.strictObject({ amount: z.int().min(1).max(1_000_000), ref: z.string().min(1).max(64) }),
  FREEZE: z.strictObject({}),
  THAW: z.strictObject({}),
  PING: z.strictObject({}),
  CRASH: z.strictObject({}),
} as const;

type LedgerEvent = {
  [K in keyof typeof ledgerEvents]: { type: K } & z.infer<(typeof ledgerEvents)[K]>;
}[keyof typeof ledgerEvents];

export const ledgerMachine = setup({
  types: {
    context: {} as { balance: number; entries: number; last: string | undefined; pings: number },
    events: {} as LedgerEvent,
  },
  guards: { covered: ({ context, event }) => event.type === 'DEBIT' && context.balance >= event.amount },
  actions: {
    crash: () => {
      throw new Error('ledger crashed on purpose (chaos)');
    },
  },
}).createMachine({
  id: 'ledger',
  context: { balance: 0, entries: 0, last: undefined, pings: 0 },
  initial: 'open',
  on: { CRASH: { actions: 'crash' }, PING: { actions: assign(({ context }) => ({ pings: context.pings + 1 })) } },
  states: {
    open: {
      on: {
        CREDIT: {
          actions: assign(({ context, event }) => ({
            balance: context.balance + event.amount,
            entries: context.entries + 1,
            last: event.ref,
          })),
        },
        DEBIT: {
          guard: 'covered',
          actions: assign(({ context, event }) => ({
            balance: context.balance - event.amount,
            entries: context.entries + 1,
            last: event.ref,
          })),
        },
        FREEZE: 'frozen',
      },
    },
    frozen: { on: { THAW: 'open' } },
  },
});

export const ledgerActor = defineActor({
  kind: 'ledger',
  machine: ledgerMachine,
  events: ledgerEvents,
  policies: [
    {
      id: 'large-credit-needs-human',
      effect: 'require_approval',
      scope: 'ledger/*:CREDIT',
      proposer: 'agent:*',
      when: ({ intent }) => (intent.params.amount as number) >= 900_000,
      reason: 'a credit of 900,000 or more needs a human approval',
    },
  ],
  description: 'A ledger for chaos runs: open ⇄ frozen, CREDIT / DEBIT; CRASH throws in the machine',
});

/** For `ice start --actors <this module>`. */
export const actors = [ledgerActor];

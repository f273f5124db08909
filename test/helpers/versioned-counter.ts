import { assign, setup } from 'xstate';
import { z } from 'zod';
import { defineActor, type ActorDefinition } from '../../src/host/index.js';

/**
 * One kind, `counter`, in three versions, for the snapshot-version tests:
 * - v1: context `{ count }`;
 * - v2: context `{ total }`, with a migration 1 → 2 that renames it (and throws on a count of 13);
 * - v3: the v2 machine at version 3 with no migration 2 → 3 (no path from 1 or 2).
 * Events: INC (+1, idle → counting), SET { n }.
 */
export const counterEvents = { INC: z.strictObject({}), SET: z.strictObject({ n: z.int() }) };

const counterV1Machine = setup({
  types: { context: {} as { count: number }, events: {} as { type: 'INC' } | { type: 'SET'; n: number } },
}).createMachine({
  id: 'counter',
  initial: 'idle',
  context: { count: 0 },
  on: { SET: { target: '.counting', actions: assign({ count: ({ event }) => event.n }) } },
  states: {
    idle: { on: { INC: { target: 'counting', actions: assign({ count: ({ context }) => context.count + 1 }) } } },
    counting: { on: { INC: { actions: assign({ count: ({ context }) => context.count + 1 }) } } },
  },
});

const counterV2Machine = setup({
  types: { context: {} as { total: number }, events: {} as { type: 'INC' } | { type: 'SET'; n: number } },
}).createMachine({
  id: 'counter',
  initial: 'idle',
  context: { total: 0 },
  on: { SET: { target: '.counting', actions: assign({ total: ({ event }) => event.n }) } },
  states: {
    idle: { on: { INC: { target: 'counting', actions: assign({ total: ({ context }) => context.total + 1 }) } } },
    counting: { on: { INC: { actions: assign({ total: ({ context }) => context.total + 1 }) } } },
  },
});

/** 1 → 2: `count` becomes `total`; a count of 13 throws (a migration that fails for one actor). */
export function countToTotal(persisted: unknown): unknown {
  const { context, ...rest } = persisted as { context: { count: number } };
  if (context.count === 13) throw new Error('unlucky count 13');
  return { ...rest, context: { total: context.count } };
}

export const counterV1: ActorDefinition = defineActor({ kind: 'counter', machine: counterV1Machine, events: counterEvents });
export const counterV2: ActorDefinition = defineActor({
  kind: 'counter',
  machine: counterV2Machine,
  events: counterEvents,
  version: 2,
  migrations: { 1: countToTotal },
});
export const counterV3: ActorDefinition = defineActor({
  kind: 'counter',
  machine: counterV2Machine,
  events: counterEvents,
  version: 3,
  migrations: { 1: countToTotal },
});
/** v2 whose migration leaves the actor in a state the machine does not have. */
export const counterV2Lost: ActorDefinition = defineActor({
  kind: 'counter',
  machine: counterV2Machine,
  events: counterEvents,
  version: 2,
  migrations: { 1: (p) => ({ ...(countToTotal(p) as object), value: 'nowhere' }) },
});

import { emit, type EventObject, type MachineContext } from 'xstate';
import { createHash } from 'node:crypto';
import type { Intent, Outcome } from '../protocol/index.js';

/**
 * Intents from actors: a machine's action proposes an intent to another actor (or itself).
 *
 * The action emits an `ice.propose` event (XState `emit`); the Host collects what a turn
 * emitted, gives each intent a stable id (`a:<kind>:<id>:<seq>:<n>`: the seq of the fact
 * that emitted it and its place in that turn), and commits it in the same turn as an
 * `intent.emitted` fact and an entry of the actor's outbox (in its snapshot record, with a
 * wake-up so a crash before delivery is resumed). After the commit it is proposed like any
 * intent, as the principal `actor:<kind>.<id>`, and its outcome comes back to the actor as
 * the event `ice.outcome.<status>` (`executed`, `denied`, `pending`, `rejected`, `failed`) in a
 * turn of the actor's own, which removes the outbox entry: delivered at least once, decided
 * once (the id), answered once.
 */

/** What a machine asks for: the target, the action, its params (and optionally its run). */
export interface ProposeArgs {
  target: string;
  action: string;
  params?: Record<string, unknown>;
  /** The run the intent belongs to (run-bound grants); default: the run of the intent whose turn emitted it. */
  runId?: string;
  rationale?: string;
}

/** The event the action emits; the Host turns it into an intent. */
export interface ProposeEmitted extends ProposeArgs {
  type: 'ice.propose';
}

/** The event an actor receives with the outcome of an intent it proposed. */
export interface OutcomeEvent {
  type: `ice.outcome.${Outcome['status']}`;
  intentId: string;
  target: string;
  action: string;
  outcome: Outcome;
}

/**
 * An action that proposes an intent from the actor running it, for `setup({ actions })` or
 * inline. Takes the args, or a function of `{ context, event }` returning them.
 * @example
 * const runMachine = setup({
 *   actions: {
 *     deploy: proposeIntent(({ context }) => ({ target: `deployment/${context.service}`, action: 'DEPLOY', params: { env: 'prod' } })),
 *   },
 * }).createMachine({ … on: { 'ice.outcome.denied': 'blocked', 'ice.outcome.executed': 'deployed' } … });
 */
export function proposeIntent<TContext extends MachineContext = MachineContext, TEvent extends EventObject = EventObject>(
  args: ProposeArgs | ((x: { context: TContext; event: TEvent; self: { id: string } }) => ProposeArgs),
) {
  // the machine's own emitted-event types do not mention ice.propose: typed as any event
  return emit<TContext, TEvent, undefined, TEvent, EventObject>(({ context, event, self }) => {
    const a = typeof args === 'function' ? args({ context, event, self }) : args;
    return { ...a, type: 'ice.propose' as const };
  });
}

/** The principal an actor proposes as: `actor:<kind>.<id>`. */
export function actorPrincipal(address: string): string {
  return `actor:${address.replace('/', '.')}`;
}

/** The stable id of the n-th intent emitted by the turn ending at `seq` of `address`. */
export function emittedIntentId(address: string, seq: number, n: number): string {
  const readable = `a:${address.replace('/', ':')}:${seq}:${n}`;
  if (readable.length <= 128) return readable;
  const h = createHash('sha256').update(address).digest('hex').slice(0, 24);
  return `a:${h}:${seq}:${n}`;
}

/** An intent in an actor's outbox: emitted and committed, its final outcome not yet applied. */
export interface OutboxEntry {
  intent: Intent | Record<string, unknown>;
  /** Seq of its `intent.emitted` fact. */
  seq: number;
  /** When to (re)try delivering it (epoch ms); while pending approval, when to look again. */
  retryAt: number;
  /** The last outcome was `pending`: look it up again at `retryAt`. */
  pending?: boolean;
}

export function isProposeEmitted(ev: unknown): ev is ProposeEmitted {
  return typeof ev === 'object' && ev !== null && (ev as { type?: unknown }).type === 'ice.propose';
}

export function outcomeEvent(intent: { id?: unknown; target?: unknown; action?: unknown }, outcome: Outcome): OutcomeEvent {
  return {
    type: `ice.outcome.${outcome.status}`,
    intentId: typeof intent.id === 'string' ? intent.id : '',
    target: typeof intent.target === 'string' ? intent.target : '',
    action: typeof intent.action === 'string' ? intent.action : '',
    outcome,
  };
}

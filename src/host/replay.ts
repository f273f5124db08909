import { createActor, type AnyActorRef } from 'xstate';
import { FactType, type Fact } from '../protocol/index.js';
import type { ActorDefinition } from './definition.js';
import { stateToString } from './state-value.js';
import { ActorTimers } from './timers.js';
import { sendRecorded, watchChildren, withoutEffects } from './children.js';

/** A transition fact whose recorded `from`/`to` is not what its event does to the replayed actor. */
export interface ReplayMismatch {
  seq: number;
  recorded: { from: unknown; to: unknown };
  replayed: { from: string; to: string };
}

/**
 * Rebuilds an actor from its journal alone: the input of its `actor.started` fact, then every
 * `transition` fact's event in seq order. Used to check that snapshots equal history, and —
 * through `mismatches` — that every transition was executed on the state the chain had
 * reached: an owner working from a stale copy of the actor would record another `from`.
 */
export function replayActor(
  def: ActorDefinition,
  facts: readonly Fact[],
): { state: string; context: unknown; actor: AnyActorRef; mismatches: ReplayMismatch[] } {
  const started = facts.find((f) => f.type === FactType.actorStarted);
  if (!started) throw new Error(`no actor.started fact for ${facts[0]?.actor ?? 'this actor'}`);
  // XState's delayed events go to a clock that starts no real timeout: a timer's firing is a
  // fact of its own below, delivered as the Host delivered it
  const timers = new ActorTimers();
  timers.at = Date.parse(started.at);
  // effects the machine names run nothing here: what they delivered is in the journal
  const actor = createActor(withoutEffects(def.machine), { input: started.data.input ?? undefined, clock: timers.clock });
  timers.attach(actor);
  // children deliver nothing on their own: what they sent is a recorded transition below
  const relay = watchChildren(actor, timers, () => {});
  actor.subscribe({ error: () => {} });
  relay.gate(() => actor.start());
  const mismatches: ReplayMismatch[] = [];
  const stateNow = () => stateToString((actor.getSnapshot() as unknown as { value: never }).value);
  for (const f of facts) {
    if (f.seq <= started.seq) continue;
    timers.at = Date.parse(f.at);
    if (f.type === FactType.actorFailed) {
      // the timer whose transition threw went with the failure
      const t = f.data.timer as { source?: unknown; id?: unknown } | undefined;
      if (typeof t?.source === 'string' && typeof t.id === 'string') timers.cancel(t.source, t.id);
      continue;
    }
    if (f.type !== FactType.transition) continue;
    const from = stateNow();
    const t = f.data.timer as { source?: unknown; id?: unknown } | undefined;
    if (!(typeof t?.source === 'string' && typeof t.id === 'string' && timers.fire(t.source, t.id))) sendRecorded(actor, f.data);
    const to = stateNow();
    if (f.data.from !== from || f.data.to !== to)
      mismatches.push({ seq: f.seq, recorded: { from: f.data.from, to: f.data.to }, replayed: { from, to } });
  }
  const snap = actor.getSnapshot() as unknown as { value: never };
  // the context as it is stored: a child's ref in it is `{ xstate$$type, id }`
  const context = (actor.getPersistedSnapshot() as { context?: unknown }).context;
  return { state: stateToString(snap.value), context, actor, mismatches };
}

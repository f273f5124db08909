import { createActor, type AnyActorRef } from 'xstate';
import { FactType, type Fact } from '../protocol/index.js';
import type { ActorDefinition } from './definition.js';
import { stateToString } from './state-value.js';

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
  const actor = createActor(def.machine, { input: started.data.input ?? undefined });
  actor.subscribe({ error: () => {} });
  actor.start();
  const mismatches: ReplayMismatch[] = [];
  const stateNow = () => stateToString((actor.getSnapshot() as unknown as { value: never }).value);
  for (const f of facts) {
    if (f.type !== FactType.transition || f.seq <= started.seq) continue;
    const from = stateNow();
    actor.send(f.data.event);
    const to = stateNow();
    if (f.data.from !== from || f.data.to !== to)
      mismatches.push({ seq: f.seq, recorded: { from: f.data.from, to: f.data.to }, replayed: { from, to } });
  }
  const snap = actor.getSnapshot() as unknown as { value: never; context: unknown };
  return { state: stateToString(snap.value), context: snap.context, actor, mismatches };
}

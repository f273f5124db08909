import { createActor, type AnyActorRef } from 'xstate';
import { FactType, type Fact } from '../protocol/index.js';
import type { ActorDefinition } from './definition.js';
import { stateToString } from './state-value.js';

/**
 * Rebuilds an actor from its journal alone: the input of its `actor.started` fact, then every
 * `transition` fact's event in seq order. Used to check that snapshots equal history.
 */
export function replayActor(def: ActorDefinition, facts: readonly Fact[]): { state: string; context: unknown; actor: AnyActorRef } {
  const started = facts.find((f) => f.type === FactType.actorStarted);
  if (!started) throw new Error(`no actor.started fact for ${facts[0]?.actor ?? 'this actor'}`);
  const actor = createActor(def.machine, { input: started.data.input ?? undefined });
  actor.subscribe({ error: () => {} });
  actor.start();
  for (const f of facts) {
    if (f.type === FactType.transition && f.seq > started.seq) actor.send(f.data.event);
  }
  const snap = actor.getSnapshot() as unknown as { value: never; context: unknown };
  return { state: stateToString(snap.value), context: snap.context, actor };
}

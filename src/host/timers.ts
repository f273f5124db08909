import type { AnyActorRef } from 'xstate';
import type { TimerRecord } from '../protocol/index.js';

/**
 * Durable timers of one hosted actor: XState's delayed events (`after`, `raise`/`sendTo` with
 * a `delay`) made part of the journal.
 *
 * XState keeps delayed events in its actor system's scheduler, in memory: a restored actor
 * never fires the `after` of the state it was saved in, and a restart would start the full
 * delay over. Here each actor is created with its own clock (`clock`) that never starts a
 * real timeout: it records what XState scheduled, with its due time (the time of the turn
 * that scheduled it plus the delay), so the Host can
 * - persist the pending timers in the actor's snapshot record (`timers`) with each turn,
 * - arm one real timeout per actor for the earliest due one, and fire it as a turn of its own
 *   (`fire` runs XState's own callback: the event reaches its target as XState would deliver
 *   it, and the scheduler forgets it),
 * - put them back into a restored actor's scheduler (`restore`), due when they were due.
 *
 * A timer is named by where it was scheduled from (`source`: "" for the actor, `a/b` for a
 * child `b` of child `a`) and XState's id for it (`xstate.after.1000.machine.state` for an
 * `after`, the `id` given to a delayed `raise`/`sendTo`).
 */
export class ActorTimers {
  /** The turn's time (epoch ms): a timer scheduled now is due at `at + delay`. */
  at = 0;
  /**
   * While true, XState clearing its timeouts is not a cancellation: the Host stops an actor it
   * passivates, drops or replaces, and XState cancels every scheduled event of a stopping actor.
   */
  muted = false;
  #root: AnyActorRef | undefined;
  /**
   * Pending timers by XState's key (`<sessionId>.<id>`): the record, XState's callback that
   * delivers the event, and XState's scheduled-event object (to tell a new one from one seen).
   * Made on the first timer: most actors never have one.
   */
  #live: Map<string, { rec: TimerRecord; deliver: () => void; ev: object }> | undefined;
  /** Wraps each delivery (`fire`): the Host marks it as a turn of the actor (children.ts). */
  around: (<T>(fn: () => T) => T) | undefined;
  /** Set by `restore` for the next schedule: the due time it had before. */
  #dueOverride: number | undefined;

  /** The clock given to `createActor` (this object): it schedules nothing itself. */
  get clock(): { setTimeout(fn: () => void, delay: number): string; clearTimeout(key: string): void } {
    return this;
  }

  setTimeout(fn: () => void, delay: number): string {
    return this.#scheduled(fn, delay);
  }

  clearTimeout(key: string): void {
    if (!this.muted) this.#live?.delete(key);
  }

  attach(root: AnyActorRef): void {
    this.#root = root;
  }

  get size(): number {
    return this.#live?.size ?? 0;
  }

  /** Pending timers, earliest first. */
  list(): TimerRecord[] {
    if (!this.#live?.size) return NO_TIMERS as TimerRecord[];
    return [...this.#live.values()].map((t) => t.rec).sort((a, b) => a.dueAt - b.dueAt || cmp(a.source + a.id, b.source + b.id));
  }

  next(): TimerRecord | undefined {
    let best: TimerRecord | undefined;
    for (const { rec } of this.#live?.values() ?? []) if (!best || rec.dueAt < best.dueAt) best = rec;
    return best;
  }

  /**
   * Delivers a pending timer's event (XState's own callback), at the Host's call inside the
   * actor's turn. False when no such timer is pending (it fired, or its state was left).
   */
  fire(source: string, id: string): boolean {
    for (const [key, t] of this.#live ?? []) {
      if (t.rec.source !== source || t.rec.id !== id) continue;
      this.#live!.delete(key);
      if (this.around) this.around(t.deliver);
      else t.deliver();
      return true;
    }
    return false;
  }

  /** Cancels a pending timer as XState would (leaving its state); false when none is pending. */
  cancel(source: string, id: string): boolean {
    const root = this.#root;
    const ref = root && refAt(root, source);
    for (const [key, t] of this.#live ?? []) {
      if (t.rec.source !== source || t.rec.id !== id) continue;
      if (ref) root.system.scheduler.cancel(ref, id);
      this.#live!.delete(key);
      return true;
    }
    return false;
  }

  /**
   * Puts timers of a stored snapshot back into the restored actor's scheduler, due when they
   * were due. Returns the ones whose source or target no longer exists (a child that was not
   * restored): the Host records them as lost.
   */
  restore(timers: readonly TimerRecord[]): TimerRecord[] {
    const root = this.#root;
    if (!root) throw new Error('ActorTimers.restore before attach');
    const lost: TimerRecord[] = [];
    for (const t of timers) {
      const source = refAt(root, t.source);
      const target = refAt(root, t.target);
      if (!source || !target) {
        lost.push(t);
        continue;
      }
      this.#dueOverride = t.dueAt;
      try {
        root.system.scheduler.schedule(source, target, t.event, Math.max(0, t.dueAt - this.at), t.id);
      } finally {
        this.#dueOverride = undefined;
      }
    }
    return lost;
  }

  #scheduled(deliver: () => void, delay: number): string {
    const root = this.#root;
    if (!root) throw new Error('a timer was scheduled before its actor was attached');
    const events = root.system.getSnapshot()._scheduledEvents;
    for (const [key, ev] of Object.entries(events)) {
      const live = (this.#live ??= new Map<string, { rec: TimerRecord; deliver: () => void; ev: object }>());
      if (live.get(key)?.ev === ev) continue;
      const rec: TimerRecord = {
        source: pathOf(root, ev.source),
        target: pathOf(root, ev.target),
        id: ev.id,
        event: ev.event,
        dueAt: this.#dueOverride ?? this.at + delay,
      };
      live.set(key, { rec, deliver, ev });
      return key;
    }
    throw new Error('XState scheduled an event the timer clock cannot find');
  }
}

/** Path of an actor ref below the root: "" for the root, `a/b` for child `b` of child `a`. */
export function pathOf(root: AnyActorRef, ref: AnyActorRef): string {
  const ids: string[] = [];
  for (let r: AnyActorRef | undefined = ref; r && r !== root; r = (r as { _parent?: AnyActorRef })._parent) ids.unshift(r.id);
  return ids.join('/');
}

/** The actor at `path` below the root, if it exists. */
export function refAt(root: AnyActorRef, path: string): AnyActorRef | undefined {
  let r: AnyActorRef | undefined = root;
  if (path === '') return r;
  for (const id of path.split('/')) {
    const snap = r?.getSnapshot() as { children?: Record<string, AnyActorRef | undefined> } | undefined;
    const children: Record<string, AnyActorRef | undefined> | undefined = snap?.children;
    r = children?.[id];
    if (!r) return undefined;
  }
  return r;
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** What an actor without timers lists: one shared, frozen empty array. */
const NO_TIMERS: readonly TimerRecord[] = Object.freeze([]);

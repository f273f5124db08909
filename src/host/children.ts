/**
 * Child actors of a hosted actor: the machines and effects it spawns or invokes.
 *
 * Invariants enforced here (with the Host):
 * - nothing transitions without a fact. An event that a child sends into the actor's tree
 *   outside a Host turn (a `sendParent`, an invoked promise's `xstate.done.actor.<id>`, a
 *   child's `xstate.error.actor.<id>`, a callback's `sendBack`) is held back by the tree's
 *   {@link ChildRelay} before XState processes it, and handed to the Host, which delivers it
 *   in a turn of its own and records a `transition` fact with `data.child` (the sender's
 *   path) and, when it is not the root, `data.target`. Replay delivers the recorded event
 *   the same way (`sendRecorded`); a replayed actor's children never deliver on their own.
 * - what XState cannot restore is recorded, never silently re-run or dropped. A child whose
 *   logic runs an in-memory effect (fromPromise, fromCallback, fromObservable, …) and was
 *   `active` in a stored snapshot is removed from it before the actor is created (XState
 *   would start the effect again), recorded as a `child.lost` fact, and its parent receives
 *   `xstate.error.actor.<id>` with `error.code` `E_CHILD_LOST` in the restore turn, so an
 *   `onError` handler applies. In-memory effects are at most once; what must survive a
 *   crash is a durable effect (effects.ts). A child whose logic the machine does not name (inline logic spawned in
 *   `assign`) cannot be restored either and is handled the same way.
 *
 * Events are journaled as JSON: an `Error` in an event becomes `{ name, message, code? }`,
 * and the Host delivers the journaled form, so a live run and its replay see the same event.
 */
import type { AnyActorLogic, AnyActorRef, AnyStateMachine } from 'xstate';
import { stateToString } from './state-value.js';
import type { ActorTimers } from './timers.js';
import { pathOf, refAt } from './timers.js';

/** An event a child sent into the tree outside a Host turn, held back for a turn. */
export interface ChildEvent {
  /** Path of the sender below the root (`a`, `a/b`). */
  source: string;
  /** Path of the recipient: "" for the root. */
  target: string;
  event: { type: string } & Record<string, unknown>;
}

type Relay = (source: AnyActorRef | undefined, target: AnyActorRef, event: { type: string }) => void;

const relays = new WeakMap<AnyActorRef, ChildRelay>();

/**
 * Watches the event traffic of one root actor's XState system (`system._relay`, through which
 * XState passes every event between actors). Inside a Host turn (the Host's own `send`, a
 * timer's firing, the start of the actor: `gate`) events flow as XState sends them. Outside,
 * an event from one actor of the tree to another is not delivered: `onChild` gets it.
 * An actor's messages to itself (a promise settling its own snapshot) flow; what they send
 * on to their parent is held back.
 */
export class ChildRelay {
  readonly #root: AnyActorRef;
  readonly #relay: Relay;
  #depth = 0;

  constructor(root: AnyActorRef, timers: ActorTimers | undefined, onChild: (c: ChildEvent) => void) {
    this.#root = root;
    const system = root.system as unknown as { _relay: Relay };
    // XState's internal relay (5.x); without it children could transition without a fact
    if (typeof system._relay !== 'function') throw new Error('this XState version has no system._relay: child events cannot be journaled');
    const relay = system._relay.bind(system);
    this.#relay = relay;
    system._relay = (source, target, event) => {
      if (this.#depth > 0) return relay(source, target, event);
      // the Host's send to the root: a turn
      if (source === undefined && target === root) return this.gate(() => relay(source, target, event));
      if (source === undefined || source === target) return relay(source, target, event);
      onChild({ source: pathOf(root, source), target: pathOf(root, target), event: event });
    };
    if (timers) timers.around = (fn) => this.gate(fn);
    relays.set(root, this);
  }

  /** Runs `fn` as part of a Host turn: events between the tree's actors flow. */
  gate<T>(fn: () => T): T {
    this.#depth++;
    try {
      return fn();
    } finally {
      this.#depth--;
    }
  }

  /** Delivers an event to the actor at `target` ("" for the root) in a turn; false when it does not exist. */
  deliver(target: string, event: { type: string }): boolean {
    const ref = refAt(this.#root, target);
    if (!ref) return false;
    this.gate(() => this.#relay(undefined, ref, event));
    return true;
  }
}

/** Watches a root actor's tree (before it starts); see {@link ChildRelay}. */
export function watchChildren(
  root: AnyActorRef,
  timers: ActorTimers | undefined,
  onChild: (c: ChildEvent) => void,
): Pick<ChildRelay, 'gate'> {
  // A machine that names no child logic (setup({ actors })) and invokes nothing has no children
  // to watch: its actors skip the relay (it costs each actor a few closures).
  if (!mayHaveChildren((root as unknown as { logic?: unknown }).logic)) return NO_CHILDREN;
  return new ChildRelay(root, timers, onChild);
}

const NO_CHILDREN: Pick<ChildRelay, 'gate'> = { gate: (fn) => fn() };
const childful = new WeakMap<object, boolean>();

/** Whether a machine can have children: it names actor logic in `setup({ actors })` or a state invokes one. */
function mayHaveChildren(logic: unknown): boolean {
  if (typeof logic !== 'object' || logic === null) return true;
  const known = childful.get(logic);
  if (known !== undefined) return known;
  const m = logic as { implementations?: { actors?: object }; root?: StateNodeLike };
  const walk = (n: StateNodeLike | undefined): boolean =>
    n !== undefined && ((n.invoke?.length ?? 0) > 0 || Object.values(n.states ?? {}).some(walk));
  const yes = Object.keys(m.implementations?.actors ?? {}).length > 0 || walk(m.root);
  childful.set(logic, yes);
  return yes;
}
interface StateNodeLike {
  invoke?: unknown[];
  states?: Record<string, StateNodeLike>;
}

/**
 * Delivers an event to the actor at `target` ("" for the root) of a watched tree, as part of a
 * Host turn; false when it does not exist.
 */
export function deliverTo(root: AnyActorRef, target: string, event: { type: string }): boolean {
  const relay = relays.get(root);
  if (relay) return relay.deliver(target, event);
  const ref = refAt(root, target);
  ref?.send(event);
  return ref !== undefined;
}

/**
 * Sends the event of a recorded transition as it was delivered: to the root, or (`data.target`)
 * to the child it went to. False when that child no longer exists.
 */
export function sendRecorded(root: AnyActorRef, data: Record<string, unknown>): boolean {
  return deliverTo(root, typeof data.target === 'string' ? data.target : '', data.event as { type: string });
}

/**
 * The event as the journal keeps it (and as the Host delivers it): JSON, with errors as
 * `{ name, message, code? }`. An event that is not JSON is replaced by one naming why.
 */
export function journalEvent(event: { type: string } & Record<string, unknown>): { type: string } & Record<string, unknown> {
  try {
    const json = JSON.stringify(event, (_k, v: unknown) => {
      if (!(v instanceof Error)) return v;
      const code: unknown = (v as { code?: unknown }).code;
      return { name: v.name, message: v.message, ...(typeof code === 'string' ? { code } : {}) };
    });
    return JSON.parse(json) as { type: string } & Record<string, unknown>;
  } catch (err) {
    return {
      type: event.type,
      error: { code: 'E_CHILD_EVENT', message: `the event could not be journaled as JSON: ${(err as Error).message}` },
    };
  }
}

/** A child that a stored snapshot holds but XState cannot bring back. */
export interface LostChild {
  /** Its path below the root (`a`, `a/b`). */
  path: string;
  id: string;
  /** Path of its parent ("" for the root): where the error event goes. */
  parent: string;
  src: string;
  reason: string;
}

interface PersistedChild {
  src?: unknown;
  systemId?: unknown;
  snapshot?: { status?: unknown; children?: Record<string, PersistedChild> };
}

/**
 * A persisted XState snapshot without the children XState cannot restore, and those children.
 * `snapshot` is a copy where something was removed (the input is not changed).
 */
export function withoutLostChildren(machine: AnyStateMachine, snapshot: unknown): { snapshot: unknown; lost: LostChild[] } {
  const lost: LostChild[] = [];
  const out = strip(machine, snapshot, '', lost);
  return { snapshot: out, lost };
}

function strip(machine: AnyStateMachine, snapshot: unknown, at: string, lost: LostChild[]): unknown {
  const children = (snapshot as { children?: Record<string, PersistedChild> } | undefined)?.children;
  if (!children || typeof children !== 'object') return snapshot;
  let copy: Record<string, PersistedChild> | undefined;
  for (const [id, child] of Object.entries(children)) {
    const path = at === '' ? id : `${at}/${id}`;
    const src = typeof child.src === 'string' ? child.src : '(inline logic)';
    const logic = typeof child.src === 'string' ? logicOf(machine, child.src) : undefined;
    const active = child.snapshot?.status === 'active';
    let reason: string | undefined;
    if (!logic) reason = `its logic ${src} is not named in the machine's setup({ actors }): it cannot be restored`;
    else if (active && isEffect(logic))
      reason = 'it was in flight when the snapshot was taken: an in-memory effect is not run again on restore (at most once)';
    if (reason !== undefined || !logic) {
      copy ??= { ...children };
      delete copy[id];
      if (active) lost.push({ path, id, parent: at, src, reason: reason ?? '' });
      continue;
    }
    if (isMachine(logic)) {
      const inner = strip(logic, child.snapshot, path, lost);
      if (inner !== child.snapshot) {
        copy ??= { ...children };
        copy[id] = { ...child, snapshot: inner as PersistedChild['snapshot'] };
      }
    }
  }
  return copy ? { ...(snapshot as object), children: copy } : snapshot;
}

/** The logic a child's `src` names in a machine (as XState resolves it on restore). */
function logicOf(machine: AnyStateMachine, src: string): AnyActorLogic | undefined {
  const m = /^xstate\.invoke\.(\d+)\.(.*)$/.exec(src);
  if (!m) return (machine.implementations.actors as Record<string, AnyActorLogic | undefined>)[src];
  try {
    const invoke = (machine.getStateNodeById(m[2]!).config as { invoke?: unknown }).invoke;
    const def = (Array.isArray(invoke) ? (invoke as unknown[])[Number(m[1])] : invoke) as { src?: unknown } | undefined;
    return typeof def?.src === 'object' && def.src !== null ? (def.src as AnyActorLogic) : undefined;
  } catch {
    return undefined;
  }
}

function isMachine(logic: AnyActorLogic): logic is AnyStateMachine {
  return typeof (logic as { getStateNodeById?: unknown }).getStateNodeById === 'function';
}

/** Logic that starts something in memory (a promise, a callback, a subscription) when started. */
function isEffect(logic: AnyActorLogic): boolean {
  return !isMachine(logic) && typeof logic.start === 'function';
}

/**
 * Stands in for an effect's logic in a replay: a child that stays `active` and never runs
 * anything. What the effect delivered is in the journal.
 */
const INERT: AnyActorLogic = {
  config: undefined,
  transition: (snapshot: unknown) => snapshot,
  getInitialSnapshot: (_scope: unknown, input: unknown) => ({ status: 'active', output: undefined, error: undefined, input }),
  getPersistedSnapshot: (snapshot: unknown) => snapshot,
  restoreSnapshot: (snapshot: unknown) => snapshot,
} as unknown as AnyActorLogic;

const inertCache = new WeakMap<AnyStateMachine, AnyStateMachine>();

/**
 * The machine with the effects it names in `setup({ actors })` (and those of the machines it
 * names, recursively) replaced by logic that runs nothing: a replay must not call a promise's
 * creator again. Inline effect logic in an `invoke` is not reached (its creator runs, and
 * what it delivers is ignored: children never deliver on their own during a replay).
 */
export function withoutEffects(machine: AnyStateMachine): AnyStateMachine {
  const known = inertCache.get(machine);
  if (known) return known;
  inertCache.set(machine, machine); // a machine naming itself
  const actors = (machine.implementations.actors ?? {}) as Record<string, AnyActorLogic>;
  const replaced: Record<string, AnyActorLogic> = {};
  let changed = false;
  for (const [name, logic] of Object.entries(actors)) {
    const next = isMachine(logic) ? withoutEffects(logic) : isEffect(logic) ? INERT : logic;
    replaced[name] = next;
    changed ||= next !== logic;
  }
  const out = changed ? machine.provide({ actors: replaced } as never) : machine;
  inertCache.set(machine, out);
  return out;
}

/**
 * The event a lost child's parent receives: XState's own error event for an invoked actor,
 * so `onError` handlers apply.
 */
export function lostEvent(l: LostChild): { type: string } & Record<string, unknown> {
  return {
    type: `xstate.error.actor.${l.id}`,
    actorId: l.id,
    error: { code: 'E_CHILD_LOST', message: `child ${l.path} (${l.src}) was lost on restore: ${l.reason}` },
  };
}

/** True while some actor of the tree runs an in-memory effect (a promise in flight, …). */
export function effectsInFlight(root: AnyActorRef): boolean {
  const children = (root.getSnapshot() as { children?: Record<string, AnyActorRef | undefined> }).children ?? {};
  for (const c of Object.values(children)) {
    if (!c) continue;
    const logic = (c as { logic?: AnyActorLogic }).logic;
    const snap = c.getSnapshot() as { status?: string };
    if (logic && isEffect(logic) && snap.status === 'active') return true;
    if (logic && isMachine(logic) && effectsInFlight(c)) return true;
  }
  return false;
}

/** What `actor show` prints of a child. */
export interface ChildView {
  /** The path below its top-level actor (`a`, `a/b`). */
  path: string;
  src: string;
  state: string;
  status: string;
  context: unknown;
  snapshot: unknown;
  /** Its own children's ids. */
  children: string[];
}

/** A child as the top-level actor's persisted snapshot holds it. */
export function storedChild(snapshot: unknown, path: string): ChildView | undefined {
  let entry: PersistedChild | undefined;
  let snap: unknown = snapshot;
  for (const id of path.split('/')) {
    const children = (snap as { children?: Record<string, PersistedChild> } | undefined)?.children;
    entry = children?.[id];
    if (!entry) return undefined;
    snap = entry.snapshot;
  }
  const s = (snap ?? {}) as { value?: unknown; status?: unknown; context?: unknown; children?: Record<string, unknown> };
  const status = typeof s.status === 'string' ? s.status : 'unknown';
  return {
    path,
    src: typeof entry?.src === 'string' ? entry.src : '(inline logic)',
    state: s.value !== undefined ? stateToString(s.value as never) : status,
    status,
    context: s.context,
    snapshot: snap,
    children: Object.keys(s.children ?? {}),
  };
}

/** A child of an actor hosted here, as it runs. */
export function liveChild(root: AnyActorRef, path: string): ChildView | undefined {
  const ref = refAt(root, path);
  if (!ref) return undefined;
  const s = ref.getSnapshot() as { value?: unknown; status?: string; context?: unknown; children?: Record<string, unknown> };
  const status = s.status ?? 'unknown';
  const src = (ref as { src?: unknown }).src;
  return {
    path,
    src: typeof src === 'string' ? src : '(inline logic)',
    state: s.value !== undefined ? stateToString(s.value as never) : status,
    status,
    context: s.context,
    snapshot: ref.getPersistedSnapshot(),
    children: Object.keys(s.children ?? {}),
  };
}

/** The info fields of a child address (`parent/path`), in the shape of an actor's. */
export function childInfo(
  parent: string,
  c: ChildView,
): { address: string; state: string; status: 'active' | 'done' | 'stopped' | 'failed'; src: string; parent: string; children: string[] } {
  const status = c.status === 'error' ? 'failed' : c.status === 'done' || c.status === 'stopped' ? c.status : 'active';
  return { address: `${parent}/${c.path}`, state: c.state, status, src: c.src, parent, children: c.children };
}

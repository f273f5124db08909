import type { AnyStateMachine, InspectionEvent } from 'xstate';

/**
 * Converts XState inspection events from hosted actors into the messages @statelyai/inspect's
 * WebSocket inspector sends (`@xstate.actor`, `@xstate.event`, `@xstate.snapshot`), so that
 * Stately's inspector (through its WebSocket receiver / bridge page) can attach to ICE.
 *
 * Each hosted actor is its own XState system, so XState's session ids (`x:0`, ...) repeat
 * across actors and change whenever an actor is restored. We therefore use the actor's ICE
 * address as its session id (stable across restarts), and `address#sessionId` for actors it
 * spawns or invokes.
 */

/** The @statelyai/inspect version whose message shapes we produce. */
export const STATELY_INSPECT_VERSION = '0.7.2';

interface StatelyBase {
  rootId: string | undefined;
  sessionId: string;
  createdAt: string;
  /** Stately's own sender sets `null` here for converted XState events. */
  id: string | null;
  _version: string;
}
export interface StatelyActorMessage extends StatelyBase {
  type: '@xstate.actor';
  name: string;
  definition: string | undefined;
  parentId: string | undefined;
  snapshot: unknown;
}
export interface StatelyEventMessage extends StatelyBase {
  type: '@xstate.event';
  event: unknown;
  sourceId: string | undefined;
}
export interface StatelySnapshotMessage extends StatelyBase {
  type: '@xstate.snapshot';
  event: unknown;
  snapshot: unknown;
}
export type StatelyMessage = StatelyActorMessage | StatelyEventMessage | StatelySnapshotMessage;

/**
 * A JSON-safe deep copy: honours `toJSON` (XState actor refs serialize to `{ xstate$$type, id }`),
 * turns functions into `{ type: name }` as Stately's serializer does, breaks cycles and caps depth.
 */
export function toJsonSafe(value: unknown, maxDepth = 10): unknown {
  const seen = new WeakSet<object>();
  const walk = (v: unknown, depth: number): unknown => {
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
    if (typeof v === 'number') return Number.isFinite(v) ? v : null;
    if (typeof v === 'bigint') return v.toString();
    if (typeof v === 'undefined' || typeof v === 'symbol') return undefined;
    if (typeof v === 'function') return { type: (v as { name?: string }).name ?? '' };
    if (typeof v !== 'object') return undefined;
    const withToJson = v as { toJSON?: () => unknown };
    if (typeof withToJson.toJSON === 'function') {
      let j: unknown;
      try {
        j = withToJson.toJSON();
      } catch {
        return '[Unserializable]';
      }
      if (j !== v) return walk(j, depth);
    }
    if (seen.has(v)) return '[Circular]';
    if (depth >= maxDepth) return '[...]';
    seen.add(v);
    try {
      if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1) ?? null);
      if (v instanceof Map) return walk(Object.fromEntries(v), depth);
      if (v instanceof Set) return walk([...v], depth);
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        const c = walk(x, depth + 1);
        if (c !== undefined) out[k] = c;
      }
      return out;
    } finally {
      seen.delete(v);
    }
  };
  return walk(value, 0);
}

/** The machine definition string Stately expects: the machine config as JSON. */
export function machineDefinition(machine: AnyStateMachine): string {
  return JSON.stringify(toJsonSafe((machine as unknown as { config: unknown }).config, 20));
}

interface RefLike {
  id?: string;
  sessionId?: string;
  _parent?: RefLike;
  logic?: { config?: { id?: string } };
  getSnapshot?: () => unknown;
}

/** XState throws if a snapshot is read while the actor is still being constructed. */
function readSnapshot(ref: RefLike): unknown {
  try {
    return ref.getSnapshot?.() ?? { status: 'active' };
  } catch {
    return { status: 'active' };
  }
}

function sessionOf(address: string, ref: RefLike | undefined): string | undefined {
  if (!ref) return undefined;
  if (!ref._parent) return address;
  return `${address}#${ref.sessionId ?? ref.id ?? '?'}`;
}

/** Converts one inspection event of the hosted actor at `address`; undefined for the kinds Stately ignores. */
export function toStatelyMessage(
  address: string,
  ev: InspectionEvent,
  opts: { now?: () => number; definitionOf?: (ref: unknown) => string | undefined } = {},
): StatelyMessage | undefined {
  const now = opts.now ?? Date.now;
  const ref = ev.actorRef as unknown as RefLike;
  const sessionId = sessionOf(address, ref) ?? address;
  const rootId = address;
  const base = { sessionId, rootId, createdAt: String(now()), id: null, _version: STATELY_INSPECT_VERSION };
  switch (ev.type) {
    case '@xstate.actor': {
      const config = ref.logic?.config;
      let name = ref.id ?? sessionId;
      if (!ref._parent) name = address;
      else if (name === ref.sessionId && config?.id) name = config.id;
      const definition =
        opts.definitionOf?.(ref) ??
        (config && typeof config === 'object' ? JSON.stringify(toJsonSafe(config, 20)) : JSON.stringify({ id: name }));
      return {
        ...base,
        type: '@xstate.actor',
        name,
        definition,
        parentId: sessionOf(address, ref._parent),
        snapshot: toJsonSafe(readSnapshot(ref)),
      };
    }
    case '@xstate.event': {
      const src = (ev as { sourceRef?: RefLike }).sourceRef;
      return {
        ...base,
        type: '@xstate.event',
        event: toJsonSafe(ev.event),
        sourceId: sessionOf(address, src),
      };
    }
    case '@xstate.snapshot':
      return {
        ...base,
        type: '@xstate.snapshot',
        event: toJsonSafe(ev.event),
        snapshot: toJsonSafe(ev.snapshot),
      };
    default:
      return undefined;
  }
}

/** An `@xstate.actor` registration for an actor that already exists (sent to late joiners). */
export function statelyActorRegistration(
  address: string,
  machine: AnyStateMachine | undefined,
  snapshot: unknown,
  now: () => number = Date.now,
): StatelyActorMessage {
  return {
    type: '@xstate.actor',
    name: address,
    sessionId: address,
    rootId: address,
    parentId: undefined,
    createdAt: String(now()),
    id: null,
    _version: STATELY_INSPECT_VERSION,
    definition: machine ? machineDefinition(machine) : JSON.stringify({ id: address }),
    snapshot: toJsonSafe(snapshot ?? { status: 'active' }),
  };
}

/** Whether a message received from a client looks like a Stately inspection event (for relaying). */
export function isStatelyMessage(v: unknown): v is StatelyMessage {
  if (!v || typeof v !== 'object') return false;
  const o = v as Record<string, unknown>;
  return (
    (o.type === '@xstate.actor' || o.type === '@xstate.event' || o.type === '@xstate.snapshot') &&
    typeof o.sessionId === 'string' &&
    typeof o._version === 'string'
  );
}

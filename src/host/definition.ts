import type { AnyStateMachine } from 'xstate';
import type { ZodType } from 'zod';
import { ACTOR_KIND_RE } from '../protocol/address.js';
import { ConfigError } from '../errors.js';
import { resolveEffects, type EffectDefinition, type ResolvedEffect } from './effects.js';
import type { PolicyRule } from '../authority/policy.js';

/**
 * What a kind of actor is: its machine, the events (actions) proposers may send with the
 * zod schema of each one's params, the events only the runtime may send, and the policies
 * that come with the kind.
 */
/**
 * What happens when an actor's machine throws outside an intent (a timer's transition): it
 * goes to `failed` (an `actor.failed` fact on its chain), then
 * - `restart` (the default): back to `active` after `backoffMs` (doubling with each failure in
 *   the window, at most `maxBackoffMs`), as an `actor.restarted` fact with origin `runtime`;
 *   after `maxRestarts` failures within `withinMs` it stays failed;
 * - `stop`: it stays failed;
 * - `escalate`: it stays failed, and the actor `to` names (its run, a parent you choose: an
 *   address, or a function of the failed actor's address and context) is sent the runtime
 *   event `event` (default `ACTOR_FAILED`) with `{ actor, message }`. The target kind must
 *   declare that event in its `runtimeEvents`; when it cannot take it, the failure fact says so.
 * A failed actor takes no intents (`actor_not_active`) until restarted (`ice actor restart`).
 */
export type Supervision =
  | { strategy: 'restart'; backoffMs?: number; maxBackoffMs?: number; maxRestarts?: number; withinMs?: number }
  | { strategy: 'stop' }
  | { strategy: 'escalate'; to: EscalationTarget; event?: string };

/** Where a failure is escalated: an actor address, or one computed from the failed actor. */
export type EscalationTarget = string | ((failed: { address: string; context: unknown }) => string | undefined);

export interface ResolvedSupervision {
  strategy: 'restart' | 'stop' | 'escalate';
  escalate?: { to: EscalationTarget; event: string };
  backoffMs: number;
  maxBackoffMs: number;
  maxRestarts: number;
  withinMs: number;
}

export const DEFAULT_SUPERVISION: ResolvedSupervision = Object.freeze({
  strategy: 'restart',
  backoffMs: 1000,
  maxBackoffMs: 60_000,
  maxRestarts: 5,
  withinMs: 600_000,
});

export interface ActorDefinition<M extends AnyStateMachine = AnyStateMachine> {
  readonly kind: string;
  readonly machine: M;
  /** Actions a proposer may request, each with the schema of its params. */
  readonly events: Readonly<Record<string, ZodType>>;
  /** Events only the runtime sends (e.g. RUNTIME_ABORT); never accepted from an intent. */
  readonly runtimeEvents: Readonly<Record<string, ZodType>>;
  /** Schema of the input given when an actor of this kind is spawned. */
  readonly input: ZodType | undefined;
  readonly policies: readonly PolicyRule[];
  /** Schema of the machine's context: what Cedar policies see as `context.actor` (docs/policies.md). */
  readonly contextSchema?: ZodType | undefined;
  readonly description: string | undefined;
  /** What happens when the machine throws outside an intent (see Supervision). */
  readonly supervision?: ResolvedSupervision;
  /** Durable effects its transitions may start by name (src/host/effects.ts). */
  readonly effects?: Readonly<Record<string, ResolvedEffect>>;
  /** The version of this definition (1, 2, …): written into every snapshot record of the kind. */
  readonly version: number;
  /** `migrations[n]` turns a persisted XState snapshot of version `n` into one of version `n + 1`. */
  readonly migrations: Readonly<Record<number, Migration>>;
}

/**
 * One step of a kind's migrations: from a persisted snapshot (`actor.getPersistedSnapshot()`,
 * as JSON) of version `n` to one of version `n + 1`. Pure: it may run again on every node that
 * restores the actor, and it never sees the journal.
 */
export type Migration = (persisted: unknown) => unknown;

export interface DefineActorOptions<M extends AnyStateMachine> {
  kind: string;
  machine: M;
  events: Record<string, ZodType>;
  runtimeEvents?: Record<string, ZodType>;
  input?: ZodType;
  policies?: PolicyRule[];
  contextSchema?: ZodType;
  description?: string;
  supervision?: Supervision;
  /** Named async functions that touch the world, started by `startEffect(name, params)` (src/host/effects.ts). */
  effects?: Record<string, EffectDefinition>;
  /** A positive integer, default 1. Raise it when persisted snapshots of the kind change shape. */
  version?: number;
  /**
   * From version `n` (the key) to `n + 1`, each a function over the persisted XState snapshot.
   * Keys from 1 to `version - 1`; a missing step leaves actors stored before it unrestorable
   * (`E_VERSION`; `ice actors check` lists them).
   */
  migrations?: Record<number, Migration>;
}

/**
 * Binds a machine to a kind.
 * @example
 * export const deploymentActor = defineActor({
 *   kind: 'deployment',
 *   machine: deploymentMachine,
 *   events: deploymentEvents,
 * });
 */
export function defineActor<M extends AnyStateMachine>(opts: DefineActorOptions<M>): ActorDefinition<M> {
  if (!ACTOR_KIND_RE.test(opts.kind)) {
    throw new ConfigError(`actor kind ${JSON.stringify(opts.kind)} must match ${ACTOR_KIND_RE}`);
  }
  const runtimeEvents = opts.runtimeEvents ?? {};
  for (const name of Object.keys(opts.events)) {
    if (name in runtimeEvents) throw new ConfigError(`${opts.kind}: event ${name} is both proposable and runtime-only`);
    if (!/^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(name)) throw new ConfigError(`${opts.kind}: bad event name ${name}`);
  }
  const { version, migrations } = versionOf(opts);
  return Object.freeze({
    kind: opts.kind,
    machine: opts.machine,
    events: Object.freeze({ ...opts.events }),
    runtimeEvents: Object.freeze({ ...runtimeEvents }),
    input: opts.input,
    policies: Object.freeze([...(opts.policies ?? [])]),
    ...(opts.contextSchema ? { contextSchema: opts.contextSchema } : {}),
    description: opts.description,
    supervision: resolveSupervision(opts.kind, opts.supervision),
    effects: resolveEffects(opts.kind, opts.effects),
    version,
    migrations,
  });
}

function resolveSupervision(kind: string, s: Supervision | undefined): ResolvedSupervision {
  if (s === undefined) return DEFAULT_SUPERVISION;
  if (s.strategy === 'stop') return { ...DEFAULT_SUPERVISION, strategy: 'stop' };
  if (s.strategy === 'escalate') {
    const event = s.event ?? 'ACTOR_FAILED';
    if (typeof s.to !== 'function' && (typeof s.to !== 'string' || !s.to.includes('/')))
      throw new ConfigError(`${kind}: supervision.to must be an actor address (kind/id) or a function returning one`);
    if (!/^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(event))
      throw new ConfigError(`${kind}: supervision.event must be an event name, not ${event}`);
    return { ...DEFAULT_SUPERVISION, strategy: 'escalate', escalate: { to: s.to, event } };
  }
  if (s.strategy !== 'restart') {
    throw new ConfigError(
      `${kind}: supervision.strategy must be 'restart', 'stop' or 'escalate', not ${JSON.stringify((s as { strategy: unknown }).strategy)}`,
    );
  }
  const r = { ...DEFAULT_SUPERVISION, ...Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined)) };
  for (const k of ['backoffMs', 'maxBackoffMs', 'withinMs'] as const) {
    if (!Number.isSafeInteger(r[k]) || r[k] < 0)
      throw new ConfigError(`${kind}: supervision.${k} must be an integer ≥ 0 (ms), not ${r[k]}`);
  }
  if (!Number.isSafeInteger(r.maxRestarts) || r.maxRestarts < 0)
    throw new ConfigError(`${kind}: supervision.maxRestarts must be an integer ≥ 0, not ${r.maxRestarts}`);
  if (r.maxBackoffMs < r.backoffMs)
    throw new ConfigError(`${kind}: supervision.maxBackoffMs (${r.maxBackoffMs}) is below backoffMs (${r.backoffMs})`);
  return r;
}

function versionOf(opts: DefineActorOptions<AnyStateMachine>): { version: number; migrations: Readonly<Record<number, Migration>> } {
  const version = opts.version ?? 1;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1)
    throw new ConfigError(`${opts.kind}: version must be a positive integer (1, 2, …), got ${JSON.stringify(version)}`);
  const given: unknown = opts.migrations ?? {};
  if (typeof given !== 'object' || given === null || Array.isArray(given))
    throw new ConfigError(`${opts.kind}: migrations must be an object { [fromVersion]: (persisted) => persisted }`);
  const migrations: Record<number, Migration> = {};
  for (const [key, fn] of Object.entries(given)) {
    const from = Number(key);
    if (!/^[1-9][0-9]*$/.test(key) || from >= version)
      throw new ConfigError(
        `${opts.kind}: migrations[${JSON.stringify(key)}]: a key is the version it migrates from, an integer from 1 to ${version - 1} ` +
          `(version is ${version}${version === 1 ? ': raise version to migrate' : ''})`,
      );
    if (typeof fn !== 'function')
      throw new ConfigError(`${opts.kind}: migrations[${key}] must be a function (persisted) => persisted, got ${typeof fn}`);
    migrations[from] = fn as Migration;
  }
  return { version, migrations: Object.freeze(migrations) };
}

/** The kinds a runtime hosts. */
export class ActorRegistry {
  #defs = new Map<string, ActorDefinition>();

  constructor(defs: Iterable<ActorDefinition> = []) {
    for (const d of defs) this.register(d);
  }

  register(def: ActorDefinition): void {
    if (this.#defs.has(def.kind)) throw new ConfigError(`actor kind ${def.kind} is registered twice`);
    this.#defs.set(def.kind, def);
  }

  get(kind: string): ActorDefinition | undefined {
    return this.#defs.get(kind);
  }

  list(): ActorDefinition[] {
    return [...this.#defs.values()];
  }
}

/** Accepts a module's exports: `actors` array, `default` (array or one definition), or named definitions. */
export function definitionsFromModule(mod: Record<string, unknown>): ActorDefinition[] {
  const isDef = (v: unknown): v is ActorDefinition => typeof v === 'object' && v !== null && 'kind' in v && 'machine' in v && 'events' in v;
  const candidates: unknown[] = [];
  if (Array.isArray(mod.actors)) candidates.push(...(mod.actors as unknown[]));
  else if (Array.isArray(mod.default)) candidates.push(...(mod.default as unknown[]));
  else if (isDef(mod.default)) candidates.push(mod.default);
  else candidates.push(...Object.values(mod));
  // A definition made by an ice-runtime from before versions has none: it is version 1.
  const defs = candidates
    .filter(isDef)
    .map((d) =>
      (d as { version?: unknown }).version === undefined ? Object.freeze({ ...d, version: 1, migrations: Object.freeze({}) }) : d,
    );
  if (defs.length === 0) throw new ConfigError('the module exports no actor definitions (export `actors` or defineActor results)');
  return defs;
}

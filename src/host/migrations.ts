/**
 * Snapshot versions.
 *
 * Every snapshot record names the XState machine (`machine.id`) and the version of the kind's
 * definition that wrote it; a record without `version` was written before versions and is
 * version 1. Restoring a record of a lower version than the running definition runs the
 * definition's migrations `n → n + 1` in order over the persisted XState snapshot before the
 * actor is created; the facts committed after that snapshot are then replayed on the running
 * machine, and the restore turn carries an `actor.migrated` fact and the migrated snapshot.
 *
 * Refused, with a VersionError (`E_VERSION`) naming the actor and both versions: a record of
 * a higher version, a missing step, a migration that throws, a migrated snapshot the running
 * machine cannot restore, a record whose `version` is not a positive integer. Nothing is
 * written over a refused actor's data; migrations run on a copy.
 */
import { createActor, type Snapshot } from 'xstate';
import { VersionError, VersionProblem, ensureError } from '../errors.js';
import { FactType, type Fact, type SnapshotRecord } from '../protocol/index.js';
import type { StorePort } from './ports.js';
import type { ActorDefinition } from './definition.js';

/** What a snapshot record is built from: an actor as the Host holds it. */
export interface RecordSource {
  address: string;
  def: ActorDefinition;
  status: SnapshotRecord['status'];
  state: string;
  persisted: unknown;
}

/** The snapshot record of an actor at `seq`, stamped with its machine and definition version. */
export function snapshotRecord(e: RecordSource, seq: number, at: string): SnapshotRecord {
  return {
    v: 1,
    actor: e.address,
    kind: e.def.kind,
    machine: e.def.machine.id,
    version: e.def.version,
    seq,
    status: e.status,
    state: e.state,
    snapshot: e.persisted,
    updatedAt: at,
  };
}

/** A stored snapshot brought to the running version (or as it was, when the versions match). */
export interface Restorable {
  /** The persisted XState snapshot to create the actor from. */
  snapshot: unknown;
  /** The version it was stored at. */
  from: number;
  /** The running definition's version. */
  to: number;
  /** True when migrations ran (`from < to`). */
  migrated: boolean;
}

/**
 * The version a record was written by: its `version`, 1 when absent.
 * @throws VersionError (`bad_record`) when `version` or `machine` is of the wrong type.
 */
export function storedVersion(address: string, def: ActorDefinition, rec: SnapshotRecord): number {
  const v: unknown = (rec as { version?: unknown }).version;
  const machine: unknown = (rec as { machine?: unknown }).machine;
  if (v !== undefined && (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1))
    throw new VersionError(
      address,
      1,
      def.version,
      VersionProblem.badRecord,
      `the stored record's version is ${JSON.stringify(v)}, not a positive integer; the record is damaged (restore it from a backup)`,
    );
  if (machine !== undefined && typeof machine !== 'string')
    throw new VersionError(
      address,
      v ?? 1,
      def.version,
      VersionProblem.badRecord,
      `the stored record's machine is ${JSON.stringify(machine)}, not a string; the record is damaged (restore it from a backup)`,
    );
  return v ?? 1;
}

/**
 * The stored snapshot of `address` as the running definition can restore it: migrated from
 * the record's version to `def.version` when lower, then checked by creating (not starting) an
 * actor of the running machine from it — a migrated one always, one restored as stored only
 * with `check: 'always'` (the Host finds out when it creates the actor). Pure: the record is
 * not changed.
 * @throws VersionError naming the actor, the stored and the running version, and the problem.
 */
export function restorableSnapshot(
  address: string,
  def: ActorDefinition,
  rec: SnapshotRecord,
  opts: { check?: 'migrated' | 'always' } = {},
): Restorable {
  const from = storedVersion(address, def, rec);
  const to = def.version;
  const refuse = (problem: VersionProblem, detail: string, cause?: unknown): VersionError =>
    new VersionError(address, from, to, problem, detail, cause !== undefined ? { cause } : undefined);
  if (from > to)
    throw refuse(
      VersionProblem.newer,
      `written by a later definition of kind ${def.kind} than the one running here; run version ${from} or later`,
    );
  for (let n = from; n < to; n++) {
    if (!def.migrations[n])
      throw refuse(
        VersionProblem.noPath,
        `no migration from version ${n} to ${n + 1} (add migrations[${n}] to the definition of kind ${def.kind}, or run version ${from})`,
      );
  }
  let snapshot: unknown = rec.snapshot;
  if (from < to) {
    // A copy: a migration may change what it is given, and the store's object is not ours.
    snapshot = structuredClone(rec.snapshot);
    for (let n = from; n < to; n++) {
      try {
        snapshot = def.migrations[n]!(snapshot);
      } catch (e) {
        throw refuse(VersionProblem.migrationThrew, `migration from version ${n} to ${n + 1} threw: ${ensureError(e).message}`, e);
      }
    }
  }
  const problem = from < to || opts.check === 'always' ? unrestorable(def, snapshot) : undefined;
  if (problem !== undefined)
    throw refuse(
      VersionProblem.snapshotInvalid,
      from < to
        ? `the snapshot migrated to version ${to} is not one machine ${def.machine.id} can restore: ${problem}`
        : `the stored snapshot is not one machine ${def.machine.id} can restore: ${problem}`,
    );
  return { snapshot, from, to, migrated: from < to };
}

/** Why `machine` cannot restore `snapshot` (undefined: it can). Creates an actor, never starts it. */
function unrestorable(def: ActorDefinition, snapshot: unknown): string | undefined {
  if (typeof snapshot !== 'object' || snapshot === null || Array.isArray(snapshot))
    return `a persisted snapshot is an object, got ${snapshot === null ? 'null' : Array.isArray(snapshot) ? 'an array' : typeof snapshot}`;
  try {
    const s = createActor(def.machine, { snapshot: snapshot as Snapshot<unknown> }).getSnapshot() as { status: string; error?: unknown };
    return s.status === 'error' ? ensureError(s.error).message : undefined;
  } catch (e) {
    return ensureError(e).message;
  }
}

/**
 * A chain without a snapshot is rebuilt from its `actor.started` input on the running machine,
 * its events replayed: there is no persisted snapshot to migrate. One started by a later
 * version (`data.version`) is refused.
 * @throws VersionError (`newer`)
 */
export function checkStartedVersion(address: string, def: ActorDefinition, started: Fact): void {
  if (started.type !== FactType.actorStarted) return;
  const v: unknown = started.data.version;
  if (typeof v === 'number' && v > def.version)
    throw new VersionError(
      address,
      v,
      def.version,
      VersionProblem.newer,
      `started by a later definition of kind ${def.kind} than the one running here; run version ${v} or later`,
    );
}

/** One page of stored snapshot records, by actor address (`ice actors check`). */
export interface SnapshotPage {
  records: SnapshotRecord[];
  /** The last address of this page when more follow: ask again with `after: next`. */
  next?: string;
}

/**
 * Reads the stored snapshot record of every actor after `after` (addresses in order), up to
 * `limit` records or about `maxBytes` of JSON (at least one record). Reads only.
 */
export async function storedSnapshotPage(
  store: Pick<StorePort, 'actors' | 'latestSnapshot'>,
  opts: { after?: string; limit: number; maxBytes: number },
): Promise<SnapshotPage> {
  const rows = (await store.actors()).filter((r) => opts.after === undefined || r.actor > opts.after);
  const records: SnapshotRecord[] = [];
  let bytes = 0;
  for (const row of rows) {
    if (records.length >= opts.limit || (records.length > 0 && bytes >= opts.maxBytes)) return { records, next: records.at(-1)!.actor };
    const rec = await store.latestSnapshot(row.actor);
    if (!rec) continue;
    records.push(rec);
    bytes += JSON.stringify(rec).length;
  }
  return { records };
}

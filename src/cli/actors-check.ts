import { VersionError, ensureError, type VersionProblem } from '../errors.js';
import type { ActorDefinition } from '../host/index.js';
import { restorableSnapshot, storedVersion, type SnapshotPage } from '../host/migrations.js';
import type { SnapshotRecord } from '../protocol/index.js';
import { c } from './format.js';

/** Whether the definitions at hand can restore a stored actor (`ice actors check`). */
export const CheckVerdict = {
  /** Stored by the running version: restored as it is. */
  restorable: 'restorable',
  /** Stored by a lower version with a path of migrations to the running one. */
  migrate: 'migrate',
  notRestorable: 'not_restorable',
} as const;
export type CheckVerdict = (typeof CheckVerdict)[keyof typeof CheckVerdict];

/** Why an actor is not restorable: a version problem, or no definition of its kind. */
export type CheckProblem = VersionProblem | 'kind_not_registered';

export interface ActorCheck {
  actor: string;
  kind: string;
  verdict: CheckVerdict;
  /** The version its stored snapshot was written by (1 when the record has none). */
  stored: number;
  /** The running definition's version (absent when the kind is not registered). */
  running?: number;
  /** The machine id in the stored record (absent in records written before versions). */
  machine?: string;
  seq: number;
  problem?: CheckProblem;
  message?: string;
  /** Something to know that does not stop the restore (a machine id that changed). */
  note?: string;
}

/**
 * What restoring `rec` with `def` would do, found as the Host finds it (the same migrations
 * and the same restore check), without writing anything.
 */
export function checkRecord(rec: SnapshotRecord, def: ActorDefinition | undefined): ActorCheck {
  const base = {
    actor: rec.actor,
    kind: rec.kind,
    seq: rec.seq,
    ...(typeof rec.machine === 'string' ? { machine: rec.machine } : {}),
  };
  if (!def) {
    const stored = typeof rec.version === 'number' ? rec.version : 1;
    return {
      ...base,
      stored,
      verdict: CheckVerdict.notRestorable,
      problem: 'kind_not_registered',
      message: `no definition of kind ${rec.kind} here (pass the module that defines it with --actors <module>)`,
    };
  }
  let stored = 1;
  try {
    stored = storedVersion(rec.actor, def, rec);
    const r = restorableSnapshot(rec.actor, def, rec, { check: 'always' });
    const note =
      rec.machine !== undefined && rec.machine !== def.machine.id
        ? `stored by machine ${rec.machine}, running machine ${def.machine.id}`
        : undefined;
    return {
      ...base,
      stored,
      running: def.version,
      verdict: r.migrated ? CheckVerdict.migrate : CheckVerdict.restorable,
      ...(note ? { note } : {}),
    };
  } catch (e) {
    const err = ensureError(e);
    return {
      ...base,
      stored: err instanceof VersionError ? err.stored : stored,
      running: def.version,
      verdict: CheckVerdict.notRestorable,
      problem: err instanceof VersionError ? err.problem : 'snapshot_invalid',
      message: err.message,
    };
  }
}

/** Every stored record, read a page at a time. */
export async function allStoredSnapshots(page: (after: string | undefined) => Promise<SnapshotPage>): Promise<SnapshotRecord[]> {
  const out: SnapshotRecord[] = [];
  let after: string | undefined;
  for (;;) {
    const p = await page(after);
    out.push(...p.records);
    if (p.next === undefined || p.records.length === 0) return out;
    after = p.next;
  }
}

export function checkActors(records: readonly SnapshotRecord[], defs: readonly ActorDefinition[]): ActorCheck[] {
  const byKind = new Map(defs.map((d) => [d.kind, d]));
  return records.map((r) => checkRecord(r, byKind.get(r.kind)));
}

/** A summary line with the counts, then each actor to migrate and each problem. */
export function formatCheck(rows: readonly ActorCheck[]): string {
  const count = (v: CheckVerdict) => rows.filter((r) => r.verdict === v).length;
  const bad = count(CheckVerdict.notRestorable);
  const summary =
    `${rows.length} actor${rows.length === 1 ? '' : 's'}: ${count(CheckVerdict.restorable)} restorable as stored, ` +
    `${count(CheckVerdict.migrate)} after migration, ${bad} not restorable`;
  const lines = [bad > 0 ? c.red(summary) : c.green(summary)];
  for (const r of rows) {
    if (r.verdict === CheckVerdict.migrate) lines.push(`  ${r.actor}  ${c.yellow(`migrates v${r.stored} → v${r.running}`)}`);
    else if (r.verdict === CheckVerdict.notRestorable) lines.push(`  ${r.actor}  ${c.red(`not restorable (${r.problem})`)}: ${r.message}`);
    if (r.note) lines.push(`  ${r.actor}  ${c.dim(r.note)}`);
  }
  return lines.join('\n');
}

import type { SnapshotRecord, TimerRecord } from '../protocol/index.js';

/** A pending durable timer (`ice timers ls`); `event: 'restart'` is a failed actor's restart by its supervision. */
export interface TimerRow {
  actor: string;
  kind: string;
  /** The event the timer delivers (`xstate.after.…` for an `after`), or `restart`. */
  event: string;
  /** XState's id of the timer. */
  id: string;
  /** Where it was scheduled from: "" the actor, `a/b` a child. */
  source: string;
  /** Epoch ms. */
  dueAt: number;
  status: SnapshotRecord['status'];
}

/**
 * The pending timers of stored snapshot records, overlaid with those of actors in memory
 * (which may be ahead of their stored record), earliest first, at most `limit`.
 */
export function timerRows(
  stored: readonly SnapshotRecord[],
  active: ReadonlyArray<TimerRecord & { actor: string }> = [],
  limit = Infinity,
): TimerRow[] {
  const inMemory = new Set(active.map((t) => t.actor));
  const rows: TimerRow[] = [];
  for (const rec of stored) {
    if (inMemory.has(rec.actor)) continue;
    if (rec.status === 'failed' && rec.wakeAt !== undefined)
      rows.push({ actor: rec.actor, kind: rec.kind, event: 'restart', id: 'restart', source: '', dueAt: rec.wakeAt, status: 'failed' });
    if (rec.status !== 'active') continue;
    for (const t of rec.timers ?? [])
      rows.push({ actor: rec.actor, kind: rec.kind, event: t.event.type, id: t.id, source: t.source, dueAt: t.dueAt, status: 'active' });
  }
  for (const t of active) {
    const kind = t.actor.slice(0, t.actor.indexOf('/'));
    rows.push({ actor: t.actor, kind, event: t.event.type, id: t.id, source: t.source, dueAt: t.dueAt, status: 'active' });
  }
  return rows.sort((a, b) => a.dueAt - b.dueAt || (a.actor < b.actor ? -1 : a.actor > b.actor ? 1 : 0)).slice(0, limit);
}

/** A started, unfinished durable effect (`ice effects ls`). */
export interface EffectRow {
  actor: string;
  id: string;
  name: string;
  state: string;
  attempts: number;
  /** When the next attempt may start (epoch ms). */
  retryAt: number;
  lastError?: string;
  /** An attempt is in flight on this node. */
  running: boolean;
}

/** Started effects of stored records, overlaid with those of actors in memory, by actor then id. */
export function effectRows(
  stored: readonly SnapshotRecord[],
  active: ReadonlyArray<Omit<EffectRow, 'running'> & { running: boolean; seq?: number; params?: unknown }>,
  limit = Infinity,
): EffectRow[] {
  const inMemory = new Set(active.map((x) => x.actor));
  const rows: EffectRow[] = [];
  for (const rec of stored) {
    if (inMemory.has(rec.actor)) continue;
    for (const x of rec.effects ?? [])
      rows.push({
        actor: rec.actor,
        id: x.id,
        name: x.name,
        state: x.state,
        attempts: x.attempts,
        retryAt: x.retryAt,
        running: false,
        ...(x.lastError ? { lastError: x.lastError } : {}),
      });
  }
  for (const x of active)
    rows.push({
      actor: x.actor,
      id: x.id,
      name: x.name,
      state: x.state,
      attempts: x.attempts,
      retryAt: x.retryAt,
      running: x.running,
      ...(x.lastError ? { lastError: x.lastError } : {}),
    });
  return rows.sort((a, b) => (a.actor < b.actor ? -1 : a.actor > b.actor ? 1 : a.id < b.id ? -1 : 1)).slice(0, limit);
}

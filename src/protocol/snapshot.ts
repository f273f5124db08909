import { z } from 'zod';
import { PROTOCOL_VERSION } from './intent.js';

export const ActorStatus = { active: 'active', done: 'done', stopped: 'stopped', failed: 'failed' } as const;
export type ActorStatus = (typeof ActorStatus)[keyof typeof ActorStatus];

/**
 * A pending durable timer of an actor (src/host/timers.ts): an XState delayed event, named by
 * the actor it was scheduled from (`source`: "" for the actor itself, `a/b` for a child) and
 * XState's id for it, due at `dueAt` (epoch ms).
 */
export const TimerRecordSchema = z.strictObject({
  source: z.string(),
  target: z.string(),
  id: z.string().min(1),
  event: z.looseObject({ type: z.string() }),
  dueAt: z.int().nonnegative(),
});
export type TimerRecord = z.infer<typeof TimerRecordSchema>;

/** An actor's persisted XState snapshot and the journal position it reflects. */
export const SnapshotRecordSchema = z.strictObject({
  v: z.literal(PROTOCOL_VERSION),
  actor: z.string(),
  kind: z.string(),
  /** The XState machine's id (`machine.id`) that wrote it; absent in records written before versions. */
  machine: z.string().optional(),
  /**
   * The version of the kind's definition that wrote it (`defineActor({ version })`); absent in
   * records written before versions, which means 1. A runtime restoring a lower version runs the
   * definition's migrations over `snapshot` first; a higher one is refused (`E_VERSION`).
   */
  version: z.int().positive().optional(),
  /** Seq of the last journal fact applied to this snapshot. */
  seq: z.int().nonnegative(),
  status: z.enum(['active', 'done', 'stopped', 'failed']),
  /** The state value as a string (`a.b` for nested states). */
  state: z.string(),
  snapshot: z.unknown(),
  updatedAt: z.iso.datetime(),
  /** Pending durable timers, earliest first (absent: none). */
  timers: z.array(TimerRecordSchema).optional(),
  /**
   * When the actor next needs waking (epoch ms): its earliest timer while active, its restart
   * while failed. Stores index it, so a passivated actor is woken without loading every snapshot.
   */
  wakeAt: z.int().nonnegative().optional(),
  /**
   * Intents the actor proposed whose final outcome is not applied yet (src/host/outbox.ts):
   * the intent, the seq of its `intent.emitted` fact, when to (re)try, whether it was pending.
   */
  outbox: z
    .array(
      z.strictObject({
        intent: z.record(z.string(), z.unknown()),
        seq: z.int().positive(),
        retryAt: z.int().nonnegative(),
        pending: z.boolean().optional(),
      }),
    )
    .optional(),
  /** Effects started and not finished (src/host/effects.ts). */
  effects: z
    .array(
      z.strictObject({
        id: z.string(),
        name: z.string(),
        params: z.unknown(),
        seq: z.int().positive(),
        state: z.string(),
        attempts: z.int().nonnegative(),
        retryAt: z.int().nonnegative(),
        lastError: z.string().optional(),
      }),
    )
    .optional(),
  /** Times (epoch ms) of the actor's failures outside intents, for its supervision window. */
  failures: z.array(z.int().nonnegative()).optional(),
});
export type SnapshotRecord = z.infer<typeof SnapshotRecordSchema>;

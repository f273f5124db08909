import { z } from 'zod';
import { PROTOCOL_VERSION } from './intent.js';

export const ActorStatus = { active: 'active', done: 'done', stopped: 'stopped', failed: 'failed' } as const;
export type ActorStatus = (typeof ActorStatus)[keyof typeof ActorStatus];

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
});
export type SnapshotRecord = z.infer<typeof SnapshotRecordSchema>;

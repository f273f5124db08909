import { z } from 'zod';
import { PROTOCOL_VERSION } from './intent.js';

export const ActorStatus = { active: 'active', done: 'done', stopped: 'stopped', failed: 'failed' } as const;
export type ActorStatus = (typeof ActorStatus)[keyof typeof ActorStatus];

/** An actor's persisted XState snapshot and the journal position it reflects. */
export const SnapshotRecordSchema = z.strictObject({
  v: z.literal(PROTOCOL_VERSION),
  actor: z.string(),
  kind: z.string(),
  /** Seq of the last journal fact applied to this snapshot. */
  seq: z.int().nonnegative(),
  status: z.enum(['active', 'done', 'stopped', 'failed']),
  /** The state value as a string (`a.b` for nested states). */
  state: z.string(),
  snapshot: z.unknown(),
  updatedAt: z.iso.datetime(),
});
export type SnapshotRecord = z.infer<typeof SnapshotRecordSchema>;

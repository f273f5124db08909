export { SqliteStore, SCHEMA_VERSION } from './sqlite-store.js';
export type { Checkpoint, CommitBatch, ActorIndexRow, StoredFactRow, PendingRecord, SqliteStoreOptions } from './sqlite-store.js';
export { DataDirLock } from './data-dir-lock.js';
export type { OwnerInfo } from './data-dir-lock.js';

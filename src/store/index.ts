export { SqliteStore, SCHEMA_VERSION } from './sqlite/sqlite-store.js';
export type { Checkpoint, CommitBatch, StoredFactRow, SqliteStoreOptions, WalStatus } from './sqlite/sqlite-store.js';
export { SqliteJournal } from './sqlite/sqlite-journal.js';
export { DataDirLock } from './data-dir-lock.js';
export type { OwnerInfo } from './data-dir-lock.js';
export type { ActorIndexRow, PendingRecord } from '../host/ports.js';
export { checkStoreAtStart } from './sqlite/start-check.js';
export type { StartCheck } from './sqlite/sqlite-journal.js';

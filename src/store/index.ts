export { SqliteStore, SCHEMA_VERSION } from './sqlite/sqlite-store.js';
export type { Checkpoint, CommitBatch, StoredFactRow, SqliteStoreOptions } from './sqlite/sqlite-store.js';
export { SqliteJournal } from './sqlite/sqlite-journal.js';
export { verifyStore, verifyStoreSteps, verifyStoreInWorkers, VERIFY_CHUNK_ROWS } from './sqlite/verify-store.js';
export type { VerifyResult, VerifyOptions, VerifyInWorkersOptions, VerifyProgress } from './sqlite/verify-store.js';
export { DataDirLock } from './data-dir-lock.js';
export type { OwnerInfo } from './data-dir-lock.js';
export type { ActorIndexRow, PendingRecord } from '../host/ports.js';

export { SqliteJournal, rowToFact } from '../store/sqlite/sqlite-journal.js';
export type { SqliteJournalOptions } from '../store/sqlite/sqlite-journal.js';
export { verifyStore, verifyStoreSteps, verifyStoreInWorkers, checkpointHash, VERIFY_CHUNK_ROWS } from '../store/sqlite/verify-store.js';
export type { VerifyResult, VerifyOptions, VerifyInWorkersOptions, VerifyProgress } from '../store/sqlite/verify-store.js';

export { SqliteJournal, verifyRows, verifyStore, rowToFact, checkpointHash } from '../store/sqlite/sqlite-journal.js';
export type { VerifyResult, SqliteJournalOptions } from '../store/sqlite/sqlite-journal.js';

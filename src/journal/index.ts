export { Journal, JournalTx, verifyRows, rowToFact } from './journal.js';
export type { VerifyResult, JournalOptions } from './journal.js';

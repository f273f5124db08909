import type { Fact } from '../protocol/index.js';
import type { AuthorityKey } from '../authority/index.js';
import type { SqliteJournal } from '../store/sqlite/sqlite-journal.js';
import { verifyStoreInWorkers, type StartCheck, type VerifyResult } from '../store/sqlite/verify-store.js';
import { sqliteExportPage } from '../store/sqlite/journal-export.js';
import type { ExportPage, ExportPageArgs } from './export-format.js';

/**
 * Reading and verifying the journal, the same in both modes (the CLI, the inspector, the
 * admin requests over NATS). Facts are per chain: `seq`, `prev` and `causes` are positions
 * in the fact's own chain (`fact.actor`).
 */
export interface JournalReader {
  /** Newest first, across every chain or of one chain. */
  tail(opts?: { limit?: number; chain?: string }): Promise<Fact[]>;
  /** One chain, oldest first, from `fromSeq` (default 1). */
  chain(chain: string, fromSeq?: number, limit?: number): Promise<Fact[]>;
  fact(chain: string, seq: number): Promise<Fact | undefined>;
  factsOfIntent(intentId: string): Promise<Fact[]>;
  /** Checks every chain (and, where the store keeps them, the signed checkpoints). */
  verify(): Promise<VerifyResult>;
  /** One page of a journal export (`ice journal export`; see export-format.ts). */
  exportPage(args: ExportPageArgs): Promise<ExportPage>;
}

export type { StartCheck, VerifyResult };

export class SqliteJournalReader implements JournalReader {
  readonly #j: SqliteJournal;
  readonly #key: AuthorityKey | undefined;

  constructor(journal: SqliteJournal, key?: AuthorityKey) {
    this.#j = journal;
    this.#key = key;
  }

  tail(opts: { limit?: number; chain?: string; beforePos?: number } = {}): Promise<Fact[]> {
    return Promise.resolve(this.#j.tail(opts));
  }

  chain(chain: string, fromSeq = 1, limit = 10_000): Promise<Fact[]> {
    return this.#j.chainFacts(chain, fromSeq, limit);
  }

  fact(chain: string, seq: number): Promise<Fact | undefined> {
    return Promise.resolve(this.#j.fact(chain, seq));
  }

  factsOfIntent(intentId: string): Promise<Fact[]> {
    return Promise.resolve(this.#j.factsOfIntent(intentId));
  }

  exportPage(args: ExportPageArgs): Promise<ExportPage> {
    return Promise.resolve(sqliteExportPage(this.#j.store, args));
  }

  /** Up to the newest fact when it starts; reads by range, on worker threads for a long journal, without blocking the event loop. */
  verify(): Promise<VerifyResult> {
    const key = this.#key;
    return verifyStoreInWorkers(this.#j.store, key ? (cp) => key.signedCheckpoint(cp) : undefined);
  }
}

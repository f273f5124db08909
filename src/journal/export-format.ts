import type { AuthorityPublicKey } from '../authority/signer.js';
import type { Fact } from '../protocol/index.js';

/**
 * The journal export (`ice journal export`): JSON Lines, one record per line, each an object
 * with a `type`. In this order: one `header`, the authority's public keys (`key`), then the
 * facts in commit order with the signed records that cover them after them (`checkpoint` in
 * embedded mode, `turn` in cluster mode), and one `end`. docs/protocol.md ("Journal export")
 * states what each field means and how an outsider verifies a file.
 */
export const EXPORT_FORMAT = 'ice-journal-export' as const;
export const EXPORT_VERSION = 1 as const;

export interface ExportHeader {
  type: 'header';
  format: typeof EXPORT_FORMAT;
  version: typeof EXPORT_VERSION;
  mode: 'embedded' | 'cluster';
  exportedAt: string;
  /** Only this chain was exported. */
  actor?: string;
  /** Only facts from here on: a journal position or chain seq (a number), or an ISO time. */
  since?: number | string;
}

export type ExportKey = { type: 'key' } & AuthorityPublicKey;

/** One fact, as stored; its chain is `fact.actor`. `pos`: its journal position (embedded) or the stream sequence of its turn (cluster). */
export interface ExportFact {
  type: 'fact';
  pos: number;
  fact: Fact;
}

/**
 * A signed checkpoint of a one-node journal: `hash = sha256(prev + JCS(heads))`, `sig` the
 * authority's ed25519 signature (base64) over the UTF-8 bytes of `ice-checkpoint:<hash>`.
 */
export interface ExportCheckpoint {
  type: 'checkpoint';
  pos: number;
  heads: Array<[chain: string, seq: number, hash: string]>;
  prev: string;
  hash: string;
  keyId: string;
  sig: string;
}

/** A cluster turn's signature: ed25519 (base64) over the UTF-8 bytes of `ice-turn:<chain>:<seq>:<hash>`. */
export interface ExportTurn {
  type: 'turn';
  pos: number;
  chain: string;
  seq: number;
  hash: string;
  keyId: string;
  sig: string;
}

export interface ExportEnd {
  type: 'end';
  facts: number;
  checkpoints: number;
  turns: number;
  /** Cluster: turns that claimed a position another turn held first (not part of any chain; left out). */
  orphans: number;
}

export type ExportRecord = ExportHeader | ExportKey | ExportFact | ExportCheckpoint | ExportTurn | ExportEnd;

/** What one page of an export read gives (admin op `journal.export`). */
export interface ExportPage {
  records: Array<ExportFact | ExportCheckpoint | ExportTurn>;
  /** Where the next page starts (`after` of the next call). */
  next: number;
  done: boolean;
  /** With `sinceTime`: the page found the first fact at or after it here; later pages need no `sinceTime`. */
  startedAt?: number;
}

export interface ExportPageArgs {
  /** Position (embedded) or stream sequence (cluster) after which to read. */
  after: number;
  /** At most this many positions/messages per page. */
  limit: number;
  /** Only this chain's facts (signed records are kept whole). */
  actor?: string;
  /** Skip facts before this ISO time; the page that finds the first one at or after it starts there. */
  sinceTime?: string;
  /** With `actor`: skip that chain's facts before this seq. */
  sinceSeq?: number;
  /** End the page early once its facts pass this many bytes (a reply over NATS must fit `max_payload`). */
  maxBytes?: number;
}

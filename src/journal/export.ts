import type { AuthorityPublicKey } from '../authority/signer.js';
import { JournalError } from '../errors.js';
import {
  EXPORT_FORMAT,
  EXPORT_VERSION,
  type ExportEnd,
  type ExportHeader,
  type ExportPage,
  type ExportPageArgs,
  type ExportRecord,
} from './export-format.js';

/** Where an export reads from: a data dir's store, or the nodes over NATS (admin op `journal.export`). */
export interface ExportSource {
  mode: 'embedded' | 'cluster';
  keys(): Promise<AuthorityPublicKey[]>;
  page(args: ExportPageArgs): Promise<ExportPage>;
}

export interface ExportOptions {
  actor?: string;
  /** A position (with `actor`: a seq of that chain), or an ISO time. */
  since?: number | string;
  /** Positions per page (default 1000). */
  pageSize?: number;
  now?: () => Date;
}

/**
 * The records of a journal export, in file order: header, keys, facts with the checkpoints or
 * turns that sign them, end. Pages are read one at a time (each a few short reads), so an
 * export of any length holds little in memory. A cluster turn that claims a position another
 * turn already holds (an orphan, see `ice journal verify`) is left out and counted.
 */
export async function* exportJournal(src: ExportSource, opts: ExportOptions = {}): AsyncGenerator<ExportRecord> {
  const header: ExportHeader = {
    type: 'header',
    format: EXPORT_FORMAT,
    version: EXPORT_VERSION,
    mode: src.mode,
    exportedAt: (opts.now?.() ?? new Date()).toISOString(),
    ...(opts.actor !== undefined ? { actor: opts.actor } : {}),
    ...(opts.since !== undefined ? { since: opts.since } : {}),
  };
  yield header;
  for (const k of await src.keys()) yield { type: 'key', ...k };
  const end: ExportEnd = { type: 'end', facts: 0, checkpoints: 0, turns: 0, orphans: 0 };
  const limit = opts.pageSize ?? 1000;
  let sinceTime = typeof opts.since === 'string' ? opts.since : undefined;
  const sinceSeq = typeof opts.since === 'number' && opts.actor !== undefined ? opts.since : undefined;
  let after = typeof opts.since === 'number' && opts.actor === undefined ? opts.since - 1 : 0;
  const heads = new Map<string, number>();
  /** The message (turn) the facts being read belong to, and whether it is an orphan. */
  let message: { key: string; orphan: boolean } | undefined;
  for (;;) {
    const page = await src.page({
      after,
      limit,
      ...(opts.actor !== undefined ? { actor: opts.actor } : {}),
      ...(sinceTime !== undefined ? { sinceTime } : {}),
      ...(sinceSeq !== undefined ? { sinceSeq } : {}),
    });
    if (page.startedAt !== undefined) sinceTime = undefined;
    for (const rec of page.records) {
      if (rec.type === 'fact') {
        const chain = rec.fact.actor ?? '';
        const key = `${chain}@${rec.pos}`;
        if (key !== message?.key) {
          // A message (a turn) is an orphan or not as a whole, by its first fact, as the
          // journal's verify decides: a turn claiming positions another turn holds first.
          const head = heads.get(chain);
          message = { key, orphan: head !== undefined && rec.fact.seq <= head };
          if (message.orphan) end.orphans++;
        }
        if (message.orphan) continue;
        heads.set(chain, rec.fact.seq);
        end.facts++;
      } else if (rec.type === 'turn') {
        if (message?.orphan && message.key === `${rec.chain}@${rec.pos}`) continue;
        end.turns++;
      } else end.checkpoints++;
      yield rec;
    }
    if (page.done) break;
    // a page source that does not move on would make this loop forever: say so instead
    if (!(page.next > after)) throw new JournalError(`journal export made no progress after position ${after} (next ${page.next})`);
    after = page.next;
  }
  yield end;
}

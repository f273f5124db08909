import type { ExportCheckpoint, ExportFact, ExportPage, ExportPageArgs } from '../../journal/export-format.js';
import { rowToFact } from './sqlite-journal.js';
import type { SqliteStore } from './sqlite-store.js';

/**
 * One page of a journal export from a SQLite store: the facts at positions after `after` (up
 * to `limit` positions), each followed by the checkpoints whose position it reaches. Each page
 * is a few short statements, so an export never holds a read transaction open.
 */
export function sqliteExportPage(store: SqliteStore, a: ExportPageArgs): ExportPage {
  const rows = store.factRows(a.after + 1, a.limit);
  const last = rows.at(-1);
  if (!last) return { records: [], next: a.after, done: true };
  const cps = store.checkpointsIn(a.after, last.pos);
  const records: ExportPage['records'] = [];
  // The page must fit a NATS message: bytes as sent (UTF-8), not UTF-16 units.
  let bytes = 0;
  let ci = 0;
  // From a time: from the first fact at or after it, everything (a later page starts there).
  let startPos = a.sinceTime === undefined ? 0 : Number.MAX_SAFE_INTEGER;
  const flushCheckpoints = (upTo: number) => {
    for (; ci < cps.length && cps[ci]!.pos <= upTo; ci++) {
      const cp = cps[ci]!;
      if (cp.pos < startPos) continue;
      if (a.actor !== undefined && !cp.heads.some(([c, seq]) => c === a.actor && seq >= (a.sinceSeq ?? 0))) continue;
      // every field but pos is covered by the signature (the time a checkpoint was written is not: left out)
      const rec: ExportCheckpoint = {
        type: 'checkpoint',
        pos: cp.pos,
        heads: cp.heads,
        prev: cp.prev,
        hash: cp.hash,
        keyId: cp.keyId,
        sig: cp.sig,
      };
      records.push(rec);
      bytes += Buffer.byteLength(JSON.stringify(rec));
    }
  };
  let end = last.pos;
  for (const row of rows) {
    if (a.maxBytes !== undefined && bytes > a.maxBytes) {
      end = row.pos - 1;
      break;
    }
    flushCheckpoints(row.pos - 1);
    if (startPos === Number.MAX_SAFE_INTEGER && (row.at ?? '') >= a.sinceTime!) startPos = row.pos;
    if (row.pos < startPos) continue;
    if (a.actor !== undefined && (row.chain !== a.actor || row.seq < (a.sinceSeq ?? 0))) continue;
    const rec: ExportFact = { type: 'fact', pos: row.pos, fact: rowToFact(row) };
    records.push(rec);
    bytes += Buffer.byteLength(row.body);
  }
  flushCheckpoints(end);
  return {
    records,
    next: end,
    done: end === last.pos && rows.length < a.limit,
    ...(startPos !== Number.MAX_SAFE_INTEGER && a.sinceTime ? { startedAt: startPos } : {}),
  };
}

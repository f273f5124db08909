import type { AuthorityKey } from '../../authority/index.js';
import { verifyStoreInWorkers, type StartCheck } from './verify-store.js';
import type { SqliteStore } from './sqlite-store.js';

/**
 * The check a node runs on its store before it serves: every fact written since the last
 * start that verified (and every checkpoint since), the newest checkpoint's signature, and
 * that the mark left by that start is the node's own. Each fact is thus checked by the first
 * start after it was written; `ice journal verify` checks everything, any time.
 *
 * The mark is a meta row: the position verified up to, the hash of the fact there, and the
 * authority's signature over both, so a mark moved forward over changed facts does not verify
 * (the check then starts from the beginning).
 */
const MARK = 'verified_at_start';
const markText = (pos: number, hash: string) => `ice.verified-at-start:${pos}:${hash}`;

export async function checkStoreAtStart(store: SqliteStore, key: AuthorityKey): Promise<StartCheck> {
  const t0 = performance.now();
  const fromPos = readMark(store, key);
  const result = await verifyStoreInWorkers(store, (cp) => key.signedCheckpoint(cp), { fromPos });
  if (result.ok && result.lastPos > fromPos) {
    const hash = store.factRows(result.lastPos, 1)[0]?.hash ?? '';
    store.setMeta(MARK, JSON.stringify({ pos: result.lastPos, hash, sig: key.signText(markText(result.lastPos, hash)) }));
  }
  return { fromPos, result, ms: Math.round(performance.now() - t0) };
}

function readMark(store: SqliteStore, key: AuthorityKey): number {
  const text = store.meta(MARK);
  if (!text) return 0;
  try {
    const m = JSON.parse(text) as { pos: number; hash: string; sig: string };
    const row = store.factRows(m.pos, 1)[0];
    if (row?.pos !== m.pos || row.hash !== m.hash || !key.verifyText(markText(m.pos, m.hash), m.sig)) return 0;
    return m.pos;
  } catch {
    return 0;
  }
}

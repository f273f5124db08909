import { ConflictError } from '../errors.js';
import type { AuthorityKey } from '../authority/index.js';
import type { StartCheck } from '../journal/reader.js';
import type { JetStreamJournalReader, KeyResolver } from '../store/jetstream/journal-reader.js';
import type { WatchedBucket } from '../store/jetstream/kv-stores.js';

/**
 * A cluster node's check of the journal before it serves: every turn message written since
 * the last start (of any node) that verified — each fact's hash, each chain's links, each
 * turn's signature — as in one node's store (`checkStoreAtStart`). The mark is kept in the
 * key bucket, signed by the node that verified; one that does not verify against a published
 * key means checking from the beginning.
 */
export const START_MARK_KEY = 'mark.verified-at-start';
const markText = (pos: number) => `ice.verified-at-start:ICE_JOURNAL:${pos}`;

export async function checkClusterAtStart(
  reader: JetStreamJournalReader,
  keys: WatchedBucket,
  resolve: KeyResolver,
  key: AuthorityKey,
  node: string,
): Promise<StartCheck> {
  const t0 = performance.now();
  const current = await keys.get(START_MARK_KEY);
  const mark = current?.value as { pos?: unknown; keyId?: unknown; sig?: unknown } | undefined;
  let fromPos = 0;
  if (mark && typeof mark.pos === 'number' && typeof mark.keyId === 'string' && typeof mark.sig === 'string') {
    const signer = await resolve(mark.keyId);
    if (signer?.verifyText(markText(mark.pos), mark.sig)) fromPos = mark.pos;
  }
  const result = await reader.verify({ fromPos });
  if (result.ok && result.lastPos > fromPos) {
    const value = { pos: result.lastPos, keyId: key.keyId, node, sig: key.signText(markText(result.lastPos)) };
    try {
      if (current) await keys.update(START_MARK_KEY, value, current.revision);
      else await keys.create(START_MARK_KEY, value);
    } catch (e) {
      // Another node moved the mark meanwhile: it verified too.
      if (!(e instanceof ConflictError)) throw e;
    }
  }
  return { fromPos, result, ms: Math.round(performance.now() - t0) };
}

import { childInfo, storedChild } from '../host/children.js';
import type { ActorDetail } from '../host/index.js';
import type { SqliteJournal } from '../journal/index.js';
import { parseChildAddress, type Fact } from '../protocol/index.js';
import type { SqliteStore } from '../store/index.js';
import { IceError } from '../errors.js';

/**
 * `ice actor show kind/id/a/b` on a data dir: the child as its top-level actor's stored
 * snapshot holds it, with the recent facts of that actor's chain (the child's history is
 * part of it). Undefined when `address` is not a child address.
 * @throws IceError E_NOT_FOUND when the top-level actor or the child does not exist.
 */
export function storedChildDetail(
  store: SqliteStore,
  journal: SqliteJournal,
  address: string,
  limit: number,
): (ActorDetail & { updatedAt: string; facts: Fact[] }) | undefined {
  const p = parseChildAddress(address);
  if (!p) return undefined;
  const snap = store.snapshot(p.parent);
  if (!snap) throw new IceError('E_NOT_FOUND', `no actor ${p.parent} (the parent of ${address})`, 'reject');
  const c = storedChild(snap.snapshot, p.child);
  if (!c) {
    const ids = Object.keys((snap.snapshot as { children?: object } | undefined)?.children ?? {});
    throw new IceError(
      'E_NOT_FOUND',
      `${p.parent} has no child ${p.child} in its stored snapshot (its children: ${ids.length > 0 ? ids.join(', ') : 'none'})`,
      'reject',
    );
  }
  return {
    kind: snap.kind,
    seq: snap.seq,
    owner: '',
    active: false,
    ...childInfo(p.parent, c),
    context: c.context,
    snapshot: c.snapshot,
    updatedAt: snap.updatedAt,
    facts: journal.tail({ chain: p.parent, limit }),
  };
}

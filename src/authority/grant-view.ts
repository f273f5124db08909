import { NotFoundError } from '../errors.js';
import type { Grant } from '../protocol/index.js';
import { GrantStatus, blockingAncestor, chainOf, ownStatus, usesLeft } from './delegation.js';

/** One grant as `ice grant show` prints it: the record, its status, its uses left. */
export interface GrantLine {
  grant: Grant;
  /** Its status counting its ancestors: a grant under a revoked one is `revoked`. */
  status: GrantStatus;
  /** Uses it has left of its own (grants with maxUses). */
  usesLeft?: number;
}

/** What `grant.show` answers: the grant, its chain root → … → it, and what was delegated from it. */
export interface GrantView extends GrantLine {
  /** root → … → this grant (the last element is the grant itself). */
  chain: GrantLine[];
  /** Grants delegated from this one (direct children), oldest first. */
  children: GrantLine[];
}

/** The status of `g` counting its ancestors (revoked or expired above it counts as its own). */
export function chainStatus(g: Grant, lookup: (id: string) => Grant | undefined, now: number): GrantStatus {
  const own = ownStatus(g, now);
  if (own === GrantStatus.revoked || own === GrantStatus.expired) return own;
  const blocked = blockingAncestor(g, lookup, now);
  if (blocked) return blocked.status === GrantStatus.expired ? GrantStatus.expired : GrantStatus.revoked;
  return own;
}

/**
 * The view of grant `id` among `all` at `now`.
 * @throws NotFoundError when there is no such grant.
 */
export function grantView(all: readonly Grant[], id: string, now: number): GrantView {
  const byId = new Map(all.map((g) => [g.id, g]));
  const lookup = (x: string) => byId.get(x);
  const g = byId.get(id);
  if (!g) throw new NotFoundError(`grant ${id}`);
  const line = (x: Grant): GrantLine => {
    const left = usesLeft(x);
    return { grant: x, status: chainStatus(x, lookup, now), ...(left !== undefined ? { usesLeft: left } : {}) };
  };
  const children = all
    .filter((x) => x.parentId === id)
    .sort((a, b) => a.issuedAt.localeCompare(b.issuedAt) || a.id.localeCompare(b.id))
    .map(line);
  return { ...line(g), chain: chainOf(g, lookup).map(line), children };
}

import type { z } from 'zod';
import { DelegationRefusedError, NotFoundError, ValidationError } from '../errors.js';
import { GrantDelegationSchema, assertUnicode, type Grant, type GrantDelegation } from '../protocol/index.js';
import type { Clock } from '../util/clock.js';
import type { IdGen } from '../util/ids.js';
import { principalMatches } from './scope.js';
import { scopeCovers } from './scope-subset.js';
import { zodIssues } from './validate.js';

/**
 * Delegation: a holder of a grant hands a narrower grant to another principal. The child is
 * never wider than its parent, field by field:
 * - `scope` covered by the parent's (scopeCovers: exact pattern containment);
 * - `expiresAt` no later than the parent's (a parent with an expiry gives the child one);
 * - `maxUses` no more than the parent's uses left; they are carved out of the parent
 *   (`delegatedUses`), so a chain never spends more than its root allows;
 * - `runId` the parent's when the parent is run-bound; a child of an unbound parent may add
 *   a run binding (it only narrows).
 * Only a holder may delegate: `by` must match the parent's subject. A revoked, expired or
 * used-up parent delegates nothing. A chain is at most {@link MAX_DELEGATION_DEPTH} deep.
 */

/** The longest chain root → … → grant (the root is depth 0). */
export const MAX_DELEGATION_DEPTH = 16;

export const GrantStatus = { active: 'active', expired: 'expired', revoked: 'revoked', usedUp: 'used up' } as const;
export type GrantStatus = (typeof GrantStatus)[keyof typeof GrantStatus];

/** Uses a grant with `maxUses` has left of its own (not spent, not handed to delegates); undefined when unlimited. */
export function usesLeft(g: Grant): number | undefined {
  return g.maxUses === undefined ? undefined : Math.max(0, g.maxUses - g.uses - (g.delegatedUses ?? 0));
}

/** The status of one grant on its own (its ancestors not considered; see {@link chainStatus}). */
export function ownStatus(g: Grant, now: number): GrantStatus {
  if (g.revokedAt !== undefined) return GrantStatus.revoked;
  if (g.expiresAt !== undefined && Date.parse(g.expiresAt) <= now) return GrantStatus.expired;
  if (usesLeft(g) === 0) return GrantStatus.usedUp;
  return GrantStatus.active;
}

/**
 * The chain root → … → `g`, as far as `lookup` knows it (a missing ancestor ends it: the
 * first element then has a `parentId`).
 */
export function chainOf(g: Grant, lookup: (id: string) => Grant | undefined): Grant[] {
  const chain = [g];
  let cur = g;
  while (cur.parentId !== undefined && chain.length <= MAX_DELEGATION_DEPTH + 1) {
    const p = lookup(cur.parentId);
    if (!p) break;
    chain.unshift(p);
    cur = p;
  }
  return chain;
}

/**
 * The first ancestor of `g` that makes it unusable: revoked, expired (or missing: a parent
 * that is not known counts as revoked). A used-up ancestor does not: the child's uses were
 * carved out of it when it was delegated.
 */
export function blockingAncestor(
  g: Grant,
  lookup: (id: string) => Grant | undefined,
  now: number,
): { id: string; status: GrantStatus | 'missing' } | undefined {
  let cur = g;
  for (let depth = 0; cur.parentId !== undefined && depth <= MAX_DELEGATION_DEPTH; depth++) {
    const p = lookup(cur.parentId);
    if (!p) return { id: cur.parentId, status: 'missing' };
    if (p.revokedAt !== undefined) return { id: p.id, status: GrantStatus.revoked };
    if (p.expiresAt !== undefined && Date.parse(p.expiresAt) <= now) return { id: p.id, status: GrantStatus.expired };
    cur = p;
  }
  return undefined;
}

/** `grant g3 (delegated from g2, from g1)`: a grant named with its chain, for reasons and messages. */
export function describeGrant(g: Grant, lookup: (id: string) => Grant | undefined): string {
  if (g.parentId === undefined) return `grant ${g.id}`;
  const ancestors = chainOf(g, lookup)
    .slice(0, -1)
    .reverse()
    .map((a) => a.id);
  if (ancestors.length === 0) ancestors.push(g.parentId);
  return `grant ${g.id} (delegated from ${ancestors.join(', from ')})`;
}

/** Every grant delegated from `id`, transitively (children before their own children). */
export function descendantsOf(id: string, all: readonly Grant[]): Grant[] {
  const byParent = new Map<string, Grant[]>();
  for (const g of all) {
    if (g.parentId === undefined) continue;
    const list = byParent.get(g.parentId) ?? [];
    list.push(g);
    byParent.set(g.parentId, list);
  }
  const out: Grant[] = [];
  const queue = [id];
  const seen = new Set([id]);
  while (queue.length > 0) {
    for (const child of byParent.get(queue.shift()!) ?? []) {
      if (seen.has(child.id)) continue;
      seen.add(child.id);
      out.push(child);
      queue.push(child.id);
    }
  }
  return out;
}

/**
 * The grant `req` delegates from `parent`, and the parent with the child's uses carved out
 * (when it has `maxUses`).
 * @throws ValidationError when the request is malformed.
 * @throws DelegationRefusedError naming the field that is wider than the parent allows, or
 *   `by` (not a holder) or `parentId` (revoked, expired, used up, too deep).
 */
/**
 * A delegation request as the schema reads it.
 * @throws ValidationError naming the malformed fields.
 */
export function parseDelegation(req: GrantDelegation): z.output<typeof GrantDelegationSchema> {
  const parsed = GrantDelegationSchema.safeParse(req);
  if (!parsed.success) throw new ValidationError('invalid delegation request', zodIssues(parsed.error));
  assertUnicode(parsed.data, '', 'invalid delegation request');
  return parsed.data;
}

export function delegateFrom(
  parent: Grant,
  req: GrantDelegation,
  ctx: { clock: Clock; ids: IdGen; lookup: (id: string) => Grant | undefined },
): { child: Grant; parent: Grant } {
  const r = parseDelegation(req);
  if (r.parentId !== parent.id) throw new NotFoundError(`grant ${r.parentId}`);
  const now = ctx.clock.now();
  const refuse = (field: string, code: string, message: string, expected: string): never => {
    throw new DelegationRefusedError(parent.id, field, code, message, expected);
  };
  if (!principalMatches(parent.subject, r.by)) {
    refuse(
      'by',
      'not_holder',
      `${r.by} does not hold grant ${parent.id} (it is for ${parent.subject})`,
      `a principal matching ${parent.subject}`,
    );
  }
  const status = ownStatus(parent, now);
  if (status !== GrantStatus.active) {
    refuse('parentId', `parent_${status.replace(' ', '_')}`, `grant ${parent.id} is ${status}: it delegates nothing`, 'an active grant');
  }
  const blocked = blockingAncestor(parent, ctx.lookup, now);
  if (blocked) {
    refuse(
      'parentId',
      `parent_${blocked.status}`,
      `grant ${parent.id} is delegated from ${blocked.id}, which is ${blocked.status}: it delegates nothing`,
      'an active grant',
    );
  }
  if (chainOf(parent, ctx.lookup).length > MAX_DELEGATION_DEPTH) {
    refuse(
      'parentId',
      'too_deep',
      `grant ${parent.id} is ${MAX_DELEGATION_DEPTH} delegations from its root`,
      `a grant fewer than ${MAX_DELEGATION_DEPTH} delegations deep`,
    );
  }
  if (r.expiresAt !== undefined && r.ttlMs !== undefined) {
    refuse('expiresAt', 'two_expiries', 'both expiresAt and ttlMs given', 'one of expiresAt, ttlMs');
  }

  const scope = r.scope ?? parent.scope;
  if (!scopeCovers(parent.scope, scope)) {
    refuse('scope', 'wider_than_parent', `${scope} is not within ${parent.scope}`, `a scope within ${parent.scope}`);
  }

  const asked = r.expiresAt ?? (r.ttlMs !== undefined ? new Date(now + r.ttlMs).toISOString() : undefined);
  const expiresAt = asked ?? parent.expiresAt;
  if (expiresAt !== undefined && Date.parse(expiresAt) <= now) {
    refuse('expiresAt', 'in_the_past', `${expiresAt} has passed`, 'a time in the future');
  }
  if (parent.expiresAt !== undefined && expiresAt !== undefined && Date.parse(expiresAt) > Date.parse(parent.expiresAt)) {
    refuse('expiresAt', 'wider_than_parent', `${expiresAt} is after the parent's expiry`, `at most ${parent.expiresAt}`);
  }

  const left = usesLeft(parent);
  if (left !== undefined) {
    if (r.maxUses === undefined) {
      refuse(
        'maxUses',
        'wider_than_parent',
        `grant ${parent.id} has ${left} uses left; a delegated grant without maxUses would have no limit`,
        `maxUses from 1 to ${left}`,
      );
    } else if (r.maxUses > left) {
      refuse('maxUses', 'wider_than_parent', `${r.maxUses} uses, the parent has ${left} left`, `at most ${left}`);
    }
  }

  if (parent.runId !== undefined && r.runId !== undefined && r.runId !== parent.runId) {
    refuse(
      'runId',
      'wider_than_parent',
      `run ${r.runId}, the parent is bound to run ${parent.runId}`,
      `run ${parent.runId} (or leave it out)`,
    );
  }
  const runId = r.runId ?? parent.runId;

  const child: Grant = {
    v: 1,
    id: r.id ?? ctx.ids.next('g'),
    subject: r.subject,
    scope,
    ...(runId !== undefined ? { runId } : {}),
    issuedAt: new Date(now).toISOString(),
    issuedBy: r.by,
    ...(expiresAt !== undefined ? { expiresAt } : {}),
    ...(r.maxUses !== undefined ? { maxUses: r.maxUses } : {}),
    uses: 0,
    ...(r.note !== undefined ? { note: r.note } : {}),
    parentId: parent.id,
    delegatedBy: r.by,
  };
  const carved = carve(parent, child);
  if (!carved) refuse('maxUses', 'wider_than_parent', `grant ${parent.id} has no uses left`, 'a parent with uses left');
  return { child, parent: carved! };
}

/**
 * The parent with `child.maxUses` of its uses handed over, the parent itself when it is
 * unlimited, or undefined when it has too few left (another use or delegation took them).
 */
export function carve(parent: Grant, child: Grant): Grant | undefined {
  if (parent.maxUses === undefined) return parent;
  if (parent.delegatedTo?.includes(child.id)) return parent;
  const n = child.maxUses ?? Infinity;
  const left = usesLeft(parent) ?? 0;
  if (n > left) return undefined;
  // The child's id in the record makes two delegations from one parent state differ, so a
  // compare-and-set keyed on the revision cannot take the second for a retry of the first.
  return { ...parent, delegatedUses: (parent.delegatedUses ?? 0) + n, delegatedTo: [...(parent.delegatedTo ?? []), child.id].slice(-100) };
}

/** The parent with the uses carved for `child` given back (its delegation did not happen). */
export function uncarve(parent: Grant, child: Grant): Grant | undefined {
  if (!parent.delegatedTo?.includes(child.id) || child.maxUses === undefined) return undefined;
  const { delegatedUses = 0, delegatedTo, ...rest } = parent;
  const uses = delegatedUses - child.maxUses;
  const to = delegatedTo.filter((id) => id !== child.id);
  return { ...rest, ...(uses > 0 ? { delegatedUses: uses } : {}), ...(to.length > 0 ? { delegatedTo: to } : {}) };
}

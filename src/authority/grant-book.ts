import { AlreadyExistsError, ExistingDiffersError, NotFoundError, ValidationError, type IssueDetail } from '../errors.js';
import {
  FactType,
  GrantRequestSchema,
  Origin,
  assertUnicode,
  type Grant,
  type GrantDelegation,
  type GrantRequest,
  type Intent,
} from '../protocol/index.js';
import type { FactDraft } from '../protocol/index.js';
import type { Clock } from '../util/clock.js';
import type { IdGen } from '../util/ids.js';
import { zodIssues } from './validate.js';
import { principalMatches, scopeMatches } from './scope.js';
import { blockingAncestor, delegateFrom, descendantsOf, describeGrant, parseDelegation, usesLeft } from './delegation.js';

export type GrantMiss = { code: string; message: string };

/**
 * What {@link GrantBook.ensure} takes: a grant request with its `id`, and an absolute expiry
 * or none (`ttlMs` is refused: a duration from "now" names a different instant on every start,
 * so it could never match the grant issued on the first).
 */
export type EnsureGrantRequest = Omit<GrantRequest, 'id' | 'ttlMs'> & { id: string };

/**
 * Writes grant facts and records durably: the host's runtime chain (the facts and the grant
 * records they change, in one turn). Resolves once durable.
 */
export type GrantRecorder = (drafts: Array<Omit<FactDraft, 'actor'>>, grants: Grant[]) => Promise<void>;

/** A grant revoked, and those revoked with it because they were delegated from it. */
export type GrantDraft = Omit<FactDraft, 'actor'>;

/** The facts of a revocation: the grant's own, then one per descendant revoked with it. */
export function revocationFacts(id: string, revoked: Grant[], by: string, reason: string | undefined, own: boolean): GrantDraft[] {
  const why = reason ? { reason } : {};
  const cascaded = revoked.filter((g) => g.id !== id);
  const drafts: GrantDraft[] = [];
  if (own)
    drafts.push({
      type: FactType.grantRevoked,
      origin: Origin.operator,
      data: { grantId: id, by, ...why, ...(cascaded.length ? { cascade: cascaded.map((g) => g.id) } : {}) },
    });
  for (const g of cascaded)
    drafts.push({ type: FactType.grantRevoked, origin: Origin.operator, data: { grantId: g.id, by, ...why, revokedWith: id } });
  return drafts;
}

/** The fact of a delegation: the new grant, and how many uses it took from its parent. */
export function delegationFact(child: Grant, parent: Grant): GrantDraft {
  return {
    type: FactType.grantDelegated,
    origin: Origin.operator,
    data: {
      grant: child,
      parentId: parent.id,
      by: child.delegatedBy,
      ...(parent.maxUses !== undefined && child.maxUses !== undefined ? { usesFromParent: child.maxUses } : {}),
    },
  };
}

/**
 * Capability grants. The store is the truth; this keeps every grant in memory for lookups.
 * Issuing and revoking are facts on the runtime chain; a use is spent by the host in the
 * turn of the intent it pays for ({@link GrantBook.spend}).
 */
export class GrantBook {
  #grants = new Map<string, Grant>();
  #sorted: Grant[] | undefined;
  /** Issues whose facts are not durable yet, by grant id. */
  readonly #issuing = new Map<string, Promise<void>>();
  protected record: GrantRecorder;
  readonly #clock: Clock;
  readonly #ids: IdGen;

  constructor(initial: Grant[], record: GrantRecorder, clock: Clock, ids: IdGen) {
    for (const g of initial) this.#set(g);
    this.record = record;
    this.#clock = clock;
    this.#ids = ids;
  }

  /** Where grant facts go (set once the host exists). */
  setRecorder(record: GrantRecorder): void {
    this.record = record;
  }

  /**
   * Issues a new grant: a `grant.issued` fact on the runtime chain. Resolves once durable.
   * @throws AlreadyExistsError when a grant with `req.id` exists (see {@link GrantBook.ensure}).
   * @throws ValidationError naming the offending field.
   */
  async issue(req: GrantRequest): Promise<Grant> {
    assertUnicode(req, '', 'invalid grant');
    const grant = buildGrant(req, this.#ids, this.#clock);
    const id = grant.id;
    if (this.#grants.has(id)) throw grantExists(id);
    this.#set(grant);
    const recorded = this.record([{ type: FactType.grantIssued, origin: Origin.operator, data: { grant } }], [grant]);
    this.#issuing.set(id, recorded);
    try {
      await recorded;
    } catch (e) {
      this.#grants.delete(id);
      this.#sorted = undefined;
      throw e;
    } finally {
      this.#issuing.delete(id);
    }
    return grant;
  }

  /**
   * Issues the grant unless a grant with `req.id` exists; for programs that set up their
   * grants on every start. When it exists with the same terms — subject, scope, runId,
   * maxUses, expiresAt (the same instant) — it is returned as it is: no new fact, its uses,
   * `issuedAt`, `issuedBy` and `note` kept (`by` and `note` are not compared). Two callers
   * ensuring one id at once, on one node or on two, leave exactly one `grant.issued` fact.
   * @example
   * await rt.grants.ensure({ id: 'g-bot-web', subject: 'agent:bot', scope: 'deployment/web:*' });
   * @throws ValidationError without `id`, or with `ttlMs` (give `expiresAt`).
   * @throws ExistingDiffersError (`E_EXISTS_DIFFERENT`) when the grant exists with other terms
   *   (`field` names the first) or was revoked (`field: 'revokedAt'`): ensure never changes or
   *   re-issues a grant; revoke it and ensure another id.
   */
  async ensure(req: EnsureGrantRequest): Promise<Grant> {
    const parsed = GrantRequestSchema.safeParse(req);
    if (!parsed.success) throw new ValidationError('invalid grant request', zodIssues(parsed.error));
    const r = parsed.data;
    const issues: IssueDetail[] = [];
    if (r.id === undefined) issues.push({ path: 'id', code: 'required', message: 'ensure needs the grant id to look for' });
    if (r.ttlMs !== undefined)
      issues.push({
        path: 'ttlMs',
        code: 'not_with_ensure',
        message: 'a ttl starts anew on every call and cannot match an existing grant; give expiresAt (or use issue)',
      });
    if (issues.length > 0 || r.id === undefined) throw new ValidationError('invalid grant request for ensure', issues);
    const id = r.id;
    const found = await this.current(id);
    if (found) return sameTerms(found, r);
    try {
      return await this.issue(req);
    } catch (e) {
      if (!(e instanceof AlreadyExistsError)) throw e;
      // Another caller issued it between the look and the issue.
      const won = await this.current(id);
      if (!won) throw e;
      return sameTerms(won, r);
    }
  }

  /** The grant as the shared truth has it now (this book, once an issue of it in flight settles). */
  protected async current(id: string): Promise<Grant | undefined> {
    await this.#issuing.get(id)?.catch(() => {});
    return this.#grants.get(id);
  }

  /**
   * Revokes a grant and every grant delegated from it, transitively: one `grant.revoked` fact
   * each (a descendant's names the grant it was revoked with, `revokedWith`), in one turn.
   * Revoking a grant that is revoked already revokes what of its descendants is not.
   */
  async revoke(id: string, by = 'operator', reason?: string): Promise<Grant> {
    assertUnicode({ id, by, reason }, '', 'invalid revocation');
    const g = this.#grants.get(id);
    if (!g) throw new NotFoundError(`grant ${id}`);
    const at = new Date(this.#clock.now()).toISOString();
    const own = g.revokedAt === undefined;
    const root: Grant = own ? { ...g, revokedAt: at, revokedBy: by } : g;
    const revoked = [
      ...(own ? [root] : []),
      ...descendantsOf(id, this.list())
        .filter((d) => d.revokedAt === undefined)
        .map((d): Grant => ({ ...d, revokedAt: at, revokedBy: by, revokedWith: id })),
    ];
    if (revoked.length === 0) return g;
    for (const r of revoked) this.#set(r);
    await this.record(revocationFacts(id, revoked, by, reason, own), revoked);
    return root;
  }

  /**
   * Delegates a narrower grant from `req.parentId` to `req.subject`, on behalf of `req.by`,
   * a holder of the parent: a `grant.delegated` fact. Terms left out are the parent's; uses
   * given to the child are carved out of a parent with `maxUses`.
   * @example
   * await rt.grants.delegate({ parentId: 'g1', by: 'agent:planner', subject: 'agent:deployer', scope: 'deployment/web:DEPLOY', maxUses: 1 });
   * @throws DelegationRefusedError naming the field wider than the parent, or `by`, or `parentId`.
   * @throws NotFoundError when the parent does not exist; AlreadyExistsError when `req.id` is taken.
   */
  async delegate(req: GrantDelegation): Promise<Grant> {
    const { parentId } = parseDelegation(req);
    const parent = this.#grants.get(parentId);
    if (!parent) throw new NotFoundError(`grant ${parentId}`);
    const { child, parent: carved } = delegateFrom(parent, req, { clock: this.#clock, ids: this.#ids, lookup: (id) => this.get(id) });
    if (this.#grants.has(child.id)) throw grantExists(child.id);
    this.#set(child);
    if (carved !== parent) this.#set(carved);
    try {
      await this.record([delegationFact(child, parent)], carved !== parent ? [child, carved] : [child]);
    } catch (e) {
      this.#grants.delete(child.id);
      if (carved !== parent) this.#set(parent);
      this.#sorted = undefined;
      throw e;
    }
    return child;
  }

  /** `grant g2 (delegated from g1)`: how decisions and messages name a grant. */
  describe(g: Grant): string {
    return describeGrant(g, (id) => this.get(id));
  }

  get(id: string): Grant | undefined {
    return this.#grants.get(id);
  }

  list(): Grant[] {
    this.#sorted ??= [...this.#grants.values()].sort((a, b) => a.issuedAt.localeCompare(b.issuedAt) || a.id.localeCompare(b.id));
    return this.#sorted;
  }

  #set(g: Grant): void {
    this.#grants.set(g.id, g);
    this.#sorted = undefined;
  }

  /**
   * The first usable grant for this intent (oldest first), or the reasons none is usable.
   * Grants that match subject and scope but fail on expiry, revocation, uses or run binding
   * are reported, so a denial says which grant came close and why it did not count.
   */
  find(intent: Intent, now: number): { grant: Grant } | { misses: GrantMiss[] } {
    const misses: GrantMiss[] = [];
    for (const g of this.list()) {
      if (!principalMatches(g.subject, intent.proposer)) continue;
      if (!scopeMatches(g.scope, intent.target, intent.action)) continue;
      if (g.revokedAt) {
        misses.push({ code: 'grant_revoked', message: `${this.describe(g)} was revoked at ${g.revokedAt}` });
        continue;
      }
      if (g.expiresAt && Date.parse(g.expiresAt) <= now) {
        misses.push({ code: 'grant_expired', message: `${this.describe(g)} expired at ${g.expiresAt}` });
        continue;
      }
      // A delegated grant counts only while its whole chain does: revoking (or the expiry of)
      // an ancestor stops it at once, before its own record says so.
      const blocked = g.parentId !== undefined ? blockingAncestor(g, (id) => this.get(id), now) : undefined;
      if (blocked) {
        misses.push({
          code: blocked.status === 'expired' ? 'grant_expired' : 'grant_revoked',
          message: `${this.describe(g)}: ${blocked.id} is ${blocked.status === 'missing' ? 'unknown' : blocked.status}`,
        });
        continue;
      }
      if (usesLeft(g) === 0 && !g.usedBy?.includes(intent.id)) {
        misses.push({
          code: 'grant_exhausted',
          message: g.delegatedUses
            ? `${this.describe(g)} has no uses left (${g.uses} used, ${g.delegatedUses} delegated, of ${g.maxUses})`
            : `${this.describe(g)} has used all ${g.maxUses} uses`,
        });
        continue;
      }
      if (g.runId !== undefined && g.runId !== intent.runId) {
        misses.push({
          code: 'grant_run_mismatch',
          message: `grant ${g.id} is bound to run ${g.runId}, the intent ${intent.runId ? `to run ${intent.runId}` : 'to no run'}`,
        });
        continue;
      }
      return { grant: g };
    }
    return { misses };
  }

  /**
   * Spends one use of a grant with `maxUses` for `intentId` (a retry of an intent that
   * already spent one is not charged again). Returns the grant record to persist with the
   * intent's turn, or undefined when no use is left (another intent took the last one).
   * Here, in one process, the in-memory count is the fence; the cluster's book overrides
   * this with a compare-and-set on the shared record.
   */
  spend(id: string, intentId: string): Promise<Grant | undefined> {
    const g = this.#grants.get(id);
    if (!g) return Promise.reject(new NotFoundError(`grant ${id}`));
    return Promise.resolve(this.#apply(spendUse(g, intentId)));
  }

  #apply(g: Grant | undefined): Grant | undefined {
    if (g) this.#set(g);
    return g;
  }

  /**
   * Makes sure this book has seen every grant change made so far (a cluster's book follows a
   * shared bucket); resolves true if it had to catch up. One process's book is always current.
   */
  catchUp(): Promise<boolean> {
    return Promise.resolve(false);
  }

  /** Takes a record written elsewhere (a watched bucket, a reloaded row). */
  protected put(g: Grant): void {
    this.#set(g);
  }
}

/** The grant after `intentId` spends a use, the same grant if it already did, or undefined if none is left. */
export function spendUse(g: Grant, intentId: string): Grant | undefined {
  if (g.usedBy?.includes(intentId)) return g;
  if (usesLeft(g) === 0) return undefined;
  return { ...g, uses: g.uses + 1, usedBy: [...(g.usedBy ?? []), intentId].slice(-100) };
}

/** The error of an issue whose id is taken: it names the form that tolerates that. */
export function grantExists(id: string): AlreadyExistsError {
  return new AlreadyExistsError(
    'grant',
    id,
    `grant ${id} already exists; to issue it only when absent, use rt.grants.ensure(req) (admin: grant.issue with ensure: true)`,
  );
}

/**
 * The existing grant if a request asks for it as it is (subject, scope, runId, maxUses, the
 * same expiry instant; not revoked).
 * @throws ExistingDiffersError naming the first field that differs.
 */
export function sameTerms(g: Grant, r: { subject: string; scope: string; runId?: string; maxUses?: number; expiresAt?: string }): Grant {
  const differs = (field: string, existing: unknown, requested: unknown, what: string) =>
    new ExistingDiffersError(
      'grant',
      g.id,
      { field, existing, requested },
      `grant ${g.id} exists ${what}; ensure never changes a grant: request its terms as they are, or revoke it and ensure another id`,
    );
  if (g.revokedAt !== undefined) {
    throw new ExistingDiffersError(
      'grant',
      g.id,
      { field: 'revokedAt', existing: g.revokedAt, requested: undefined },
      `grant ${g.id} was revoked at ${g.revokedAt}${g.revokedBy ? ` by ${g.revokedBy}` : ''}; ensure does not issue a revoked id again: ensure another id`,
    );
  }
  const show = (v: unknown) => (v === undefined ? 'none' : JSON.stringify(v));
  for (const field of ['subject', 'scope', 'runId', 'maxUses'] as const) {
    if (g[field] !== r[field]) {
      throw differs(field, g[field], r[field], `with ${field} ${show(g[field])}, not ${show(r[field])}`);
    }
  }
  const at = (v: string | undefined) => (v === undefined ? undefined : Date.parse(v));
  if (at(g.expiresAt) !== at(r.expiresAt)) {
    throw differs('expiresAt', g.expiresAt, r.expiresAt, `with expiresAt ${show(g.expiresAt)}, not ${show(r.expiresAt)}`);
  }
  return g;
}

/**
 * A new grant from an operator's request (validated; `ttlMs` turned into `expiresAt`).
 * @throws ValidationError naming the offending field.
 */
export function buildGrant(req: GrantRequest, ids: IdGen, clock: Clock): Grant {
  const parsed = GrantRequestSchema.safeParse(req);
  if (!parsed.success) throw new ValidationError('invalid grant request', zodIssues(parsed.error));
  const r = parsed.data;
  const now = clock.now();
  const expiresAt = r.expiresAt ?? (r.ttlMs !== undefined ? new Date(now + r.ttlMs).toISOString() : undefined);
  return {
    v: 1,
    id: r.id ?? ids.next('g'),
    subject: r.subject,
    scope: r.scope,
    ...(r.runId !== undefined ? { runId: r.runId } : {}),
    issuedAt: new Date(now).toISOString(),
    issuedBy: r.by,
    ...(expiresAt !== undefined ? { expiresAt } : {}),
    ...(r.maxUses !== undefined ? { maxUses: r.maxUses } : {}),
    uses: 0,
    ...(r.note !== undefined ? { note: r.note } : {}),
  };
}

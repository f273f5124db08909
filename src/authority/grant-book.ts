import { ConflictError, NotFoundError, ValidationError } from '../errors.js';
import { FactType, GrantRequestSchema, Origin, type Grant, type GrantRequest, type Intent } from '../protocol/index.js';
import type { FactDraft } from '../protocol/index.js';
import type { Clock } from '../util/clock.js';
import type { IdGen } from '../util/ids.js';
import { zodIssues } from './validate.js';
import { principalMatches, scopeMatches } from './scope.js';

export type GrantMiss = { code: string; message: string };

/**
 * Writes grant facts and records durably: the host's runtime chain (fact + grant record in
 * one turn). Resolves once durable.
 */
export type GrantRecorder = (draft: Omit<FactDraft, 'actor'>, grant: Grant) => Promise<void>;

/**
 * Capability grants. The store is the truth; this keeps every grant in memory for lookups.
 * Issuing and revoking are facts on the runtime chain; a use is spent by the host in the
 * turn of the intent it pays for ({@link GrantBook.spend}).
 */
export class GrantBook {
  #grants = new Map<string, Grant>();
  #sorted: Grant[] | undefined;
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

  async issue(req: GrantRequest): Promise<Grant> {
    const grant = buildGrant(req, this.#ids, this.#clock);
    const id = grant.id;
    if (this.#grants.has(id)) throw new ConflictError(`grant ${id} already exists`);
    this.#set(grant);
    try {
      await this.record({ type: FactType.grantIssued, origin: Origin.operator, data: { grant } }, grant);
    } catch (e) {
      this.#grants.delete(id);
      this.#sorted = undefined;
      throw e;
    }
    return grant;
  }

  async revoke(id: string, by = 'operator', reason?: string): Promise<Grant> {
    const g = this.#grants.get(id);
    if (!g) throw new NotFoundError(`grant ${id}`);
    if (g.revokedAt) return g;
    const revoked: Grant = { ...g, revokedAt: new Date(this.#clock.now()).toISOString(), revokedBy: by };
    this.#set(revoked);
    await this.record(
      { type: FactType.grantRevoked, origin: Origin.operator, data: { grantId: id, by, ...(reason ? { reason } : {}) } },
      revoked,
    );
    return revoked;
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
        misses.push({ code: 'grant_revoked', message: `grant ${g.id} was revoked at ${g.revokedAt}` });
        continue;
      }
      if (g.expiresAt && Date.parse(g.expiresAt) <= now) {
        misses.push({ code: 'grant_expired', message: `grant ${g.id} expired at ${g.expiresAt}` });
        continue;
      }
      if (g.maxUses !== undefined && g.uses >= g.maxUses && !g.usedBy?.includes(intent.id)) {
        misses.push({ code: 'grant_exhausted', message: `grant ${g.id} has used all ${g.maxUses} uses` });
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
  if (g.maxUses !== undefined && g.uses >= g.maxUses) return undefined;
  return { ...g, uses: g.uses + 1, usedBy: [...(g.usedBy ?? []), intentId].slice(-100) };
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

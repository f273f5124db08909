import { ConflictError, NotFoundError } from '../errors.js';
import { FactType, Origin, assertUnicode, type Grant, type GrantDelegation, type GrantRequest } from '../protocol/index.js';
import {
  GrantBook,
  buildGrant,
  delegateFrom,
  delegationFact,
  descendantsOf,
  grantExists,
  parseDelegation,
  revocationFacts,
  spendUse,
  uncarve,
} from '../authority/index.js';
import type { Clock } from '../util/clock.js';
import type { IdGen } from '../util/ids.js';
import type { Logger } from '../util/logger.js';
import { WatchedBucket, type WatchedEntry } from '../store/jetstream/index.js';

/**
 * Grants shared by every node of a cluster: KV bucket `ICE_GRANTS`, key = grant id. Every
 * node watches the bucket into memory, so `find` (inherited from GrantBook: same matching,
 * same misses) is a synchronous in-memory lookup, as the Authority needs. Issue and revoke
 * write the bucket and then a fact on the issuing node's runtime chain (the same facts as
 * on one node).
 *
 * Uses (`maxUses`) are spent by compare-and-set on the grant's record, in the turn of the
 * intent they pay for and before its commit: two nodes racing for the last use cannot both
 * win. The record lists the intents that spent a use (`usedBy`), so a retry of the same
 * intent — on any node — is not charged again. A use whose intent then fails to commit
 * (the node dies between the two) stays spent: never an execution without a use, at most
 * one use per intent id.
 *
 * Delegation carves the child's uses out of a limited parent by compare-and-set on the
 * parent's record (which names the child, `delegatedTo`, so two carves from one revision
 * never look like one write retried), then creates the child. A node that dies between the
 * two leaves the uses carved and no child: lost to everyone, never handed out twice.
 * Revocation cascades by compare-and-set on each descendant, after the parent's own; the
 * authority checks every grant's ancestors, so the parent's record alone already stops them.
 *
 * `ensure` (inherited) holds across nodes: the bucket's create is the fence. Of two nodes
 * ensuring one id at once, one create wins and writes `grant.issued`; the other reads the
 * winner's record from the bucket and compares terms. As with `issue`, a node that dies
 * between its create and its fact leaves a grant without a `grant.issued` fact.
 */
export class ClusterGrants extends GrantBook {
  readonly #kv: WatchedBucket;
  readonly #clock: Clock;
  readonly #ids: IdGen;
  readonly #log: Logger;
  readonly #map = new Map<string, { grant: Grant; revision: number }>();
  #sorted: Grant[] | undefined;
  /** The newest bucket revision this node's watch has delivered. */
  #seen = 0;

  private constructor(kv: WatchedBucket, clock: Clock, ids: IdGen, logger: Logger) {
    super([], () => Promise.reject(new Error('grant recorder not set')), clock, ids);
    this.#kv = kv;
    this.#clock = clock;
    this.#ids = ids;
    this.#log = logger;
  }

  /** Opens (creating) the bucket and starts watching it; resolves once the current grants are loaded. */
  static async open(
    nc: Parameters<typeof WatchedBucket.open>[0],
    opts: { clock: Clock; ids: IdGen; logger: Logger; replicas?: number; bucket?: string },
  ): Promise<ClusterGrants> {
    const kv = await WatchedBucket.open(nc, opts.bucket ?? 'ICE_GRANTS', { history: 5, replicas: opts.replicas ?? 1 });
    const g = new ClusterGrants(kv, opts.clock, opts.ids, opts.logger);
    await g.#start();
    return g;
  }

  async #start(): Promise<void> {
    await this.#kv.watch(
      (e) => this.#onEntry(e),
      (err) => this.#log.warn({ err }, 'grant watch ended'),
    );
  }

  #onEntry(e: WatchedEntry): void {
    if (e.revision > this.#seen) this.#seen = e.revision;
    if (e.value === undefined) {
      this.#map.delete(e.key);
    } else {
      this.#remember(e.value as Grant, e.revision);
    }
    this.#sorted = undefined;
  }

  #remember(grant: Grant, revision: number): void {
    const cur = this.#map.get(grant.id);
    if (cur && cur.revision >= revision) return;
    this.#map.set(grant.id, { grant, revision });
    this.#sorted = undefined;
  }

  override async issue(req: GrantRequest): Promise<Grant> {
    assertUnicode(req, '', 'invalid grant');
    const grant = buildGrant(req, this.#ids, this.#clock);
    let revision: number;
    try {
      revision = await this.#kv.create(grant.id, grant);
    } catch (e) {
      // The bucket's create refuses a key that exists: the fence `ensure` relies on (exactly
      // one node's create wins, and only the winner writes grant.issued).
      if (e instanceof ConflictError && (await this.#kv.get(grant.id))) throw grantExists(grant.id);
      throw e;
    }
    // Visible on this node at once; the watch brings it to the others.
    this.#remember(grant, revision);
    await this.record([{ type: FactType.grantIssued, origin: Origin.operator, data: { grant } }], [grant]);
    return grant;
  }

  /**
   * Revokes the grant (compare-and-set on its record), then every grant delegated from it that
   * this node knows after catching up with the bucket, each by compare-and-set; the facts of
   * all in one turn. The parent's record alone already stops the descendants on every node
   * (`find` checks each grant's chain), so a node that dies between the writes leaves no
   * usable descendant; revoking the parent again completes the cascade.
   */
  override async revoke(id: string, by = 'operator', reason?: string): Promise<Grant> {
    assertUnicode({ id, by, reason }, '', 'invalid revocation');
    const at = new Date(this.#clock.now()).toISOString();
    const root = await this.#update(id, (g) => (g.revokedAt ? undefined : { ...g, revokedAt: at, revokedBy: by }));
    const revoked = [...(root.changed ? [root.grant] : []), ...(await this.#cascade(id, at, by))];
    if (revoked.length > 0) await this.record(revocationFacts(id, revoked, by, reason, root.changed), revoked);
    return root.grant;
  }

  /** Marks every not yet revoked descendant of `id` revoked with it; returns those this call changed. */
  async #cascade(id: string, at: string, by: string): Promise<Grant[]> {
    await this.catchUp();
    const out: Grant[] = [];
    for (const d of descendantsOf(id, this.list())) {
      if (d.revokedAt !== undefined) continue;
      const r = await this.#update(d.id, (g) => (g.revokedAt ? undefined : { ...g, revokedAt: at, revokedBy: by, revokedWith: id }));
      if (r.changed) out.push(r.grant);
    }
    return out;
  }

  /**
   * Delegates from a parent read from the bucket: the uses given to the child are carved out
   * of a limited parent by compare-and-set before the child is created (given back if the
   * create fails), so two delegations or a delegation and a use racing on two nodes never
   * hand out more than the parent had. A parent revoked while the child was created has the
   * child revoked with it.
   */
  override async delegate(req: GrantDelegation): Promise<Grant> {
    const { parentId } = parseDelegation(req);
    await this.catchUp();
    const ctx = { clock: this.#clock, ids: this.#ids, lookup: (id: string) => this.get(id) };
    let made: { child: Grant; parent: Grant } | undefined;
    for (let attempt = 0; attempt < 20 && !made; attempt++) {
      const e = await this.#kv.get(parentId);
      if (!e) throw new NotFoundError(`grant ${parentId}`);
      const parent = e.value as Grant;
      this.#remember(parent, e.revision);
      const d = delegateFrom(parent, req, ctx);
      if (d.parent === parent) {
        made = d;
        break;
      }
      try {
        this.#remember(d.parent, await this.#kv.update(parentId, d.parent, e.revision));
        made = d;
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err;
      }
    }
    if (!made) throw new ConflictError(`grant ${parentId} kept changing under concurrent writers`);
    const { child, parent } = made;
    let revision: number;
    try {
      revision = await this.#kv.create(child.id, child);
    } catch (e) {
      const existing = e instanceof ConflictError ? ((await this.#kv.get(child.id))?.value as Grant | undefined) : undefined;
      // Give the carved uses back, unless the grant that holds this id is a child of this
      // parent: then the carve is its (two nodes delegating one id at once wrote one carve).
      if (existing?.parentId !== parentId) await this.#update(parentId, (g) => uncarve(g, child));
      if (existing) throw grantExists(child.id);
      throw e;
    }
    this.#remember(child, revision);
    await this.record([delegationFact(child, parent)], parent.maxUses !== undefined ? [child, parent] : [child]);
    const now = await this.#kv.get(parentId);
    const p = now?.value as Grant | undefined;
    if (p?.revokedAt !== undefined) {
      const late = await this.#cascade(parentId, p.revokedAt, p.revokedBy ?? 'operator');
      if (late.length > 0) await this.record(revocationFacts(parentId, late, p.revokedBy ?? 'operator', undefined, false), late);
    }
    return this.get(child.id) ?? child;
  }

  override async spend(id: string, intentId: string): Promise<Grant | undefined> {
    let exhausted = false;
    const r = await this.#update(id, (g) => {
      const next = spendUse(g, intentId);
      exhausted = next === undefined;
      return next === g ? undefined : next;
    });
    return exhausted ? undefined : r.grant;
  }

  /** Read, change, compare-and-set; again while someone else wrote in between. */
  async #update(id: string, change: (g: Grant) => Grant | undefined): Promise<{ grant: Grant; changed: boolean }> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const e = await this.#kv.get(id);
      if (!e) throw new NotFoundError(`grant ${id}`);
      const g = e.value as Grant;
      this.#remember(g, e.revision);
      const next = change(g);
      if (!next) return { grant: g, changed: false };
      try {
        const revision = await this.#kv.update(id, next, e.revision);
        this.#remember(next, revision);
        return { grant: next, changed: true };
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err;
        // another node wrote in between: read again
      }
    }
    throw new ConflictError(`grant ${id} kept changing under concurrent writers`);
  }

  /**
   * Waits until this node's watch has delivered every grant change made anywhere so far
   * (bounded). The host calls it before it lets a grant-related denial stand, so a grant
   * issued through another node a moment ago is seen. Resolves true if it had been behind.
   */
  override async catchUp(timeoutMs = 2000): Promise<boolean> {
    const target = await this.#kv.lastRevision();
    if (this.#seen >= target) return false;
    const deadline = Date.now() + timeoutMs;
    while (this.#seen < target && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    return true;
  }

  /** Read from the bucket, not the watch: a grant issued through another node a moment ago counts. */
  protected override async current(id: string): Promise<Grant | undefined> {
    const e = await this.#kv.get(id);
    if (!e) return undefined;
    const g = e.value as Grant;
    this.#remember(g, e.revision);
    return g;
  }

  override get(id: string): Grant | undefined {
    return this.#map.get(id)?.grant;
  }

  override list(): Grant[] {
    this.#sorted ??= [...this.#map.values()]
      .map((x) => x.grant)
      .sort((a, b) => a.issuedAt.localeCompare(b.issuedAt) || a.id.localeCompare(b.id));
    return this.#sorted;
  }

  /** Resolves when this node's watch has seen grant `id` (or rejects after `timeoutMs`). */
  async waitFor(id: string, timeoutMs = 5000): Promise<Grant> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const g = this.get(id);
      if (g) return g;
      if (Date.now() > deadline) throw new NotFoundError(`grant ${id} (not seen within ${timeoutMs} ms)`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async close(): Promise<void> {
    await this.#kv.close();
  }
}

import { ConflictError, NotFoundError } from '../errors.js';
import { FactType, Origin, assertUnicode, type Grant, type GrantRequest } from '../protocol/index.js';
import { GrantBook, buildGrant, grantExists, spendUse } from '../authority/index.js';
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
    await this.record({ type: FactType.grantIssued, origin: Origin.operator, data: { grant } }, grant);
    return grant;
  }

  override async revoke(id: string, by = 'operator', reason?: string): Promise<Grant> {
    assertUnicode({ id, by, reason }, '', 'invalid revocation');
    const revoked = await this.#update(id, (g) =>
      g.revokedAt ? undefined : { ...g, revokedAt: new Date(this.#clock.now()).toISOString(), revokedBy: by },
    );
    if (!revoked.changed) return revoked.grant;
    await this.record(
      { type: FactType.grantRevoked, origin: Origin.operator, data: { grantId: id, by, ...(reason ? { reason } : {}) } },
      revoked.grant,
    );
    return revoked.grant;
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

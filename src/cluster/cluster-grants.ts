import { ConflictError, NotFoundError, ValidationError } from '../errors.js';
import type { Grant, GrantRequest } from '../protocol/index.js';
import { GrantBook, buildGrant } from '../authority/index.js';
import type { Journal } from '../journal/index.js';
import type { Clock } from '../util/clock.js';
import type { IdGen } from '../util/ids.js';
import type { Logger } from '../util/logger.js';
import { WatchedBucket, type WatchedEntry } from '../store/jetstream/index.js';

/**
 * Grants shared by every node of a cluster: KV bucket `ICE_GRANTS`, key = grant id. Every
 * node watches the bucket into memory, so `find` (inherited from GrantBook: same matching,
 * same misses) is a synchronous in-memory lookup, as the Authority needs.
 *
 * This is a GrantBook so an unchanged `Authority` can decide with it. The SQLite journal
 * GrantBook writes to is not used: issue/revoke go to the KV bucket (create = first writer
 * wins; revoke = CAS on the revision).
 *
 * NOT BUILT in this slice: counting uses (`maxUses`). A use would be a CAS on the grant's
 * `uses` field; until that exists, grants with `maxUses` are refused at issue, so an
 * Authority never reaches `consume()` (which throws if it does).
 *
 * NOT BUILT either: the actorless fact chain on `ice.journal._runtime._` for
 * grant.issued / grant.revoked facts; the KV history is the only record.
 */
export class ClusterGrants extends GrantBook {
  readonly #kv: WatchedBucket;
  readonly #clock: Clock;
  readonly #ids: IdGen;
  readonly #log: Logger;
  readonly #map = new Map<string, { grant: Grant; revision: number }>();
  #sorted: Grant[] | undefined;

  private constructor(kv: WatchedBucket, clock: Clock, ids: IdGen, logger: Logger) {
    // The parent's journal is never used (issue/revoke/consume are overridden).
    super([], unusedJournal, clock, ids);
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
    if (e.value === undefined) {
      this.#map.delete(e.key);
    } else {
      const cur = this.#map.get(e.key);
      if (cur && cur.revision >= e.revision) return;
      this.#map.set(e.key, { grant: e.value as Grant, revision: e.revision });
    }
    this.#sorted = undefined;
  }

  override async issue(req: GrantRequest): Promise<Grant> {
    const grant = buildGrant(req, this.#ids, this.#clock);
    if (grant.maxUses !== undefined) {
      throw new ValidationError('grants with maxUses are not supported in cluster mode yet', [
        { path: 'maxUses', code: 'unsupported', message: 'use counting across nodes is not built', expected: 'no maxUses' },
      ]);
    }
    const id = grant.id;
    const revision = await this.#kv.create(id, grant);
    // Visible on this node at once; the watch brings it to the others.
    const cur = this.#map.get(id);
    if (!cur || cur.revision < revision) {
      this.#map.set(id, { grant, revision });
      this.#sorted = undefined;
    }
    return grant;
  }

  override async revoke(id: string, by = 'operator', _reason?: string): Promise<Grant> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const e = await this.#kv.get(id);
      if (!e) throw new NotFoundError(`grant ${id}`);
      const g = e.value as Grant;
      if (g.revokedAt) return g;
      const revoked: Grant = { ...g, revokedAt: new Date(this.#clock.now()).toISOString(), revokedBy: by };
      try {
        const revision = await this.#kv.update(id, revoked, e.revision);
        this.#map.set(id, { grant: revoked, revision });
        this.#sorted = undefined;
        return revoked;
      } catch {
        // changed under us: read again
      }
    }
    throw new ConflictError(`grant ${id} kept changing while revoking`);
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

  override consume(id: string): Grant {
    throw new ConflictError(`grant ${id}: counting uses is not supported in cluster mode yet`);
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

/** Stands in for the SQLite journal GrantBook/Authority would write use counts to; never reached. */
export const unusedJournal = {
  begin(): never {
    throw new Error('cluster mode: the SQLite journal is not used');
  },
} as unknown as Journal;

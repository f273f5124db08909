import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { ensureError } from '../../errors.js';
import { kvCompareAndSet, widenDedupWindow } from './kv-stores.js';
import type { Clock } from '../../util/clock.js';

/**
 * Actor ownership across runtime nodes: one lease record per actor in a KV bucket,
 * `{ node, expiresAt }`, changed only by compare-and-set on its revision.
 *
 * - acquire: create the key, or take it over by CAS once `expiresAt` has passed;
 * - renew: CAS on the revision this node last wrote; any other revision means the lease
 *   was taken over (this node was paused, partitioned or slow): the node must stand down,
 *   and `onLost` says so;
 * - release: delete by CAS, so a successor's record is never deleted.
 *
 * Per-message TTL is not used (nats-server 2.9 ignores it); expiry is the record's own
 * `expiresAt`, compared with this node's clock. Nodes need clocks within a small fraction
 * of the lease time of each other; the fencing of writes (expected revisions on snapshots,
 * expected last subject sequence on the journal) keeps a stale owner harmless even if not.
 */
/** Leases renewed at once by one sweep. */
const RENEW_CONCURRENCY = 64;

export interface LeaseRecord {
  node: string;
  expiresAt: number;
}

export interface LeaseOptions {
  node: string;
  /** Lease length. Default 5000 ms. */
  ttlMs?: number;
  /** Renewal period. Default ttl / 3. */
  renewEveryMs?: number;
  clock: Clock;
  /** Called when a held lease turns out to belong to someone else. */
  onLost?: (key: string, holder: string | undefined) => void;
  replicas?: number;
  bucket?: string;
}

export class LeaseManager {
  readonly node: string;
  readonly ttlMs: number;
  #kv: KV;
  #nc: NatsConnection;
  #bucket: string;
  #clock: Clock;
  #held = new Map<string, number>();
  #sweep: Promise<void> | undefined;
  /** Expiry this node last wrote for each held key. */
  #expires = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #onLost: (key: string, holder: string | undefined) => void;

  private constructor(kv: KV, nc: NatsConnection, opts: LeaseOptions) {
    this.#kv = kv;
    this.#nc = nc;
    this.#bucket = opts.bucket ?? 'ICE_LEASES';
    this.node = opts.node;
    this.ttlMs = opts.ttlMs ?? 5000;
    this.#clock = opts.clock;
    this.#onLost = opts.onLost ?? (() => {});
    this.#timer = setInterval(() => void this.renewAll(), opts.renewEveryMs ?? Math.max(100, Math.floor(this.ttlMs / 3)));
    this.#timer.unref();
  }

  static async open(nc: NatsConnection, opts: LeaseOptions): Promise<LeaseManager> {
    const kv = await new Kvm(nc).create(opts.bucket ?? 'ICE_LEASES', { history: 1, replicas: opts.replicas ?? 1, allow_direct: false });
    await widenDedupWindow(nc, opts.bucket ?? 'ICE_LEASES');
    return new LeaseManager(kv, nc, opts);
  }

  /** Keys this node holds right now (as far as it knows). */
  held(): string[] {
    return [...this.#held.keys()];
  }

  holds(key: string): boolean {
    return this.#held.has(key);
  }

  /** The expiry this node last wrote for a held key (0 when not held). */
  expiresAt(key: string): number {
    return this.#held.has(key) ? (this.#expires.get(key) ?? 0) : 0;
  }

  /** The current record of a key, or undefined. */
  async holder(key: string): Promise<(LeaseRecord & { revision: number; expired: boolean }) | undefined> {
    const e = await this.#kv.get(key);
    if (!e || e.operation !== 'PUT') return undefined;
    const r = e.json<LeaseRecord>();
    return { ...r, revision: e.revision, expired: r.expiresAt <= this.#clock.now() };
  }

  /**
   * Takes the lease if it is free, expired or already ours. Returns true when this node holds
   * it afterwards; false when another node holds an unexpired lease.
   */
  async acquire(key: string): Promise<boolean> {
    let expiresAt = 0;
    const record = (): Uint8Array => {
      expiresAt = this.#clock.now() + this.ttlMs;
      return new TextEncoder().encode(JSON.stringify({ node: this.node, expiresAt }));
    };
    let entry: KvEntry | null;
    try {
      entry = await this.#kv.get(key);
    } catch (e) {
      throw ensureError(e);
    }
    try {
      if (!entry || entry.operation !== 'PUT') {
        const rev = await this.#cas(key, record(), entry?.revision ?? 0);
        this.#held.set(key, rev);
        this.#expires.set(key, expiresAt);
        return true;
      }
      const cur = entry.json<LeaseRecord>();
      if (cur.node !== this.node && cur.expiresAt > this.#clock.now()) return false;
      const rev = await this.#cas(key, record(), entry.revision);
      this.#held.set(key, rev);
      this.#expires.set(key, expiresAt);
      return true;
    } catch {
      // Someone wrote between our read and our CAS. If it was this node (its own renewal of a
      // lease it still holds), the lease is ours; otherwise they won this round.
      const h = await this.holder(key).catch(() => undefined);
      if (h?.node === this.node && !h.expired && this.#held.has(key)) {
        this.#held.set(key, Math.max(this.#held.get(key) ?? 0, h.revision));
        this.#expires.set(key, h.expiresAt);
        return true;
      }
      return false;
    }
  }

  /**
   * Renews every held lease; leases found taken over are dropped and reported. One sweep at
   * a time (a sweep still running when the timer fires again is not doubled), keys renewed
   * with bounded concurrency: a serial sweep over a thousand leases took longer than a lease.
   */
  renewAll(): Promise<void> {
    this.#sweep ??= this.#renewSweep().finally(() => (this.#sweep = undefined));
    return this.#sweep;
  }

  async #renewSweep(): Promise<void> {
    const keys = [...this.#held.keys()];
    let next = 0;
    const worker = async () => {
      while (next < keys.length) await this.#renew(keys[next++]!);
    };
    await Promise.all(Array.from({ length: Math.min(RENEW_CONCURRENCY, keys.length) }, worker));
  }

  async #renew(key: string): Promise<void> {
    // Read the revision now, not at the start of the sweep: an acquire or release of the
    // same key may have run while earlier keys were being renewed.
    const rev = this.#held.get(key);
    if (rev === undefined) return;
    try {
      const expiresAt = this.#clock.now() + this.ttlMs;
      const next = await this.#cas(key, new TextEncoder().encode(JSON.stringify({ node: this.node, expiresAt })), rev);
      if (this.#held.get(key) === rev) {
        this.#held.set(key, next);
        this.#expires.set(key, expiresAt);
      }
    } catch {
      const h = await this.holder(key).catch(() => undefined);
      if (h?.node === this.node) {
        // Our own newer write (a concurrent acquire): still ours.
        if (this.#held.has(key)) this.#held.set(key, Math.max(this.#held.get(key) ?? 0, h.revision));
        return;
      }
      if (!this.#held.has(key)) return; // released meanwhile
      this.#held.delete(key);
      this.#expires.delete(key);
      this.#onLost(key, h?.node);
    }
  }

  /** kv.update does not hold on R3 under concurrent writers (docs/nats-fencing.md): position-keyed CAS. */
  #cas(key: string, value: Uint8Array, revision: number): Promise<number> {
    return kvCompareAndSet(this.#nc, this.#bucket, key, value, revision);
  }

  /** Gives a lease up (only if the record is still ours). */
  async release(key: string): Promise<void> {
    const rev = this.#held.get(key);
    this.#held.delete(key);
    this.#expires.delete(key);
    if (rev === undefined) return;
    await kvCompareAndSet(this.#nc, this.#bucket, key, new Uint8Array(0), rev, { delete: true }).catch(() => {});
  }

  async close(opts: { release?: boolean } = {}): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    if (opts.release) for (const key of this.held()) await this.release(key);
  }
}

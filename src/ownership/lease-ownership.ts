import type { LeaseManager } from '../store/jetstream/lease.js';
import type { Clock } from '../util/clock.js';
import type { Ownership, OwnershipPort } from '../host/ports.js';

/**
 * Ownership in a cluster: one lease per actor in KV (`ICE_LEASES`, see lease.ts), taken by
 * compare-and-set, renewed in the background, expiring by the record's own time.
 *
 * `holds` is what the host checks right before every commit: the lease is held AND this
 * node's own clock says it has more than `marginMs` left. A node paused past its lease
 * (SIGSTOP, a long GC, a partition) finds on resuming that its lease time ran out and
 * commits nothing, before its renewal timer even runs; the journal's fence (expected last
 * subject sequence) then only has to stop writers that passed this check just before a
 * pause — see docs/distributed.md.
 */
export class LeaseOwnership implements OwnershipPort {
  readonly node: string;
  readonly #leases: LeaseManager;
  readonly #clock: Clock;
  readonly #marginMs: number;
  readonly #listeners = new Set<(actor: string, owner: string | undefined) => void>();

  constructor(leases: LeaseManager, clock: Clock, opts: { marginMs?: number } = {}) {
    this.node = leases.node;
    this.#leases = leases;
    this.#clock = clock;
    this.#marginMs = opts.marginMs ?? Math.max(50, Math.floor(leases.ttlMs / 5));
  }

  /** Called by the lease manager when a renewal finds the lease taken over. */
  lost(key: string, holder: string | undefined): void {
    const actor = actorOf(key);
    for (const l of this.#listeners) l(actor, holder);
  }

  async claim(actor: string): Promise<Ownership> {
    const key = keyOf(actor);
    if (this.holds(actor)) return { kind: 'mine' };
    const h = await this.#leases.holder(key);
    if (h && h.node !== this.node && !h.expired) return { kind: 'elsewhere', owner: h.node };
    if (await this.#leases.acquire(key)) return { kind: 'mine' };
    const now = await this.#leases.holder(key);
    if (now && now.node !== this.node) return { kind: 'elsewhere', owner: now.node };
    return { kind: 'unknown', reason: `lease of ${actor} is contended; retry with the same id` };
  }

  holds(actor: string): boolean {
    return this.#leases.expiresAt(keyOf(actor)) - this.#marginMs > this.#clock.now();
  }

  release(actor: string): Promise<void> {
    return this.#leases.release(keyOf(actor));
  }

  onLost(listener: (actor: string, owner: string | undefined) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(opts: { release?: boolean } = {}): Promise<void> {
    return this.#leases.close(opts);
  }
}

/** Lease keys are `<kind>.<id>` (KV keys may not hold `/`). */
export const keyOf = (actor: string): string => actor.replace('/', '.');
const actorOf = (key: string): string => key.replace('.', '/');

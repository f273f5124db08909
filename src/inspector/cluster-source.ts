import type { ActorDefinition, ActorDetail, ActorInfo } from '../host/index.js';
import { Subjects, isAddress, type Fact, type SnapshotRecord } from '../protocol/index.js';
import { JetStreamStore } from '../store/jetstream/jetstream-store.js';
import { JetStreamJournalReader } from '../store/jetstream/journal-reader.js';
import { WatchedBucket } from '../store/jetstream/kv-stores.js';
import type { LeaseRecord } from '../store/jetstream/lease.js';
import type { NatsTransport } from '../transport/index.js';
import type { InspectorRuntime } from './server.js';
import { subscribeInspection } from './wire.js';

/**
 * What the inspector reads, built from a cluster (`ice inspect --nats`), not from one node:
 *
 * - actors and their snapshots from the JetStream store (`ICE_SNAPSHOTS`, and the newest turn
 *   of a chain in `ICE_JOURNAL`), owners from the leases in `ICE_LEASES`;
 * - the journal (every chain, verified) through the cluster's journal reader;
 * - live facts from `ice.fact.>`, where every node publishes each fact once it is durable;
 * - live XState inspection events from the nodes started with `--publish-inspection`
 *   (`ice.inspect.<node>.<kind>.<id>`, see wire.ts).
 *
 * Facts are per chain here as on one node: `seq`, `prev` and `causes` are positions in the
 * fact's own chain, so the page links transition → decision → intent the same way.
 */
export interface ClusterInspectorSource extends InspectorRuntime {
  close(): Promise<void>;
}

const LEASES = 'ICE_LEASES';

export async function clusterInspectorSource(
  transport: NatsTransport,
  defs: ActorDefinition[],
  opts: { now?: () => number } = {},
): Promise<ClusterInspectorSource> {
  const nc = transport.connection;
  const now = opts.now ?? Date.now;
  const store = await JetStreamStore.open(nc, {});
  const journal = new JetStreamJournalReader(nc, store);

  // Owners: a mirror of the lease bucket (it exists once a node has run). A lease counts
  // while it has not expired.
  const leases = new Map<string, LeaseRecord>();
  let leaseBucket: WatchedBucket | undefined;
  let leaseWatch: Promise<void> | undefined;
  const watchLeases = (): Promise<void> => {
    if (leaseBucket) return Promise.resolve();
    leaseWatch ??= (async () => {
      const b = await WatchedBucket.openExisting(nc, LEASES);
      await b.watch(
        (e) => {
          const actor = e.key.replace('.', '/');
          const v = e.value as Partial<LeaseRecord> | undefined;
          if (v && typeof v.node === 'string' && typeof v.expiresAt === 'number')
            leases.set(actor, { node: v.node, expiresAt: v.expiresAt });
          else leases.delete(actor);
        },
        () => {
          // the watch ended (connection closed): owners are unknown from now on
          leases.clear();
        },
      );
      leaseBucket = b;
    })()
      .catch(() => {
        // no node has created the bucket yet: no owners, try again next time
      })
      .finally(() => {
        leaseWatch = undefined;
      });
    return leaseWatch;
  };
  await watchLeases();
  const ownerOf = (address: string): string => {
    const l = leases.get(address);
    return l && l.expiresAt > now() ? l.node : '';
  };
  const info = (address: string, r: { kind: string; state: string; status: SnapshotRecord['status']; seq: number }): ActorInfo => {
    const owner = ownerOf(address);
    return { address, kind: r.kind, state: r.state, status: r.status, seq: r.seq, owner, active: owner !== '' };
  };

  // Live facts: one subscription, fanned out.
  const factListeners = new Set<(f: Fact) => void>();
  const factSub = transport.subscribe(Subjects.factAll, (msg) => {
    const f = msg.data as Partial<Fact> | null;
    if (!f || typeof f !== 'object' || typeof f.seq !== 'number' || typeof f.type !== 'string' || typeof f.actor !== 'string') return;
    if (typeof f.hash !== 'string' || !Array.isArray(f.causes) || typeof f.data !== 'object' || f.data === null) return;
    for (const l of factListeners) {
      try {
        l(f as Fact);
      } catch {
        // a listener's failure is its own
      }
    }
  });
  const inspectOffs = new Set<() => void>();
  await transport.flush();

  return {
    definitions: () => defs,
    async listActors(): Promise<ActorInfo[]> {
      await watchLeases();
      const rows = await store.actors();
      return rows.map((r) => info(r.actor, r)).sort((x, y) => x.address.localeCompare(y.address));
    },
    async actor(address: string): Promise<ActorDetail | undefined> {
      if (!isAddress(address)) return undefined;
      const s = await store.latestSnapshot(address);
      if (!s) return undefined;
      const snapshot = s.snapshot as { context?: unknown } | undefined;
      return { ...info(address, s), context: snapshot?.context, snapshot };
    },
    journal,
    onFact: (l) => {
      factListeners.add(l);
      return () => factListeners.delete(l);
    },
    onInspect: (l) => {
      const off = subscribeInspection(transport, l);
      inspectOffs.add(off);
      return () => {
        inspectOffs.delete(off);
        off();
      };
    },
    close: async () => {
      factSub.unsubscribe();
      for (const off of inspectOffs) off();
      inspectOffs.clear();
      factListeners.clear();
      await leaseWatch;
      await leaseBucket?.close();
      await store.close();
    },
  };
}

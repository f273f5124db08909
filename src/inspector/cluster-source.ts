import { verifyActorChain } from '../cluster/index.js';
import type { ActorDefinition, ActorDetail, ActorInfo } from '../host/index.js';
import type { VerifyResult } from '../journal/index.js';
import type { Fact, SnapshotRecord } from '../protocol/index.js';
import { ActorLog, WatchedBucket } from '../store/jetstream/index.js';
import type { NatsTransport } from '../transport/index.js';
import type { InspectorRuntime } from './server.js';

/**
 * What the inspector reads, built from a cluster's JetStream state (`ice inspect --nats`):
 * every commit of `ICE_JOURNAL` (followed live), the snapshots in `ICE_SNAPSHOTS` and the
 * owners in `ICE_LEASES`. Cluster facts are chained per actor (`seq` is the actor's
 * position); here each fact gets a display seq in stream order, and its causes are mapped to
 * those, so the page links transition → decision → intent as it does for one node.
 */
export interface ClusterInspectorSource extends InspectorRuntime {
  close(): Promise<void>;
}

export async function clusterInspectorSource(transport: NatsTransport, defs: ActorDefinition[]): Promise<ClusterInspectorSource> {
  const nc = transport.connection;
  const log = await ActorLog.open(nc);
  const snapshots = new Map<string, SnapshotRecord>();
  const owners = new Map<string, string>();
  const facts: Fact[] = [];
  const original = new Map<string, Fact[]>();
  const displaySeq = new Map<string, Map<number, number>>();
  const listeners = new Set<(f: Fact) => void>();

  const stopFollow = await log.follow((actor, _streamSeq, commit) => {
    let positions = displaySeq.get(actor);
    if (!positions) displaySeq.set(actor, (positions = new Map<number, number>()));
    let own = original.get(actor);
    if (!own) original.set(actor, (own = []));
    for (const f of commit) {
      own.push(f);
      const seq = facts.length + 1;
      positions.set(f.seq, seq);
      const shown: Fact = { ...f, seq, causes: f.causes.map((c) => positions.get(c) ?? c) };
      facts.push(shown);
      for (const l of listeners) l(shown);
    }
  });
  const snapBucket = await WatchedBucket.openExisting(nc, 'ICE_SNAPSHOTS');
  await snapBucket.watch(
    (e) => {
      const actor = e.key.replace('.', '/');
      if (e.value === undefined) snapshots.delete(actor);
      else snapshots.set(actor, e.value as SnapshotRecord);
    },
    () => {},
  );
  const leaseBucket = await WatchedBucket.openExisting(nc, 'ICE_LEASES');
  await leaseBucket.watch(
    (e) => {
      const actor = e.key.replace('.', '/');
      const v = e.value as { node?: string; expiresAt?: number } | undefined;
      if (v?.node && (v.expiresAt ?? 0) > Date.now()) owners.set(actor, v.node);
      else owners.delete(actor);
    },
    () => {},
  );

  const lastSeqOf = (actor: string) => {
    const own = original.get(actor);
    const last = own?.at(-1);
    return last ? (displaySeq.get(actor)?.get(last.seq) ?? 0) : 0;
  };
  const info = (address: string, s: SnapshotRecord): ActorInfo => ({
    address,
    kind: s.kind,
    state: s.state,
    status: s.status,
    seq: lastSeqOf(address),
    owner: owners.get(address) ?? '',
    active: owners.has(address),
  });
  const tail = (o: { limit?: number; actor?: string; beforeSeq?: number } = {}): Fact[] => {
    const out: Fact[] = [];
    for (let i = facts.length - 1; i >= 0 && out.length < (o.limit ?? 50); i--) {
      const f = facts[i]!;
      if (o.beforeSeq !== undefined && f.seq >= o.beforeSeq) continue;
      if (o.actor !== undefined && f.actor !== o.actor) continue;
      out.push(f);
    }
    return out;
  };
  const verify = (): VerifyResult => {
    for (const [actor, own] of original) {
      const r = verifyActorChain(own);
      if (!r.ok) {
        const at = displaySeq.get(actor)?.get(r.brokenAt ?? 0) ?? 0;
        return {
          ok: false,
          count: facts.length,
          headSeq: facts.length,
          headHash: '',
          brokenAt: at,
          reason: `chain of ${actor} breaks at its fact ${r.brokenAt}`,
        };
      }
    }
    return { ok: true, count: facts.length, headSeq: facts.length, headHash: facts.at(-1)?.hash ?? '' };
  };

  return {
    definitions: () => defs,
    listActors: () => [...snapshots].map(([a, s]) => info(a, s)).sort((x, y) => x.address.localeCompare(y.address)),
    actor: (address: string): ActorDetail | undefined => {
      const s = snapshots.get(address);
      if (!s) return undefined;
      const snapshot = s.snapshot as { context?: unknown };
      return { ...info(address, s), context: snapshot?.context, snapshot };
    },
    journal: {
      verify,
      tail,
      read: (fromSeq = 1, limit = 1000) => facts.slice(fromSeq - 1, fromSeq - 1 + limit),
      factsOfIntent: (intentId: string) => facts.filter((f) => f.intentId === intentId),
      fact: (seq: number) => facts[seq - 1],
      get headSeq() {
        return facts.length;
      },
    },
    onFact: (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    // XState inspection events stay inside each node; the cluster view has facts only.
    onInspect: () => () => {},
    close: async () => {
      await stopFollow();
      await snapBucket.close();
      await leaseBucket.close();
    },
  };
}

import { replayActor, type ActorDefinition } from '../host/index.js';
import { exampleActors } from '../../actors/index.js';
import { canonicalJson, type Fact, type Grant, type Outcome } from '../protocol/index.js';
import type { StorePort } from '../host/ports.js';
import type { JournalReader } from '../journal/reader.js';
import { SqliteJournalReader } from '../journal/reader.js';
import { SqliteJournal, SqliteStore } from '../store/index.js';
import { AuthorityKey } from '../authority/index.js';
import { JetStreamStore } from '../store/jetstream/jetstream-store.js';
import { describeOrphan, JetStreamJournalReader, KEYS_BUCKET, keyResolver } from '../store/jetstream/journal-reader.js';
import { WatchedBucket } from '../store/jetstream/kv-stores.js';
import { NatsTransport } from '../transport/nats-transport.js';

export interface InvariantReport {
  ok: boolean;
  /** Every broken invariant, readable. */
  violations: string[];
  facts: number;
  chains: number;
  actors: number;
  acknowledged: number;
  /** Executed intents found in the journal. */
  executed: number;
  /**
   * Turns that claimed a position already taken (a second writer's append that the fences let
   * through and the reads skip: first at a position wins). Expected 0; any is listed.
   */
  orphans: number;
}

export interface CheckInvariantsOptions {
  /** A stopped data dir (embedded), opened read-only… */
  dataDir?: string;
  /** …or a cluster's NATS servers (its JetStream store is read; nodes may still run). */
  servers?: string | string[];
  /** The actor kinds (default: the examples). */
  actors?: ActorDefinition[];
  /** Outcomes the proposers saw, by intent id. */
  acknowledged?: ReadonlyMap<string, Outcome>;
  /** Intent ids that were retried after a crash (each must have executed at most once). */
  retried?: Iterable<string>;
}

/**
 * Checks, from the journal alone, what no crash, pause or partition may break — the same
 * checks on both stores:
 * - every chain verifies: consecutive seqs, each prev the hash before, no fork, no gap (a
 *   linear chain is the proof that never two owners executed for one actor: a second writer
 *   would have forked it), and on SQLite the signed checkpoints;
 * - every acknowledged `executed` outcome has exactly one transition fact, at the chain and
 *   seq it named; no intent has two transitions; acknowledged denials and rejections have none;
 * - every transition caused by an intent follows a `decision` fact that granted that same
 *   intent, on the same chain, and the decision follows the intent's `intent.proposed` or
 *   `approval` fact (which follows the pending decision, which follows `intent.proposed`);
 * - every actor's newest stored snapshot equals a replay of its chain (state and context), and
 *   every transition's recorded `from` → `to` is what its event does at that point of the
 *   replay: no owner executed on a stale copy of the actor;
 * - every grant use is accounted for: executions paid by a grant with maxUses are at most
 *   maxUses (less the uses it handed to grants delegated from it), and each is listed in the
 *   grant's `usedBy`.
 */
export async function checkInvariants(opts: CheckInvariantsOptions): Promise<InvariantReport> {
  const view = await openJournal(opts);
  const violations: string[] = [];
  try {
    const v = await view.reader.verify();
    if (!v.ok) violations.push(`journal broken at ${v.brokenChain ?? '?'} #${v.brokenAt ?? '?'}: ${v.reason ?? ''}`);
    // An orphan is a fork the fences should have made impossible: report it as one.
    for (const o of v.orphans ?? [])
      violations.push(`fork: ${o.chain} #${o.seq} claimed again by stream message ${o.pos} (${describeOrphan(o)})`);
    const defs = new Map((opts.actors ?? (exampleActors as ActorDefinition[])).map((d) => [d.kind, d]));
    const rows = await view.store.actors();
    const transitions = new Map<string, Array<{ chain: string; seq: number }>>();
    const paidBy = new Map<string, string[]>();
    let executed = 0;
    for (const row of rows) {
      const chain = await view.reader.chain(row.actor, 1, Number.MAX_SAFE_INTEGER);
      const bySeq = new Map(chain.map((f) => [f.seq, f]));
      for (const f of chain) {
        if (f.type !== 'transition' || !f.intentId) continue;
        executed++;
        const seen = transitions.get(f.intentId);
        if (seen) seen.push({ chain: row.actor, seq: f.seq });
        else transitions.set(f.intentId, [{ chain: row.actor, seq: f.seq }]);
        const decisionFact = bySeq.get(f.causes[0] ?? 0);
        const decision = decisionFact?.data.decision as { verdict?: string; intentId?: string; grantId?: string } | undefined;
        if (decisionFact?.type !== 'decision' || decision?.verdict !== 'granted' || decision.intentId !== f.intentId) {
          violations.push(`${row.actor} #${f.seq}: transition of ${f.intentId} without a granted decision for it`);
        } else {
          const origin = bySeq.get(decisionFact.causes[0] ?? 0);
          if (!origin || origin.intentId !== f.intentId || (origin.type !== 'intent.proposed' && origin.type !== 'approval')) {
            violations.push(`${row.actor} #${decisionFact.seq}: decision for ${f.intentId} without its intent`);
          } else if (origin.type === 'approval') {
            // approval → the pending decision → intent.proposed: causes alone lead back to the proposal
            const pendingFact = bySeq.get(origin.causes[0] ?? 0);
            const proposed = pendingFact && bySeq.get(pendingFact.causes[0] ?? 0);
            if (pendingFact?.type !== 'decision' || proposed?.type !== 'intent.proposed' || proposed.intentId !== f.intentId)
              violations.push(
                `${row.actor} #${origin.seq}: approval of ${f.intentId} whose causes do not lead back to its intent.proposed`,
              );
          }
          if (decision.grantId) {
            // one grant can pay for hundreds of thousands of intents: append, never copy
            const paid = paidBy.get(decision.grantId);
            if (paid) paid.push(f.intentId);
            else paidBy.set(decision.grantId, [f.intentId]);
          }
        }
      }
      const def = defs.get(row.kind);
      if (!def || !chain.some((f) => f.type === 'actor.started')) continue;
      const replay = replayActor(def, chain);
      for (const m of replay.mismatches)
        violations.push(
          `${row.actor} #${m.seq}: transition recorded ${String(m.recorded.from)} → ${String(m.recorded.to)}, the chain's replay gives ${m.replayed.from} → ${m.replayed.to} (executed on a stale copy of the actor)`,
        );
      const snap = await view.store.latestSnapshot(row.actor);
      const context = (snap?.snapshot as { context?: unknown } | undefined)?.context;
      if (!snap) violations.push(`${row.actor}: no stored snapshot`);
      else {
        if (replay.state !== snap.state) violations.push(`${row.actor}: stored state ${snap.state}, replay ${replay.state}`);
        // key order is not part of the state: stores may keep JSON canonical
        if (canonicalJson(replay.context) !== canonicalJson(context)) violations.push(`${row.actor}: stored context differs from replay`);
        const last = chain.at(-1);
        if (last && snap.seq > last.seq) violations.push(`${row.actor}: snapshot at #${snap.seq} is ahead of the chain (#${last.seq})`);
      }
      replay.actor.stop();
    }
    for (const [id, at] of transitions)
      if (at.length > 1)
        violations.push(`intent ${id} transitioned ${at.length} times (${at.map((a) => `${a.chain}#${a.seq}`).join(', ')})`);
    for (const [id, o] of opts.acknowledged ?? []) {
      const at = transitions.get(id) ?? [];
      if (o.status === 'executed') {
        if (at.length !== 1) violations.push(`acknowledged ${id} has ${at.length} transitions`);
        else if (at[0]!.seq !== o.seq || at[0]!.chain !== o.actor)
          violations.push(`acknowledged ${id} named ${o.actor}#${o.seq}, the journal has ${at[0]!.chain}#${at[0]!.seq}`);
      } else if ((o.status === 'denied' || o.status === 'rejected') && at.length > 0) {
        violations.push(`${id} was acknowledged ${o.status} but has a transition`);
      }
    }
    for (const id of opts.retried ?? []) {
      if ((transitions.get(id) ?? []).length > 1) violations.push(`retried ${id} executed more than once`);
    }
    for (const g of await view.grants()) {
      if (g.maxUses === undefined) continue;
      const paid = paidBy.get(g.id) ?? [];
      if (paid.length > g.maxUses) violations.push(`grant ${g.id} paid for ${paid.length} executions, maxUses ${g.maxUses}`);
      if (paid.length > g.uses) violations.push(`grant ${g.id} paid for ${paid.length} executions but counts ${g.uses} uses`);
      // uses handed to delegated grants are no longer its own: spent plus handed out stay within maxUses
      if (paid.length + (g.delegatedUses ?? 0) > g.maxUses)
        violations.push(
          `grant ${g.id} paid for ${paid.length} executions and handed ${g.delegatedUses} uses to delegates, maxUses ${g.maxUses}`,
        );
      const listed = new Set(g.usedBy ?? []);
      if (g.uses <= 100)
        for (const id of paid) if (!listed.has(id)) violations.push(`grant ${g.id}: ${id} executed with it but is not in usedBy`);
    }
    return {
      ok: violations.length === 0,
      violations,
      facts: v.count,
      chains: v.chains,
      actors: rows.length,
      acknowledged: opts.acknowledged?.size ?? 0,
      executed,
      orphans: v.orphans?.length ?? 0,
    };
  } finally {
    await view.close();
  }
}

export interface JournalView {
  store: StorePort;
  reader: JournalReader;
  grants(): Promise<Grant[]>;
  close(): Promise<void>;
}

/** The journal of a stopped data dir or of a cluster, read-only (for checks and reports). */
export async function openJournal(opts: Pick<CheckInvariantsOptions, 'dataDir' | 'servers'>): Promise<JournalView> {
  if (opts.dataDir !== undefined) {
    const st = new SqliteStore(opts.dataDir, { readonly: true });
    const journal = new SqliteJournal(st);
    return {
      store: journal,
      reader: new SqliteJournalReader(journal, AuthorityKey.loadPublic(opts.dataDir)),
      grants: () => journal.grants(),
      close: () => st.close(),
    };
  }
  if (opts.servers === undefined) throw new Error('checkInvariants needs dataDir or servers');
  const t = await NatsTransport.connect({ servers: opts.servers, name: 'ice-invariants' });
  const store = await JetStreamStore.open(t.connection, {});
  const grantsBucket = await WatchedBucket.openExisting(t.connection, 'ICE_GRANTS').catch(() => undefined);
  const keysBucket = await WatchedBucket.openExisting(t.connection, KEYS_BUCKET).catch(() => undefined);
  return {
    store,
    reader: new JetStreamJournalReader(t.connection, store, keysBucket ? { keys: keyResolver(keysBucket) } : {}),
    async grants() {
      if (!grantsBucket) return [];
      const out: Grant[] = [];
      await grantsBucket.watch(
        (e) => {
          if (e.value !== undefined) out.push(e.value as Grant);
        },
        () => {},
      );
      await grantsBucket.close();
      // A watch replays every revision; keep the newest of each grant.
      return [...new Map(out.map((g) => [g.id, g])).values()];
    },
    async close() {
      await store.close();
      await t.close();
    },
  };
}

export type { Fact };

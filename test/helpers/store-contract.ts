/**
 * The behaviour every StorePort implementation must show (SQLite, JetStream, …), as a vitest
 * suite: `storeContract('name', open)` inside a test file. Nothing here knows how a store
 * keeps its data; fabricating forks and gaps needs the optional inject hooks.
 *
 * Stores may keep derived data (snapshots, the actor index) behind the journal for a while:
 * the suite only demands it after `drain()`, except where the port promises more (outcomes
 * are complete for every turn committed before the lookup).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError, JournalBrokenError } from '../../src/errors.js';
import {
  EMPTY_HEAD,
  runtimeChain,
  type ChainHead,
  type PendingRecord,
  type StorePort,
  type StoredOutcome,
  type Turn,
} from '../../src/host/ports.js';
import { sha256Hex, type Fact, type SnapshotRecord } from '../../src/protocol/index.js';

export type ClosableStore = StorePort & { close(): Promise<void> };

export interface StoreHarness {
  store: ClosableStore;
  /** Another instance on the same data (a second writer), if the implementation allows one. */
  second?: () => Promise<ClosableStore>;
  /** Stores `facts` on `chain` as they are, bypassing the fence (a fork). */
  injectFork?: (chain: string, facts: Fact[]) => Promise<void>;
  /** Stores `facts` on `chain` as they are, bypassing the fence (a gap). */
  injectGap?: (chain: string, facts: Fact[]) => Promise<void>;
  /** The storage itself cannot hold two facts at one position: `injectFork` must throw. */
  forkUnstorable?: boolean;
  cleanup(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// building turns

const AT = '2025-01-01T00:00:00.000Z';

export interface FactSpec {
  type?: Fact['type'];
  origin?: Fact['origin'];
  intentId?: string;
  data?: Record<string, unknown>;
}

/** Facts chained onto `after` exactly as the runtime chains them. */
export function makeFacts(chain: string, after: ChainHead, specs: FactSpec[]): Fact[] {
  const actor = chain.startsWith('_runtime/') ? undefined : chain;
  let { seq, hash: prev } = after;
  return specs.map((s) => {
    seq += 1;
    const body = {
      v: 1 as const,
      seq,
      at: AT,
      type: s.type ?? 'transition',
      origin: s.origin ?? 'runtime',
      ...(actor !== undefined ? { actor } : {}),
      ...(s.intentId !== undefined ? { intentId: s.intentId } : {}),
      causes: seq > 1 ? [seq - 1] : [],
      data: s.data ?? { n: seq },
    };
    const hash = sha256Hex(prev + JSON.stringify(body));
    const fact: Fact = { ...body, prev, hash };
    prev = hash;
    return fact;
  });
}

export function snapshotOf(chain: string, seq: number, state = `s${seq}`): SnapshotRecord {
  return {
    v: 1,
    actor: chain,
    kind: chain.slice(0, chain.indexOf('/')),
    seq,
    status: 'active',
    state,
    snapshot: { value: state, context: { n: seq } },
    updatedAt: AT,
  };
}

export function outcomeOf(chain: string, intentId: string, seq: number): StoredOutcome {
  return {
    intentId,
    digest: `digest-${intentId}`,
    outcome: { v: 1, status: 'executed', intentId, actor: chain, from: 'a', to: 'b', decisionId: `dec-${intentId}`, seq },
  };
}

/** The outcome of an intent that waits for a human's approval. */
export function pendingOutcomeOf(chain: string, intentId: string, seq: number): StoredOutcome {
  return {
    intentId,
    digest: `digest-${intentId}`,
    outcome: {
      v: 1,
      status: 'pending',
      intentId,
      actor: chain,
      decisionId: `dec-${intentId}`,
      reasons: [{ code: 'needs_approval', message: 'ask a human' }],
      seq,
    },
  };
}

export function pendingOf(chain: string, intentId: string): PendingRecord {
  return { intentId, actor: chain, intent: { id: intentId, action: 'X' }, decision: { verdict: 'pending' }, createdAt: AT };
}

export interface TurnOptions {
  /** Number of facts (default 3: intent, decision, transition). */
  facts?: number;
  intentId?: string;
  /** Attach an outcome for `intentId` (default true when intentId is given). */
  outcome?: boolean;
  /** Attach a snapshot (default: for actor chains). */
  snapshot?: boolean;
  pendingPut?: PendingRecord;
  pendingDelete?: string;
}

/** One turn onto `after`; returns it and the head after it. */
export function makeTurn(chain: string, after: ChainHead, o: TurnOptions = {}): { turn: Turn; head: ChainHead } {
  const n = o.facts ?? 3;
  const types: Fact['type'][] = n === 3 ? ['intent.proposed', 'decision', 'transition'] : Array.from({ length: n }, () => 'transition');
  const facts = makeFacts(
    chain,
    after,
    types.map((type) => ({ type, ...(o.intentId !== undefined ? { intentId: o.intentId } : {}) })),
  );
  const last = facts[facts.length - 1]!;
  const actorChain = !chain.startsWith('_runtime/');
  const turn: Turn = {
    chain,
    after,
    facts,
    ...((o.snapshot ?? actorChain) ? { snapshot: snapshotOf(chain, last.seq) } : {}),
    ...(o.intentId !== undefined && (o.outcome ?? true) ? { outcome: outcomeOf(chain, o.intentId, last.seq) } : {}),
    ...(o.pendingPut ? { pendingPut: o.pendingPut } : {}),
    ...(o.pendingDelete !== undefined ? { pendingDelete: o.pendingDelete } : {}),
  };
  return { turn, head: { seq: last.seq, hash: last.hash } };
}

/** `count` consecutive turns onto `after`, each with its own intent id `${prefix}-${i}`. */
export function makeTurns(
  chain: string,
  after: ChainHead,
  count: number,
  prefix: string,
  o: TurnOptions = {},
): { turns: Turn[]; head: ChainHead } {
  const turns: Turn[] = [];
  let head = after;
  for (let i = 0; i < count; i++) {
    const t = makeTurn(chain, head, { intentId: `${prefix}-${i}`, ...o });
    turns.push(t.turn);
    head = t.head;
  }
  return { turns, head };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

// ---------------------------------------------------------------------------------------------
// the suite

export function storeContract(name: string, open: () => Promise<StoreHarness>): void {
  describe(`StorePort contract: ${name}`, () => {
    let h: StoreHarness;
    let store: ClosableStore;
    const run = Math.random().toString(36).slice(2, 8);
    let n = 0;
    /** A chain of its own for each case. */
    const fresh = (kind = 'contract') => `${kind}/c${run}-${++n}`;

    beforeAll(async () => {
      h = await open();
      store = h.store;
    });
    afterAll(async () => {
      await h?.cleanup();
    });

    /** Loads a chain, committing on it in turn, the way the Host does. */
    async function commitAll(turns: Turn[]): Promise<void> {
      for (const t of turns) await store.commit(t);
    }

    it('commit then load: facts, snapshot and head round-trip', async () => {
      const chain = fresh();
      const empty = await store.load(chain);
      expect(empty).toEqual({ facts: [], head: EMPTY_HEAD });
      const { turns, head } = makeTurns(chain, EMPTY_HEAD, 3, `rt-${run}`);
      await commitAll(turns);
      const all = turns.flatMap((t) => t.facts);

      const loaded = await store.load(chain);
      expect(loaded.head).toEqual(head);
      // the stored snapshot may be behind (a cache); the facts after it make up the rest
      const snapSeq = loaded.snapshot?.seq ?? 0;
      expect(loaded.facts).toEqual(all.filter((f) => f.seq > snapSeq));
      if (loaded.snapshot) expect(turns.map((t) => t.snapshot)).toContainEqual(loaded.snapshot);

      await store.drain();
      const again = await store.load(chain);
      expect(again.head).toEqual(head);
      expect(again.snapshot).toEqual(turns[2]!.snapshot);
      expect(again.facts).toEqual([]);
      expect(await store.chainFacts(chain, 1, 100)).toEqual(all);
      expect(await store.head(chain)).toEqual(head);
    });

    it('refuses a turn whose `after` is not the stored head, and stores nothing of it', async () => {
      const chain = fresh();
      await store.load(chain);
      const first = makeTurn(chain, EMPTY_HEAD, { intentId: `f1-${run}` });
      await store.commit(first.turn);

      // chained onto the empty chain again: stale
      const stale = makeTurn(chain, EMPTY_HEAD, { intentId: `f2-${run}` });
      const e1 = await rejection(store.commit(stale.turn));
      expect(e1).toBeInstanceOf(ConflictError);
      expect((e1 as ConflictError).code).toBe('E_CONFLICT');
      // right seq, wrong hash
      const forged = makeTurn(chain, { seq: first.head.seq, hash: 'f'.repeat(64) }, { intentId: `f3-${run}` });
      expect(await rejection(store.commit(forged.turn))).toBeInstanceOf(ConflictError);
      // ahead of the head
      const ahead = makeTurn(chain, { seq: first.head.seq + 3, hash: first.head.hash }, { intentId: `f4-${run}` });
      expect(await rejection(store.commit(ahead.turn))).toBeInstanceOf(ConflictError);

      await store.drain();
      const loaded = await store.load(chain);
      expect(loaded.head).toEqual(first.head);
      expect(await store.chainFacts(chain, 1, 100)).toEqual(first.turn.facts);
      expect(await store.outcome(`f2-${run}`)).toBeUndefined();
      expect(await store.outcome(`f3-${run}`)).toBeUndefined();
      expect(await store.outcome(`f4-${run}`)).toBeUndefined();
      // the chain goes on from the stored head
      await store.commit(makeTurn(chain, first.head, { intentId: `f5-${run}` }).turn);
    });

    it('a second writer whose head is stale is refused', async (ctx) => {
      if (!h.second) return ctx.skip();
      const other = await h.second();
      try {
        const chain = fresh();
        await store.load(chain);
        const t1 = makeTurn(chain, EMPTY_HEAD, { intentId: `sw1-${run}` });
        await store.commit(t1.turn);

        const seen = await other.load(chain);
        expect(seen.head).toEqual(t1.head);
        // the first writer appends again; the second one's view is now stale
        const t2 = makeTurn(chain, t1.head, { intentId: `sw2-${run}` });
        await store.commit(t2.turn);
        const t2b = makeTurn(chain, seen.head, { intentId: `sw2b-${run}`, facts: 2 });
        expect(await rejection(other.commit(t2b.turn))).toBeInstanceOf(ConflictError);
        // and the first writer, now stale in turn after the second one reloads and appends
        const reloaded = await other.load(chain);
        expect(reloaded.head).toEqual(t2.head);
        const t3 = makeTurn(chain, reloaded.head, { intentId: `sw3-${run}` });
        await other.commit(t3.turn);
        const t3b = makeTurn(chain, t2.head, { intentId: `sw3b-${run}`, facts: 1 });
        expect(await rejection(store.commit(t3b.turn))).toBeInstanceOf(ConflictError);

        const final = await store.load(chain);
        expect(final.head).toEqual(t3.head);
        expect((await store.chainFacts(chain, 1, 100)).map((f) => f.hash)).toEqual(
          [...t1.turn.facts, ...t2.turn.facts, ...t3.turn.facts].map((f) => f.hash),
        );
        await other.drain();
        await store.drain();
        expect(await store.outcome(`sw2b-${run}`)).toBeUndefined();
        expect(await store.outcome(`sw3b-${run}`)).toBeUndefined();
      } finally {
        await other.close();
      }
    });

    it('50 commits on one chain issued without awaiting in between all land, in order', async () => {
      const chain = fresh();
      await store.load(chain);
      const { turns, head } = makeTurns(chain, EMPTY_HEAD, 50, `pipe-${run}`);
      const settled: number[] = [];
      const commits = turns.map((t, i) => store.commit(t).then(() => settled.push(i)));
      // the head counts turns handed over but not yet durable
      expect(await store.head(chain)).toEqual(head);
      await Promise.all(commits);
      expect(settled).toEqual(turns.map((_, i) => i));
      const loaded = await store.load(chain);
      expect(loaded.head).toEqual(head);
      const facts = await store.chainFacts(chain, 1, 1000);
      expect(facts.map((f) => f.seq)).toEqual(Array.from({ length: 150 }, (_, i) => i + 1));
      expect(facts).toEqual(turns.flatMap((t) => t.facts));
    });

    it('commits on 20 chains in flight at once all land', async () => {
      const chains = Array.from({ length: 20 }, () => fresh('many'));
      await Promise.all(chains.map((c) => store.load(c)));
      const plans = chains.map((c, i) => makeTurns(c, EMPTY_HEAD, 5, `many-${run}-${i}`));
      // round-robin over the chains, nothing awaited until the end
      const commits: Promise<void>[] = [];
      for (let k = 0; k < 5; k++) for (const p of plans) commits.push(store.commit(p.turns[k]!));
      await Promise.all(commits);
      for (const [i, c] of chains.entries()) {
        const loaded = await store.load(c);
        expect(loaded.head).toEqual(plans[i]!.head);
        expect(await store.chainFacts(c, 1, 100)).toEqual(plans[i]!.turns.flatMap((t) => t.facts));
      }
    });

    it('a failed commit makes the later commits of its chain fail, other chains carry on', async () => {
      const chain = fresh();
      const bystander = fresh();
      await store.load(chain);
      await store.load(bystander);
      const t1 = makeTurn(chain, EMPTY_HEAD, { intentId: `ff1-${run}` });
      await store.commit(t1.turn);

      const bad = makeTurn(chain, EMPTY_HEAD, { intentId: `ff2-${run}` }); // stale: refused
      const next = makeTurn(chain, bad.head, { intentId: `ff3-${run}` }); // chained onto the refused one
      const byTurn = makeTurn(bystander, EMPTY_HEAD, { intentId: `ff4-${run}` });
      const pBad = rejection(store.commit(bad.turn));
      const pNext = rejection(store.commit(next.turn));
      const pBy = store.commit(byTurn.turn);
      expect(await pBad).toBeInstanceOf(ConflictError);
      expect(await pNext).toBeInstanceOf(Error);
      await pBy;

      await store.drain();
      expect(await store.outcome(`ff2-${run}`)).toBeUndefined();
      expect(await store.outcome(`ff3-${run}`)).toBeUndefined();
      const loaded = await store.load(chain);
      expect(loaded.head).toEqual(t1.head);
      // the caller reloaded: the chain goes on
      const t2 = makeTurn(chain, loaded.head, { intentId: `ff5-${run}` });
      await store.commit(t2.turn);
      expect((await store.load(chain)).head).toEqual(t2.head);
      expect((await store.load(bystander)).head).toEqual(byTurn.head);
    });

    it('finds the outcome of every committed turn, right after commit resolves and after drain', async () => {
      const chain = fresh();
      const rt = runtimeChain(`rt${run}`);
      await store.load(chain);
      await store.load(rt);
      const a = makeTurns(chain, EMPTY_HEAD, 20, `oc-${run}`);
      const b = makeTurns(rt, EMPTY_HEAD, 10, `ocr-${run}`, { facts: 1 });
      const seen: Array<StoredOutcome | undefined> = [];
      await Promise.all(
        [...a.turns, ...b.turns].map((t) =>
          store.commit(t).then(async () => {
            seen.push(await store.outcome(t.outcome!.intentId));
          }),
        ),
      );
      const expected = [...a.turns, ...b.turns].map((t) => t.outcome!);
      expect(seen).toHaveLength(expected.length);
      for (const o of expected) expect(seen).toContainEqual(o);
      await store.drain();
      for (const o of expected) expect(await store.outcome(o.intentId)).toEqual(o);
      // an id with `:` (ids may hold it)
      const colon = makeTurn(chain, a.head, { intentId: `oc:${run}:colon` });
      await store.commit(colon.turn);
      expect(await store.outcome(`oc:${run}:colon`)).toEqual(colon.turn.outcome);
      expect(await store.outcome(`oc-${run}-nope`)).toBeUndefined();
      if (h.second) {
        const other = await h.second();
        try {
          for (const o of expected) expect(await other.outcome(o.intentId)).toEqual(o);
        } finally {
          await other.close();
        }
      }
    });

    it('keeps pending records: put, then delete', async () => {
      const chain = fresh();
      await store.load(chain);
      const id = `pend-${run}`;
      const rec = pendingOf(chain, id);
      const t1 = makeTurn(chain, EMPTY_HEAD, { intentId: id, outcome: false, pendingPut: rec });
      await store.commit(t1.turn);
      expect(await store.pending(id)).toEqual([rec]);
      expect(await store.pending()).toContainEqual(rec);
      await store.drain();
      expect(await store.pending(id)).toEqual([rec]);
      expect((await store.pending()).filter((p) => p.intentId === id)).toEqual([rec]);

      const t2 = makeTurn(chain, t1.head, { intentId: id, pendingDelete: id });
      await store.commit(t2.turn);
      expect(await store.pending(id)).toEqual([]);
      expect((await store.pending()).filter((p) => p.intentId === id)).toEqual([]);
      await store.drain();
      expect(await store.pending(id)).toEqual([]);
      expect((await store.pending()).filter((p) => p.intentId === id)).toEqual([]);
      expect(await store.outcome(id)).toEqual(t2.turn.outcome);
    });

    it('keeps a pending record whole as approvals rewrite it: requirement, deadline, approvals so far, decision seq', async () => {
      const chain = fresh();
      await store.load(chain);
      const id = `pend-q-${run}`;
      const base: PendingRecord = {
        ...pendingOf(chain, id),
        requirement: { policy: 'two', quorum: 2, approvers: ['human:*', 'group:sre'], ttlMs: 60_000, reason: 'two people' },
        expiresAt: '2026-01-01T00:01:00.000Z',
        approvals: [],
        decisionSeq: 2,
      };
      const t1 = makeTurn(chain, EMPTY_HEAD, { intentId: id, outcome: false, pendingPut: base });
      await store.commit(t1.turn);
      const counted: PendingRecord = { ...base, approvals: [{ by: 'human:alice', at: AT, note: 'ok', seq: 4 }] };
      const t2 = makeTurn(chain, t1.head, { intentId: id, outcome: false, pendingPut: counted });
      await store.commit(t2.turn);
      expect(await store.pending(id)).toEqual([counted]);
      await store.drain();
      expect(await store.pending(id)).toEqual([counted]);
      expect((await store.pending()).filter((p) => p.intentId === id)).toEqual([counted]);
      // a JSON round trip changes nothing (what a restart reads back)
      expect(JSON.parse(JSON.stringify(await store.pending(id)))).toEqual([counted]);
      if (h.second) {
        const other = await h.second();
        try {
          expect(await other.pending(id)).toEqual([counted]);
        } finally {
          await other.close();
        }
      }
    });

    it("an approved intent's final outcome replaces its pending outcome", async () => {
      const chain = fresh();
      await store.load(chain);
      const id = `appr-${run}`;
      const asked = makeTurn(chain, EMPTY_HEAD, { intentId: id, outcome: false, pendingPut: pendingOf(chain, id) });
      asked.turn.outcome = pendingOutcomeOf(chain, id, asked.head.seq);
      const approved = makeTurn(chain, asked.head, { intentId: id, pendingDelete: id });
      // both handed over at once: the later turn's outcome is the one that stays
      await Promise.all([store.commit(asked.turn), store.commit(approved.turn)]);
      expect(await store.outcome(id)).toEqual(approved.turn.outcome);
      await store.drain();
      expect(await store.outcome(id)).toEqual(approved.turn.outcome);
      expect(await store.pending(id)).toEqual([]);
      // a later turn never takes a final outcome back
      const again = makeTurn(chain, approved.head, { intentId: id, outcome: false });
      again.turn.outcome = pendingOutcomeOf(chain, id, again.head.seq);
      await store.commit(again.turn);
      await store.drain();
      expect(await store.outcome(id)).toEqual(approved.turn.outcome);
    });

    it('latestSnapshot is the snapshot of the last committed turn', async () => {
      const chain = fresh();
      expect(await store.latestSnapshot(chain)).toBeUndefined();
      await store.load(chain);
      const { turns } = makeTurns(chain, EMPTY_HEAD, 4, `ls-${run}`);
      for (const t of turns) {
        await store.commit(t);
        expect(await store.latestSnapshot(chain)).toEqual(t.snapshot);
      }
    });

    it('lists actors (not runtime chains) with their state', async () => {
      const a = fresh('idx');
      const b = fresh('idx');
      const rt = runtimeChain(`idx${run}`);
      for (const c of [a, b, rt]) await store.load(c);
      const ta = makeTurns(a, EMPTY_HEAD, 2, `ia-${run}`);
      const tb = makeTurns(b, EMPTY_HEAD, 1, `ib-${run}`);
      const tr = makeTurns(rt, EMPTY_HEAD, 2, `ir-${run}`, { facts: 1 });
      await commitAll([...ta.turns, ...tb.turns, ...tr.turns]);
      await store.drain();
      const rows = await store.actors();
      expect(rows).toContainEqual({ actor: a, kind: 'idx', seq: 6, status: 'active', state: 's6' });
      expect(rows).toContainEqual({ actor: b, kind: 'idx', seq: 3, status: 'active', state: 's3' });
      expect(rows.some((r) => r.actor.startsWith('_runtime/'))).toBe(false);
    });

    it('pages through a chain with chainFacts', async () => {
      const chain = fresh();
      await store.load(chain);
      const { turns } = makeTurns(chain, EMPTY_HEAD, 12, `page-${run}`); // 36 facts
      await commitAll(turns);
      const all = turns.flatMap((t) => t.facts);
      const pages: Fact[][] = [];
      for (let from = 1; ;) {
        const page = await store.chainFacts(chain, from, 7);
        if (page.length === 0) break;
        pages.push(page);
        from = page[page.length - 1]!.seq + 1;
      }
      expect(pages.map((p) => p.length)).toEqual([7, 7, 7, 7, 7, 1]);
      expect(pages.flat()).toEqual(all);
      expect(await store.chainFacts(chain, 20, 3)).toEqual(all.slice(19, 22));
      expect(await store.chainFacts(chain, 37, 10)).toEqual([]);
      expect(await store.chainFacts(fresh(), 1, 10)).toEqual([]);
      await store.drain(); // and once the stored snapshot has moved on
      expect(await store.chainFacts(chain, 2, 4)).toEqual(all.slice(1, 5));
      expect(await store.chainFacts(chain, 35, 10)).toEqual(all.slice(34));
    });

    it('a second claim on a taken position is refused by the storage, or is an orphan every read skips', async (ctx) => {
      if (!h.injectFork) return ctx.skip();
      const chain = fresh();
      await store.load(chain);
      const { turns, head } = makeTurns(chain, EMPTY_HEAD, 3, `fork-${run}`); // seqs 1..9
      await commitAll(turns);
      await store.drain();
      // another history from seq 4 on (onto seq 3), stored after seq 9
      const other = makeFacts(chain, { seq: 3, hash: turns[0]!.facts[2]!.hash }, [{ data: { other: 1 } }, { data: { other: 2 } }]);
      if (h.forkUnstorable) {
        // a second fact at a taken position is refused by the storage itself
        await expect(h.injectFork(chain, other)).rejects.toThrow();
        expect((await store.load(chain)).head.seq).toBe(9);
        return;
      }
      await h.injectFork(chain, other);
      // first at a position wins: the later claimant is an orphan, skipped by every read
      const loaded = await store.load(chain);
      expect(loaded.head).toEqual(head);
      expect((await store.chainFacts(chain, 1, 100)).map((f) => f.hash)).toEqual(turns.flatMap((t) => t.facts.map((f) => f.hash)));
      expect(head.seq).toBe(9);
    });

    it('load detects a gap with JournalBrokenError naming the seq', async (ctx) => {
      if (!h.injectGap) return ctx.skip();
      const chain = fresh();
      await store.load(chain);
      const { turns, head } = makeTurns(chain, EMPTY_HEAD, 2, `gap-${run}`); // seqs 1..6
      await commitAll(turns);
      await store.drain();
      // seq 7 never stored: facts 8, 9 chained onto a seq 7 nobody has
      const missing = makeFacts(chain, head, [{}]);
      const beyond = makeFacts(chain, { seq: 7, hash: missing[0]!.hash }, [{}, {}]);
      await h.injectGap(chain, beyond);
      const e = await rejection(store.load(chain));
      expect(e).toBeInstanceOf(JournalBrokenError);
      expect(e).toMatchObject({ code: 'E_JOURNAL_BROKEN', chain, seq: 7, problem: 'gap' });
    });
  });
}

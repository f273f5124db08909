import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { ConflictError, JournalBrokenError } from '../../src/errors.js';
import { EMPTY_HEAD, runtimeChain, type ChainHead } from '../../src/host/ports.js';
import { JetStreamStore } from '../../src/store/jetstream/index.js';
import { describeOrphan, JetStreamJournalReader } from '../../src/store/jetstream/journal-reader.js';
import { startNatsCluster, startNatsServer, type NatsCluster, type NatsServer } from '../../src/testing/index.js';
import {
  makeFacts,
  makeTurn,
  makeTurns,
  pendingOf,
  pendingOutcomeOf,
  storeContract,
  type StoreHarness,
} from '../helpers/store-contract.js';

const STREAM = 'ICE_JOURNAL';

/** Polls `fn` until it returns something other than undefined (a condition, not a fixed sleep). */
async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      if (e instanceof JournalBrokenError) throw e; // never a passing condition
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function consumersOn(jsm: JetStreamManager, stream: string): Promise<string[]> {
  const out: string[] = [];
  for await (const c of jsm.consumers.list(stream)) out.push(c.name);
  return out;
}

function harness(urls: () => string | string[], replicas: number): () => Promise<StoreHarness> {
  return async () => {
    const conns: NatsConnection[] = [];
    const conn = async () => {
      const nc = await connect({ servers: urls() });
      conns.push(nc);
      return nc;
    };
    const store = await JetStreamStore.open(await conn(), { replicas });
    const raw = async (chain: string, facts: unknown[]) => {
      await store.unsafePublishRaw(chain, { v: 1, chain, facts });
    };
    return {
      store,
      second: async () => JetStreamStore.open(await conn(), { replicas }),
      injectFork: raw,
      injectGap: raw,
      cleanup: async () => {
        await store.close();
        for (const nc of conns) await nc.close();
      },
    };
  };
}

/** JetStream-specific cases that hold on one server and on a cluster alike. */
function jetstreamCases(env: () => { nc: NatsConnection; jsm: JetStreamManager; urls: string | string[] }, replicas: number): void {
  it('refuses a stale writer after another writer appended, through the stream fence', async () => {
    const { nc, jsm, urls } = env();
    const nc2 = await connect({ servers: urls });
    const a = await JetStreamStore.open(nc, { replicas });
    const b = await JetStreamStore.open(nc2, { replicas });
    try {
      const chain = 'fence/stale1';
      await a.load(chain);
      const t1 = makeTurn(chain, EMPTY_HEAD, { intentId: 'stale1-1' });
      await a.commit(t1.turn);
      const seenByB = await b.load(chain);
      // A appends; B's in-memory head still matches its own turn's `after`, so only the
      // expected-last-sequence check of JetStream can refuse it
      const t2 = makeTurn(chain, t1.head, { intentId: 'stale1-2' });
      await a.commit(t2.turn);
      const before = (await jsm.streams.info(STREAM)).state.messages;
      const t2b = makeTurn(chain, seenByB.head, { intentId: 'stale1-2b', facts: 1 });
      await expect(b.commit(t2b.turn)).rejects.toBeInstanceOf(ConflictError);
      expect((await jsm.streams.info(STREAM)).state.messages).toBe(before);
      // a store that never loaded the chain reads its end itself and refuses a stale turn too
      const c = await JetStreamStore.open(nc2, { replicas });
      try {
        await expect(c.commit(makeTurn(chain, t1.head, { intentId: 'stale1-2c' }).turn)).rejects.toBeInstanceOf(ConflictError);
        const t3 = makeTurn(chain, t2.head, { intentId: 'stale1-3' });
        await c.commit(t3.turn);
        expect((await a.load(chain)).head).toEqual(t3.head);
      } finally {
        await c.close();
      }
      await b.drain();
      expect(await a.outcome('stale1-2b')).toBeUndefined();
      expect(await a.outcome('stale1-2c')).toBeUndefined();
    } finally {
      await a.close();
      await b.close();
      await nc2.close();
    }
  });

  it('restores outcomes whose derived write was lost: the turn lies after the recorded snapshot', async () => {
    const { nc } = env();
    const chain = 'derived/lost1';
    const a = await JetStreamStore.open(nc, { replicas });
    const { turns, head } = makeTurns(chain, EMPTY_HEAD, 3, 'lost1');
    await a.load(chain);
    for (const t of turns) await a.commit(t);
    await a.drain();
    // a turn acknowledged in the journal whose writer died before any derived write: exactly
    // what the message of a commit leaves behind
    const t4 = makeTurn(chain, head, {
      intentId: 'lost1-3',
      pendingPut: { intentId: 'lost1-p', actor: chain, intent: {}, decision: {}, createdAt: '2025-01-01T00:00:00.000Z' },
    });
    await a.unsafePublishRaw(chain, { v: 1, ...t4.turn, after: undefined });
    await a.close();

    const b = await JetStreamStore.open(nc, { replicas });
    try {
      expect(await b.outcome('lost1-3')).toBeUndefined();
      expect(await b.pending('lost1-p')).toEqual([]);
      const loaded = await b.load(chain);
      expect(loaded.head).toEqual(t4.head);
      expect(loaded.snapshot).toEqual(t4.turn.snapshot);
      expect(await b.outcome('lost1-3')).toEqual(t4.turn.outcome);
      expect(await b.pending('lost1-p')).toEqual([t4.turn.pendingPut]);
      for (const t of turns) expect(await b.outcome(t.outcome!.intentId)).toEqual(t.outcome);
    } finally {
      await b.close();
    }
  });

  it('a replay restores the final outcome of an approved intent, never its pending one', async () => {
    const { nc } = env();
    const chain = 'derived/appr1';
    const a = await JetStreamStore.open(nc, { replicas });
    const b = await JetStreamStore.open(nc, { replicas });
    try {
      await a.load(chain);
      const t1 = makeTurn(chain, EMPTY_HEAD, { intentId: 'appr1-0' });
      await a.commit(t1.turn);
      await a.drain();
      // two turns whose derived writes never happened: the intent asked, then approved
      const asked = makeTurn(chain, t1.head, { intentId: 'appr1', outcome: false, pendingPut: pendingOf(chain, 'appr1') });
      asked.turn.outcome = pendingOutcomeOf(chain, 'appr1', asked.head.seq);
      const approved = makeTurn(chain, asked.head, { intentId: 'appr1', pendingDelete: 'appr1' });
      await a.unsafePublishRaw(chain, { v: 1, ...asked.turn, after: undefined });
      await a.unsafePublishRaw(chain, { v: 1, ...approved.turn, after: undefined });
      expect(await b.outcome('appr1')).toBeUndefined();
      expect((await b.load(chain)).head).toEqual(approved.head);
      expect(await b.outcome('appr1')).toEqual(approved.turn.outcome);
      expect(await b.pending('appr1')).toEqual([]);
      // a stale writer's late pending outcome does not take it back either
      const c = await JetStreamStore.open(nc, { replicas });
      try {
        expect((await c.load(chain)).head).toEqual(approved.head);
        expect(await c.outcome('appr1')).toEqual(approved.turn.outcome);
      } finally {
        await c.close();
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('deduplicates a retried publish of the same turn and counts it as committed', async () => {
    const { nc, jsm } = env();
    const a = await JetStreamStore.open(nc, { replicas });
    const b = await JetStreamStore.open(nc, { replicas });
    try {
      const chain = 'dedupe/r1';
      await a.load(chain);
      await b.load(chain);
      // A publishes the turn; B publishes the very same turn with the same expectation, as a
      // retry after a lost ack does: one message, and both commits resolve
      const t1 = makeTurn(chain, EMPTY_HEAD, { intentId: 'r1-1' });
      await a.commit(t1.turn);
      const before = (await jsm.streams.info(STREAM)).state.messages;
      await b.commit(t1.turn);
      expect((await jsm.streams.info(STREAM)).state.messages).toBe(before);
      // B's position is that message: it goes on from there
      const t2 = makeTurn(chain, t1.head, { intentId: 'r1-2' });
      await b.commit(t2.turn);
      // the same position with other content is another writer: refused
      const t2x = makeTurn(chain, t1.head, { intentId: 'r1-2x', facts: 2 });
      await expect(a.commit(t2x.turn)).rejects.toBeInstanceOf(ConflictError);
      expect((await a.load(chain)).head).toEqual(t2.head);
      expect(await a.chainFacts(chain, 1, 100)).toEqual([...t1.turn.facts, ...t2.turn.facts]);
    } finally {
      await a.close();
      await b.close();
    }
  });
  it('leaves no consumers behind after many loads and page reads', async () => {
    const { nc, jsm } = env();
    const store = await JetStreamStore.open(nc, { replicas });
    try {
      const rt = runtimeChain('leak1'); // no snapshots: every load reads the whole chain
      await store.load(rt);
      const { turns } = makeTurns(rt, EMPTY_HEAD, 40, 'leak1', { facts: 1 });
      await Promise.all(turns.map((t) => store.commit(t)));
      const actor = 'leak/a1';
      await store.load(actor);
      const a = makeTurns(actor, EMPTY_HEAD, 30, 'leak1a');
      await Promise.all(a.turns.map((t) => store.commit(t)));
      for (let i = 0; i < 25; i++) {
        const fresh = await JetStreamStore.open(nc, { replicas });
        try {
          expect((await fresh.load(rt)).facts).toHaveLength(40);
          expect(await fresh.chainFacts(actor, 1 + i, 20)).toHaveLength(20);
          await fresh.actors();
          await fresh.pending();
        } finally {
          await fresh.close();
        }
      }
      for (const stream of [STREAM, 'KV_ICE_SNAPSHOTS', 'KV_ICE_PENDING']) {
        await until(`no consumers on ${stream}`, async () => ((await consumersOn(jsm, stream)).length === 0 ? true : undefined));
      }
    } finally {
      await store.close();
    }
  });
}

describe('JetStreamStore on one nats-server', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
    jsm = await jetstreamManager(nc);
  });
  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  storeContract(
    'JetStream, one server',
    harness(() => server.url, 1),
  );
  jetstreamCases(() => ({ nc, jsm, urls: server.url }), 1);

  it('creates the stream and buckets as specified', async () => {
    const store = await JetStreamStore.open(nc);
    try {
      expect(store.kind).toBe('jetstream');
      const si = await jsm.streams.info(STREAM);
      expect(si.config).toMatchObject({ subjects: ['ice.journal.>'], allow_direct: false, duplicate_window: 600_000_000_000 });
      for (const b of ['ICE_SNAPSHOTS', 'ICE_OUTCOMES', 'ICE_PENDING']) {
        const bi = await jsm.streams.info(`KV_${b}`);
        expect(bi.config).toMatchObject({ max_msgs_per_subject: 1, allow_direct: false });
      }
    } finally {
      await store.close();
    }
  });

  it('reads a whole chain by gets when the stream refuses a read consumer', async () => {
    // A consumer is only the faster way to read past the first gets; the stream here allows one
    // consumer and a durable holds it, as when the meta leader cannot create one (it is electing).
    const stream = 'ICE_NOCONS';
    await jsm.streams.add({ name: stream, subjects: ['nocons.>'], max_consumers: 1, allow_direct: false });
    await jsm.consumers.add(stream, { durable_name: 'holder', ack_policy: AckPolicy.Explicit });
    const store = await JetStreamStore.open(nc, { stream, prefix: 'nocons' });
    try {
      const chain = 'nocons/c1';
      await store.load(chain);
      const { turns, head } = makeTurns(chain, EMPTY_HEAD, 70, 'nocons1', { facts: 1 });
      for (const t of turns) await store.commit(t);
      await store.drain();
      const fresh = await JetStreamStore.open(nc, { stream, prefix: 'nocons' });
      try {
        const loaded = await fresh.load(chain);
        expect(loaded.head).toEqual(head);
        expect((await fresh.chainFacts(chain, 1, 1000)).map((f) => f.seq)).toEqual(Array.from({ length: 70 }, (_, i) => i + 1));
        expect((await fresh.chainFacts(chain, 5, 60)).map((f) => f.seq)).toEqual(Array.from({ length: 60 }, (_, i) => i + 5));
      } finally {
        await fresh.close();
      }
      expect(await consumersOn(jsm, stream)).toEqual(['holder']);
    } finally {
      await store.close();
      await jsm.streams.delete(stream);
    }
  });

  it('restores outcomes when the connection dies right after commit resolves', async () => {
    const chain = 'derived/cut1';
    const nc2 = await connect({ servers: server.url });
    const a = await JetStreamStore.open(nc2);
    await a.load(chain);
    const { turns, head } = makeTurns(chain, EMPTY_HEAD, 5, 'cut1');
    for (const t of turns.slice(0, 4)) await a.commit(t);
    await a.drain();
    await a.commit(turns[4]!);
    void nc2.close(); // in the same tick: the derived writes of the last turn race the close
    await a.close(); // must not hang on writes that can no longer succeed
    const b = await JetStreamStore.open(nc);
    try {
      // the invariant, before any repair: an outcome is stored or its turn lies after the record
      const rec = await (await new Kvm(nc).open('ICE_SNAPSHOTS')).get('derived.cut1');
      const recordedSeq = rec ? rec.json<{ seq: number }>().seq : 0;
      for (const t of turns) {
        const stored = await b.outcome(t.outcome!.intentId);
        if (!stored) expect(t.facts[0]!.seq).toBeGreaterThan(recordedSeq);
      }
      const loaded = await b.load(chain);
      expect(loaded.head).toEqual(head);
      for (const t of turns) expect(await b.outcome(t.outcome!.intentId)).toEqual(t.outcome);
    } finally {
      await b.close();
    }
  });

  it('treats a recorded snapshot that does not match the journal as absent, and one ahead of the stream as a gap', async () => {
    const store = await JetStreamStore.open(nc);
    const kv = await new Kvm(nc).open('ICE_SNAPSHOTS');
    try {
      const chain = 'cache/bad1';
      await store.load(chain);
      const { turns, head } = makeTurns(chain, EMPTY_HEAD, 3, 'bad1');
      for (const t of turns) await store.commit(t);
      await store.drain();
      const good = (await kv.get('cache.bad1'))!.json<{ seq: number; hash: string; streamSeq: number }>();
      expect(good).toMatchObject({ seq: 9, hash: head.hash });
      // a record whose hash is not the journal's: replay from the start (all facts check out)
      await kv.put('cache.bad1', JSON.stringify({ ...turns[1]!.snapshot, hash: 'x'.repeat(64), streamSeq: good.streamSeq - 1 }));
      const fresh = await JetStreamStore.open(nc);
      try {
        const loaded = await fresh.load(chain);
        expect(loaded.head).toEqual(head);
        expect(loaded.snapshot).toEqual(turns[2]!.snapshot);
        // a record ahead of the stream: acknowledged messages were lost
        await kv.put('cache.bad1', JSON.stringify({ ...turns[2]!.snapshot, seq: 12, hash: 'y'.repeat(64), streamSeq: 1_000_000 }));
        const e = await fresh.load(chain).catch((x: unknown) => x);
        expect(e).toBeInstanceOf(JournalBrokenError);
        expect(e).toMatchObject({ problem: 'gap', seq: 10 });
      } finally {
        await fresh.close();
      }
    } finally {
      await store.close();
    }
  });
});

describe('JetStreamStore on a 3-node cluster (R3)', () => {
  let cluster: NatsCluster;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  beforeAll(async () => {
    cluster = await startNatsCluster(3);
    nc = await connect({ servers: cluster.urls });
    jsm = await jetstreamManager(nc);
  });
  afterAll(async () => {
    await nc?.close();
    await cluster?.stopAll();
  });

  storeContract(
    'JetStream, 3 servers, R3',
    harness(() => cluster.urls, 3),
  );
  jetstreamCases(() => ({ nc, jsm, urls: cluster.urls }), 3);

  it('keeps committing after SIGKILL of the stream leader', async () => {
    const store = await JetStreamStore.open(nc, { replicas: 3 });
    try {
      const chain = 'sigkill/k1';
      let head: ChainHead = (await store.load(chain)).head;
      const acked: string[] = []; // first-fact hash of every acknowledged turn
      const commitOne = async (i: number) => {
        const t = makeTurn(chain, head, { intentId: `k1-${i}` });
        await store.commit(t.turn);
        head = t.head;
        acked.push(t.turn.facts[0]!.hash);
      };
      for (let i = 0; i < 10; i++) await commitOne(i);

      const leaderName = (await jsm.streams.info(STREAM)).cluster?.leader;
      const victim = cluster.servers.find((s) => s.serverName === leaderName);
      expect(victim).toBeDefined();
      await victim!.kill('SIGKILL');

      // the stream elects a new leader; a failed commit is followed by a reload, as the Host does
      for (let i = 10; i < 20; i++) {
        await until(
          `commit ${i}`,
          async () => {
            try {
              await commitOne(i);
              return true;
            } catch {
              head = (await store.load(chain)).head;
              return undefined;
            }
          },
          60_000,
        );
      }
      const leader = await until('a new stream leader', async () => {
        const l = (await jsm.streams.info(STREAM)).cluster?.leader;
        return l && l !== leaderName ? l : undefined;
      });
      expect(leader).not.toBe(leaderName);

      const loaded = await store.load(chain);
      expect(loaded.head).toEqual(head);
      const facts = await store.chainFacts(chain, 1, 1000);
      expect(facts.map((f) => f.seq)).toEqual(Array.from({ length: facts.length }, (_, i) => i + 1));
      const firsts = new Set(facts.map((f) => f.hash));
      for (const h of acked) expect(firsts.has(h)).toBe(true);
      await store.drain();
      for (let i = 0; i < 20; i++) expect(await store.outcome(`k1-${i}`)).toBeDefined();

      await victim!.restart();
      // a fresh store (a node starting while the streams elect leaders again) reads the same chain
      const reloaded = await until('a fresh store to load the chain', async () => {
        const fresh = await JetStreamStore.open(nc, { replicas: 3 });
        try {
          return (await fresh.load(chain)).head;
        } finally {
          await fresh.close();
        }
      });
      expect(reloaded).toEqual(head);
    } finally {
      await store.close();
    }
  });
});

describe('JetStreamJournalReader.verify names what an orphan is', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  beforeAll(async () => {
    server = await startNatsServer(); // a stream of its own: verify reads all of it
    nc = await connect({ servers: server.url });
  });
  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  it('a byte-identical copy of the holder, the same facts in another message, another writer’s turn', async () => {
    const store = await JetStreamStore.open(nc);
    try {
      const chain = 'orphan/o1';
      const subject = 'ice.journal.orphan.o1';
      await store.load(chain);
      const { turns, head } = makeTurns(chain, EMPTY_HEAD, 3, 'o1'); // seqs 1..9, three facts a turn
      for (const t of turns) await store.commit(t);
      await store.drain();
      const jsm = await jetstreamManager(nc);
      const js = jetstream(nc);
      const holder = await jsm.streams.getMessage(STREAM, { seq: 1, next_by_subj: subject } as never);
      // the turn holding seqs 4..6: the second message of the chain
      const second = await jsm.streams.getMessage(STREAM, { seq: holder!.seq + 1, next_by_subj: subject } as never);
      const copy = (await js.publish(subject, second!.data)).seq; // stored twice, byte for byte
      const sameFacts = await store.unsafePublishRaw(chain, { v: 1, chain, facts: turns[1]!.facts });
      const other = makeFacts(chain, { seq: 3, hash: turns[0]!.facts[2]!.hash }, [{ data: { other: 1 } }]);
      const otherPos = await store.unsafePublishRaw(chain, { v: 1, chain, facts: other });
      const v = await new JetStreamJournalReader(nc, store).verify();
      expect(v).toMatchObject({ ok: true, count: 9, chains: 1 });
      expect(v.orphans).toEqual([
        { chain, seq: 4, pos: copy, heldBy: second!.seq, kind: 'copy' },
        { chain, seq: 4, pos: sameFacts, heldBy: second!.seq, kind: 'same-facts' },
        { chain, seq: 4, pos: otherPos, heldBy: second!.seq, kind: 'other-writer' },
      ]);
      expect(v.orphans!.map((o) => describeOrphan(o))).toEqual([
        `an orphan: a byte-identical copy of stream message ${second!.seq}, the server stored one append twice`,
        `an orphan: the same facts as stream message ${second!.seq} in another message`,
        `an orphan: another writer's turn; stream message ${second!.seq} holds the position`,
      ]);
      expect((await store.load(chain)).head).toEqual(head); // first at a position wins
    } finally {
      await store.close();
    }
  });
});

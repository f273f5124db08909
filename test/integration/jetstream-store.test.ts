import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError, ManualClock, type Fact, type SnapshotRecord } from '../../src/index.js';
import { ActorLog, LeaseManager } from '../../src/store/jetstream/index.js';
import { NatsTransport } from '../../src/transport/index.js';
import { startNatsCluster, startNatsServer, type NatsCluster, type NatsServer } from '../../src/testing/index.js';

function fact(actor: string, seq: number, type: Fact['type'] = 'transition'): Fact {
  return {
    v: 1,
    seq,
    at: new Date(0).toISOString(),
    type,
    origin: 'runtime',
    actor,
    causes: [],
    data: { n: seq },
    prev: '',
    hash: `h${seq}`,
  };
}

function snap(actor: string, seq: number, state: string): SnapshotRecord {
  return {
    v: 1,
    actor,
    kind: 'deployment',
    seq,
    status: 'active',
    state,
    snapshot: { value: state },
    updatedAt: new Date(0).toISOString(),
  };
}

describe('JetStream actor log and leases (one nats-server)', () => {
  let server: NatsServer;
  let t: NatsTransport;
  beforeAll(async () => {
    server = await startNatsServer({ jetstream: true });
    t = await NatsTransport.connect({ servers: server.url });
  });
  afterAll(async () => {
    await t?.close();
    await server?.stop();
  });

  it('appends an actor journal that two writers cannot fork, and dedupes a retried append', async () => {
    const log = await ActorLog.open(t.connection);
    const a = 'deployment/fork';
    expect(await log.lastSeq(a)).toBe(0);
    const r1 = await log.append(a, [fact(a, 1), fact(a, 2)], 0);
    const r2 = await log.append(a, [fact(a, 3)], r1.subjectSeq);
    // a second writer that read the journal at r1 appends with a stale expectation
    await expect(log.append(a, [{ ...fact(a, 3, 'intent.failed'), hash: 'another-commit' }], r1.subjectSeq)).rejects.toBeInstanceOf(
      ConflictError,
    );
    // the same commit published again (a retry after a lost ack) is a duplicate, not a new entry
    const again = await log.append(a, [fact(a, 3)], r1.subjectSeq);
    expect(again.duplicate).toBe(true);
    const read = await log.read(a);
    expect(read.map((m) => m.facts.map((f) => f.seq))).toEqual([[1, 2], [3]]);
    expect(read.at(-1)!.facts[0]!.type).toBe('transition');
    expect(await log.lastSeq(a)).toBe(r2.subjectSeq);
    expect((await log.read(a, r1.subjectSeq)).map((m) => m.streamSeq)).toEqual([r2.subjectSeq]);
  });

  it('refuses a stale snapshot write by revision', async () => {
    const log = await ActorLog.open(t.connection);
    const a = 'deployment/fence';
    const rev1 = await log.putSnapshot(snap(a, 1, 'draft'), 0);
    await expect(log.putSnapshot(snap(a, 1, 'draft'), 0)).rejects.toBeInstanceOf(ConflictError);
    const rev2 = await log.putSnapshot(snap(a, 4, 'in_review'), rev1);
    await expect(log.putSnapshot(snap(a, 3, 'STALE'), rev1)).rejects.toBeInstanceOf(ConflictError);
    const stored = await log.snapshot(a);
    expect(stored).toEqual({ record: snap(a, 4, 'in_review'), revision: rev2 });
  });

  it('gives a lease to one node, hands it over after expiry, and tells the stale holder', async () => {
    const clock = new ManualClock();
    const lost: Array<[string, string | undefined]> = [];
    const a = await LeaseManager.open(t.connection, { node: 'a', ttlMs: 1000, clock, onLost: (k, h) => lost.push([k, h]) });
    const b = await LeaseManager.open(t.connection, { node: 'b', ttlMs: 1000, clock });
    try {
      expect(await a.acquire('deployment.web')).toBe(true);
      expect(await b.acquire('deployment.web')).toBe(false);
      expect(await a.acquire('deployment.web')).toBe(true); // re-acquiring one's own lease renews it
      await a.close(); // a stops renewing: paused, partitioned or dead
      clock.advance(999);
      expect(await b.acquire('deployment.web')).toBe(false);
      clock.advance(2);
      expect(await b.acquire('deployment.web')).toBe(true);
      expect((await b.holder('deployment.web'))!.node).toBe('b');
      // a wakes up and renews: the CAS on its old revision fails, it learns it lost the lease
      await a.renewAll();
      expect(a.holds('deployment.web')).toBe(false);
      expect(lost).toEqual([['deployment.web', 'b']]);
      // release by a stale holder never deletes the successor's record
      await a.release('deployment.web');
      expect((await b.holder('deployment.web'))!.node).toBe('b');
      await b.release('deployment.web');
      expect(await b.holder('deployment.web')).toBeUndefined();
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('two nodes racing for a free lease: exactly one wins', async () => {
    const clock = new ManualClock();
    const nodes = await Promise.all(['n1', 'n2', 'n3', 'n4'].map((node) => LeaseManager.open(t.connection, { node, ttlMs: 5000, clock })));
    try {
      const wins = await Promise.all(nodes.map((n) => n.acquire('run.race')));
      expect(wins.filter(Boolean)).toHaveLength(1);
    } finally {
      for (const n of nodes) await n.close();
    }
  });
});

describe('JetStream actor log on a 3-node cluster (R3)', () => {
  let cluster: NatsCluster;
  let t: NatsTransport;
  beforeAll(async () => {
    cluster = await startNatsCluster(3);
    t = await NatsTransport.connect({ servers: cluster.urls });
  });
  afterAll(async () => {
    await t?.close();
    await cluster?.stopAll();
  });

  it('keeps an actor journal with 3 replicas through the loss of one server', async () => {
    const log = await ActorLog.open(t.connection, { replicas: 3 });
    const a = 'deployment/r3';
    let last = 0;
    for (let i = 1; i <= 10; i++) last = (await log.append(a, [fact(a, i)], last)).subjectSeq;
    const victim = cluster.servers.find((s) => !t.connection.info || s.port !== t.connection.info.port) ?? cluster.servers[2]!;
    await victim.kill('SIGKILL');
    for (let i = 11; i <= 15; i++) {
      // the stream may briefly elect a new leader; retry the same commit with the same expectation
      for (let attempt = 0; ; attempt++) {
        try {
          last = (await log.append(a, [fact(a, i)], last)).subjectSeq;
          break;
        } catch (e) {
          if (e instanceof ConflictError || attempt > 40) throw e;
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    }
    await victim.restart();
    // right after a restart the stream may be electing a leader: reads time out and are retried
    let read: Awaited<ReturnType<ActorLog['read']>> = [];
    for (let attempt = 0; ; attempt++) {
      try {
        read = await log.read(a);
        break;
      } catch (e) {
        if (attempt > 40) throw e;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    expect(read.map((m) => m.facts[0]!.seq)).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kvm } from '@nats-io/kv';
import { assign, setup } from 'xstate';
import { z } from 'zod';
import { ManualClock, defineActor, type Fact, type IntentInput, type Outcome } from '../../src/index.js';
import { startClusterNode, verifyActorChain, type ClusterNode } from '../../src/cluster/index.js';
import { NatsTransport } from '../../src/transport/index.js';
import { startNatsCluster, type NatsCluster } from '../../src/testing/index.js';

const counterMachine = setup({
  types: {
    context: {} as { n: number },
    events: {} as { type: 'INC'; by: number } | { type: 'CLOSE' },
    input: {} as { start?: number } | undefined,
  },
}).createMachine({
  id: 'counter',
  initial: 'open',
  context: ({ input }) => ({ n: input?.start ?? 0 }),
  states: {
    open: {
      on: {
        INC: { actions: assign({ n: ({ context, event }) => context.n + event.by }) },
        CLOSE: 'closed',
      },
    },
    closed: {},
  },
});

const counterActor = defineActor({
  kind: 'counter',
  machine: counterMachine,
  events: { INC: z.strictObject({ by: z.int() }), CLOSE: z.strictObject({}) },
  input: z.strictObject({ start: z.int().optional() }).optional(),
});

const PROPOSER = 'agent:tester';
const inc = (id: string, target: string, by: number): IntentInput => ({ id, proposer: PROPOSER, target, action: 'INC', params: { by } });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Reads the stored snapshot until it shows `seq` (the write may still be on its way). */
async function snapshotAt(node: ClusterNode, actor: string, seq: number) {
  for (let i = 0; i < 100; i++) {
    const s = await node.log.snapshot(actor);
    if (s && s.record.seq === seq) return s;
    await sleep(20);
  }
  throw new Error(`snapshot of ${actor} never showed seq ${seq}`);
}

async function journal(node: ClusterNode, actor: string): Promise<Fact[][]> {
  return (await node.log.read(actor)).map((c) => c.facts);
}

describe('cluster nodes on a 3-server NATS cluster (R3)', () => {
  let cluster: NatsCluster;
  let client: NatsTransport;
  const nodes: ClusterNode[] = [];
  const start = async (o: Omit<Parameters<typeof startClusterNode>[0], 'servers' | 'actors' | 'replicas'>) => {
    const n = await startClusterNode({ servers: cluster.urls, actors: [counterActor], replicas: 3, ...o });
    nodes.push(n);
    return n;
  };

  beforeAll(async () => {
    cluster = await startNatsCluster(3);
    client = await NatsTransport.connect({ servers: cluster.urls });
  });
  afterAll(async () => {
    for (const n of nodes) await n.stop().catch(() => {});
    await client?.close();
    await cluster?.stopAll();
  });

  it('any node accepts: spawn on A, propose via B, journal and outcome are shared', async () => {
    const a = await start({ node: 'a', leaseTtlMs: 3000 });
    const b = await start({ node: 'b', leaseTtlMs: 3000 });
    try {
      const g = await a.grants.issue({ subject: PROPOSER, scope: 'counter/*:*' });
      await b.grants.waitFor(g.id);
      const spawned = await a.spawn('counter/a1', { start: 0 });
      expect(spawned).toMatchObject({ state: 'open', seq: 1, status: 'active' });

      // B's intake takes it; A holds the lease, so B forwards to ice.node.a.intent
      const out = await b.accept(inc('i-a1-1', 'counter/a1', 2));
      expect(out).toMatchObject({ status: 'executed', from: 'open', to: 'open', seq: 4, grantId: g.id });
      expect(a.actor('counter/a1')?.context).toEqual({ n: 2 });
      expect(b.actor('counter/a1')).toBeUndefined();

      // a client request over NATS lands on either node's intake (queue group ice.intake)
      const raw = (await client.request('ice.intent.counter.a1', inc('i-a1-2', 'counter/a1', 3), { timeoutMs: 10_000 })).data as Outcome;
      expect(raw).toMatchObject({ status: 'executed', seq: 7 });
      expect(await b.propose(inc('i-a1-3', 'counter/a1', 5))).toMatchObject({ status: 'executed', seq: 10 });
      expect(a.actor('counter/a1')?.context).toEqual({ n: 10 });

      const facts = await journal(a, 'counter/a1');
      expect(facts.map((c) => c.map((f) => f.type))).toEqual([
        ['actor.started'],
        ['intent.proposed', 'decision', 'transition'],
        ['intent.proposed', 'decision', 'transition'],
        ['intent.proposed', 'decision', 'transition'],
      ]);
      expect(verifyActorChain(facts.flat())).toEqual({ ok: true });

      // the same id again, through the other node: the stored outcome, not a second execution
      expect(await a.accept(inc('i-a1-1', 'counter/a1', 2))).toEqual(out);
      expect(await b.propose(inc('i-a1-1', 'counter/a1', 2))).toEqual(out);
      // the same id with other content is refused
      expect(await b.accept(inc('i-a1-1', 'counter/a1', 99))).toMatchObject({
        status: 'rejected',
        issues: [{ code: 'idempotency_conflict' }],
      });
      expect((await journal(a, 'counter/a1')).length).toBe(4);
      expect(a.actor('counter/a1')?.context).toEqual({ n: 10 });

      // no grant: denied (and recorded on the actor's chain)
      expect(await b.accept({ ...inc('i-a1-4', 'counter/a1', 1), proposer: 'agent:stranger' })).toMatchObject({ status: 'denied' });
      const after = (await journal(a, 'counter/a1')).flat();
      expect(after.at(-1)?.type).toBe('decision');
      expect(verifyActorChain(after)).toEqual({ ok: true });
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it('passivation: an idle actor leaves memory and its lease; any node re-activates it with its state', async () => {
    const pa = await start({ node: 'pa', passivateAfterMs: 0 });
    const pb = await start({ node: 'pb', passivateAfterMs: 0 });
    try {
      const g = await pa.grants.issue({ subject: PROPOSER, scope: 'counter/p*:*' });
      await pb.grants.waitFor(g.id);
      await pa.spawn('counter/p1');
      expect(await pa.accept(inc('i-p1-1', 'counter/p1', 5))).toMatchObject({ status: 'executed' });
      expect(pa.actor('counter/p1')).toBeDefined();
      expect(await pa.passivateIdle(0)).toBe(1);
      expect(pa.actor('counter/p1')).toBeUndefined();
      expect(await pa.leases.holder('counter.p1')).toBeUndefined();
      expect(await pb.accept(inc('i-p1-2', 'counter/p1', 2))).toMatchObject({ status: 'executed' });
      expect(pb.actor('counter/p1')).toMatchObject({ context: { n: 7 } });
      expect((await pb.leases.holder('counter.p1'))?.node).toBe('pb');
      expect(verifyActorChain((await journal(pb, 'counter/p1')).flat())).toEqual({ ok: true });
    } finally {
      await pa.stop();
      await pb.stop();
    }
  });

  it('failover: after the owner dies, another node serves its actor once the lease expires', async () => {
    const fa = await start({ node: 'fa', leaseTtlMs: 1500 });
    const fb = await start({ node: 'fb', leaseTtlMs: 1500 });
    try {
      const g = await fa.grants.issue({ subject: PROPOSER, scope: 'counter/f*:*' });
      await fb.grants.waitFor(g.id);
      await fa.spawn('counter/f1');
      expect(await fa.accept(inc('i-f1-1', 'counter/f1', 1))).toMatchObject({ status: 'executed', seq: 4 });

      await fa.stop({ release: false }); // dies: no renewal, no release, connection closed
      const t0 = Date.now();
      let out: Outcome | undefined;
      let attempts = 0;
      for (; Date.now() - t0 < 10_000; attempts++) {
        out = await fb.accept(inc('i-f1-2', 'counter/f1', 10));
        if (out.status !== 'failed') break;
        expect(out.error.code).toBe('E_OWNER_UNREACHABLE');
        await sleep(50);
      }
      const failoverMs = Date.now() - t0;
      console.log(
        `[cluster] failover: first intent executed on fb ${failoverMs} ms after fa died (${attempts} retries, lease ttl 1500 ms)`,
      );
      expect(out).toMatchObject({ status: 'executed', seq: 7 });
      expect(fb.actor('counter/f1')).toMatchObject({ context: { n: 11 }, seq: 7 });
      expect((await fb.leases.holder('counter.f1'))?.node).toBe('fb');
      const facts = (await journal(fb, 'counter/f1')).flat();
      expect(facts.map((f) => f.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
      expect(verifyActorChain(facts)).toEqual({ ok: true });
    } finally {
      await fb.stop();
    }
  });

  it('fencing: a node whose lease was taken over cannot append; the journal does not fork', async () => {
    const clock = new ManualClock(Date.now());
    // ca never renews (a paused process); both nodes share one manual clock
    const ca = await start({ node: 'ca', leaseTtlMs: 1000, leaseRenewEveryMs: 1e9, clock });
    const cb = await start({ node: 'cb', leaseTtlMs: 1000, clock });
    try {
      const g = await ca.grants.issue({ subject: PROPOSER, scope: 'counter/c*:*' });
      await cb.grants.waitFor(g.id);
      await ca.spawn('counter/c1');
      expect(await ca.accept(inc('i-c1-1', 'counter/c1', 1))).toMatchObject({ status: 'executed', seq: 4 });

      clock.advance(1500); // ca's lease has expired; ca has not noticed
      expect(await cb.accept(inc('i-c1-2', 'counter/c1', 10))).toMatchObject({ status: 'executed', seq: 7 });
      expect(cb.actor('counter/c1')?.context).toEqual({ n: 11 });

      // ca still holds the actor in memory and believes it holds the lease
      expect(ca.actor('counter/c1')?.context).toEqual({ n: 1 });
      expect(ca.leases.holds('counter.c1')).toBe(true);
      // it executes on its stale state: the append is refused by the subject sequence
      const refused = await client.request('ice.node.ca.intent', inc('i-c1-3', 'counter/c1', 100), { timeoutMs: 10_000 });
      expect(refused.data).toMatchObject({ status: 'failed', error: { code: 'E_NOT_OWNER' } });
      expect(ca.actor('counter/c1')).toBeUndefined(); // dropped from memory

      const facts = (await journal(cb, 'counter/c1')).flat();
      expect(facts.map((f) => f.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
      expect(facts.some((f) => f.intentId === 'i-c1-3')).toBe(false);
      expect(verifyActorChain(facts)).toEqual({ ok: true });

      // E_NOT_OWNER is retryable with the same id: the real owner executes it
      expect(await ca.accept(inc('i-c1-3', 'counter/c1', 100))).toMatchObject({ status: 'executed', seq: 10 });
      expect(cb.actor('counter/c1')?.context).toEqual({ n: 111 });
      expect(verifyActorChain((await journal(cb, 'counter/c1')).flat())).toEqual({ ok: true });
    } finally {
      await ca.stop();
      await cb.stop();
    }
  });

  it('activation replays the journal after the snapshot: a commit whose snapshot and outcome were lost is kept', async () => {
    const ra = await start({ node: 'ra', leaseTtlMs: 3000 });
    const rb = await start({ node: 'rb', leaseTtlMs: 3000 });
    try {
      const g = await ra.grants.issue({ subject: PROPOSER, scope: 'counter/r*:*' });
      await rb.grants.waitFor(g.id);
      await ra.spawn('counter/r1', { start: 100 });
      const afterSpawn = await snapshotAt(ra, 'counter/r1', 1);
      const first = await ra.accept(inc('i-r1-1', 'counter/r1', 5));
      expect(first).toMatchObject({ status: 'executed', seq: 4 });
      await ra.stop(); // clean stop: releases its leases

      // as if ra had died after the append: the snapshot is the one before, and no outcome
      const cur = await snapshotAt(rb, 'counter/r1', 4);
      await rb.log.putSnapshot(afterSpawn.record, cur.revision);
      const outcomes = await new Kvm(client.connection).open('ICE_OUTCOMES');
      await outcomes.delete('i-r1-1');

      expect(await rb.accept(inc('i-r1-2', 'counter/r1', 1))).toMatchObject({ status: 'executed', seq: 7 });
      expect(rb.actor('counter/r1')?.context).toEqual({ n: 106 });
      // the lost outcome was written back from the journal on activation
      expect(await rb.accept(inc('i-r1-1', 'counter/r1', 5))).toEqual(first);
      const facts = (await journal(rb, 'counter/r1')).flat();
      expect(facts.map((f) => f.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
      expect(verifyActorChain(facts)).toEqual({ ok: true });

      // the outcome of the commit the snapshot stands at is lost too: the next owner writes it back
      const second = await rb.accept(inc('i-r1-2', 'counter/r1', 1));
      await outcomes.delete('i-r1-2');
      await rb.stop();
      const rc = await start({ node: 'rc', leaseTtlMs: 3000 });
      try {
        expect(await rc.accept(inc('i-r1-2', 'counter/r1', 1))).toEqual(second);
        expect(rc.actor('counter/r1')).toMatchObject({ context: { n: 106 }, seq: 7 });
        expect((await journal(rc, 'counter/r1')).length).toBe(3);
      } finally {
        await rc.stop();
      }
    } finally {
      await rb.stop();
    }
  });
});

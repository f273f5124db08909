import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { assign, setup } from 'xstate';
import { z } from 'zod';
import {
  ManualClock,
  chainFact,
  checkChain,
  createRuntime,
  defineActor,
  type Clock,
  type IntentInput,
  type Outcome,
  type Runtime,
} from '../../src/index.js';
import { NatsTransport } from '../../src/transport/index.js';
import { startNatsCluster, type NatsCluster } from '../../src/testing/index.js';
import { createLogger } from '../../src/util/logger.js';

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

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined): Promise<T> {
  for (let i = 0; i < 500; i++) {
    const v = await fn();
    if (v !== undefined) return v;
    await sleep(20);
  }
  throw new Error(`never: ${what}`);
}

/** The types of each turn's facts, and whether the chain links. */
async function chainOf(rt: Runtime, actor: string) {
  const facts = await rt.journal.chain(actor, 1, 10_000);
  return { facts, types: facts.map((f) => f.type), ok: checkChain(facts).ok };
}

describe('one runtime as cluster nodes on a 3-server NATS cluster (R3)', () => {
  let cluster: NatsCluster;
  let client: NatsTransport;
  const nodes: Runtime[] = [];
  const start = async (
    node: string,
    o: { leaseTtlMs?: number; leaseRenewEveryMs?: number; clock?: Clock; passivateAfterMs?: number } = {},
  ) => {
    const rt = await createRuntime({
      node,
      actors: [counterActor],
      logger: createLogger({ level: 'silent' }),
      ...(o.clock ? { clock: o.clock } : {}),
      ...(o.passivateAfterMs !== undefined ? { passivateAfterMs: o.passivateAfterMs } : {}),
      cluster: {
        servers: cluster.urls,
        replicas: 3,
        ...(o.leaseTtlMs !== undefined ? { leaseTtlMs: o.leaseTtlMs } : {}),
        ...(o.leaseRenewEveryMs !== undefined ? { leaseRenewEveryMs: o.leaseRenewEveryMs } : {}),
      },
    });
    nodes.push(rt);
    return rt;
  };
  const grantOn = async (a: Runtime, others: Runtime[], scope: string) => {
    const g = await a.grants.issue({ subject: PROPOSER, scope });
    for (const o of others) await until(`grant on ${o.node}`, () => o.grants.list().find((x) => x.id === g.id));
    return g;
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
    const a = await start('a', { leaseTtlMs: 3000 });
    const b = await start('b', { leaseTtlMs: 3000 });
    const g = await grantOn(a, [b], 'counter/*:*');
    const spawned = await a.spawn('counter/a1', { start: 0 });
    expect(spawned).toMatchObject({ state: 'open', seq: 1, status: 'active', owner: 'a' });

    // B's intake takes it; A holds the lease, so B forwards to ice.node.a.intent
    const out = await b.accept(inc('i-a1-1', 'counter/a1', 2));
    expect(out).toMatchObject({ status: 'executed', from: 'open', to: 'open', seq: 4, grantId: g.id });
    expect(a.hosting('counter/a1')?.context).toEqual({ n: 2 });
    expect(b.hosting('counter/a1')).toBeUndefined();

    // a client request over NATS lands on either node's intake (queue group ice.intake)
    const raw = (await client.request('ice.intent.counter.a1', inc('i-a1-2', 'counter/a1', 3), { timeoutMs: 10_000 })).data as Outcome;
    expect(raw).toMatchObject({ status: 'executed', seq: 7 });
    expect(await b.propose(inc('i-a1-3', 'counter/a1', 5))).toMatchObject({ status: 'executed', seq: 10 });
    expect(a.hosting('counter/a1')?.context).toEqual({ n: 10 });

    const c = await chainOf(b, 'counter/a1');
    expect(c.types).toEqual(['actor.started', ...Array(3).fill(['intent.proposed', 'decision', 'transition']).flat()]);
    expect(c.ok).toBe(true);

    // the same id again, through either node: the stored outcome, not a second execution
    expect(await a.accept(inc('i-a1-1', 'counter/a1', 2))).toEqual(out);
    expect(await b.propose(inc('i-a1-1', 'counter/a1', 2))).toEqual(out);
    // the same id with other content is refused by the owner, which knows the id: the refusal
    // is a fact on a's runtime chain
    const conflict = await b.accept(inc('i-a1-1', 'counter/a1', 99));
    expect(conflict).toMatchObject({ status: 'rejected', chain: '_runtime/a', issues: [{ code: 'idempotency_conflict' }] });
    expect((await b.journal.fact('_runtime/a', (conflict as { seq: number }).seq))?.type).toBe('intent.rejected');
    expect((await chainOf(a, 'counter/a1')).facts.length).toBe(10);

    // no grant: denied, recorded on the actor's chain
    expect(await b.accept({ ...inc('i-a1-4', 'counter/a1', 1), proposer: 'agent:stranger' })).toMatchObject({ status: 'denied', seq: 12 });
    const after = await chainOf(a, 'counter/a1');
    expect(after.types.at(-1)).toBe('decision');
    expect(after.ok).toBe(true);
    expect(await b.journal.verify()).toMatchObject({ ok: true });
  });

  it('every turn is signed by the node that wrote it; a turn with a forged signature is found', async () => {
    const sa = await start('sa', { leaseTtlMs: 3000 });
    await grantOn(sa, [], 'counter/s*:*');
    await sa.spawn('counter/s1');
    expect(await sa.accept(inc('i-s1-1', 'counter/s1', 1))).toMatchObject({ status: 'executed' });
    await sa.store.drain();
    const ok = await sa.journal.verify();
    expect(ok).toMatchObject({ ok: true });
    expect(ok.checkpoints).toBeGreaterThan(0);
    expect(ok.attestedPos).toBe(ok.lastPos);
    // a turn appended by someone without a node key, its signature made up
    const head = await sa.store.head('counter/s1');
    const cursor = { ...head };
    const { fact } = chainFact(
      cursor,
      { type: 'actor.stopped', origin: 'operator', actor: 'counter/s1', data: { reason: 'x' } },
      new Date().toISOString(),
    );
    const forgedAt = await (sa.store as unknown as { unsafePublishRaw(c: string, b: unknown): Promise<number> }).unsafePublishRaw(
      'counter/s1',
      {
        v: 1,
        chain: 'counter/s1',
        facts: [fact],
        attestation: { keyId: ok.checkpoints ? (await sa.journal.fact('counter/s1', 1))!.hash.slice(0, 16) : 'x', sig: 'AAAA' },
      },
    );
    const bad = await sa.journal.verify();
    expect(bad).toMatchObject({ ok: false, brokenChain: 'counter/s1', brokenAt: cursor.seq });
    expect(bad.reason).toMatch(/signed by unknown key|does not verify/);
    // No node starts on it now (the start-up check)...
    await expect(start('s-refused')).rejects.toMatchObject({ code: 'E_JOURNAL_BROKEN', chain: 'counter/s1', seq: cursor.seq });
    // ...until the operator repairs it as docs/distributed.md says: the forged turn is deleted.
    await (await jetstreamManager(client.connection)).streams.deleteMessage('ICE_JOURNAL', forgedAt);
    expect(await sa.journal.verify()).toMatchObject({ ok: true });
    await start('s-repaired');
  });

  it('a grant issued through one node counts at once on another (a denial waits for the grant view to catch up)', async () => {
    const ga = await start('ga', { leaseTtlMs: 3000 });
    const gb = await start('gb', { leaseTtlMs: 3000 });
    await gb.spawn('counter/g1');
    for (let i = 0; i < 5; i++) {
      // issued on ga, used at once through gb (which owns the actor), no waiting in between
      await ga.grants.issue({ subject: `agent:fresh-${i}`, scope: 'counter/g1:INC' });
      expect(await gb.accept({ ...inc(`i-g1-${i}`, 'counter/g1', 1), proposer: `agent:fresh-${i}` })).toMatchObject({ status: 'executed' });
    }
  });

  it('passivation: an idle actor leaves memory and its lease; any node re-activates it with its state', async () => {
    const pa = await start('pa', { passivateAfterMs: 0 });
    const pb = await start('pb', { passivateAfterMs: 0 });
    await grantOn(pa, [pb], 'counter/p*:*');
    await pa.spawn('counter/p1');
    expect(await pa.accept(inc('i-p1-1', 'counter/p1', 5))).toMatchObject({ status: 'executed' });
    expect(pa.hosting('counter/p1')).toBeDefined();
    expect(await pa.passivateIdle(0)).toBeGreaterThanOrEqual(1);
    expect(pa.hosting('counter/p1')).toBeUndefined();
    expect(await pb.accept(inc('i-p1-2', 'counter/p1', 2))).toMatchObject({ status: 'executed' });
    expect(pb.hosting('counter/p1')).toMatchObject({ context: { n: 7 }, owner: 'pb' });
    const c = await chainOf(pb, 'counter/p1');
    expect(c.ok).toBe(true);
    expect(c.types).toContain('actor.restored');
  });

  it('failover: after the owner dies, another node serves its actor once the lease expires', async () => {
    const fa = await start('fa', { leaseTtlMs: 1500 });
    const fb = await start('fb', { leaseTtlMs: 1500 });
    await grantOn(fa, [fb], 'counter/f*:*');
    await fa.spawn('counter/f1');
    expect(await fa.accept(inc('i-f1-1', 'counter/f1', 1))).toMatchObject({ status: 'executed', seq: 4 });

    await fa.stop({ release: false }); // dies: no renewal, no release, connection closed
    const t0 = Date.now();
    let out: Outcome | undefined;
    let attempts = 0;
    for (; attempts < 1000; attempts++) {
      out = await fb.accept(inc('i-f1-2', 'counter/f1', 10));
      if (out.status !== 'failed') break;
      expect(out.error.code).toMatch(/E_OWNER_UNREACHABLE|E_NOT_OWNER|E_OWNERSHIP/);
      await sleep(50);
    }
    console.log(`[cluster] failover: first intent executed on fb ${Date.now() - t0} ms after fa died (${attempts} retries, lease 1500 ms)`);
    // fb activates (an actor.restored fact at 5), then executes at 6-8
    expect(out).toMatchObject({ status: 'executed', seq: 8 });
    expect(fb.hosting('counter/f1')).toMatchObject({ context: { n: 11 }, seq: 8 });
    const c = await chainOf(fb, 'counter/f1');
    expect(c.facts.map((f) => f.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(c.types[4]).toBe('actor.restored');
    expect(c.ok).toBe(true);
  });

  it('a node whose lease ran out executes nothing: it says E_NOT_OWNER, and the journal does not fork', async () => {
    const clock = new ManualClock(Date.now());
    // ca never renews (a paused process); both nodes share one manual clock
    const ca = await start('ca', { leaseTtlMs: 1000, leaseRenewEveryMs: 1e9, clock });
    const cb = await start('cb', { leaseTtlMs: 1000, clock });
    await grantOn(ca, [cb], 'counter/c*:*');
    await ca.spawn('counter/c1');
    expect(await ca.accept(inc('i-c1-1', 'counter/c1', 1))).toMatchObject({ status: 'executed', seq: 4 });

    clock.advance(1500); // ca's lease has expired; its renewal timer has not run
    expect(await cb.accept(inc('i-c1-2', 'counter/c1', 10))).toMatchObject({ status: 'executed', seq: 8 });
    expect(cb.hosting('counter/c1')?.context).toEqual({ n: 11 });
    // ca still has the actor in memory, but its own clock says the lease ran out
    expect(ca.hosting('counter/c1')?.context).toEqual({ n: 1 });
    const refused = await client.request('ice.node.ca.intent', inc('i-c1-3', 'counter/c1', 100), { timeoutMs: 10_000 });
    expect(refused.data).toMatchObject({ status: 'failed', error: { code: 'E_NOT_OWNER' } });
    expect(ca.hosting('counter/c1')).toBeUndefined(); // dropped from memory

    const c = await chainOf(cb, 'counter/c1');
    expect(c.facts.map((f) => f.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(c.facts.some((f) => f.intentId === 'i-c1-3')).toBe(false);
    expect(c.ok).toBe(true);

    // E_NOT_OWNER is retryable with the same id: through ca's intake, the real owner executes it
    expect(await ca.accept(inc('i-c1-3', 'counter/c1', 100))).toMatchObject({ status: 'executed', seq: 11 });
    expect(cb.hosting('counter/c1')?.context).toEqual({ n: 111 });
    expect((await chainOf(cb, 'counter/c1')).ok).toBe(true);
  });

  it('the journal is the truth: a turn whose snapshot and outcome never reached the KV caches is found and answered', async () => {
    const ra = await start('ra', { leaseTtlMs: 3000 });
    const rb = await start('rb', { leaseTtlMs: 3000 });
    await grantOn(ra, [rb], 'counter/r*:*');
    await ra.spawn('counter/r1', { start: 100 });
    const first = await ra.accept(inc('i-r1-1', 'counter/r1', 5));
    expect(first).toMatchObject({ status: 'executed', seq: 4 });
    await ra.store.drain();
    await ra.stop(); // clean stop: releases its leases

    // as if ra had died right after the append: no cached snapshot, no cached outcome
    const kvm = new Kvm(client.connection);
    await (await kvm.open('ICE_SNAPSHOTS')).purge('counter.r1');
    await (await kvm.open('ICE_OUTCOMES')).purge('i-r1-1');

    // the retry of the acknowledged intent: the same outcome, not a second execution
    expect(await rb.accept(inc('i-r1-1', 'counter/r1', 5))).toEqual(first);
    expect(await rb.accept(inc('i-r1-2', 'counter/r1', 1))).toMatchObject({ status: 'executed' });
    expect(rb.hosting('counter/r1')?.context).toEqual({ n: 106 });
    const c = await chainOf(rb, 'counter/r1');
    expect(c.facts.filter((f) => f.type === 'transition').map((f) => f.intentId)).toEqual(['i-r1-1', 'i-r1-2']);
    expect(c.ok).toBe(true);
  });
});

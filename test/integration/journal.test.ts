import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import { deploymentActor, runActor } from '../../actors/index.js';
import {
  ConflictError,
  DataDirLockedError,
  FactSchema,
  JournalError,
  ManualClock,
  OutcomeSchema,
  chainFact,
  createRuntime,
  replayActor,
  sha256Hex,
  type Fact,
  type Outcome,
  type Runtime,
  type RuntimeOptions,
} from '../../src/index.js';
import { AuthorityKey } from '../../src/authority/index.js';
import { EMPTY_HEAD, type ChainHead, type Turn } from '../../src/host/ports.js';
import { checkpointHash, verifyStore } from '../../src/journal/index.js';
import { SqliteJournal, SqliteStore, type Checkpoint } from '../../src/store/index.js';
import { iid, tempDir } from '../helpers/runtime.js';

/**
 * The journal and everything it guarantees, on real SQLite files: idempotency, group
 * commit, the per-chain hash chains and the signed checkpoints against tampering, causes,
 * snapshots never ahead of the journal, restore and replay, a failed flush, read-only
 * readers, the schema version, the data dir lock, and the door's refusal of bad input.
 *
 * Facts are chained per chain: an actor's address, or the runtime chain (`_runtime/_`) for
 * facts without an actor. `seq`, `prev` and `causes` are positions in the fact's own chain;
 * the store's `pos` is the global write order.
 */

const BOT = 'agent:bot';
const defs = { deployment: deploymentActor, run: runActor } as const;

const dirs: Array<() => void> = [];
const running: Runtime[] = [];
const closing: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const rt of running.splice(0)) await rt.stop();
  for (const s of closing.splice(0)) await s.close();
  for (const d of dirs.splice(0)) d();
});

function freshDir(prefix = 'ice-journal-'): string {
  const t = tempDir(prefix);
  dirs.push(t.cleanup);
  return t.dir;
}

async function open(dir?: string, opts: RuntimeOptions = {}): Promise<{ rt: Runtime; dir: string }> {
  const d = dir ?? freshDir();
  const rt = await createRuntime({ dataDir: d, ...opts });
  running.push(rt);
  return { rt, dir: d };
}

async function stop(rt: Runtime): Promise<void> {
  await rt.stop();
  const i = running.indexOf(rt);
  if (i >= 0) running.splice(i, 1);
}

/** Every fact, in write order (oldest first). */
const allFacts = async (rt: Runtime): Promise<Fact[]> => (await rt.journal.tail({ limit: 1_000_000 })).reverse();
/** Position of the newest fact: how many facts the store holds. */
const lastPos = (rt: Runtime): number => (rt.store as SqliteJournal).lastPos;
const transitionsOf = async (rt: Runtime, actor: string, intentId?: string) =>
  (await rt.journal.chain(actor)).filter((f) => f.type === 'transition' && (intentId === undefined || f.intentId === intentId));
const detail = async (rt: Runtime, address: string) => (await rt.actor(address))!;
const configure = (target: string, replicas: number, id = iid('j')) => ({
  id,
  proposer: BOT,
  target,
  action: 'CONFIGURE',
  params: { version: '1.0.0', replicas },
});
const byChain = (facts: Fact[]): Map<string, Fact[]> => {
  const m = new Map<string, Fact[]>();
  for (const f of facts) m.set(f.actor!, [...(m.get(f.actor!) ?? []), f]);
  return m;
};

/** A small but varied history: a run driven to EXECUTING and aborted by the runtime, two deployments. */
async function workload(rt: Runtime): Promise<void> {
  await rt.spawn('run/r1', { goal: 'ship' });
  await rt.spawn('deployment/a', { service: 'a' });
  await rt.spawn('deployment/b', { service: 'b', requiredApprovals: 2 });
  await rt.grants.issue({ subject: BOT, scope: '*' });
  await rt.grants.issue({ subject: 'human:*', scope: 'deployment/*:APPROVE' });
  const steps: Array<Record<string, unknown>> = [
    { proposer: BOT, target: 'run/r1', action: 'PROVISION', params: { resources: ['k8s'] } },
    { proposer: BOT, target: 'run/r1', action: 'LOAD_CONTEXT', params: { sources: ['git'] } },
    { proposer: BOT, target: 'run/r1', action: 'EXECUTE' },
    configure('deployment/a', 2),
    { proposer: BOT, target: 'deployment/a', action: 'SUBMIT', params: { author: 'bot' } },
    { proposer: 'human:alice', target: 'deployment/a', action: 'APPROVE', params: { reviewer: 'alice' } },
    { proposer: BOT, target: 'deployment/a', action: 'DEPLOY', params: { environment: 'staging' } },
    { proposer: BOT, target: 'deployment/a', action: 'MARK_FAILED', params: { reason: 'oom' } },
    { proposer: BOT, target: 'deployment/a', action: 'RETRY' },
    { proposer: BOT, target: 'deployment/a', action: 'MARK_HEALTHY' },
    { proposer: BOT, target: 'deployment/a', action: 'SCALE', params: { replicas: 7 } },
    configure('deployment/b', 3),
    { proposer: BOT, target: 'deployment/b', action: 'SUBMIT', params: { author: 'bot' } },
    { proposer: 'human:alice', target: 'deployment/b', action: 'APPROVE', params: { reviewer: 'alice' } },
    // denied (wrong state) and rejected ones in between
    { proposer: BOT, target: 'deployment/b', action: 'DEPLOY', params: { environment: 'staging' } },
    { proposer: BOT, target: 'deployment/b', action: 'SCALE', params: { replicas: 0 } },
  ];
  for (const s of steps) {
    const o = await rt.propose({ id: iid('w'), ...s });
    expect(['executed', 'denied', 'rejected']).toContain(o.status);
  }
  await rt.signal('run/r1', { type: 'RUNTIME_ABORT', reason: 'budget' }, 'operator stop');
}

describe('idempotency', () => {
  it('the same intent id twice: identical outcome, one transition', async () => {
    const { rt } = await open();
    await rt.spawn('deployment/web');
    await rt.grants.issue({ subject: BOT, scope: '*' });
    const intent = configure('deployment/web', 2);
    const o1 = await rt.propose(intent);
    const written = lastPos(rt);
    const o2 = await rt.propose({ ...intent });
    expect(o1.status).toBe('executed');
    expect(o2).toEqual(o1);
    expect(lastPos(rt)).toBe(written); // the repeat wrote nothing
    expect(await transitionsOf(rt, 'deployment/web', intent.id)).toHaveLength(1);
    expect((await rt.journal.factsOfIntent(intent.id)).filter((f) => f.type === 'intent.proposed')).toHaveLength(1);
    // omitted v/params and a different key order are the same intent
    const o3 = await rt.propose({
      params: { replicas: 2, version: '1.0.0' },
      action: 'CONFIGURE',
      target: 'deployment/web',
      proposer: BOT,
      id: intent.id,
      v: 1,
    });
    expect(o3).toEqual(o1);
  });

  it('a repeated denial stays a denial, even after a grant appears', async () => {
    const { rt } = await open();
    await rt.spawn('deployment/web');
    const intent = configure('deployment/web', 2);
    const o1 = await rt.propose(intent);
    expect(o1.status).toBe('denied');
    await rt.grants.issue({ subject: BOT, scope: '*' });
    expect(await rt.propose(intent)).toEqual(o1);
    expect(await transitionsOf(rt, 'deployment/web')).toHaveLength(0);
  });

  it('the same id with different content is rejected with idempotency_conflict', async () => {
    const { rt } = await open();
    await rt.spawn('deployment/web');
    await rt.grants.issue({ subject: BOT, scope: '*' });
    const intent = configure('deployment/web', 2);
    expect((await rt.propose(intent)).status).toBe('executed');
    const before = await detail(rt, 'deployment/web');
    for (const other of [
      { ...intent, params: { version: '1.0.0', replicas: 3 } },
      { ...intent, proposer: 'agent:other' },
      { ...intent, rationale: 'now with a reason' },
    ]) {
      const o = await rt.propose(other);
      expect(o.status).toBe('rejected');
      if (o.status !== 'rejected') return;
      expect(o.issues.map((i) => [i.path, i.code])).toEqual([['id', 'idempotency_conflict']]);
      // the rejection is a fact on the runtime chain, where the outcome says
      expect(o.chain).toBe(rt.runtimeChain);
      const f = (await rt.journal.fact(o.chain!, o.seq!))!;
      expect(f.type).toBe('intent.rejected');
      expect(f.actor).toBe(rt.runtimeChain);
      expect(f.intentId).toBe(intent.id);
    }
    expect(await transitionsOf(rt, 'deployment/web')).toHaveLength(1);
    expect((await detail(rt, 'deployment/web')).snapshot).toEqual(before.snapshot);
  });

  it('20 concurrent proposals of the same id execute once', async () => {
    const { rt } = await open();
    await rt.spawn('deployment/web');
    await rt.grants.issue({ subject: BOT, scope: '*', maxUses: 5 });
    const intent = configure('deployment/web', 9);
    const outs = await Promise.all(Array.from({ length: 20 }, () => rt.propose({ ...intent, params: { ...intent.params } })));
    expect(outs[0]!.status).toBe('executed');
    for (const o of outs) expect(o).toEqual(outs[0]);
    expect(await transitionsOf(rt, 'deployment/web', intent.id)).toHaveLength(1);
    expect((await rt.journal.factsOfIntent(intent.id)).map((f) => f.type)).toEqual([
      'intent.proposed',
      'decision',
      'grant.used',
      'transition',
    ]);
    expect(rt.grants.list()[0]!.uses).toBe(1);
  });

  it('concurrent proposals of one id with different content: one executes, the others conflict', async () => {
    const { rt } = await open();
    await rt.spawn('deployment/web');
    await rt.grants.issue({ subject: BOT, scope: '*' });
    const id = iid('same');
    const outs = await Promise.all(Array.from({ length: 10 }, (_, i) => rt.propose(configure('deployment/web', i + 1, id))));
    expect(outs.filter((o) => o.status === 'executed')).toHaveLength(1);
    const conflicts = outs.filter((o) => o.status === 'rejected' && o.issues[0]!.code === 'idempotency_conflict');
    expect(conflicts).toHaveLength(9);
    expect(await transitionsOf(rt, 'deployment/web')).toHaveLength(1);
  });

  it('the stored outcome answers repeats after a restart', async () => {
    const { rt, dir } = await open();
    await rt.spawn('deployment/web');
    await rt.grants.issue({ subject: BOT, scope: '*' });
    const intent = configure('deployment/web', 4);
    const o1 = await rt.propose(intent);
    await stop(rt);
    const { rt: rt2 } = await open(dir);
    const written = lastPos(rt2);
    expect(await rt2.propose(intent)).toEqual(o1);
    expect(lastPos(rt2)).toBe(written);
    expect(await transitionsOf(rt2, 'deployment/web')).toHaveLength(1);
    const conflict = await rt2.propose({ ...intent, params: { version: '1.0.0', replicas: 5 } });
    expect(conflict.status === 'rejected' && conflict.issues[0]!.code).toBe('idempotency_conflict');
  });
});

describe('group commit', () => {
  it('many concurrent intents to many actors: all executed, every chain verifies, seqs contiguous per chain, batches merged', async () => {
    const { rt, dir } = await open();
    const ACTORS = 30;
    const PER = 4;
    const actors = Array.from({ length: ACTORS }, (_, i) => `deployment/g${i}`);
    await Promise.all(actors.map((a) => rt.spawn(a)));
    await rt.grants.issue({ subject: BOT, scope: 'deployment/*:CONFIGURE' });
    const flushesBefore = rt.stats().flushes;
    // While the load runs, look at the disk through a second, read-only connection after each
    // durable transition: an actor's stored snapshot always names a durable fact of its own chain.
    const ro = new SqliteStore(dir, { readonly: true });
    const seen: string[] = [];
    const off = rt.onFact((f) => {
      if (f.type !== 'transition') return;
      const snap = ro.snapshot(f.actor!)!;
      const at = ro.factRow(f.actor!, snap.seq);
      const own = at ? (JSON.parse(at.body) as Fact) : undefined;
      seen.push(
        own && own.actor === f.actor && own.type === 'transition' && snap.seq <= ro.chainHead(f.actor!).seq && snap.seq >= f.seq
          ? 'ok'
          : `bad ${f.actor}#${f.seq}`,
      );
    });
    const intents = actors.flatMap((a) => Array.from({ length: PER }, (_, k) => configure(a, k + 1)));
    const outs = await Promise.all(intents.map((i) => rt.propose(i)));
    off();
    await ro.close();
    expect(seen).toHaveLength(intents.length);
    expect(seen.filter((x) => x !== 'ok')).toEqual([]);
    expect(outs.map((o) => o.status)).toEqual(intents.map(() => 'executed'));
    // Group commit really grouped: fewer store transactions than intents.
    const stats = rt.stats();
    expect(stats.maxBatch).toBeGreaterThan(1);
    expect(stats.flushes - flushesBefore).toBeLessThan(intents.length);
    // Per actor, intents ran in arrival order: the last one sent wins.
    for (const a of actors) {
      expect(((await detail(rt, a)).context as { replicas: number }).replicas).toBe(PER);
      expect(await transitionsOf(rt, a)).toHaveLength(PER);
    }
    const facts = await allFacts(rt);
    expect(facts.length).toBe(lastPos(rt));
    const chains = byChain(facts);
    expect([...chains.keys()].sort()).toEqual([...actors, rt.runtimeChain].sort());
    for (const [chain, own] of chains) {
      expect(
        own.map((f) => f.seq),
        chain,
      ).toEqual(Array.from({ length: own.length }, (_, i) => i + 1));
      expect(own[0]!.prev).toBe('');
      for (let i = 1; i < own.length; i++) expect(own[i]!.prev).toBe(own[i - 1]!.hash);
      expect(await rt.journal.chain(chain)).toEqual(own);
    }
    const v = await rt.journal.verify();
    expect(v).toMatchObject({ ok: true, count: facts.length, chains: chains.size, lastPos: facts.length, attestedPos: facts.length });
    // Every fact and outcome has the protocol's shape.
    for (const f of facts) expect(FactSchema.safeParse(f).success, JSON.stringify(f)).toBe(true);
    for (const o of outs) expect(OutcomeSchema.safeParse(o).success).toBe(true);
    // Each outcome names its transition fact: the actor's chain and the seq in it.
    for (const o of outs) expect(o.status === 'executed' && (await rt.journal.fact(o.actor, o.seq))!.type).toBe('transition');
  });
});

// ---------------------------------------------------------------------------------------------
// The store port on SQLite, without a runtime: SqliteStore (one file, one writer thread) and
// SqliteJournal (fence, group commit, checkpoints).

const AT = '2025-01-01T00:00:00.000Z';

/** A turn of `n` facts chained onto `after`, as the host builds them. */
function turnOf(chain: string, after: ChainHead, n: number, tag = 'x'): Turn {
  const cursor = { ...after };
  const built = Array.from({ length: n }, (_, i) =>
    chainFact(cursor, { type: 'transition', origin: 'runtime', actor: chain, data: { tag, i } }, AT),
  );
  return { chain, after: { ...after }, facts: built.map((b) => b.fact), bodies: built.map((b) => b.body) };
}
const headOf = (t: Turn): ChainHead => ({ seq: t.facts.at(-1)!.seq, hash: t.facts.at(-1)!.hash });

function openJournal(dir: string, opts: { onFlushFailed?: (chains: Set<string>, err: Error) => void } = {}) {
  const key = AuthorityKey.loadOrCreate(join(dir, 'authority.key'));
  const store = new SqliteStore(dir);
  closing.push(store);
  const journal = new SqliteJournal(store, {
    attest: (hash) => ({ keyId: key.keyId, sig: key.signCheckpoint(hash) }),
    ...(opts.onFlushFailed ? { onFlushFailed: opts.onFlushFailed } : {}),
  });
  const verify = () => verifyStore(store, (cp) => cp.keyId === key.keyId && key.verifyCheckpoint(cp.hash, cp.sig));
  return { key, store, journal, verify };
}

describe('the SQLite store port (SqliteStore + SqliteJournal)', () => {
  it('two chains interleaved in one group commit: one transaction, both chains verify, the checkpoint names both heads', async () => {
    const { key, store, journal, verify } = openJournal(freshDir());
    const A = 'deployment/a';
    const B = 'deployment/b';
    let a = EMPTY_HEAD;
    let b = EMPTY_HEAD;
    const commits: Array<Promise<void>> = [];
    for (let i = 0; i < 3; i++) {
      const ta = turnOf(A, a, 2, `a${i}`);
      a = headOf(ta);
      commits.push(journal.commit(ta));
      const tb = turnOf(B, b, 1, `b${i}`);
      b = headOf(tb);
      commits.push(journal.commit(tb));
    }
    // The head counts turns handed over but not yet durable: the next turn continues it.
    expect(await journal.head(A)).toEqual(a);
    expect(journal.hasPending(A)).toBe(true);
    await Promise.all(commits);
    expect(journal.hasPending(A)).toBe(false);
    expect(journal.flushes).toBe(1);
    expect(journal.maxBatch).toBe(6);
    // In the file: interleaved in write order, each chain contiguous.
    expect(store.factRows(1, 100).map((r) => [r.chain, r.seq])).toEqual([
      [A, 1],
      [A, 2],
      [B, 1],
      [A, 3],
      [A, 4],
      [B, 2],
      [A, 5],
      [A, 6],
      [B, 3],
    ]);
    expect(store.chainHead(A)).toEqual(a);
    expect(store.chainHead(B)).toEqual(b);
    const loaded = await journal.load(A);
    expect(loaded.head).toEqual(a);
    expect(loaded.facts.map((f) => f.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    // One checkpoint for the one group: both heads, sorted by chain, signed by the authority.
    const [cp, ...more] = store.checkpoints();
    expect(more).toEqual([]);
    expect(cp).toMatchObject({
      pos: 9,
      prev: '',
      keyId: key.keyId,
      heads: [
        [A, 6, a.hash],
        [B, 3, b.hash],
      ],
    });
    expect(cp!.hash).toBe(checkpointHash('', cp!.heads));
    expect(cp!.hash).toBe(sha256Hex('' + JSON.stringify(cp!.heads)));
    expect(key.verifyCheckpoint(cp!.hash, cp!.sig)).toBe(true);
    expect(verify()).toEqual({ ok: true, count: 9, chains: 2, lastPos: 9, checkpoints: 1, attestedPos: 9 });

    // The next group touches only B: its checkpoint names B alone and links to the first.
    const tb = turnOf(B, b, 2, 'later');
    await journal.commit(tb);
    const cps = store.checkpoints();
    expect(cps).toHaveLength(2);
    expect(cps[1]).toMatchObject({ pos: 11, prev: cp!.hash, heads: [[B, 5, headOf(tb).hash]] });
    expect(verify()).toMatchObject({ ok: true, count: 11, chains: 2, checkpoints: 2, attestedPos: 11 });
  });

  it('the fence: a turn that does not continue the head (counting queued turns) is refused with E_CONFLICT', async () => {
    const { journal, store } = openJournal(freshDir());
    const t1 = turnOf('deployment/f', EMPTY_HEAD, 2);
    const p1 = journal.commit(t1);
    // A second writer that read the head before t1 chains onto the same head: refused at once.
    await expect(journal.commit(turnOf('deployment/f', EMPTY_HEAD, 1))).rejects.toBeInstanceOf(ConflictError);
    await expect(journal.commit(turnOf('deployment/f', { seq: 2, hash: 'f'.repeat(64) }, 1))).rejects.toMatchObject({ code: 'E_CONFLICT' });
    await journal.commit(turnOf('deployment/f', headOf(t1), 1));
    await p1;
    expect(store.chainHead('deployment/f').seq).toBe(3);
    // A second journal on the same file (a second writer) sees the durable head and is fenced too.
    const other = new SqliteJournal(store);
    await expect(other.commit(turnOf('deployment/f', headOf(t1), 1))).rejects.toBeInstanceOf(ConflictError);
  });

  it('a failed flush rejects every turn in it and every later turn of its chains; the chain head comes back from the disk', async () => {
    const failures: Array<{ chains: string[]; err: Error }> = [];
    const { journal, store, verify } = openJournal(freshDir(), {
      onFlushFailed: (chains, err) => failures.push({ chains: [...chains].sort(), err }),
    });
    const GOOD = 'deployment/good';
    const BAD = 'deployment/bad';
    const g1 = turnOf(GOOD, EMPTY_HEAD, 1);
    await journal.commit(g1);
    // The disk refuses any fact of BAD (as a full disk or an I/O error would refuse the group).
    store.unsafeExec(
      `CREATE TRIGGER refuse_bad BEFORE INSERT ON facts WHEN NEW.chain = '${BAD}' BEGIN SELECT RAISE(ABORT, 'disk says no'); END`,
    );
    const b1 = turnOf(BAD, EMPTY_HEAD, 2);
    const g2 = turnOf(GOOD, headOf(g1), 1);
    const settled = (p: Promise<void>) =>
      p.then(
        () => 'durable',
        (e: unknown) => e,
      );
    const inGroup = [settled(journal.commit(b1)), settled(journal.commit(g2))];
    // Once that group is with the writer, later turns of both chains queue behind it.
    await new Promise((r) => setImmediate(r));
    const b2 = turnOf(BAD, headOf(b1), 1);
    const g3 = turnOf(GOOD, headOf(g2), 1);
    const later = [settled(journal.commit(b2)), settled(journal.commit(g3))];
    for (const r of [...(await Promise.all(inGroup)), ...(await Promise.all(later))]) {
      expect(r).toBeInstanceOf(JournalError);
      expect((r as JournalError).message).toMatch(/nothing in this group was acknowledged/);
      expect(((r as JournalError).cause as Error).message).toMatch(/disk says no/);
    }
    expect(failures).toHaveLength(1);
    expect(failures[0]!.chains).toEqual([BAD, GOOD]);
    // Nothing of the failed group landed (not even GOOD's fact, committed in the same transaction).
    expect(store.chainHead(BAD)).toEqual(EMPTY_HEAD);
    expect(store.chainHead(GOOD)).toEqual(headOf(g1));
    expect(await journal.head(BAD)).toEqual(EMPTY_HEAD);
    expect(await journal.head(GOOD)).toEqual(headOf(g1));
    expect((await journal.load(GOOD)).facts).toEqual(g1.facts);
    // Turns chained onto the facts that never landed stay refused; a turn on the stored head commits.
    await expect(journal.commit(turnOf(GOOD, headOf(g3), 1))).rejects.toBeInstanceOf(ConflictError);
    store.unsafeExec('DROP TRIGGER refuse_bad');
    await journal.commit(turnOf(BAD, EMPTY_HEAD, 1, 'again'));
    await journal.commit(turnOf(GOOD, headOf(g1), 1, 'again'));
    expect(store.chainHead(GOOD).seq).toBe(2);
    expect(verify()).toMatchObject({ ok: true, count: 3, chains: 2 });
  });

  it('load(chain) names the chain and seq where a chain has a gap or a broken link', async () => {
    const dir = freshDir();
    const { journal } = openJournal(dir);
    const t = turnOf('deployment/l', EMPTY_HEAD, 4);
    await journal.commit(t);
    await journal.commit(turnOf('deployment/other', EMPTY_HEAD, 2));
    expect((await journal.load('deployment/l')).head).toEqual(headOf(t));
    const db = new Database(join(dir, 'ice.db'));
    db.prepare('UPDATE facts SET prev = ? WHERE chain = ? AND seq = ?').run('0'.repeat(64), 'deployment/l', 3);
    await expect(journal.load('deployment/l')).rejects.toMatchObject({
      code: 'E_JOURNAL_BROKEN',
      chain: 'deployment/l',
      seq: 3,
      problem: 'hash',
    });
    db.prepare('DELETE FROM facts WHERE chain = ? AND seq = ?').run('deployment/l', 2);
    db.close();
    await expect(journal.load('deployment/l')).rejects.toMatchObject({ chain: 'deployment/l', seq: 2, problem: 'gap' });
    // The other chain is untouched and loads.
    expect((await journal.load('deployment/other')).facts).toHaveLength(2);
  });

  it('read-only: a reader opens a live data dir without its lock, sees every commit, verifies, and cannot write', async () => {
    const { rt, dir } = await open();
    await workload(rt);
    const ro = new SqliteStore(dir, { readonly: true });
    closing.push(ro);
    const reader = new SqliteJournal(ro);
    const key = AuthorityKey.loadPublic(dir)!;
    const check = (cp: Checkpoint) => key.verifyCheckpoint(cp.hash, cp.sig);
    expect(reader.tail({ limit: 5 })).toEqual((await rt.journal.tail({ limit: 5 })).slice(0, 5));
    expect(verifyStore(ro, check)).toMatchObject({ ok: true, count: lastPos(rt), attestedPos: lastPos(rt) });
    // Commits made after the reader opened are visible to it (WAL readers see committed groups).
    await rt.propose({ id: iid('ro'), proposer: BOT, target: 'deployment/a', action: 'SCALE', params: { replicas: 3 } });
    expect(ro.lastPos()).toBe(lastPos(rt));
    expect(reader.tail({ limit: 1, chain: 'deployment/a' })[0]!.type).toBe('transition');
    expect(verifyStore(ro, check)).toMatchObject({ ok: true, count: lastPos(rt) });
    await expect(ro.commit({ facts: [], snapshots: [], outcomes: [], grants: [], pendingPut: [], pendingDelete: [] })).rejects.toThrow(
      /read-only/,
    );
    await expect(reader.commit(turnOf('deployment/ro', EMPTY_HEAD, 1))).rejects.toBeInstanceOf(JournalError);
    expect(ro.chainHead('deployment/ro')).toEqual(EMPTY_HEAD);
    // A data dir without a store is not created by a reader.
    const empty = freshDir();
    expect(() => new SqliteStore(empty, { readonly: true })).toThrow(/there is no store file/);
    expect(existsSync(join(empty, 'ice.db'))).toBe(false);
  });

  it('a data dir of schema version 1 (one global chain) is refused with a clear message, read-write and read-only', async () => {
    const dir = freshDir();
    const db = new Database(join(dir, 'ice.db'));
    db.exec(V1_SCHEMA);
    db.prepare('INSERT INTO meta(key, value) VALUES (?, ?)').run('schema_version', '1');
    db.close();
    const clear = /schema version 1.*reads version 2/;
    expect(() => new SqliteStore(dir)).toThrow(clear);
    expect(() => new SqliteStore(dir)).toThrow(JournalError);
    await expect(createRuntime({ dataDir: dir })).rejects.toThrow(clear);
    expect(() => new SqliteStore(dir, { readonly: true })).toThrow(clear);
    // Refusing it changed nothing: still version 1, still the old table.
    const after = new Database(join(dir, 'ice.db'), { readonly: true });
    expect(after.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get()).toEqual({ value: '1' });
    expect((after.prepare('PRAGMA table_info(facts)').all() as Array<{ name: string }>).map((c) => c.name)).not.toContain('chain');
    after.close();
  });
});

/** The tables of a version-1 store (ice-runtime before per-chain facts). */
const V1_SCHEMA = `
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE facts (
  seq INTEGER PRIMARY KEY, type TEXT NOT NULL, actor TEXT, intent_id TEXT, at TEXT NOT NULL,
  body TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL
) STRICT;
CREATE INDEX facts_actor ON facts(actor, seq) WHERE actor IS NOT NULL;
CREATE INDEX facts_intent ON facts(intent_id) WHERE intent_id IS NOT NULL;
CREATE TABLE snapshots (actor TEXT PRIMARY KEY, kind TEXT NOT NULL, seq INTEGER NOT NULL, status TEXT NOT NULL, state TEXT NOT NULL, body TEXT NOT NULL) STRICT;
CREATE TABLE outcomes (intent_id TEXT PRIMARY KEY, digest TEXT NOT NULL, body TEXT NOT NULL) STRICT;
CREATE TABLE grants (id TEXT PRIMARY KEY, body TEXT NOT NULL) STRICT;
CREATE TABLE checkpoints (seq INTEGER PRIMARY KEY, hash TEXT NOT NULL, key_id TEXT NOT NULL, sig TEXT NOT NULL, at TEXT NOT NULL) STRICT;
CREATE TABLE pending (intent_id TEXT PRIMARY KEY, actor TEXT NOT NULL, body TEXT NOT NULL, created_at TEXT NOT NULL) STRICT;
`;

describe('hash chain tamper detection', () => {
  async function history(): Promise<{ dir: string; facts: Fact[] }> {
    const { rt, dir } = await open();
    await workload(rt);
    const facts = await allFacts(rt);
    expect((await rt.journal.verify()).ok).toBe(true);
    await stop(rt);
    return { dir, facts };
  }

  function tamper<T>(dir: string, fn: (db: Database.Database) => T): T {
    const db = new Database(join(dir, 'ice.db'));
    try {
      return fn(db);
    } finally {
      db.close();
    }
  }

  /**
   * Verifies the tampered dir as `ice journal verify` does: opened read-only, with the
   * authority's public key. (A node would not start on it: see the start-up check below.)
   */
  async function verifyAfter(dir: string) {
    const store = new SqliteStore(dir, { readonly: true });
    try {
      const key = AuthorityKey.loadPublic(dir)!;
      return verifyStore(store, (cp) => cp.keyId === key.keyId && key.verifyCheckpoint(cp.hash, cp.sig));
    } finally {
      await store.close();
    }
  }

  /** Position (write order) of a fact. */
  const posOf = (facts: Fact[], f: Fact) => facts.indexOf(f) + 1;
  const hasNext = (facts: Fact[], f: Fact) => facts.some((g) => g.actor === f.actor && g.seq === f.seq + 1);
  /** A mid-history transition: not first in its chain, not its chain's last fact, not near either end of the journal. */
  const pick = (facts: Fact[]) =>
    facts.filter((f, i) => f.type === 'transition' && f.seq > 3 && i > 3 && i < facts.length - 3 && hasNext(facts, f))[2]!;
  const WHERE = 'WHERE chain = ? AND seq = ?';
  type CpRow = { pos: number; heads: string; prev: string; hash: string };
  const checkpointRows = (db: Database.Database) =>
    db.prepare('SELECT pos, heads, prev, hash FROM checkpoints ORDER BY pos').all() as CpRow[];

  it('an edited fact body is found at its chain and seq', async () => {
    const { dir, facts } = await history();
    const k = pick(facts);
    const changed = tamper(dir, (db) => {
      const row = db.prepare(`SELECT body FROM facts ${WHERE}`).get(k.actor, k.seq) as { body: string };
      const edited = row.body.replace(`"to":"${k.data.to as string}"`, '"to":"TAMPERED"');
      expect(edited).not.toBe(row.body);
      return db.prepare(`UPDATE facts SET body = ? ${WHERE}`).run(edited, k.actor, k.seq).changes;
    });
    expect(changed).toBe(1);
    const v = await verifyAfter(dir);
    expect(v).toMatchObject({ ok: false, brokenChain: k.actor, brokenAt: k.seq, brokenPos: posOf(facts, k) });
    expect(v.count).toBe(posOf(facts, k) - 1);
  });

  it('a deleted row is found at its chain and seq', async () => {
    const { dir, facts } = await history();
    const k = pick(facts);
    expect(tamper(dir, (db) => db.prepare(`DELETE FROM facts ${WHERE}`).run(k.actor, k.seq).changes)).toBe(1);
    const v = await verifyAfter(dir);
    expect(v).toMatchObject({ ok: false, brokenChain: k.actor, brokenAt: k.seq });
    expect(v.reason).toMatch(/missing/);
  });

  it('an edited hash column is found at its chain and seq', async () => {
    const { dir, facts } = await history();
    const k = pick(facts);
    tamper(dir, (db) => db.prepare(`UPDATE facts SET hash = ? ${WHERE}`).run('0'.repeat(64), k.actor, k.seq));
    expect(await verifyAfter(dir)).toMatchObject({ ok: false, brokenChain: k.actor, brokenAt: k.seq });
  });

  it('edited index columns (actor, intent, type) are found at their chain and seq', async () => {
    for (const [column, value] of [
      ['actor', 'deployment/elsewhere'],
      ['intent_id', 'someone-else'],
      ['type', 'grant.issued'],
    ] as const) {
      const { dir, facts } = await history();
      const k = pick(facts.filter((f) => f.intentId !== undefined));
      tamper(dir, (db) => db.prepare(`UPDATE facts SET ${column} = ? ${WHERE}`).run(value, k.actor, k.seq));
      const v = await verifyAfter(dir);
      expect(v, column).toMatchObject({ ok: false, brokenChain: k.actor, brokenAt: k.seq });
      expect(v.reason).toMatch(/columns disagree/);
    }
  });

  it('an edited prev column is found at its chain and seq', async () => {
    const { dir, facts } = await history();
    const k = pick(facts);
    tamper(dir, (db) => db.prepare(`UPDATE facts SET prev = ? ${WHERE}`).run('f'.repeat(64), k.actor, k.seq));
    expect(await verifyAfter(dir)).toMatchObject({ ok: false, brokenChain: k.actor, brokenAt: k.seq });
  });

  it("a body edited with its own hash recomputed breaks the next link of its chain, or (its chain's last fact) its checkpoint", async () => {
    const { dir, facts } = await history();
    const rehash = (f: Fact) =>
      tamper(dir, (db) => {
        const row = db.prepare(`SELECT body, prev FROM facts ${WHERE}`).get(f.actor, f.seq) as { body: string; prev: string };
        const edited = row.body.replace(/"at":"[^"]+"/, '"at":"2000-01-01T00:00:00.000Z"');
        expect(edited).not.toBe(row.body);
        db.prepare(`UPDATE facts SET body = ?, at = ?, hash = ? ${WHERE}`).run(
          edited,
          '2000-01-01T00:00:00.000Z',
          sha256Hex(row.prev + edited),
          f.actor,
          f.seq,
        );
      });
    const k = pick(facts);
    rehash(k);
    expect(await verifyAfter(dir)).toMatchObject({ ok: false, brokenChain: k.actor, brokenAt: k.seq + 1 });
    // The newest fact of a chain has no next link: the signed checkpoint naming it catches it.
    const { dir: dir2, facts: facts2 } = await history();
    const last = facts2.filter((f) => f.actor === 'deployment/b').at(-1)!;
    const rehash2 = (f: Fact) =>
      tamper(dir2, (db) => {
        const row = db.prepare(`SELECT body, prev FROM facts ${WHERE}`).get(f.actor, f.seq) as { body: string; prev: string };
        const edited = row.body.replace(/"at":"[^"]+"/, '"at":"2000-01-01T00:00:00.000Z"');
        db.prepare(`UPDATE facts SET body = ?, at = ?, hash = ? ${WHERE}`).run(
          edited,
          '2000-01-01T00:00:00.000Z',
          sha256Hex(row.prev + edited),
          f.actor,
          f.seq,
        );
      });
    rehash2(last);
    const v = await verifyAfter(dir2);
    expect(v).toMatchObject({ ok: false, brokenChain: 'deployment/b', brokenAt: last.seq });
    expect(v.reason).toMatch(/checkpoint/);
  });

  it("a chain's rewritten suffix with every hash recomputed is caught by the signed checkpoints", async () => {
    const { dir, facts } = await history();
    const k = pick(facts);
    const chain = k.actor!;
    const firstCp = tamper(dir, (db) => {
      const rows = db.prepare('SELECT seq, body, prev FROM facts WHERE chain = ? AND seq >= ? ORDER BY seq').all(chain, k.seq) as Array<{
        seq: number;
        body: string;
        prev: string;
      }>;
      expect(rows.length).toBeGreaterThan(1);
      let prev = rows[0]!.prev;
      for (const r of rows) {
        const body = r.seq === k.seq ? r.body.replace(`"to":"${k.data.to as string}"`, '"to":"TAMPERED"') : r.body;
        const hash = sha256Hex(prev + body);
        db.prepare(`UPDATE facts SET body = ?, prev = ?, hash = ? ${WHERE}`).run(body, prev, hash, chain, r.seq);
        prev = hash;
      }
      // The first checkpoint naming a rewritten fact of the chain (the one of k's own group).
      for (const cp of checkpointRows(db)) {
        const named = (JSON.parse(cp.heads) as Checkpoint['heads']).find(([c, s]) => c === chain && s >= k.seq);
        if (named) return { pos: cp.pos, seq: named[1] };
      }
      throw new Error('no checkpoint names the rewritten facts');
    });
    expect(firstCp.seq).toBeGreaterThanOrEqual(k.seq);
    expect(firstCp.pos).toBeGreaterThanOrEqual(posOf(facts, k));
    const v = await verifyAfter(dir);
    expect(v).toMatchObject({ ok: false, brokenChain: chain, brokenAt: firstCp.seq });
    expect(v.reason).toMatch(/checkpoint/);
    // ... and rewriting the checkpoints too (their heads, and the checkpoint chain from there on)
    // fails on the newest one's signature (it attests, through the chain, every one before it).
    const lastCp = tamper(dir, (db) => {
      let prev = '';
      for (const cp of checkpointRows(db)) {
        if (cp.pos >= firstCp.pos) {
          const heads = (JSON.parse(cp.heads) as Checkpoint['heads']).map(([c, s, h]): [string, number, string] => [
            c,
            s,
            c === chain ? (db.prepare(`SELECT hash FROM facts ${WHERE}`).get(c, s) as { hash: string }).hash : h,
          ]);
          const hash = checkpointHash(prev, heads);
          db.prepare('UPDATE checkpoints SET heads = ?, prev = ?, hash = ? WHERE pos = ?').run(JSON.stringify(heads), prev, hash, cp.pos);
          prev = hash;
        } else prev = cp.hash;
      }
      return checkpointRows(db).at(-1)!.pos;
    });
    const v2 = await verifyAfter(dir);
    expect(v2).toMatchObject({ ok: false, brokenPos: lastCp });
    expect(v2.reason).toMatch(/signature/);
    // ... and dropping the checkpoints from the rewrite on leaves the rewritten facts unattested.
    tamper(dir, (db) => db.prepare('DELETE FROM checkpoints WHERE pos >= ?').run(firstCp.pos));
    const v3 = await verifyAfter(dir);
    expect(v3.ok).toBe(true);
    expect(v3.attestedPos).toBeLessThan(posOf(facts, k));
    expect(v3.lastPos).toBe(facts.length);
  });

  it("an edited checkpoint (one checkpoint's heads changed) is found at that checkpoint, or the next one when its hash is recomputed", async () => {
    const { dir, facts } = await history();
    const { cp, next } = tamper(dir, (db) => {
      const cps = checkpointRows(db);
      expect(cps.length).toBeGreaterThan(4);
      const i = Math.floor(cps.length / 2);
      const cp = cps[i]!;
      // Name an older fact of the same chain as the head: as if the checkpoint had not seen the newer ones.
      const heads = (JSON.parse(cp.heads) as Checkpoint['heads']).map(([c, s, h]): [string, number, string] =>
        s > 1 ? [c, s - 1, (db.prepare(`SELECT hash FROM facts ${WHERE}`).get(c, s - 1) as { hash: string }).hash] : [c, s, h],
      );
      expect(JSON.stringify(heads)).not.toBe(cp.heads);
      db.prepare('UPDATE checkpoints SET heads = ? WHERE pos = ?').run(JSON.stringify(heads), cp.pos);
      return { cp: { ...cp, heads }, next: cps[i + 1]! };
    });
    const v = await verifyAfter(dir);
    expect(v).toMatchObject({ ok: false, brokenPos: cp.pos });
    expect(v.reason).toMatch(/does not link/);
    // With its own hash recomputed it links to the one before, and the next one no longer links to it.
    tamper(dir, (db) => db.prepare('UPDATE checkpoints SET hash = ? WHERE pos = ?').run(checkpointHash(cp.prev, cp.heads), cp.pos));
    const v2 = await verifyAfter(dir);
    expect(v2).toMatchObject({ ok: false, brokenPos: next.pos });
    expect(v2.reason).toMatch(/does not link/);
    expect(v2.count).toBe(facts.length); // every chain itself is intact
  });

  it('an untouched journal verifies after a restart, attested up to its last fact', async () => {
    const { dir, facts } = await history();
    const v = await verifyAfter(dir);
    expect(v).toMatchObject({
      ok: true,
      count: facts.length,
      chains: byChain(facts).size,
      lastPos: facts.length,
      attestedPos: facts.length,
    });
    expect(v.checkpoints).toBeGreaterThan(1);
  });
});

describe('causes, snapshots, restore and replay', () => {
  let dir: string;
  let rt: Runtime;
  let cleanup: () => void;
  beforeAll(async () => {
    const t = tempDir('ice-journal-shared-');
    dir = t.dir;
    cleanup = t.cleanup;
    rt = await createRuntime({ dataDir: dir });
    await workload(rt);
  });
  afterAll(async () => {
    await rt.stop();
    cleanup();
  });

  it('a transition is caused by its decision, which is caused by its intent.proposed, all on the actor chain', async () => {
    const facts = await allFacts(rt);
    const transitions = facts.filter((f) => f.type === 'transition' && f.intentId !== undefined);
    expect(transitions.length).toBeGreaterThan(5);
    for (const t of transitions) {
      expect(t.causes).toHaveLength(1);
      const d = (await rt.journal.fact(t.actor!, t.causes[0]!))!;
      expect(d.type).toBe('decision');
      expect(d.intentId).toBe(t.intentId);
      expect(d.actor).toBe(t.actor);
      expect((d.data.decision as { verdict: string; intentId: string }).verdict).toBe('granted');
      expect((d.data.decision as { intentId: string }).intentId).toBe(t.intentId);
      expect(d.causes).toHaveLength(1);
      const p = (await rt.journal.fact(t.actor!, d.causes[0]!))!;
      expect(p.type).toBe('intent.proposed');
      expect(p.intentId).toBe(t.intentId);
      expect(p.actor).toBe(t.actor);
      expect(p.causes).toEqual([]);
      expect((p.data.intent as { id: string }).id).toBe(t.intentId);
      expect(p.seq).toBeLessThan(d.seq);
      expect(d.seq).toBeLessThan(t.seq);
    }
    // denials stop at the decision
    const denied = facts.filter((f) => f.type === 'decision' && (f.data.decision as { verdict: string }).verdict === 'denied');
    expect(denied.length).toBeGreaterThan(0);
    for (const d of denied)
      expect((await rt.journal.factsOfIntent(d.intentId!)).map((f) => f.type)).toEqual(['intent.proposed', 'decision']);
    // facts without an actor (grant changes, rejections) are on the runtime chain
    for (const f of facts.filter((x) => x.type === 'grant.issued' || x.type === 'intent.rejected')) expect(f.actor).toBe(rt.runtimeChain);
  });

  it("the stored snapshot is never ahead of the journal: it is at its chain's head, in the state of the last state-changing fact", async () => {
    const ro = new SqliteStore(dir, { readonly: true });
    try {
      for (const a of await rt.listActors()) {
        const rec = ro.snapshot(a.address)!;
        const chain = await rt.journal.chain(a.address);
        // Every turn of an actor stores the snapshot after it (a denial too): at the turn's last seq.
        expect(rec.seq, a.address).toBe(chain.at(-1)!.seq);
        expect(rec.seq).toBe(ro.chainHead(a.address).seq);
        const changed = chain.filter((f) => f.type === 'transition' || f.type === 'actor.started').at(-1)!;
        expect(rec.state).toBe(changed.type === 'transition' ? changed.data.to : changed.data.state);
        expect(a.seq).toBe(rec.seq);
      }
    } finally {
      await ro.close();
    }
  });

  it("replayActor over an actor's chain equals its snapshot", async () => {
    for (const a of await rt.listActors()) {
      const facts = await rt.journal.chain(a.address);
      expect(facts).toEqual((await rt.journal.tail({ chain: a.address, limit: 100_000 })).reverse());
      const def = defs[a.kind as keyof typeof defs];
      const r = replayActor(def, facts);
      const d = await detail(rt, a.address);
      expect(r.state, a.address).toBe(d.state);
      expect(r.context).toEqual(d.context);
      expect(JSON.parse(JSON.stringify(r.actor.getPersistedSnapshot()))).toEqual(JSON.parse(JSON.stringify(d.snapshot)));
      r.actor.stop();
    }
    expect((await detail(rt, 'run/r1')).state).toBe('TERMINATED_BY_RUNTIME');
    expect((await detail(rt, 'deployment/a')).state).toBe('live');
  });
});

describe('restart', () => {
  it('restores every actor from its snapshot (state and context equal) and carries on', async () => {
    const { rt, dir } = await open();
    await workload(rt);
    const before = await Promise.all((await rt.listActors()).map(async (a) => ({ ...a, detail: await detail(rt, a.address) })));
    const written = lastPos(rt);
    await stop(rt);

    const { rt: rt2 } = await open(dir);
    expect(lastPos(rt2)).toBe(written);
    expect((await rt2.listActors()).map((a) => a.address)).toEqual(before.map((a) => a.address));
    for (const b of before) {
      const d = await detail(rt2, b.address);
      expect(d.state, b.address).toBe(b.detail.state);
      expect(d.status).toBe(b.detail.status);
      expect(d.context).toEqual(b.detail.context);
    }
    // Use activates the actor from its snapshot (nothing to replay) and it carries on.
    const o = await rt2.propose({ id: iid('after'), proposer: BOT, target: 'deployment/a', action: 'SCALE', params: { replicas: 9 } });
    expect(o.status).toBe('executed');
    const restored = (await rt2.journal.chain('deployment/a')).filter((f) => f.type === 'actor.restored');
    expect(restored).toHaveLength(1);
    expect(restored[0]!.data).toMatchObject({ replayed: 0, state: 'live' });
    expect((await rt2.journal.verify()).ok).toBe(true);
  });

  it('an actor whose stored snapshot is behind the journal is brought up to date by replaying its transitions', async () => {
    const { rt, dir } = await open();
    await rt.spawn('deployment/web');
    await rt.grants.issue({ subject: BOT, scope: '*' });
    await rt.propose(configure('deployment/web', 2));
    const ro = new SqliteStore(dir, { readonly: true });
    const old = ro.snapshot('deployment/web')!;
    await ro.close();
    await rt.propose({ id: iid(), proposer: BOT, target: 'deployment/web', action: 'SUBMIT', params: { author: 'bot' } });
    await rt.propose({ id: iid(), proposer: BOT, target: 'deployment/web', action: 'APPROVE', params: { reviewer: 'x' } });
    const want = await detail(rt, 'deployment/web');
    expect(want.state).toBe('approved');
    await stop(rt);
    // Put the older snapshot back, as if the last snapshots had not been written.
    const db = new Database(join(dir, 'ice.db'));
    db.prepare('UPDATE snapshots SET seq = ?, state = ?, body = ? WHERE actor = ?').run(
      old.seq,
      old.state,
      JSON.stringify(old),
      'deployment/web',
    );
    db.close();

    const { rt: rt2 } = await open(dir);
    const o = await rt2.propose({
      id: iid(),
      proposer: BOT,
      target: 'deployment/web',
      action: 'DEPLOY',
      params: { environment: 'staging' },
    });
    expect(o.status === 'executed' && [o.from, o.to]).toEqual(['approved', 'rolling_out']);
    const restored = (await rt2.journal.chain('deployment/web')).find((f) => f.type === 'actor.restored')!;
    expect(restored.data).toMatchObject({ fromSeq: old.seq, replayed: 2, state: 'approved' });
    const ctx = (await detail(rt2, 'deployment/web')).context as { reviewers: string[] };
    expect(ctx.reviewers).toEqual(['x']);
    expect({ ...ctx, attempts: 0, environment: undefined }).toEqual({
      ...(want.context as object),
      attempts: 0,
      environment: undefined,
    });
  });
});

describe("the caller's objects", () => {
  it('are neither frozen nor shared by what was validated, executed and journaled', async () => {
    const { rt } = await open();
    await rt.spawn('run/r1');
    await rt.grants.issue({ subject: BOT, scope: '*' });
    const resources = ['k8s:staging'];
    const intent = { id: iid('own'), proposer: BOT, target: 'run/r1', action: 'PROVISION', params: { resources } };
    const o = await rt.propose(intent);
    expect(o.status).toBe('executed');
    expect(Object.isFrozen(resources)).toBe(false);
    expect(Object.isFrozen(intent.params)).toBe(false);
    resources.push('k8s:production');
    expect(((await detail(rt, 'run/r1')).context as { resources: string[] }).resources).toEqual(['k8s:staging']);
    const proposed = (await rt.journal.factsOfIntent(intent.id)).find((f) => f.type === 'intent.proposed')!;
    expect((proposed.data.intent as { params: unknown }).params).toEqual({ resources: ['k8s:staging'] });
    // the changed object is now a different intent under the same id
    const again = await rt.propose(intent);
    expect(again.status === 'rejected' && again.issues[0]!.code).toBe('idempotency_conflict');
  });
});

describe('data dir lock', () => {
  it('a second runtime on the same dir is refused until the first stops', async () => {
    const { rt, dir } = await open();
    await rt.spawn('deployment/web');
    await expect(createRuntime({ dataDir: dir })).rejects.toBeInstanceOf(DataDirLockedError);
    await expect(createRuntime({ dataDir: dir })).rejects.toMatchObject({ code: 'E_DATA_DIR_LOCKED', ownerPid: process.pid });
    // the refused attempt did not disturb the owner
    await rt.grants.issue({ subject: BOT, scope: '*' });
    expect((await rt.propose(configure('deployment/web', 2))).status).toBe('executed');
    await stop(rt);
    const { rt: rt2 } = await open(dir);
    expect((await detail(rt2, 'deployment/web')).state).toBe('draft');
    expect((await rt2.journal.verify()).ok).toBe(true);
  });
});

describe('bad input through rt.propose', () => {
  let rt: Runtime;
  let t: { dir: string; cleanup: () => void };
  const MAX = 4096;
  beforeAll(async () => {
    t = tempDir('ice-journal-bad-');
    rt = await createRuntime({ dataDir: t.dir, limits: { maxBytes: MAX }, clock: new ManualClock() });
    await rt.spawn('deployment/web');
    await rt.spawn('run/r1');
    await rt.grants.issue({ subject: BOT, scope: '*' });
  });
  afterAll(async () => {
    await rt.stop();
    t.cleanup();
  });

  const good = () => configure('deployment/web', 2);
  const deep = (n: number): unknown => (n === 0 ? 1 : { x: deep(n - 1) });
  const cyclic = () => {
    const o: Record<string, unknown> = { version: '1.0.0' };
    o.self = o;
    return o;
  };
  const transitionCount = async () => (await allFacts(rt)).filter((f) => f.type === 'transition').length;

  const cases: Array<[string, () => unknown, string | RegExp, string?]> = [
    ['id of the wrong type', () => ({ ...good(), id: 42 }), 'id'],
    ['proposer of the wrong type', () => ({ ...good(), proposer: ['agent:bot'] }), 'proposer'],
    ['params a string', () => ({ ...good(), params: 'replicas=2' }), 'params'],
    ['params an array', () => ({ ...good(), params: [1, 2] }), 'params'],
    ['missing action', () => ({ ...good(), action: undefined }), 'action'],
    ['v: 2', () => ({ ...good(), v: 2 }), 'v'],
    ['an unknown envelope key', () => ({ ...good(), admin: true }), '', 'unrecognized_keys'],
    ['unknown action', () => ({ ...good(), action: 'LAUNCH' }), 'action', 'unknown_action'],
    ['unknown kind', () => ({ ...good(), target: 'spaceship/x' }), 'target', 'unknown_kind'],
    ['unknown actor', () => ({ ...good(), target: 'deployment/ghost' }), 'target', 'unknown_actor'],
    ['a malformed address', () => ({ ...good(), target: 'deployment' }), 'target'],
    ['params failing the schema', () => ({ ...good(), params: { version: 'latest', replicas: 1 } }), 'params.version'],
    ['params out of range', () => ({ ...good(), params: { version: '1.0.0', replicas: 0 } }), 'params.replicas'],
    ['an extra param', () => ({ ...good(), params: { version: '1.0.0', replicas: 1, sudo: true } }), 'params', 'unrecognized_keys'],
    ['over-size JSON', () => ({ ...good(), rationale: 'x'.repeat(MAX) }), '', 'too_large'],
    ['too deep', () => ({ ...good(), params: { version: '1.0.0', replicas: 1, extra: deep(30) } }), /^params\.extra(\.x)+$/, 'too_deep'],
    ['a cycle', () => ({ ...good(), params: cyclic() }), /^params(\.self)+$/, 'too_deep'],
    [
      'a __proto__ key',
      () =>
        JSON.parse(
          `{"id":"${iid('p')}","proposer":"${BOT}","target":"deployment/web","action":"CONFIGURE","params":{"__proto__":{"admin":true},"version":"1.0.0","replicas":1}}`,
        ),
      'params.__proto__',
      'forbidden_key',
    ],
    [
      'a constructor key in an array',
      () => ({ ...good(), params: { version: '1.0.0', replicas: 1, list: [{ ok: 1 }, JSON.parse('{"constructor":{"prototype":{}}}')] } }),
      'params.list.1.constructor',
      'forbidden_key',
    ],
    ['a top-level prototype key', () => ({ ...good(), prototype: {} }), 'prototype', 'forbidden_key'],
    [
      'a runtime-only action',
      () => ({ id: iid(), proposer: BOT, target: 'run/r1', action: 'RUNTIME_ABORT', params: { reason: 'x' } }),
      'action',
      'runtime_only_action',
    ],
    ['a bigint param', () => ({ ...good(), params: { version: '1.0.0', replicas: 2n } }), 'params.replicas', 'not_json'],
    ['a NaN param', () => ({ ...good(), params: { version: '1.0.0', replicas: NaN } }), 'params.replicas', 'not_json'],
    ['a string', () => 'CONFIGURE deployment/web', ''],
    ['null', () => null, ''],
    ['a number', () => 42, ''],
    ['an array', () => [good()], ''],
    ['undefined', () => undefined, ''],
    ['an empty object', () => ({}), 'id'],
  ];

  it.each(cases)(
    '%s → rejected at its path, an intent.rejected fact on the runtime chain, no state change',
    async (_name, make, path, code) => {
      const raw = make();
      const snapBefore = (await detail(rt, 'deployment/web')).snapshot;
      const runBefore = (await detail(rt, 'run/r1')).snapshot;
      const transitionsBefore = await transitionCount();
      const o: Outcome = await rt.propose(raw as Record<string, unknown>); // anything at all: the door rejects it
      expect(o.status, JSON.stringify(o)).toBe('rejected');
      if (o.status !== 'rejected') return;
      const hit = o.issues.find((i) => (typeof path === 'string' ? i.path === path : path.test(i.path)));
      expect(hit, `no issue at ${String(path)} in ${JSON.stringify(o.issues)}`).toBeDefined();
      if (code) expect(hit!.code).toBe(code);
      for (const i of o.issues) expect(typeof i.message).toBe('string');
      expect(o.chain).toBe(rt.runtimeChain);
      const f = (await rt.journal.fact(o.chain!, o.seq!))!;
      expect(f.type).toBe('intent.rejected');
      expect(f.actor).toBe(rt.runtimeChain);
      expect(f.data.issues).toEqual(o.issues);
      const rawId = (raw as { id?: unknown } | null)?.id;
      if (typeof rawId === 'string') {
        expect(o.intentId).toBe(rawId);
        expect(f.intentId).toBe(rawId);
        expect((await rt.journal.factsOfIntent(rawId)).map((x) => x.type)).toEqual(['intent.rejected']);
      }
      expect(await transitionCount()).toBe(transitionsBefore);
      expect((await detail(rt, 'deployment/web')).snapshot).toEqual(snapBefore);
      expect((await detail(rt, 'run/r1')).snapshot).toEqual(runBefore);
      expect(OutcomeSchema.safeParse(o).success).toBe(true);
    },
  );

  it('the process is fine afterwards: a good intent executes and every chain verifies', async () => {
    const o = await rt.propose(good());
    expect(o.status).toBe('executed');
    expect((await rt.journal.verify()).ok).toBe(true);
    const rejected = (await rt.journal.chain(rt.runtimeChain)).filter((f) => f.type === 'intent.rejected');
    expect(rejected.length).toBeGreaterThanOrEqual(cases.length);
  });
});

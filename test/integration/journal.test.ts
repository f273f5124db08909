import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import { deploymentActor, runActor } from '../../actors/index.js';
import {
  DataDirLockedError,
  FactSchema,
  ManualClock,
  OutcomeSchema,
  createRuntime,
  replayActor,
  sha256Hex,
  type Fact,
  type Outcome,
  type Runtime,
  type RuntimeOptions,
} from '../../src/index.js';
import { SqliteStore } from '../../src/store/index.js';
import { iid, tempDir } from '../helpers/runtime.js';

/**
 * The journal and everything it guarantees, on real SQLite files: idempotency, group
 * commit, the hash chain against tampering, causes, snapshots never ahead of the journal,
 * restore and replay, the data dir lock, and the door's refusal of bad input.
 */

const BOT = 'agent:bot';
const defs = { deployment: deploymentActor, run: runActor } as const;

const dirs: Array<() => void> = [];
const running: Runtime[] = [];
afterEach(async () => {
  for (const rt of running.splice(0)) await rt.stop();
  for (const d of dirs.splice(0)) d();
});

async function open(dir?: string, opts: RuntimeOptions = {}): Promise<{ rt: Runtime; dir: string }> {
  let d = dir;
  if (!d) {
    const t = tempDir('ice-journal-');
    dirs.push(t.cleanup);
    d = t.dir;
  }
  const rt = await createRuntime({ dataDir: d, ...opts });
  running.push(rt);
  return { rt, dir: d };
}

async function stop(rt: Runtime): Promise<void> {
  await rt.stop();
  const i = running.indexOf(rt);
  if (i >= 0) running.splice(i, 1);
}

const allFacts = (rt: Runtime): Fact[] => rt.journal.read(1, 1_000_000);
const transitionsOf = (rt: Runtime, actor: string, intentId?: string) =>
  allFacts(rt).filter((f) => f.type === 'transition' && f.actor === actor && (intentId === undefined || f.intentId === intentId));
const configure = (target: string, replicas: number, id = iid('j')) => ({
  id,
  proposer: BOT,
  target,
  action: 'CONFIGURE',
  params: { version: '1.0.0', replicas },
});

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
    const head = rt.journal.headSeq;
    const o2 = await rt.propose({ ...intent });
    expect(o1.status).toBe('executed');
    expect(o2).toEqual(o1);
    expect(rt.journal.headSeq).toBe(head); // the repeat wrote nothing
    expect(transitionsOf(rt, 'deployment/web', intent.id)).toHaveLength(1);
    expect(rt.journal.factsOfIntent(intent.id).filter((f) => f.type === 'intent.proposed')).toHaveLength(1);
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
    expect(transitionsOf(rt, 'deployment/web')).toHaveLength(0);
  });

  it('the same id with different content is rejected with idempotency_conflict', async () => {
    const { rt } = await open();
    await rt.spawn('deployment/web');
    await rt.grants.issue({ subject: BOT, scope: '*' });
    const intent = configure('deployment/web', 2);
    expect((await rt.propose(intent)).status).toBe('executed');
    const before = rt.actor('deployment/web');
    for (const other of [
      { ...intent, params: { version: '1.0.0', replicas: 3 } },
      { ...intent, proposer: 'agent:other' },
      { ...intent, rationale: 'now with a reason' },
    ]) {
      const o = await rt.propose(other);
      expect(o.status).toBe('rejected');
      expect(o.status === 'rejected' && o.issues.map((i) => [i.path, i.code])).toEqual([['id', 'idempotency_conflict']]);
      const f = rt.journal.fact(o.seq!)!;
      expect(f.type).toBe('intent.rejected');
      expect(f.intentId).toBe(intent.id);
    }
    expect(transitionsOf(rt, 'deployment/web')).toHaveLength(1);
    expect(rt.actor('deployment/web')!.snapshot).toEqual(before!.snapshot);
  });

  it('20 concurrent proposals of the same id execute once', async () => {
    const { rt } = await open();
    await rt.spawn('deployment/web');
    await rt.grants.issue({ subject: BOT, scope: '*', maxUses: 5 });
    const intent = configure('deployment/web', 9);
    const outs = await Promise.all(Array.from({ length: 20 }, () => rt.propose({ ...intent, params: { ...intent.params } })));
    expect(outs[0]!.status).toBe('executed');
    for (const o of outs) expect(o).toEqual(outs[0]);
    expect(transitionsOf(rt, 'deployment/web', intent.id)).toHaveLength(1);
    expect(rt.journal.factsOfIntent(intent.id).map((f) => f.type)).toEqual(['intent.proposed', 'decision', 'transition']);
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
    expect(transitionsOf(rt, 'deployment/web')).toHaveLength(1);
  });

  it('the stored outcome answers repeats after a restart', async () => {
    const { rt, dir } = await open();
    await rt.spawn('deployment/web');
    await rt.grants.issue({ subject: BOT, scope: '*' });
    const intent = configure('deployment/web', 4);
    const o1 = await rt.propose(intent);
    await stop(rt);
    const { rt: rt2 } = await open(dir);
    const head = rt2.journal.headSeq;
    expect(await rt2.propose(intent)).toEqual(o1);
    expect(rt2.journal.headSeq).toBe(head);
    expect(transitionsOf(rt2, 'deployment/web')).toHaveLength(1);
    const conflict = await rt2.propose({ ...intent, params: { version: '1.0.0', replicas: 5 } });
    expect(conflict.status === 'rejected' && conflict.issues[0]!.code).toBe('idempotency_conflict');
  });
});

describe('group commit', () => {
  it('many concurrent intents to many actors: all executed, chain verifies, seqs contiguous, batches merged', async () => {
    const { rt, dir } = await open();
    const ACTORS = 30;
    const PER = 4;
    const actors = Array.from({ length: ACTORS }, (_, i) => `deployment/g${i}`);
    await Promise.all(actors.map((a) => rt.spawn(a)));
    await rt.grants.issue({ subject: BOT, scope: 'deployment/*:CONFIGURE' });
    const flushesBefore = rt.stats().flushes;
    // While the load runs, look at the disk through a second, read-only connection after each
    // durable transition: an actor's stored snapshot always names a durable fact of its own.
    const ro = new SqliteStore(dir, { readonly: true });
    const seen: string[] = [];
    const off = rt.onFact((f) => {
      if (f.type !== 'transition') return;
      const snap = ro.snapshot(f.actor!)!;
      const at = ro.factRow(snap.seq);
      const own = at ? (JSON.parse(at.body) as Fact) : undefined;
      seen.push(
        own && own.actor === f.actor && own.type === 'transition' && snap.seq <= ro.head().seq && snap.seq >= f.seq ? 'ok' : `bad ${f.seq}`,
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
      expect((rt.actor(a)!.context as { replicas: number }).replicas).toBe(PER);
      expect(transitionsOf(rt, a)).toHaveLength(PER);
    }
    const facts = allFacts(rt);
    expect(facts.map((f) => f.seq)).toEqual(Array.from({ length: facts.length }, (_, i) => i + 1));
    expect(facts.length).toBe(rt.journal.headSeq);
    for (let i = 1; i < facts.length; i++) expect(facts[i]!.prev).toBe(facts[i - 1]!.hash);
    const v = rt.journal.verify();
    expect(v).toMatchObject({ ok: true, count: facts.length, headSeq: facts.length, headHash: facts.at(-1)!.hash });
    // Every fact and outcome has the protocol's shape.
    for (const f of facts) expect(FactSchema.safeParse(f).success, JSON.stringify(f)).toBe(true);
    for (const o of outs) expect(OutcomeSchema.safeParse(o).success).toBe(true);
    // Each outcome's seq is its transition fact.
    for (const o of outs) expect(o.status === 'executed' && rt.journal.fact(o.seq)!.type).toBe('transition');
  });
});

describe('hash chain tamper detection', () => {
  async function history(): Promise<{ dir: string; facts: Fact[] }> {
    const { rt, dir } = await open();
    await workload(rt);
    const facts = allFacts(rt);
    expect(rt.journal.verify().ok).toBe(true);
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

  /** Opens a runtime on the tampered dir (as an operator would), verifies, stops it. */
  async function verifyAfter(dir: string) {
    const { rt } = await open(dir);
    const v = rt.journal.verify();
    await stop(rt);
    return v;
  }

  /** A mid-history transition fact (not the first or last fact). */
  const pick = (facts: Fact[]) => facts.filter((f) => f.type === 'transition' && f.seq > 3 && f.seq < facts.length - 3)[2]!;

  it('an edited fact body is found at its seq', async () => {
    const { dir, facts } = await history();
    const k = pick(facts);
    const changed = tamper(dir, (db) => {
      const row = db.prepare('SELECT body FROM facts WHERE seq = ?').get(k.seq) as { body: string };
      const edited = row.body.replace(`"to":"${k.data.to as string}"`, '"to":"TAMPERED"');
      expect(edited).not.toBe(row.body);
      return db.prepare('UPDATE facts SET body = ? WHERE seq = ?').run(edited, k.seq).changes;
    });
    expect(changed).toBe(1);
    const v = await verifyAfter(dir);
    expect(v.ok).toBe(false);
    expect(v.brokenAt).toBe(k.seq);
    expect(v.count).toBe(k.seq - 1);
  });

  it('a deleted row is found at its seq', async () => {
    const { dir, facts } = await history();
    const k = pick(facts);
    expect(tamper(dir, (db) => db.prepare('DELETE FROM facts WHERE seq = ?').run(k.seq).changes)).toBe(1);
    const v = await verifyAfter(dir);
    expect(v).toMatchObject({ ok: false, brokenAt: k.seq });
    expect(v.reason).toMatch(/missing/);
  });

  it('an edited hash column is found at its seq', async () => {
    const { dir, facts } = await history();
    const k = pick(facts);
    tamper(dir, (db) => db.prepare('UPDATE facts SET hash = ? WHERE seq = ?').run('0'.repeat(64), k.seq));
    expect(await verifyAfter(dir)).toMatchObject({ ok: false, brokenAt: k.seq });
  });

  it('edited index columns (actor, intent, type) are found at their seq', async () => {
    for (const [column, value] of [
      ['actor', 'deployment/elsewhere'],
      ['intent_id', 'someone-else'],
      ['type', 'grant.issued'],
    ] as const) {
      const { dir, facts } = await history();
      const k = pick(facts.filter((f) => f.actor !== undefined && f.intentId !== undefined));
      tamper(dir, (db) => db.prepare(`UPDATE facts SET ${column} = ? WHERE seq = ?`).run(value, k.seq));
      const v = await verifyAfter(dir);
      expect(v, column).toMatchObject({ ok: false, brokenAt: k.seq });
      expect(v.reason).toMatch(/columns disagree/);
    }
  });

  it('an edited prev column is found at its seq', async () => {
    const { dir, facts } = await history();
    const k = pick(facts);
    tamper(dir, (db) => db.prepare('UPDATE facts SET prev = ? WHERE seq = ?').run('f'.repeat(64), k.seq));
    expect(await verifyAfter(dir)).toMatchObject({ ok: false, brokenAt: k.seq });
  });

  it('a body edited with its own hash recomputed breaks the next link (or its checkpoint)', async () => {
    const { dir, facts } = await history();
    const k = pick(facts);
    const cpSeqs = tamper(dir, (db) => {
      const row = db.prepare('SELECT body, prev FROM facts WHERE seq = ?').get(k.seq) as { body: string; prev: string };
      const edited = row.body.replace(`"to":"${k.data.to as string}"`, '"to":"TAMPERED"');
      db.prepare('UPDATE facts SET body = ?, hash = ? WHERE seq = ?').run(edited, sha256Hex(row.prev + edited), k.seq);
      return new Set((db.prepare('SELECT seq FROM checkpoints').all() as Array<{ seq: number }>).map((r) => r.seq));
    });
    const v = await verifyAfter(dir);
    expect(v.ok).toBe(false);
    expect(v.brokenAt).toBe(cpSeqs.has(k.seq) ? k.seq : k.seq + 1);
  });

  it('a rewritten suffix with every hash recomputed is caught by the signed checkpoints', async () => {
    const { dir, facts } = await history();
    const k = pick(facts);
    const firstCp = tamper(dir, (db) => {
      const rows = db.prepare('SELECT seq, body, prev FROM facts WHERE seq >= ? ORDER BY seq').all(k.seq) as Array<{
        seq: number;
        body: string;
        prev: string;
      }>;
      let prev = rows[0]!.prev;
      for (const r of rows) {
        const body = r.seq === k.seq ? r.body.replace(`"to":"${k.data.to as string}"`, '"to":"TAMPERED"') : r.body;
        const hash = sha256Hex(prev + body);
        db.prepare('UPDATE facts SET body = ?, prev = ?, hash = ? WHERE seq = ?').run(body, prev, hash, r.seq);
        prev = hash;
      }
      return (db.prepare('SELECT min(seq) AS s FROM checkpoints WHERE seq >= ?').get(k.seq) as { s: number }).s;
    });
    expect(firstCp).toBeGreaterThanOrEqual(k.seq);
    const v = await verifyAfter(dir);
    expect(v).toMatchObject({ ok: false, brokenAt: firstCp });
    // ... and rewriting the checkpoints' hashes too fails on the newest one's signature
    // (it attests, through the chain, everything before it).
    const lastCp = tamper(dir, (db) => {
      for (const cp of db.prepare('SELECT seq FROM checkpoints WHERE seq >= ?').all(k.seq) as Array<{ seq: number }>) {
        const h = (db.prepare('SELECT hash FROM facts WHERE seq = ?').get(cp.seq) as { hash: string }).hash;
        db.prepare('UPDATE checkpoints SET hash = ? WHERE seq = ?').run(h, cp.seq);
      }
      return (db.prepare('SELECT max(seq) AS s FROM checkpoints').get() as { s: number }).s;
    });
    const v2 = await verifyAfter(dir);
    expect(v2.ok).toBe(false);
    expect(v2.brokenAt).toBe(lastCp);
    expect(v2.reason).toMatch(/signature/);
    // ... and dropping the checkpoints after the rewrite leaves the rewritten facts unattested.
    tamper(dir, (db) => db.prepare('DELETE FROM checkpoints WHERE seq >= ?').run(k.seq));
    const v3 = await verifyAfter(dir);
    expect(v3.attestedSeq).toBeLessThan(k.seq);
    expect(v3.headSeq).toBeGreaterThanOrEqual(k.seq);
  });

  it('an untouched journal verifies after a restart', async () => {
    const { dir, facts } = await history();
    const v = await verifyAfter(dir);
    expect(v).toMatchObject({ ok: true, count: facts.length, headSeq: facts.length, headHash: facts.at(-1)!.hash });
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

  it('a transition is caused by its decision, which is caused by its intent.proposed', () => {
    const transitions = allFacts(rt).filter((f) => f.type === 'transition' && f.intentId !== undefined);
    expect(transitions.length).toBeGreaterThan(5);
    for (const t of transitions) {
      expect(t.causes).toHaveLength(1);
      const d = rt.journal.fact(t.causes[0]!)!;
      expect(d.type).toBe('decision');
      expect(d.intentId).toBe(t.intentId);
      expect(d.actor).toBe(t.actor);
      expect((d.data.decision as { verdict: string; intentId: string }).verdict).toBe('granted');
      expect((d.data.decision as { intentId: string }).intentId).toBe(t.intentId);
      expect(d.causes).toHaveLength(1);
      const p = rt.journal.fact(d.causes[0]!)!;
      expect(p.type).toBe('intent.proposed');
      expect(p.intentId).toBe(t.intentId);
      expect(p.causes).toEqual([]);
      expect((p.data.intent as { id: string }).id).toBe(t.intentId);
      expect(p.seq).toBeLessThan(d.seq);
      expect(d.seq).toBeLessThan(t.seq);
    }
    // denials stop at the decision
    const denied = allFacts(rt).filter((f) => f.type === 'decision' && (f.data.decision as { verdict: string }).verdict === 'denied');
    expect(denied.length).toBeGreaterThan(0);
    for (const d of denied) expect(rt.journal.factsOfIntent(d.intentId!).map((f) => f.type)).toEqual(['intent.proposed', 'decision']);
  });

  it("the stored snapshot is never ahead of the journal: its seq is the actor's last transition", async () => {
    const ro = new SqliteStore(dir, { readonly: true });
    try {
      for (const a of rt.listActors()) {
        const rec = ro.snapshot(a.address)!;
        const own = allFacts(rt).filter((f) => f.actor === a.address && (f.type === 'transition' || f.type === 'actor.started'));
        const last = own.at(-1)!;
        expect(rec.seq, a.address).toBe(last.seq);
        expect(rec.state).toBe(last.type === 'transition' ? last.data.to : last.data.state);
        expect(rec.seq).toBeLessThanOrEqual(ro.head().seq);
        expect(a.seq).toBe(rec.seq);
      }
    } finally {
      await ro.close();
    }
  });

  it("replayActor over an actor's facts equals its snapshot", () => {
    for (const a of rt.listActors()) {
      const facts = rt.journal.tail({ actor: a.address, limit: 100_000 }).reverse();
      const def = defs[a.kind as keyof typeof defs];
      const r = replayActor(def, facts);
      const d = rt.actor(a.address)!;
      expect(r.state, a.address).toBe(d.state);
      expect(r.context).toEqual(d.context);
      expect(JSON.parse(JSON.stringify(r.actor.getPersistedSnapshot()))).toEqual(JSON.parse(JSON.stringify(d.snapshot)));
      r.actor.stop();
    }
    expect(rt.actor('run/r1')!.state).toBe('TERMINATED_BY_RUNTIME');
    expect(rt.actor('deployment/a')!.state).toBe('live');
  });
});

describe('restart', () => {
  it('restores every actor from its snapshot (state and context equal) and carries on', async () => {
    const { rt, dir } = await open();
    await workload(rt);
    const before = rt.listActors().map((a) => ({ ...a, active: undefined, detail: rt.actor(a.address) }));
    const head = rt.journal.headSeq;
    await stop(rt);

    const { rt: rt2 } = await open(dir);
    expect(rt2.journal.headSeq).toBe(head);
    expect(rt2.listActors().map((a) => a.address)).toEqual(before.map((a) => a.address));
    for (const b of before) {
      const d = rt2.actor(b.address)!;
      expect(d.state, b.address).toBe(b.detail!.state);
      expect(d.status).toBe(b.detail!.status);
      expect(d.seq).toBe(b.detail!.seq);
      expect(d.context).toEqual(b.detail!.context);
    }
    // Use activates the actor from its snapshot (nothing to replay) and it carries on.
    const o = await rt2.propose({ id: iid('after'), proposer: BOT, target: 'deployment/a', action: 'SCALE', params: { replicas: 9 } });
    expect(o.status).toBe('executed');
    const restored = allFacts(rt2).filter((f) => f.type === 'actor.restored' && f.actor === 'deployment/a');
    expect(restored).toHaveLength(1);
    expect(restored[0]!.data).toMatchObject({ replayed: 0, state: 'live' });
    expect(rt2.journal.verify().ok).toBe(true);
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
    const want = rt.actor('deployment/web')!;
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
    const restored = allFacts(rt2).find((f) => f.type === 'actor.restored' && f.actor === 'deployment/web')!;
    expect(restored.data).toMatchObject({ fromSeq: old.seq, replayed: 2, state: 'approved' });
    expect((rt2.actor('deployment/web')!.context as { reviewers: string[] }).reviewers).toEqual(['x']);
    expect({ ...(rt2.actor('deployment/web')!.context as object), attempts: 0, environment: undefined }).toEqual({
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
    expect((rt.actor('run/r1')!.context as { resources: string[] }).resources).toEqual(['k8s:staging']);
    const proposed = rt.journal.factsOfIntent(intent.id).find((f) => f.type === 'intent.proposed')!;
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
    expect(rt2.actor('deployment/web')!.state).toBe('draft');
    expect(rt2.journal.verify().ok).toBe(true);
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

  it.each(cases)('%s → rejected at its path, an intent.rejected fact, no state change', async (_name, make, path, code) => {
    const raw = make();
    const snapBefore = rt.actor('deployment/web')!.snapshot;
    const runBefore = rt.actor('run/r1')!.snapshot;
    const transitionsBefore = allFacts(rt).filter((f) => f.type === 'transition').length;
    const o: Outcome = await rt.propose(raw);
    expect(o.status, JSON.stringify(o)).toBe('rejected');
    if (o.status !== 'rejected') return;
    const hit = o.issues.find((i) => (typeof path === 'string' ? i.path === path : path.test(i.path)));
    expect(hit, `no issue at ${String(path)} in ${JSON.stringify(o.issues)}`).toBeDefined();
    if (code) expect(hit!.code).toBe(code);
    for (const i of o.issues) expect(typeof i.message).toBe('string');
    const f = rt.journal.fact(o.seq!)!;
    expect(f.type).toBe('intent.rejected');
    expect(f.data.issues).toEqual(o.issues);
    const rawId = (raw as { id?: unknown } | null)?.id;
    if (typeof rawId === 'string') {
      expect(o.intentId).toBe(rawId);
      expect(f.intentId).toBe(rawId);
      expect(rt.journal.factsOfIntent(rawId).map((x) => x.type)).toEqual(['intent.rejected']);
    }
    expect(allFacts(rt).filter((x) => x.type === 'transition')).toHaveLength(transitionsBefore);
    expect(rt.actor('deployment/web')!.snapshot).toEqual(snapBefore);
    expect(rt.actor('run/r1')!.snapshot).toEqual(runBefore);
    expect(OutcomeSchema.safeParse(o).success).toBe(true);
  });

  it('the process is fine afterwards: a good intent executes and the chain verifies', async () => {
    const o = await rt.propose(good());
    expect(o.status).toBe('executed');
    expect(rt.journal.verify().ok).toBe(true);
    const rejected = allFacts(rt).filter((f) => f.type === 'intent.rejected');
    expect(rejected.length).toBeGreaterThanOrEqual(cases.length);
  });
});

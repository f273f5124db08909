import Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { chainFact, sha256Hex } from '../../src/index.js';
import { AuthorityKey } from '../../src/authority/index.js';
import { EMPTY_HEAD, type ChainHead, type Turn } from '../../src/host/ports.js';
import { verifyStore, verifyStoreInWorkers, verifyStoreSteps, type VerifyOptions } from '../../src/journal/index.js';
import { SqliteJournal, SqliteStore, type Checkpoint } from '../../src/store/index.js';
import { tempDir } from '../helpers/runtime.js';

/**
 * Long reads of the embedded store on real SQLite files: they go by ranges of positions, each
 * its own statement, so no read transaction stays open between two ranges and the WAL can be
 * checkpointed and reset while a verification runs against a busy store; a verification
 * covers the journal up to where it ended when it started. Then the check from a position
 * (the start-up check): only facts after it, chained onto the trusted facts before it.
 */

const AT = '2025-01-01T00:00:00.000Z';
const CHAINS = ['deployment/a', 'deployment/b', 'run/c', 'deployment/d', 'run/e'];

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A store with its journal (checkpoints signed by the data dir's key) and a writer of filler turns. */
function openStore() {
  const t = tempDir('ice-chunked-');
  cleanups.push(t.cleanup);
  const key = AuthorityKey.loadOrCreate(join(t.dir, 'authority.key'));
  const store = new SqliteStore(t.dir);
  cleanups.push(() => store.close());
  const journal = new SqliteJournal(store, { attest: (hash) => ({ keyId: key.keyId, sig: key.signCheckpoint(hash) }) });
  const check = (cp: Checkpoint) => cp.keyId === key.keyId && key.verifyCheckpoint(cp.hash, cp.sig);
  const heads = new Map<string, ChainHead>();
  let n = 0;
  /** `groups` group commits of one 2-fact turn per chain each: 10 facts and one checkpoint per group. */
  const append = async (groups: number): Promise<void> => {
    for (let g = 0; g < groups; g++) {
      const commits = CHAINS.map((chain) => {
        const after = heads.get(chain) ?? EMPTY_HEAD;
        const cursor = { ...after };
        const built = [0, 1].map((i) =>
          chainFact(cursor, { type: 'transition', origin: 'runtime', actor: chain, data: { n: n++, i } }, AT),
        );
        heads.set(chain, { ...cursor });
        const turn: Turn = { chain, after, facts: built.map((b) => b.fact), bodies: built.map((b) => b.body) };
        return journal.commit(turn);
      });
      await Promise.all(commits);
    }
  };
  const dbPath = join(t.dir, 'ice.db');
  /** A second connection, as another process would have; no busy wait, so a pinned WAL shows at once. */
  const other = () => {
    const db = new Database(dbPath, { timeout: 0 });
    cleanups.push(() => db.close());
    return db;
  };
  const walBytes = () => statSync(`${dbPath}-wal`).size;
  return { dir: t.dir, store, journal, check, append, other, walBytes };
}

function tamperBody(db: Database.Database, pos: number): { chain: string; seq: number } {
  const row = db.prepare('SELECT chain, seq, body FROM facts WHERE pos = ?').get(pos) as { chain: string; seq: number; body: string };
  const edited = row.body.replace('"origin":"runtime"', '"origin":"runtimE"');
  expect(edited).not.toBe(row.body);
  db.prepare('UPDATE facts SET body = ? WHERE pos = ?').run(edited, pos);
  return { chain: row.chain, seq: row.seq };
}

const checkpointAt = (db: Database.Database, pos: number) =>
  db.prepare('SELECT pos, heads, prev, hash FROM checkpoints WHERE pos = ?').get(pos) as Omit<
    Checkpoint,
    'heads' | 'keyId' | 'sig' | 'at'
  > & {
    heads: string;
  };

describe('long reads never pin the WAL', () => {
  it('between two ranges of a verification, commits land and a TRUNCATE checkpoint from another connection resets the WAL to 0 bytes', async () => {
    const s = openStore();
    await s.append(30); // 300 facts, 30 checkpoints
    const steps = verifyStoreSteps(s.store, s.check, { chunkRows: 40 }); // 8 ranges
    const db = s.other();
    let ranges = 0;
    for (let step = steps.next(); ; step = steps.next()) {
      if (step.done) {
        // Up to where the journal ended when it started; the 2 × 3 groups appended meanwhile are not part of it.
        expect(step.value).toEqual({ ok: true, count: 300, chains: 5, lastPos: 300, checkpoints: 30, attestedPos: 300 });
        break;
      }
      ranges++;
      expect(step.value).toEqual({ pos: Math.min(300, 40 * ranges), upTo: 300, count: Math.min(300, 40 * ranges) });
      if (ranges === 1 || ranges === 4) {
        await s.append(3);
        expect(s.walBytes()).toBeGreaterThan(0);
        expect(db.pragma('wal_checkpoint(TRUNCATE)')).toEqual([expect.objectContaining({ busy: 0 })]);
        expect(s.walBytes()).toBe(0);
      }
    }
    expect(ranges).toBe(8);
    expect(verifyStore(s.store, s.check)).toMatchObject({ ok: true, count: 360, lastPos: 360, checkpoints: 36, attestedPos: 360 });
  });

  it('(the same check against one statement held open across the read: it pins the WAL)', async () => {
    const s = openStore();
    await s.append(30);
    const reader = s.other();
    const rows = reader.prepare('SELECT pos, body FROM facts ORDER BY pos').iterate();
    rows.next();
    await s.append(3);
    const [r] = s.other().pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number }>;
    expect(r!.busy).toBe(1);
    expect(s.walBytes()).toBeGreaterThan(0);
    rows.return?.();
  });

  it('iterateFactRows reads by chunks: between two rows the WAL can be reset, and rows appended meanwhile are read too', async () => {
    const s = openStore();
    await s.append(5); // 50 facts
    const db = s.other();
    const seen: number[] = [];
    for (const row of s.store.iterateFactRows(1, 8)) {
      seen.push(row.pos);
      if (row.pos === 20) {
        await s.append(1);
        expect(db.pragma('wal_checkpoint(TRUNCATE)')).toEqual([expect.objectContaining({ busy: 0 })]);
        expect(s.walBytes()).toBe(0);
      }
    }
    expect(seen).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
  });

  it('finds a body tampered in a late range, the same in this thread and in worker threads, whatever the range size', async () => {
    const s = openStore();
    await s.append(30);
    const { chain, seq } = tamperBody(s.other(), 287);
    const expected = {
      ok: false,
      count: 286,
      chains: 5,
      lastPos: 286,
      brokenChain: chain,
      brokenAt: seq,
      brokenPos: 287,
      reason: 'hash does not match the fact body and the previous hash',
    };
    for (const chunkRows of [1, 7, 40, 2000]) {
      expect(verifyStore(s.store, s.check, { chunkRows }), `chunkRows ${chunkRows}`).toEqual(expected);
      expect(await verifyStoreInWorkers(s.store, s.check, { chunkRows, workers: 2, workersFrom: 0 }), `workers, ${chunkRows}`).toEqual(
        expected,
      );
    }
  });

  it('worker threads and this thread agree on an intact store, and the workers leave no statement open behind them', async () => {
    const s = openStore();
    await s.append(30);
    const opts: VerifyOptions = { chunkRows: 13 };
    const here = verifyStore(s.store, s.check, opts);
    expect(here).toEqual({ ok: true, count: 300, chains: 5, lastPos: 300, checkpoints: 30, attestedPos: 300 });
    expect(await verifyStoreInWorkers(s.store, s.check, { ...opts, workers: 2, workersFrom: 0 })).toEqual(here);
    expect(await verifyStoreInWorkers(s.store, s.check, { ...opts, workers: 0 })).toEqual(here);
    await s.append(1);
    expect(s.other().pragma('wal_checkpoint(TRUNCATE)')).toEqual([expect.objectContaining({ busy: 0 })]);
    expect(s.walBytes()).toBe(0);
  });
});

describe('verify from a position (the start-up check)', () => {
  /** 300 facts in 30 groups (group g ends at position 10 g); checked from the end of group 20. */
  async function journalOf300() {
    const s = openStore();
    await s.append(30);
    return { ...s, fromPos: 200, verify: (o: VerifyOptions = {}) => verifyStore(s.store, s.check, { fromPos: 200, chunkRows: 40, ...o }) };
  }

  it('checks only the facts after the position, chained onto the stored facts before it', async () => {
    const s = await journalOf300();
    expect(s.verify()).toEqual({ ok: true, count: 100, chains: 5, lastPos: 300, checkpoints: 10, attestedPos: 300 });
    // from the middle of a group (its checkpoint names heads on both sides), and in workers
    expect(s.verify({ fromPos: 205 })).toEqual({ ok: true, count: 95, chains: 5, lastPos: 300, checkpoints: 10, attestedPos: 300 });
    expect(await verifyStoreInWorkers(s.store, s.check, { fromPos: 205, chunkRows: 9, workers: 2, workersFrom: 0 })).toEqual(
      s.verify({ fromPos: 205 }),
    );
    // nothing after it: ok, still at that position, attested by the newest signature
    expect(s.verify({ fromPos: 300 })).toEqual({ ok: true, count: 0, chains: 0, lastPos: 300, checkpoints: 0, attestedPos: 300 });
    // without a key: the chains only
    expect(verifyStore(s.store, undefined, { fromPos: 200 })).toEqual({ ok: true, count: 100, chains: 5, lastPos: 300 });
  });

  it('a body tampered after the position is found at its chain, seq and position', async () => {
    const s = await journalOf300();
    const { chain, seq } = tamperBody(s.other(), 263);
    expect(s.verify()).toMatchObject({
      ok: false,
      count: 62,
      brokenChain: chain,
      brokenAt: seq,
      brokenPos: 263,
      reason: expect.stringMatching(/hash does not match/),
    });
  });

  it('a body tampered at or before the position is trusted by the check from it, and found by the whole check', async () => {
    const s = await journalOf300();
    const { chain, seq } = tamperBody(s.other(), 197);
    expect(s.verify()).toMatchObject({ ok: true, count: 100 });
    expect(verifyStore(s.store, s.check)).toMatchObject({ ok: false, brokenChain: chain, brokenAt: seq, brokenPos: 197 });
  });

  it('a chain whose fact before the position is gone is broken at its first fact after it', async () => {
    const s = await journalOf300();
    const db = s.other();
    const next = db.prepare('SELECT chain, seq FROM facts WHERE pos = 201').get() as { chain: string; seq: number };
    db.prepare('DELETE FROM facts WHERE chain = ? AND seq = ?').run(next.chain, next.seq - 1);
    expect(s.verify()).toMatchObject({
      ok: false,
      brokenChain: next.chain,
      brokenAt: next.seq - 1,
      brokenPos: 201,
      reason: expect.stringMatching(/missing/),
    });
  });

  it('a checkpoint after the position that does not link to the one before it is found at its position', async () => {
    const s = await journalOf300();
    const db = s.other();
    // the first checkpoint after the position: its prev no longer names the checkpoint at 200
    db.prepare('UPDATE checkpoints SET prev = ? WHERE pos = 210').run('0'.repeat(64));
    expect(s.verify()).toMatchObject({ ok: false, count: 100, brokenPos: 210, reason: expect.stringMatching(/does not link/) });
    // a later one, its heads changed
    db.prepare('UPDATE checkpoints SET prev = ? WHERE pos = 210').run(checkpointAt(db, 200).hash);
    expect(s.verify()).toMatchObject({ ok: true });
    const cp = checkpointAt(db, 250);
    db.prepare('UPDATE checkpoints SET heads = ? WHERE pos = 250').run(cp.heads.replace(/"[0-9a-f]{64}"/, `"${'1'.repeat(64)}"`));
    expect(s.verify()).toMatchObject({ ok: false, brokenPos: 250, reason: expect.stringMatching(/does not link/) });
  });

  it('a chain rewritten from a trusted fact on, every hash recomputed, is caught by the first checkpoint after the position that names it', async () => {
    const s = await journalOf300();
    const db = s.other();
    // From the middle of a group: its checkpoint (at 210) names heads at or before 205, which are trusted.
    const first = db.prepare('SELECT chain, seq FROM facts WHERE pos = 202').get() as { chain: string; seq: number };
    const rows = db
      .prepare('SELECT pos, body, prev FROM facts WHERE chain = ? AND seq >= ? ORDER BY seq')
      .all(first.chain, first.seq) as Array<{ pos: number; body: string; prev: string }>;
    let prev = rows[0]!.prev;
    for (const r of rows) {
      const body = r.pos === 202 ? r.body.replace('"origin":"runtime"', '"origin":"runtimE"') : r.body;
      const hash = sha256Hex(prev + body);
      db.prepare('UPDATE facts SET body = ?, prev = ?, hash = ? WHERE pos = ?').run(body, prev, hash, r.pos);
      prev = hash;
    }
    // Every chain still links; the signed checkpoint names the fact's old hash.
    expect(verifyStore(s.store, undefined, { fromPos: 205 })).toMatchObject({ ok: true });
    expect(s.verify({ fromPos: 205 })).toMatchObject({
      ok: false,
      count: 95,
      brokenChain: first.chain,
      brokenAt: first.seq,
      brokenPos: 210,
      reason: expect.stringMatching(/another hash/),
    });
  });

  it('a bad newest signature is found; a position beyond the end of the journal is broken (facts were removed)', async () => {
    const s = await journalOf300();
    const db = s.other();
    const sig = (db.prepare('SELECT sig FROM checkpoints WHERE pos = 300').get() as { sig: string }).sig;
    db.prepare('UPDATE checkpoints SET sig = ? WHERE pos = 300').run(Buffer.from('x'.repeat(64)).toString('base64'));
    expect(s.verify()).toMatchObject({ ok: false, brokenPos: 300, reason: 'the newest checkpoint signature does not verify' });
    db.prepare('UPDATE checkpoints SET sig = ? WHERE pos = 300').run(sig);
    expect(s.verify()).toMatchObject({ ok: true });
    expect(s.verify({ fromPos: 301 })).toMatchObject({ ok: false, brokenPos: 301, reason: expect.stringMatching(/ends at position 300/) });
    expect(() => s.verify({ fromPos: -1 })).toThrow(/fromPos/);
  });
});

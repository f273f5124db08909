import Database from 'better-sqlite3';
import { execFile, spawn } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, readdirSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { StoreDamagedError, createRuntime } from '../../src/index.js';
import { SqliteStore, type CommitBatch, type WalStatus } from '../../src/store/index.js';
import { ICE_BIN } from '../../src/testing/index.js';
import { tempDir } from '../helpers/runtime.js';

/**
 * The store's files over months: the write-ahead log stays out of the commit path and is
 * emptied before a node serves; a read-only data dir can still be read; a damaged, emptied
 * or orphaned store file is refused with the file, the problem and the way out, and is never
 * replaced by a fresh store. Real SQLite files, real processes (one killed with SIGKILL).
 */

const run = promisify(execFile);
const dirs: Array<() => void> = [];
afterEach(() => {
  for (const d of dirs.splice(0)) d();
});
function freshDir(): string {
  const t = tempDir('ice-files-');
  dirs.push(() => {
    chmodSync(t.dir, 0o755);
    t.cleanup();
  });
  return t.dir;
}

/**
 * Runs the real CLI. With `readOnly`, the data dir is read-only for it: its permissions say so,
 * and as root (whom permissions do not stop) it runs in a mount namespace of its own where the
 * dir is bind-mounted read-only, as a mounted backup would be.
 */
async function ice(args: string[], opts: { readOnly?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const [file, argv] =
    opts.readOnly && process.getuid?.() === 0
      ? [
          'unshare',
          ['-m', 'sh', '-c', 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" "$1" && shift && exec "$@"', 'sh', opts.readOnly],
        ]
      : [process.execPath, []];
  try {
    const r = await run(file, [...argv, ...(file === 'unshare' ? [process.execPath] : []), ICE_BIN, ...args], {
      env: { ...process.env, NO_COLOR: '1', ICE_LOG_LEVEL: 'silent' },
      timeout: 30_000,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

async function demoDir(): Promise<string> {
  const dir = freshDir();
  const r = await ice(['demo', '--data', dir]);
  expect(r.code).toBe(0);
  return dir;
}

/** A batch of `n` facts of about 1 KiB each on a chain of their own. */
function bigBatch(chain: string, from: number, n: number): CommitBatch {
  const pad = 'x'.repeat(1000);
  return {
    facts: Array.from({ length: n }, (_, i) => {
      const seq = from + i;
      const fact = {
        v: 1,
        seq,
        at: new Date(0).toISOString(),
        type: 'actor.spawned',
        origin: 'runtime',
        actor: chain,
        causes: [],
        prev: '',
        hash: `h${seq}`,
      } as unknown as CommitBatch['facts'][number]['fact'];
      return { fact, body: JSON.stringify({ seq, pad }), chain };
    }),
    snapshots: [],
    outcomes: [],
    grants: [],
    pendingPut: [],
    pendingDelete: [],
  };
}

const walFrames = (dbPath: string): { log: number; checkpointed: number } => {
  const db = new Database(dbPath);
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)') as Array<{ log: number; checkpointed: number }>;
    return r!;
  } finally {
    db.close();
  }
};

describe('the write-ahead log', () => {
  it('is never checkpointed by a commit: the writer leaves it to the background checkpointer', async () => {
    const dir = freshDir();
    const store = new SqliteStore(dir, { checkpointEveryMs: 0 });
    try {
      // ~12 MiB of facts in 24 commits: SQLite's automatic checkpoint (every 1000 pages,
      // inside the commit) would have started the log over several times.
      for (let b = 0; b < 24; b++) await store.commit(bigBatch('t/a', b * 500 + 1, 500));
      const { log } = walFrames(store.path);
      expect(log).toBeGreaterThan(2500);
    } finally {
      await store.close();
    }
  });

  it('is copied into the main file in the background while commits go on, and starts over', async () => {
    const dir = freshDir();
    let last: WalStatus | undefined;
    let mostCopied = 0;
    const store = new SqliteStore(dir, {
      checkpointEveryMs: 20,
      onWal: (w) => {
        last = w;
        mostCopied = Math.max(mostCopied, w.checkpointed);
      },
    });
    try {
      for (let b = 0; b < 24; b++) await store.commit(bigBatch('t/a', b * 500 + 1, 500));
      // the checkpointer copied frames while the commits went on (its latest report may be of a
      // log the writer has just started over, with no frames yet)
      expect(mostCopied).toBeGreaterThan(0);
      // Once all of it is copied and no reader holds it, a commit starts the log over: the
      // checkpointer then reports a short log, copied whole.
      let seq = 24 * 500;
      await expect
        .poll(
          async () => {
            await store.commit(bigBatch('t/a', ++seq, 1));
            return last !== undefined && last.frames < 50 && last.checkpointed === last.frames;
          },
          { timeout: 20_000, interval: 50 },
        )
        .toBe(true);
      expect(statSync(store.path + '-wal').size).toBeLessThanOrEqual(64 * 1024 * 1024);
    } finally {
      await store.close();
    }
  });

  it('starts over under commits with no pause between them (the writer finishes the copy between two commits)', async () => {
    const dir = freshDir();
    const limit = 1024 * 1024;
    const frames: number[] = [];
    const store = new SqliteStore(dir, { checkpointEveryMs: 10, walRestartBytes: limit, onWal: (w) => frames.push(w.frames) });
    const startedOver = () => frames.some((f, i) => i > 0 && f < frames[i - 1]!);
    try {
      // Four commits always queued at the writer, so it never waits for the next one and a
      // PASSIVE checkpoint never finds the whole log copied when a commit begins. Until the
      // log starts over, or ~64 MiB of facts (64 times the limit) were written without it.
      let seq = 0;
      const queued = new Set<Promise<void>>();
      while (!startedOver() && seq < 64_000) {
        const from = seq + 1;
        seq += 500;
        const p = store.commit(bigBatch('t/a', from, 500)).finally(() => queued.delete(p));
        queued.add(p);
        if (queued.size >= 4) await Promise.race(queued);
      }
      await Promise.all(queued);
      expect(startedOver()).toBe(true);
      expect(store.factCount()).toBe(seq);
    } finally {
      await store.close();
    }
  });

  it('left by a node killed with SIGKILL is checkpointed and emptied before the next node serves, keeping every commit', async () => {
    const dir = freshDir();
    // A child process writes ~8 MiB with the background checkpointer off, then is killed.
    const script = `
      const { SqliteStore } = await import(${JSON.stringify(new URL('../../dist/src/store/index.js', import.meta.url).href)});
      const store = new SqliteStore(${JSON.stringify(dir)}, { checkpointEveryMs: 0 });
      const pad = 'x'.repeat(1000);
      for (let b = 0; b < 16; b++) {
        const facts = [];
        for (let i = 0; i < 500; i++) {
          const seq = b * 500 + i + 1;
          facts.push({ fact: { seq, type: 't', actor: 'k/a', at: 'now', prev: '', hash: 'h' + seq }, body: JSON.stringify({ seq, pad }), chain: 'k/a' });
        }
        await store.commit({ facts, snapshots: [], outcomes: [], grants: [], pendingPut: [], pendingDelete: [] });
      }
      process.stdout.write('committed\\n');
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('committed') && resolve());
      child.once('exit', (code) => reject(new Error(`writer exited with ${code}`)));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const wal = join(dir, 'ice.db-wal');
    expect(statSync(wal).size).toBeGreaterThan(4 * 1024 * 1024);

    const store = new SqliteStore(dir);
    try {
      expect(store.startup?.walBytes).toBeGreaterThan(4 * 1024 * 1024);
      expect(store.startup?.complete).toBe(true);
      expect(statSync(wal).size).toBe(0);
      expect(store.factCount()).toBe(16 * 500);
    } finally {
      await store.close();
    }
  });
});

describe('a read-only data dir', () => {
  it('can still be read: actors ls, actor show, journal tail and journal verify', async () => {
    const dir = await demoDir();
    // every fact the demo wrote, counted before the directory is made read-only
    const written = (await ice(['journal', 'tail', '-n', '100000', '--data', dir, '--json'], { readOnly: dir })).stdout
      .trim()
      .split('\n').length;
    expect(written).toBeGreaterThan(20);
    for (const f of readdirSync(dir)) chmodSync(join(dir, f), 0o444);
    chmodSync(dir, 0o555);
    const ls = await ice(['actors', 'ls', '--data', dir, '--json'], { readOnly: dir });
    expect(ls.stderr).toBe('');
    expect(ls.code).toBe(0);
    const actors = JSON.parse(ls.stdout) as Array<{ address: string }>;
    expect(actors.length).toBe(4); // the demo's two runs and two deployments
    const show = await ice(['actor', 'show', actors[0]!.address, '--data', dir, '--json'], { readOnly: dir });
    expect(show.code).toBe(0);
    const tail = await ice(['journal', 'tail', '--data', dir, '--json'], { readOnly: dir });
    expect(tail.code).toBe(0);
    expect(tail.stdout.trim().split('\n').length).toBe(20);
    const verify = await ice(['journal', 'verify', '--data', dir, '--json'], { readOnly: dir });
    expect(verify.code).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true, count: written });
    // Nothing was written into the directory.
    expect(readdirSync(dir).sort()).toEqual(['authority.key', 'authority.pub', 'ice.db', 'owner.lock']);
  });
});

describe('a damaged store file', () => {
  const damage: Record<string, (db: string) => void> = {
    truncated: (db) => truncateSync(db, Math.floor(statSync(db).size / 2)),
    overwritten: (db) => writeFileSync(db, Buffer.alloc(statSync(db).size, 0x5a)),
    emptied: (db) => truncateSync(db, 0),
  };
  for (const [how, harm] of Object.entries(damage)) {
    it(`${how}: refused by a serving node and by read commands, naming the file and the way out; the file is kept as it is`, async () => {
      const dir = await demoDir();
      const db = join(dir, 'ice.db');
      harm(db);
      const before = readFileSync(db);
      for (const args of [
        ['dev', '--data', dir, '--no-inspect'],
        ['actors', 'ls', '--data', dir],
        ['journal', 'verify', '--data', dir],
      ]) {
        const r = await ice(args);
        expect(r.code, args.join(' ')).not.toBe(0);
        expect(r.stdout).not.toContain('ready');
        expect(r.stderr).toContain('E_STORE_DAMAGED');
        expect(r.stderr).toContain(db);
        expect(r.stderr).toMatch(/backup/);
      }
      await expect(createRuntime({ dataDir: dir })).rejects.toBeInstanceOf(StoreDamagedError);
      expect(readFileSync(db).equals(before)).toBe(true);
    });
  }

  it('a store file gone while its write-ahead log is still there is refused, not started over', async () => {
    const dir = freshDir();
    writeFileSync(join(dir, 'ice.db-wal'), Buffer.alloc(4096, 1));
    const err = await createRuntime({ dataDir: dir }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StoreDamagedError);
    expect((err as Error).message).toMatch(/ice\.db-wal is there/);
    expect(existsSync(join(dir, 'ice.db'))).toBe(false);
  });

  it('a new store is created whole: no half-made file is ever taken for a store', async () => {
    const dir = freshDir();
    const rt = await createRuntime({ dataDir: dir });
    await rt.stop();
    expect(readdirSync(dir).filter((f) => f.startsWith('ice.db.new'))).toEqual([]);
    // A file that exists without the schema is refused rather than filled in.
    const other = freshDir();
    new Database(join(other, 'ice.db')).exec('CREATE TABLE unrelated (x)');
    await expect(createRuntime({ dataDir: other })).rejects.toThrow(/holds no ICE schema/);
  });
});

import Database from 'better-sqlite3';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataDirLockedError } from '../errors.js';

/**
 * One process owns a data dir at a time. The lock is an exclusive SQLite transaction held
 * open on `<dir>/owner.lock`; SQLite takes it with POSIX advisory locks, which the OS drops
 * when the process dies (even by SIGKILL), so a crashed owner never leaves a stale lock.
 * `owner.json` beside it tells other processes who owns the dir and where its admin
 * endpoint listens; it is only advice — the lock is the truth.
 */
export interface OwnerInfo {
  pid: number;
  node: string;
  startedAt: string;
  adminUrl?: string;
  adminToken?: string;
}

export class DataDirLock {
  readonly dataDir: string;
  #db: Database.Database | undefined;

  private constructor(dataDir: string, db: Database.Database) {
    this.dataDir = dataDir;
    this.#db = db;
  }

  /** @throws DataDirLockedError when another process (or another runtime here) owns the dir. */
  static acquire(dataDir: string): DataDirLock {
    mkdirSync(dataDir, { recursive: true });
    const db = new Database(join(dataDir, 'owner.lock'));
    db.pragma('busy_timeout = 0');
    try {
      db.pragma('locking_mode = EXCLUSIVE');
      db.exec('BEGIN EXCLUSIVE');
      db.exec('CREATE TABLE IF NOT EXISTS owner (x INTEGER)');
    } catch (e) {
      db.close();
      if ((e as { code?: string }).code?.startsWith('SQLITE_BUSY')) {
        throw new DataDirLockedError(dataDir, DataDirLock.readOwner(dataDir)?.pid);
      }
      throw e;
    }
    return new DataDirLock(dataDir, db);
  }

  /** True when some process holds the lock right now. */
  static isLocked(dataDir: string): boolean {
    try {
      DataDirLock.acquire(dataDir).release();
      return false;
    } catch (e) {
      if (e instanceof DataDirLockedError) return true;
      throw e;
    }
  }

  static readOwner(dataDir: string): OwnerInfo | undefined {
    try {
      return JSON.parse(readFileSync(join(dataDir, 'owner.json'), 'utf8')) as OwnerInfo;
    } catch {
      return undefined;
    }
  }

  writeOwner(info: OwnerInfo): void {
    writeFileSync(join(this.dataDir, 'owner.json'), JSON.stringify(info, null, 2) + '\n', { mode: 0o600 });
  }

  release(): void {
    if (!this.#db) return;
    try {
      rmSync(join(this.dataDir, 'owner.json'), { force: true });
      this.#db.exec('ROLLBACK');
    } finally {
      this.#db.close();
      this.#db = undefined;
    }
  }
}

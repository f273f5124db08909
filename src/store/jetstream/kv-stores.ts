import { Kvm, type KV, type KvWatchEntry } from '@nats-io/kv';
import { JetStreamApiCodes, JetStreamApiError, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import { ConflictError, ensureError } from '../../errors.js';

/**
 * KV pieces of cluster mode besides the journal store: a bucket every node mirrors through a
 * watch (grants, node keys), and a compare-and-set that holds on replicated buckets of
 * nats-server 2.9.
 */

export interface WatchedEntry {
  key: string;
  revision: number;
  /** undefined for a delete or purge. */
  value: unknown;
}

/** A KV bucket of JSON records that one node mirrors into memory through a watch. */
/** JetStream's answer to a write whose expected last sequence did not hold: the key (or subject) moved. */
export function isWrongLastSequence(e: unknown): boolean {
  return (
    e instanceof JetStreamApiError &&
    (e.code === JetStreamApiCodes.StreamWrongLastSequence || e.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

export class WatchedBucket {
  readonly #kv: KV;
  readonly #nc: NatsConnection;
  readonly #bucket: string;
  #watch: Awaited<ReturnType<KV['watch']>> | undefined;
  #pump: Promise<void> | undefined;

  private constructor(kv: KV, nc: NatsConnection, bucket: string) {
    this.#kv = kv;
    this.#nc = nc;
    this.#bucket = bucket;
  }

  static async open(nc: NatsConnection, bucket: string, opts: { replicas?: number; history?: number } = {}): Promise<WatchedBucket> {
    const kv = await new Kvm(nc).create(bucket, { history: opts.history ?? 5, replicas: opts.replicas ?? 1 });
    await widenDedupWindow(nc, bucket);
    return new WatchedBucket(kv, nc, bucket);
  }

  /** Opens a bucket some node created (for observers such as `ice inspect --nats`). */
  static async openExisting(nc: NatsConnection, bucket: string): Promise<WatchedBucket> {
    return new WatchedBucket(await new Kvm(nc).open(bucket), nc, bucket);
  }

  /**
   * Calls `onEntry` for the current value of every key, then for every change. Resolves once
   * the current values were delivered (the watch reached the bucket's last message at start).
   */
  async watch(onEntry: (e: WatchedEntry) => void, onEnd: (err: Error) => void): Promise<void> {
    const lastSeq = (await this.#kv.status()).streamInfo.state.last_seq;
    let initialized!: () => void;
    const ready = new Promise<void>((r) => (initialized = r));
    if (lastSeq === 0) initialized();
    const w = await this.#kv.watch();
    this.#watch = w;
    this.#pump = (async () => {
      for await (const e of w) {
        onEntry(toEntry(e));
        if (e.revision >= lastSeq) initialized();
      }
    })().catch((e: unknown) => onEnd(ensureError(e)));
    await ready;
  }

  /** The bucket's newest revision (of any key): what a watch that is caught up has seen. */
  async lastRevision(): Promise<number> {
    return (await this.#kv.status()).streamInfo.state.last_seq;
  }

  async get(key: string): Promise<{ value: unknown; revision: number } | undefined> {
    const e = await this.#kv.get(key);
    if (!e || e.operation !== 'PUT') return undefined;
    return { value: e.json<unknown>(), revision: e.revision };
  }

  /** Every key with a value now. */
  async keys(): Promise<string[]> {
    const out: string[] = [];
    for await (const k of await this.#kv.keys()) out.push(k);
    return out;
  }

  /** @throws ConflictError when the key exists; any other failure (a timeout, no leader) as it is. */
  async create(key: string, value: unknown): Promise<number> {
    try {
      return await this.#kv.create(key, JSON.stringify(value));
    } catch (e) {
      if (isWrongLastSequence(e)) throw new ConflictError(`${key} already exists (${ensureError(e).message})`);
      throw ensureError(e);
    }
  }

  /** Compare-and-set that holds on replicated buckets (see kvCompareAndSet). @throws ConflictError when the key moved past `revision`. */
  async update(key: string, value: unknown, revision: number): Promise<number> {
    return kvCompareAndSet(this.#nc, this.#bucket, key, JSON.stringify(value), revision);
  }

  async close(): Promise<void> {
    this.#watch?.stop();
    await this.#pump;
  }
}

function toEntry(e: KvWatchEntry): WatchedEntry {
  if (e.operation !== 'PUT') return { key: e.key, revision: e.revision, value: undefined };
  let value: unknown;
  try {
    value = e.json<unknown>();
  } catch {
    value = undefined;
  }
  return { key: e.key, revision: e.revision, value };
}

const clients = new WeakMap<NatsConnection, ReturnType<typeof jetstream>>();
const managers = new WeakMap<NatsConnection, ReturnType<typeof jetstreamManager>>();
const clientOf = (nc: NatsConnection) => {
  let c = clients.get(nc);
  if (!c) clients.set(nc, (c = jetstream(nc)));
  return c;
};
const managerOf = (nc: NatsConnection) => {
  let m = managers.get(nc);
  if (!m) managers.set(nc, (m = jetstreamManager(nc)));
  return m;
};

/**
 * Compare-and-set on a KV key that holds on replicated buckets of nats-server 2.9, where
 * `kv.update(key, value, revision)` alone does not: two updates with one expected revision
 * in flight together can both be accepted (docs/nats-fencing.md). The value is published on
 * the key's subject with the expected revision AND a message id naming that position
 * (`<key>@<revision>`): message-id dedup is applied in log order on every replica, so the
 * second write at a position is never stored. The loser sees "wrong last sequence", or an ack
 * flagged duplicate with the winner's sequence — then the stored message tells whether the
 * winner was this very write (a retry after a lost ack).
 * @returns the new revision
 * @throws ConflictError when another writer took the revision
 */
export async function kvCompareAndSet(
  nc: NatsConnection,
  bucket: string,
  key: string,
  value: string | Uint8Array,
  revision: number,
  opts: { delete?: boolean } = {},
): Promise<number> {
  const js = clientOf(nc);
  const data = typeof value === 'string' ? new TextEncoder().encode(value) : value;
  let ack;
  try {
    const h = opts.delete ? headers() : undefined;
    h?.set('KV-Operation', 'DEL');
    ack = await js.publish(`$KV.${bucket}.${key}`, data, {
      expect: { lastSubjectSequence: revision },
      msgID: `${key}@${revision}`,
      ...(h ? { headers: h } : {}),
    });
  } catch (e) {
    const err = ensureError(e);
    if (/wrong last sequence/i.test(err.message))
      throw new ConflictError(`${bucket} ${key} moved past revision ${revision} (${err.message})`);
    throw err;
  }
  if (!ack.duplicate) return ack.seq;
  const stored = await (await managerOf(nc)).streams.getMessage(`KV_${bucket}`, { seq: ack.seq });
  if (stored && Buffer.from(stored.data).equals(Buffer.from(data))) return ack.seq;
  throw new ConflictError(`${bucket} ${key}: revision ${revision} was taken by another writer (at ${ack.seq})`);
}

/**
 * The dedup window that position-keyed message ids rely on (docs/nats-fencing.md): ten
 * minutes, far longer than any in-flight race and than a server's restart after a SIGKILL
 * (2.9 replays its log tail and would store refused writes again outside the window).
 */
export const DEDUP_WINDOW_NS = 600_000_000_000;

/** Widens a KV bucket's dedup window (KV creation does not take one). */
export async function widenDedupWindow(nc: NatsConnection, bucket: string): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(`KV_${bucket}`);
  if ((info.config.duplicate_window ?? 0) >= DEDUP_WINDOW_NS) return;
  await jsm.streams.update(`KV_${bucket}`, { ...info.config, duplicate_window: DEDUP_WINDOW_NS });
}

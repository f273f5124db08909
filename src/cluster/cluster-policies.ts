import { ConflictError } from '../errors.js';
import { WatchedBucket, type WatchedEntry } from '../store/jetstream/index.js';
import { PolicySetRecordSchema, type PolicySetRecord, type PolicyStorage } from '../policy/index.js';
import type { Logger } from '../util/logger.js';

export const POLICIES_BUCKET = 'ICE_POLICIES';
const keyOf = (version: number) => `v${String(version).padStart(9, '0')}`;

/**
 * The policy set versions of a cluster: KV bucket `ICE_POLICIES`, one key per version
 * (`v000000001`, …), created once (the create is the fence: two nodes applying at once get
 * different versions). Every node watches the bucket, so a version applied through any node
 * is installed on all of them without a restart.
 */
export class ClusterPolicyStorage implements PolicyStorage {
  readonly #kv: WatchedBucket;
  readonly #log: Logger;
  readonly #records = new Map<number, PolicySetRecord>();
  #listener: ((r: PolicySetRecord) => void) | undefined;

  private constructor(kv: WatchedBucket, logger: Logger) {
    this.#kv = kv;
    this.#log = logger;
  }

  /** Opens (creating) the bucket; resolves once the stored versions are loaded. */
  static async open(
    nc: Parameters<typeof WatchedBucket.open>[0],
    opts: { logger: Logger; replicas?: number; bucket?: string },
  ): Promise<ClusterPolicyStorage> {
    const kv = await WatchedBucket.open(nc, opts.bucket ?? POLICIES_BUCKET, { history: 1, replicas: opts.replicas ?? 1 });
    const s = new ClusterPolicyStorage(kv, opts.logger);
    await kv.watch(
      (e) => s.#onEntry(e),
      (err) => s.#log.warn({ err }, 'policy set watch ended'),
    );
    return s;
  }

  #onEntry(e: WatchedEntry): void {
    if (e.value === undefined) return;
    const p = PolicySetRecordSchema.safeParse(e.value);
    if (!p.success) {
      this.#log.error({ key: e.key }, 'a policy set record in the bucket does not parse; ignored');
      return;
    }
    this.#add(p.data);
  }

  #add(r: PolicySetRecord): void {
    if (this.#records.has(r.version)) return;
    this.#records.set(r.version, r);
    this.#listener?.(r);
  }

  list(): Promise<PolicySetRecord[]> {
    return Promise.resolve([...this.#records.values()].sort((a, b) => a.version - b.version));
  }

  async put(record: PolicySetRecord): Promise<void> {
    try {
      await this.#kv.create(keyOf(record.version), record);
    } catch (e) {
      if (e instanceof ConflictError) {
        const won = await this.#kv.get(keyOf(record.version));
        const p = won ? PolicySetRecordSchema.safeParse(won.value) : undefined;
        if (p?.success) this.#add(p.data);
      }
      throw e;
    }
    this.#add(record);
  }

  watch(onRecord: (r: PolicySetRecord) => void): Promise<void> {
    this.#listener = onRecord;
    for (const r of this.#records.values()) onRecord(r);
    return Promise.resolve();
  }

  async close(): Promise<void> {
    await this.#kv.close();
  }
}

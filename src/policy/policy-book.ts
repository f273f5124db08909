import { z } from 'zod';
import { ConflictError, NotFoundError, ensureError } from '../errors.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import type { SchemaKind } from './cedar-schema.js';
import { compilePolicySet, type CompiledPolicySet, type PolicySource } from './policy-set.js';

const FileSchema = z.strictObject({ name: z.string().min(1).max(500), text: z.string().max(512 * 1024) });

/** One applied version of the policy set, as stored (SQLite table `policy_sets`, KV bucket `ICE_POLICIES`). */
export const PolicySetRecordSchema = z.strictObject({
  version: z.int().positive(),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  appliedBy: z.string(),
  appliedAt: z.iso.datetime(),
  count: z.int().nonnegative(),
  files: z.array(FileSchema).min(1),
  groups: FileSchema.optional(),
});
export type PolicySetRecord = z.infer<typeof PolicySetRecordSchema>;

/** What `ice policy apply` sends: the files' text, read by the CLI. */
export const PolicySourceSchema = z.strictObject({ files: z.array(FileSchema).min(1).max(200), groups: FileSchema.optional() });

/** Where versions live: the SQLite store (embedded) or a KV bucket every node watches (cluster). */
export interface PolicyStorage {
  /** Every stored version, oldest first. */
  list(): Promise<PolicySetRecord[]>;
  /** @throws ConflictError when this version exists (another writer took it). */
  put(record: PolicySetRecord): Promise<void>;
  /** Calls `onRecord` for versions written elsewhere (cluster); resolves once started. */
  watch?(onRecord: (r: PolicySetRecord) => void): Promise<void>;
  close?(): Promise<void>;
}

export interface PolicyBookOptions {
  storage: PolicyStorage;
  kinds: readonly SchemaKind[];
  clock: Clock;
  logger: Logger;
  /** Records `policy.applied` on the runtime chain. */
  recorder?: (record: PolicySetRecord) => Promise<void>;
}

/**
 * The policy set in force on this node, and its history. `current()` is what the Authority
 * asks on every decision (synchronous, no I/O). `apply` compiles first — an invalid set is
 * refused with file, line and reason and the set in force stays — then stores the next
 * version, installs it and records `policy.applied`. In a cluster the other nodes install it
 * from their watch of the bucket, without a restart. Applying the set in force again (same
 * hash) returns it and makes no version.
 */
export class PolicyBook {
  readonly #o: PolicyBookOptions;
  #current: CompiledPolicySet | undefined;
  #records: PolicySetRecord[] = [];

  private constructor(o: PolicyBookOptions) {
    this.#o = o;
  }

  static async open(o: PolicyBookOptions): Promise<PolicyBook> {
    const book = new PolicyBook(o);
    // Only the newest version that compiles is installed: the older ones are history (compiling
    // each would cost a Cedar validation per version ever applied, at every start).
    for (const r of await o.storage.list()) book.#record(r);
    for (const r of [...book.#records].reverse()) if (book.#install(r)) break;
    await o.storage.watch?.((r) => book.#remember(r));
    return book;
  }

  setRecorder(recorder: (record: PolicySetRecord) => Promise<void>): void {
    this.#o.recorder = recorder;
  }

  /** The set in force, or undefined (no policy set: no Cedar call at all). */
  current(): CompiledPolicySet | undefined {
    return this.#current;
  }

  list(): PolicySetRecord[] {
    return [...this.#records];
  }

  get(version?: number): PolicySetRecord {
    const r = version === undefined ? this.#records.at(-1) : this.#records.find((x) => x.version === version);
    if (!r) throw new NotFoundError(version === undefined ? 'policy set (none applied yet)' : `policy set version ${version}`);
    return r;
  }

  /** Waits until this node runs `version` or later (bounded); true if it does. */
  async waitFor(version: number, timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while ((this.#current?.version ?? 0) < version && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return (this.#current?.version ?? 0) >= version;
  }

  /**
   * Compiles, stores and installs a new version.
   * @throws ValidationError naming file:line:col of every problem; nothing changes then.
   */
  async apply(source: PolicySource, by: string): Promise<PolicySetRecord & { unchanged?: boolean }> {
    // Compiled once, under the version it should get (again only if another node takes that one).
    let probe = compilePolicySet(source, this.#o.kinds, (this.#records.at(-1)?.version ?? 0) + 1);
    const hash = probe.hash;
    for (let attempt = 0; attempt < 10; attempt++) {
      const last = this.#records.at(-1);
      if (last && last.hash === hash) return { ...last, unchanged: true };
      const version = (last?.version ?? 0) + 1;
      if (probe.version !== version) probe = compilePolicySet(source, this.#o.kinds, version);
      const record: PolicySetRecord = {
        version,
        hash,
        appliedBy: by,
        appliedAt: new Date(this.#o.clock.now()).toISOString(),
        count: probe.count,
        files: source.files,
        ...(source.groups ? { groups: source.groups } : {}),
      };
      try {
        await this.#o.storage.put(record);
      } catch (e) {
        if (!(e instanceof ConflictError)) throw e;
        // another node took this version: read what it wrote and try the next one
        for (const r of await this.#o.storage.list()) this.#remember(r);
        continue;
      }
      this.#record(record);
      this.#install(record, probe);
      await this.#o.recorder?.(record);
      return record;
    }
    throw new ConflictError('the policy set kept changing under concurrent writers; apply again');
  }

  /** A record read or watched: kept, and installed if newer than the set in force. */
  #remember(r: PolicySetRecord): void {
    if (this.#record(r)) this.#install(r);
  }

  /** Keeps `r` in the version list; false if it was known. */
  #record(r: PolicySetRecord): boolean {
    if (this.#records.some((x) => x.version === r.version)) return false;
    this.#records.push(r);
    this.#records.sort((a, b) => a.version - b.version);
    return true;
  }

  /** Puts `r` in force if it is newer than the set in force (compiling it unless given); true if it is in force now. */
  #install(r: PolicySetRecord, compiled?: CompiledPolicySet): boolean {
    if (r.version <= (this.#current?.version ?? 0)) return r.version === this.#current?.version;
    try {
      this.#current = compiled ?? compilePolicySet({ files: r.files, ...(r.groups ? { groups: r.groups } : {}) }, this.#o.kinds, r.version);
      this.#o.logger.info({ version: r.version, hash: r.hash, policies: r.count, by: r.appliedBy }, 'policy set installed');
      return true;
    } catch (e) {
      // A version this node cannot compile (its kinds differ from the applying node's): keep the one in force.
      this.#o.logger.error({ err: ensureError(e), version: r.version }, 'policy set refused on this node; the previous one stays in force');
      return false;
    }
  }

  async close(): Promise<void> {
    await this.#o.storage.close?.();
  }
}

import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { ConflictError, ensureError } from '../../errors.js';
import type { Fact, SnapshotRecord } from '../../protocol/index.js';

/**
 * The shared, fenced persistence of actors in JetStream:
 * - the journal of each actor on its own subject `ice.journal.<kind>.<id>` of stream
 *   `ICE_JOURNAL`; each message is the facts of one commit (one intent), published with the
 *   expected last subject sequence, so two writers can never fork an actor's history: the
 *   second append with the same expectation fails. The message id is derived from the
 *   commit (`<actor>:<first fact seq>:<its hash>`), so a retried publish is deduplicated
 *   while a different commit at the same position is not mistaken for a retry;
 * - the newest snapshot of each actor in KV bucket `ICE_SNAPSHOTS`, written with the
 *   expected revision: a node holding a stale copy cannot overwrite a newer state.
 * An append is acknowledged by JetStream before the caller may acknowledge its intent.
 */
export interface AppendResult {
  /** Subject sequence of the new message: the expectation for the next append. */
  subjectSeq: number;
  streamSeq: number;
  duplicate: boolean;
}

export interface ActorLogOptions {
  replicas?: number;
  stream?: string;
  bucket?: string;
}

const subjectOf = (actor: string) => `ice.journal.${actor.replace('/', '.')}`;
const keyOf = (actor: string) => actor.replace('/', '.');

export class ActorLog {
  readonly stream: string;
  #js: JetStreamClient;
  #jsm: JetStreamManager;
  #kv: KV;

  private constructor(js: JetStreamClient, jsm: JetStreamManager, kv: KV, stream: string) {
    this.#js = js;
    this.#jsm = jsm;
    this.#kv = kv;
    this.stream = stream;
  }

  /** Opens the stream and bucket, creating them with `replicas` on first start. */
  static async open(nc: NatsConnection, opts: ActorLogOptions = {}): Promise<ActorLog> {
    const stream = opts.stream ?? 'ICE_JOURNAL';
    const jsm = await jetstreamManager(nc);
    try {
      await jsm.streams.info(stream);
    } catch {
      await jsm.streams.add({
        name: stream,
        subjects: ['ice.journal.>'],
        num_replicas: opts.replicas ?? 1,
        allow_direct: true,
        duplicate_window: 120_000_000_000,
      });
    }
    // No direct gets: a lagging replica must not answer a snapshot read (the write would then be
    // refused by revision and surface as a spurious E_NOT_OWNER).
    const kv = await new Kvm(nc).create(opts.bucket ?? 'ICE_SNAPSHOTS', { history: 1, replicas: opts.replicas ?? 1, allow_direct: false });
    return new ActorLog(jetstream(nc), jsm, kv, stream);
  }

  /**
   * Appends one commit's facts to the actor's journal. `expectedSubjectSeq` is the subject
   * sequence of the actor's last message (0 for none).
   * @throws ConflictError when the actor's journal moved on (another writer appended).
   */
  async append(actor: string, facts: Fact[], expectedSubjectSeq: number): Promise<AppendResult> {
    const first = facts[0];
    if (!first) throw new Error('nothing to append');
    try {
      const ack = await this.#js.publish(subjectOf(actor), JSON.stringify(facts), {
        // The same commit retried has the same id (deduplicated); a different commit at the
        // same position (another writer) has another hash, so it meets the seq check instead.
        msgID: `${actor}:${first.seq}:${first.hash.slice(0, 32)}`,
        expect: { lastSubjectSequence: expectedSubjectSeq },
      });
      return { subjectSeq: ack.seq, streamSeq: ack.seq, duplicate: ack.duplicate };
    } catch (e) {
      const err = ensureError(e);
      if (/wrong last sequence/i.test(err.message)) {
        throw new ConflictError(
          `journal of ${actor} moved past subject seq ${expectedSubjectSeq}: another writer appended (${err.message})`,
        );
      }
      throw err;
    }
  }

  /** Every commit of the actor after `afterStreamSeq`, in order, with its stream sequence. */
  async read(actor: string, afterStreamSeq = 0): Promise<Array<{ streamSeq: number; facts: Fact[] }>> {
    const out: Array<{ streamSeq: number; facts: Fact[] }> = [];
    const last = await this.lastSeq(actor);
    if (last === 0 || last <= afterStreamSeq) return out;
    const consumer = await this.#js.consumers.get(this.stream, { filter_subjects: subjectOf(actor), opt_start_seq: afterStreamSeq + 1 });
    const messages = await consumer.consume();
    for await (const m of messages) {
      out.push({ streamSeq: m.seq, facts: m.json<Fact[]>() });
      if (m.seq >= last) break;
    }
    await messages.close().catch(() => {});
    return out;
  }

  /**
   * Delivers every commit of every actor, oldest first, then new ones as they land (for
   * observers). Returns a function that stops it.
   */
  async follow(onCommit: (actor: string, streamSeq: number, facts: Fact[]) => void): Promise<() => Promise<void>> {
    const consumer = await this.#js.consumers.get(this.stream, { filter_subjects: 'ice.journal.>' });
    const messages = await consumer.consume();
    const pump = (async () => {
      for await (const m of messages) {
        const [, , kind, id] = m.subject.split('.');
        try {
          onCommit(`${kind}/${id}`, m.seq, m.json<Fact[]>());
        } catch {
          // an observer's failure is its own
        }
      }
    })();
    return async () => {
      await messages.close().catch(() => {});
      await pump.catch(() => {});
    };
  }

  /** Stream sequence of the actor's last message, 0 when it has none. */
  async lastSeq(actor: string): Promise<number> {
    try {
      const m = await this.#jsm.streams.getMessage(this.stream, { last_by_subj: subjectOf(actor) });
      return m?.seq ?? 0;
    } catch {
      return 0;
    }
  }

  /** The stored snapshot and its revision (the expectation for the next write). */
  async snapshot(actor: string): Promise<{ record: SnapshotRecord; revision: number } | undefined> {
    const e = await this.#kv.get(keyOf(actor));
    if (!e || e.operation !== 'PUT') return undefined;
    return { record: e.json<SnapshotRecord>(), revision: e.revision };
  }

  /**
   * Writes a snapshot if the stored one still has `expectedRevision` (0: none may exist).
   * @throws ConflictError when a newer snapshot was written by someone else.
   */
  async putSnapshot(record: SnapshotRecord, expectedRevision: number): Promise<number> {
    const data = JSON.stringify(record);
    try {
      return expectedRevision === 0
        ? await this.#kv.create(keyOf(record.actor), data)
        : await this.#kv.update(keyOf(record.actor), data, expectedRevision);
    } catch (e) {
      throw new ConflictError(
        `snapshot of ${record.actor} is newer than revision ${expectedRevision}: stale writer (${ensureError(e).message})`,
      );
    }
  }
}

import { DeliverPolicy, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { checkChain, type Fact } from '../../protocol/index.js';
import type { ChainHead } from '../../host/ports.js';
import type { JournalReader, VerifyResult } from '../../journal/reader.js';
import type { OrphanTurn } from '../sqlite/verify-store.js';
import type { JetStreamStore } from './jetstream-store.js';
import type { WatchedBucket } from './kv-stores.js';
import { AuthorityKey } from '../../authority/signer.js';
import { turnAttestationText } from '../../host/ports.js';
import type { ExportPage, ExportPageArgs } from '../../journal/export-format.js';
import { jetStreamExportPage } from './journal-export.js';

interface TurnMessage {
  chain: string;
  facts: Fact[];
  attestation?: { keyId: string; sig: string };
}

/** Where a turn that holds positions of its chain sits: all verify keeps to name an orphan's holder. */
interface HeldTurn {
  from: number;
  to: number;
  pos: number;
}

/** How many recent turns per chain verify keeps to find an orphan's holder. */
const HELD_TURNS = 512;

/** A turn as read back to compare with an orphan: its stored bytes and facts. */
interface ReadTurn {
  from: number;
  pos: number;
  data: Uint8Array;
  body: TurnMessage;
}

/**
 * What an orphan is next to the turns holding its positions (`holders`, the first holding its
 * first position): a byte-identical copy (the server stored one append twice), the same facts
 * in another message, or another writer's turn.
 */
function classifyOrphan(
  orphan: { seq: number; data: Uint8Array; body: TurnMessage },
  holders: readonly ReadTurn[],
): Pick<OrphanTurn, 'heldBy' | 'kind' | 'heldByKeyId'> {
  const holder = holders[0]!;
  const keyId = holder.body.attestation?.keyId;
  const base = { heldBy: holder.pos, ...(keyId ? { heldByKeyId: keyId } : {}) };
  if (Buffer.from(holder.data).equals(orphan.data)) return { ...base, kind: 'copy' };
  // the same facts, possibly spread over the holder and the turns after it
  const byPosition = new Map<number, string>();
  for (const t of holders) t.body.facts.forEach((f, i) => byPosition.set(t.from + i, f.hash));
  const same = orphan.body.facts.every((f, i) => byPosition.get(orphan.seq + i) === f.hash);
  return { ...base, kind: same ? 'same-facts' : 'other-writer' };
}

/** What an orphan is, in words (`checkInvariants`, `ice journal verify`). */
export function describeOrphan(o: OrphanTurn): string {
  const by = (k: string | undefined) => (k ? ` signed by ${k}` : '');
  switch (o.kind) {
    case 'copy':
      return `an orphan: a byte-identical copy of stream message ${o.heldBy}, the server stored one append twice`;
    case 'same-facts':
      return `an orphan: the same facts as stream message ${o.heldBy} in another message`;
    case 'other-writer':
      return `an orphan: another writer's turn${by(o.keyId)}; stream message ${o.heldBy}${by(o.heldByKeyId)} holds the position`;
    default:
      return 'an orphan; the turn holding the position was not found';
  }
}

/** KV bucket of every cluster node's public key, by key id. */
export const KEYS_BUCKET = 'ICE_KEYS';

/** Public keys by id, read from ICE_KEYS once each. */
export type KeyResolver = (keyId: string) => Promise<AuthorityKey | undefined>;

export function keyResolver(bucket: WatchedBucket): KeyResolver {
  const cache = new Map<string, AuthorityKey | undefined>();
  return async (keyId) => {
    if (cache.has(keyId)) return cache.get(keyId);
    const e = await bucket.get(keyId);
    const pem = (e?.value as { publicKeyPem?: unknown } | undefined)?.publicKeyPem;
    const key = typeof pem === 'string' ? AuthorityKey.fromPublicPem(pem) : undefined;
    if (key && key.keyId !== keyId) return undefined; // a record under the wrong id proves nothing
    if (key) cache.set(keyId, key);
    return key;
  };
}

/**
 * The journal of a cluster, read for people and verifiers (CLI `--nats`, the inspector,
 * admin requests): every chain in stream `ICE_JOURNAL`, one message per turn.
 */
export class JetStreamJournalReader implements JournalReader {
  readonly #nc: NatsConnection;
  readonly #store: JetStreamStore;
  readonly #stream: string;
  readonly #keys: KeyResolver | undefined;
  #jsm: JetStreamManager | undefined;

  constructor(nc: NatsConnection, store: JetStreamStore, opts: { stream?: string; keys?: KeyResolver } = {}) {
    this.#nc = nc;
    this.#store = store;
    this.#stream = opts.stream ?? 'ICE_JOURNAL';
    this.#keys = opts.keys;
  }

  async #manager(): Promise<JetStreamManager> {
    this.#jsm ??= await jetstreamManager(this.#nc);
    return this.#jsm;
  }

  async tail(opts: { limit?: number; chain?: string } = {}): Promise<Fact[]> {
    const limit = opts.limit ?? 50;
    if (opts.chain !== undefined) {
      const head = await this.#store.head(opts.chain);
      const from = Math.max(1, head.seq - limit + 1);
      return (await this.#store.chainFacts(opts.chain, from, limit)).reverse();
    }
    const jsm = await this.#manager();
    const info = await jsm.streams.info(this.#stream);
    const out: Fact[] = [];
    for (let seq = info.state.last_seq; seq >= info.state.first_seq && seq > 0 && out.length < limit; seq--) {
      const m = await jsm.streams.getMessage(this.#stream, { seq }).catch(() => null);
      if (!m) continue;
      const body = m.json<TurnMessage>();
      for (const f of [...body.facts].reverse()) {
        if (out.length < limit) out.push(f);
      }
    }
    return out;
  }

  chain(chain: string, fromSeq = 1, limit = 10_000): Promise<Fact[]> {
    return this.#store.chainFacts(chain, fromSeq, limit);
  }

  exportPage(args: ExportPageArgs): Promise<ExportPage> {
    return jetStreamExportPage(this.#nc, args, this.#stream);
  }

  async fact(chain: string, seq: number): Promise<Fact | undefined> {
    return (await this.#store.chainFacts(chain, seq, 1)).find((f) => f.seq === seq);
  }

  /**
   * The facts of one intent: its target's chain (found through its stored outcome) and every
   * runtime chain (rejections have no outcome; they sit on the receiving node's runtime
   * chain). Oldest first per chain.
   */
  async factsOfIntent(intentId: string): Promise<Fact[]> {
    const o = await this.#store.outcome(intentId);
    const chain = o ? ('actor' in o.outcome ? o.outcome.actor : o.outcome.chain) : undefined;
    const chains = new Set([...(chain ? [chain] : []), ...(await this.#runtimeChains())]);
    const out: Fact[] = [];
    for (const c of chains) {
      for (const f of await this.#store.chainFacts(c, 1, Number.MAX_SAFE_INTEGER)) if (f.intentId === intentId) out.push(f);
    }
    return out.sort((a, b) => a.at.localeCompare(b.at));
  }

  /** Every runtime chain in the stream (`ice.journal._runtime.<name>`). */
  async #runtimeChains(): Promise<string[]> {
    const jsm = await this.#manager();
    const prefix = 'ice.journal._runtime.';
    const si = await jsm.streams.info(this.#stream, { subjects_filter: `${prefix}>` });
    return Object.keys(si.state.subjects ?? {}).map((subject) => `_runtime/${subject.slice(prefix.length)}`);
  }

  /**
   * Reads the whole stream once, in order, and checks every chain: each message continues its
   * chain (seq and prev), each hash recomputes. A message at a position already taken is a
   * fork, one past the next position a gap. With a key resolver, each turn's attestation (the
   * writing node's signature over the head it left) must verify against a published key;
   * `attestedPos` is the last position up to which every turn was attested.
   *
   * With `fromPos`, only the messages after that stream position are checked (the start-up
   * check): a chain's first message there is taken to continue from its stated `prev`, whose
   * link to the fact before is checked whenever the chain is loaded.
   */
  async verify(opts: { fromPos?: number } = {}): Promise<VerifyResult> {
    const jsm = await this.#manager();
    const info = await jsm.streams.info(this.#stream);
    const last = info.state.last_seq;
    const fromPos = opts.fromPos ?? 0;
    const heads = new Map<string, ChainHead>();
    let count = 0;
    let lastPos = 0;
    let attested = 0;
    let attestedPos = 0;
    let unattested = false;
    const orphans: OrphanTurn[] = [];
    const held = new Map<string, HeldTurn[]>(); // recent turns per chain, to name an orphan's holder
    const result = (extra: Partial<VerifyResult> = {}): VerifyResult => ({
      ok: true,
      count,
      chains: heads.size,
      lastPos,
      ...(orphans.length > 0 ? { orphans } : {}),
      ...(this.#keys ? { checkpoints: attested, attestedPos } : {}),
      ...extra,
    });
    if (last === 0 || info.state.messages === 0 || last <= fromPos) return result({ lastPos: fromPos });
    const consumer = await jetstream(this.#nc).consumers.get(this.#stream, {
      filter_subjects: 'ice.journal.>',
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: Math.max(info.state.first_seq, fromPos + 1),
    });
    // Deleted messages (a repaired chain) leave the stream's last sequence behind: the end is
    // where the consumer has nothing pending, not that sequence.
    if ((await consumer.info()).num_pending === 0) {
      await consumer.delete().catch(() => {});
      return result({ lastPos: fromPos });
    }
    const messages = await consumer.consume();
    try {
      for await (const m of messages) {
        const done = m.seq >= last || m.info.pending === 0;
        const body = m.json<TurnMessage>();
        const first = body.facts[0];
        const head = heads.get(body.chain) ?? (fromPos > 0 && first ? { seq: first.seq - 1, hash: first.prev } : { seq: 0, hash: '' });
        if (first !== undefined && first.seq <= head.seq) {
          // an orphan: first at a position wins (the store confirms placement where the fence
          // can fail); reported, not part of the chain, with what it is next to its holder,
          // read back only now (orphans are rare; verify keeps no bytes of the turns it passed)
          const end = first.seq + body.facts.length - 1;
          const spots = (held.get(body.chain) ?? []).filter((t) => t.to >= first.seq && t.from <= end);
          const holders: ReadTurn[] = [];
          for (const t of spots) {
            const hm = await jsm.streams.getMessage(this.#stream, { seq: t.pos }).catch(() => null);
            if (hm) holders.push({ from: t.from, pos: t.pos, data: hm.data, body: hm.json<TurnMessage>() });
          }
          const c =
            holders[0] && holders[0].from <= first.seq ? classifyOrphan({ seq: first.seq, data: m.data, body }, holders) : undefined;
          orphans.push({
            chain: body.chain,
            seq: first.seq,
            pos: m.seq,
            ...(c ?? {}),
            ...(body.attestation?.keyId ? { keyId: body.attestation.keyId } : {}),
          });
          lastPos = m.seq;
          if (done) break;
          continue;
        }
        const r = checkChain(body.facts, head);
        if (!r.ok) {
          return result({ ok: false, brokenChain: body.chain, brokenAt: r.brokenAt, brokenPos: m.seq, reason: r.reason });
        }
        if (this.#keys) {
          const a = body.attestation;
          if (!a) unattested = true;
          else {
            const key = await this.#keys(a.keyId);
            if (!key || !key.verifyText(turnAttestationText(body.chain, r.head), a.sig)) {
              return result({
                ok: false,
                brokenChain: body.chain,
                brokenAt: r.head.seq,
                brokenPos: m.seq,
                reason: key ? 'the turn signature does not verify' : `the turn is signed by unknown key ${a.keyId}`,
              });
            }
            attested++;
            if (!unattested) attestedPos = m.seq;
          }
        }
        heads.set(body.chain, r.head);
        let recent = held.get(body.chain);
        if (!recent) held.set(body.chain, (recent = []));
        recent.push({ from: first?.seq ?? r.head.seq, to: r.head.seq, pos: m.seq });
        if (recent.length > HELD_TURNS) recent.shift();
        count += body.facts.length;
        lastPos = m.seq;
        if (done) break;
      }
    } finally {
      await messages.close().catch(() => {});
      // an ordered consumer lingers on the server for 5 minutes unless deleted
      await consumer.delete().catch(() => {});
    }
    return result();
  }
}

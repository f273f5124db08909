import { AuthorityKey } from '../authority/signer.js';
import { canonicalJson, factBodyText, sha256Hex, type Decision, type Fact } from '../protocol/index.js';
import { turnAttestationText } from '../host/ports.js';
import { EXPORT_FORMAT, EXPORT_VERSION, type ExportCheckpoint, type ExportHeader, type ExportTurn } from './export-format.js';

/**
 * Verifies a journal export (`ice journal export`) with nothing but the file and the
 * authority's public keys: no store, no runtime, no network. What is checked (the procedure
 * docs/protocol.md states for verifiers in any language; tools/verify_journal.py is one):
 *
 * 1. every line is JSON; the first is the header, the last the `end` whose counts match;
 * 2. each chain: consecutive seqs, each `prev` the hash before it (the first exported fact of
 *    a chain starts from its own `prev`), `hash = sha256(prev + JCS(body))` (v1 facts: their
 *    own rule, see chain.ts);
 * 3. each `intent.proposed`: `digest = sha256(JCS(intent))`; each `decision`: bound to the
 *    intent id and digest of the `intent.proposed`/`approval` it names as cause; each
 *    `transition` of an intent: caused by a `granted` decision for the same intent;
 * 4. each checkpoint: `hash = sha256(prev + JCS(heads))`, linked to the one before, signed
 *    (`ice-checkpoint:<hash>`) by a trusted key, every head it names equal to the exported
 *    fact there; each cluster turn signed (`ice-turn:<chain>:<seq>:<hash>`) the same way;
 * 5. each decision signed by a trusted key (its own `sig`), or — `sig: ""`, decided in the
 *    process that executed it — covered by a signed checkpoint or turn; and every fact covered.
 *
 * The first problem ends the check: its line number (1-based), chain, seq and reason.
 */
export interface ExportVerifyResult {
  ok: boolean;
  lines: number;
  facts: number;
  chains: number;
  checkpoints: number;
  turns: number;
  decisions: { signed: number; attested: number };
  transitions: number;
  /** Causes that name a fact before the export's first fact of the chain (an export from `--since`). */
  outsideExport: number;
  broken?: { line: number; chain?: string; seq?: number; reason: string };
}

interface ChainState {
  first: number;
  seq: number;
  hash: string;
  /** seq → what later facts and signed heads check against */
  facts: Map<number, Seen>;
  attestedUpTo: number;
}

interface Seen {
  line: number;
  hash: string;
  type: string;
  intentId: string | undefined;
  digest?: string;
  verdict?: string;
  /** A decision with `sig: ""`: attested only by a signed head covering it. */
  unsigned?: boolean;
}

/** An ed25519 signature in base64: 64 bytes, 86 characters and `==`. */
const STRICT_SIG = /^[A-Za-z0-9+/]{85}[AQgw]==$/;

class Broken extends Error {
  constructor(
    readonly line: number,
    readonly reason: string,
    readonly chain?: string,
    readonly seq?: number,
  ) {
    super(reason);
  }
}

/** Parses `--key` values: PEM text, a JSON key list (`ice authority keys --json`), or raw base64url keys. */
export function parseTrustedKeys(texts: string[]): AuthorityKey[] {
  const out: AuthorityKey[] = [];
  for (const t of texts) {
    const s = t.trim();
    if (s.startsWith('-----BEGIN')) {
      for (const pem of s.match(/-----BEGIN PUBLIC KEY-----[\s\S]*?-----END PUBLIC KEY-----/g) ?? [])
        out.push(AuthorityKey.fromPublicPem(pem));
    } else if (s.startsWith('[') || s.startsWith('{')) {
      const v = JSON.parse(s) as unknown;
      for (const k of Array.isArray(v) ? v : [v]) {
        const r = k as { publicKeyPem?: unknown; publicKey?: unknown };
        if (typeof r.publicKeyPem === 'string') out.push(AuthorityKey.fromPublicPem(r.publicKeyPem));
        else if (typeof r.publicKey === 'string') out.push(AuthorityKey.fromRawPublic(r.publicKey));
      }
    } else out.push(AuthorityKey.fromRawPublic(s));
  }
  return out;
}

export async function verifyExport(
  lines: AsyncIterable<string> | Iterable<string>,
  trusted: readonly AuthorityKey[],
): Promise<ExportVerifyResult> {
  const keys = new Map(trusted.map((k) => [k.keyId, k]));
  const chains = new Map<string, ChainState>();
  const r: ExportVerifyResult = {
    ok: true,
    lines: 0,
    facts: 0,
    chains: 0,
    checkpoints: 0,
    turns: 0,
    decisions: { signed: 0, attested: 0 },
    transitions: 0,
    outsideExport: 0,
  };
  let header: ExportHeader | undefined;
  let ended = false;
  let lastCheckpoint: ExportCheckpoint | undefined;
  let n = 0;
  /** Position of the last fact record: facts ascend (embedded: strictly), a signed record sits at its last fact's. */
  let lastPos = 0;
  /** Cluster: the position of the last turn record; facts after it start a new turn (a higher position). */
  let turnPos = 0;
  const checkPos = (pos: unknown, ok: (p: number) => boolean, what: string): void => {
    if (typeof pos !== 'number' || !Number.isInteger(pos) || !ok(pos))
      throw new Broken(n, `${what} is out of order (position ${String(pos)} after ${lastPos}): records were moved or edited`);
  };
  const keyFor = (keyId: string, what: string, sig: unknown): AuthorityKey => {
    // one spelling per signature: base64 that decodes leniently (stray or missing characters) is refused
    if (typeof sig !== 'string' || !STRICT_SIG.test(sig)) throw new Broken(n, `${what} signature is not 64 bytes of base64`);
    const k = keys.get(keyId);
    if (!k) throw new Broken(n, `${what} is signed by key ${keyId}, which is not a trusted key (--key)`);
    return k;
  };
  try {
    for await (const raw of lines) {
      n++;
      if (raw.trim() === '') {
        if (n === 1) throw new Broken(n, 'empty line: not a journal export');
        continue;
      }
      if (ended) throw new Broken(n, 'a record after the end record');
      let rec: { type?: unknown } & Record<string, unknown>;
      try {
        rec = JSON.parse(raw) as typeof rec;
      } catch (e) {
        throw new Broken(n, `not JSON (${(e as Error).message})`);
      }
      if (typeof rec !== 'object' || rec === null) throw new Broken(n, 'not a JSON object');
      if (n === 1) {
        if (
          rec.type !== 'header' ||
          rec.format !== EXPORT_FORMAT ||
          rec.version !== EXPORT_VERSION ||
          (rec.mode !== 'embedded' && rec.mode !== 'cluster')
        )
          throw new Broken(n, `the first line is not the header of an ${EXPORT_FORMAT} version ${EXPORT_VERSION}`);
        header = rec as unknown as ExportHeader;
        continue;
      }
      switch (rec.type) {
        case 'key': {
          const pem = rec.publicKeyPem;
          let k: AuthorityKey | undefined;
          try {
            k = typeof pem === 'string' ? AuthorityKey.fromPublicPem(pem) : undefined;
          } catch {
            k = undefined;
          }
          if (!k || k.keyId !== rec.keyId || k.publicInfo().publicKey !== rec.publicKey || rec.alg !== 'ed25519')
            throw new Broken(n, 'a key record whose keyId or raw key is not that of its PEM key');
          break;
        }
        case 'fact': {
          const f = rec.fact as Fact;
          // cluster: the facts of one turn share its position, and its turn record follows them
          checkPos(
            rec.pos,
            (p) => (header?.mode !== 'cluster' ? p > lastPos : lastPos > turnPos ? p === lastPos : p > turnPos),
            'the fact',
          );
          if (header?.actor !== undefined && f?.actor !== header.actor)
            throw new Broken(n, `a fact of another chain than ${header.actor}, which the header names`);
          checkFact(f, n, chains, r, keyFor);
          lastPos = rec.pos as number;
          break;
        }
        case 'checkpoint': {
          const cp = rec as unknown as ExportCheckpoint;
          if (header?.mode !== 'embedded') throw new Broken(n, 'a checkpoint in the export of a cluster');
          checkPos(cp.pos, (p) => (header?.actor === undefined ? p === lastPos : p >= lastPos), 'the checkpoint');
          if (sha256Hex(cp.prev + canonicalJson(cp.heads)) !== cp.hash)
            throw new Broken(n, 'the checkpoint hash is not sha256(prev + JCS(heads))');
          if (!keyFor(cp.keyId, 'the checkpoint', cp.sig).verifyCheckpoint(cp.hash, cp.sig))
            throw new Broken(n, 'the checkpoint signature does not verify');
          if (lastCheckpoint && header?.actor === undefined && cp.prev !== lastCheckpoint.hash)
            throw new Broken(n, 'the checkpoint does not link to the one before (history was rewritten)');
          lastCheckpoint = cp;
          for (const [chain, seq, hash] of cp.heads) attest(chains, chain, seq, hash, n, 'the checkpoint');
          r.checkpoints++;
          break;
        }
        case 'turn': {
          const t = rec as unknown as ExportTurn;
          if (header?.mode !== 'cluster') throw new Broken(n, 'a turn in the export of an embedded runtime');
          checkPos(t.pos, (p) => p === lastPos && p > turnPos, 'the turn');
          turnPos = t.pos;
          if (!keyFor(t.keyId, 'the turn', t.sig).verifyText(turnAttestationText(t.chain, { seq: t.seq, hash: t.hash }), t.sig))
            throw new Broken(n, 'the turn signature does not verify', t.chain, t.seq);
          attest(chains, t.chain, t.seq, t.hash, n, 'the turn');
          r.turns++;
          break;
        }
        case 'end': {
          ended = true;
          if (rec.facts !== r.facts || rec.checkpoints !== r.checkpoints || rec.turns !== r.turns)
            throw new Broken(
              n,
              `the end record counts ${String(rec.facts)} facts, ${String(rec.checkpoints)} checkpoints and ${String(rec.turns)} turns; the file holds ${r.facts}, ${r.checkpoints} and ${r.turns} (lines were removed or added)`,
            );
          break;
        }
        default:
          throw new Broken(n, `unknown record type ${JSON.stringify(rec.type)}`);
      }
    }
    r.lines = n;
    if (!header) throw new Broken(1, 'empty file: not a journal export');
    if (!ended) throw new Broken(n, 'no end record: the export is truncated');
    // every fact covered by a signed head; the first one that is not, in file order
    let first: Broken | undefined;
    for (const [chain, c] of chains) {
      for (const [seq, f] of c.facts) {
        if (seq <= c.attestedUpTo) {
          if (f.unsigned) r.decisions.attested++;
          continue;
        }
        if (!first || f.line < first.line)
          first = new Broken(f.line, 'no signed checkpoint or turn covers this fact (nothing attests it)', chain, seq);
        break;
      }
    }
    if (first) throw first;
    r.chains = chains.size;
    return r;
  } catch (err) {
    // anything else thrown while checking a record is that record being malformed
    const e = err instanceof Broken ? err : new Broken(n, `a malformed record (${(err as Error)?.message ?? String(err)})`);
    r.ok = false;
    r.lines = Math.max(r.lines, n);
    r.chains = chains.size;
    r.broken = {
      line: e.line,
      ...(e.chain !== undefined ? { chain: e.chain } : {}),
      ...(e.seq !== undefined ? { seq: e.seq } : {}),
      reason: e.reason,
    };
    return r;
  }
}

function attest(chains: Map<string, ChainState>, chain: string, seq: number, hash: string, line: number, what: string): void {
  const c = chains.get(chain);
  if (!c || seq < c.first) return; // a chain, or a part of one, that is not in this export
  const f = c.facts.get(seq);
  if (!f) throw new Broken(line, `${what} names fact ${seq} of ${chain}, which is not in the export before it`, chain, seq);
  if (f.hash !== hash) throw new Broken(line, `${what} names another hash for fact ${seq} of ${chain} (history was rewritten)`, chain, seq);
  if (seq > c.attestedUpTo) c.attestedUpTo = seq;
}

function checkFact(
  f: Fact,
  line: number,
  chains: Map<string, ChainState>,
  r: ExportVerifyResult,
  keyFor: (keyId: string, what: string, sig: unknown) => AuthorityKey,
): void {
  if (typeof f !== 'object' || f === null || typeof f.seq !== 'number' || typeof f.hash !== 'string' || typeof f.prev !== 'string')
    throw new Broken(line, 'a fact record without a fact (seq, prev, hash)');
  const chain = f.actor ?? '';
  let c = chains.get(chain);
  if (!c) {
    if (f.seq === 1 && f.prev !== '') throw new Broken(line, 'the first fact of a chain has a prev', chain, f.seq);
    c = { first: f.seq, seq: f.seq - 1, hash: f.prev, facts: new Map(), attestedUpTo: f.seq - 1 };
    chains.set(chain, c);
  }
  if (f.seq !== c.seq + 1)
    throw new Broken(line, f.seq <= c.seq ? `fact ${f.seq} repeats a position` : `fact ${c.seq + 1} is missing`, chain, f.seq);
  if (f.prev !== c.hash) throw new Broken(line, 'prev does not match the previous hash', chain, f.seq);
  let text: string;
  try {
    text = factBodyText(f);
  } catch (e) {
    throw new Broken(line, `the fact has no canonical JSON (${(e as Error).message})`, chain, f.seq);
  }
  if (sha256Hex(f.prev + text) !== f.hash) throw new Broken(line, 'hash does not match the fact body and the previous hash', chain, f.seq);
  const seen: Seen = { line, hash: f.hash, type: f.type, intentId: f.intentId };
  const cause = (): Seen | undefined => {
    const s = f.causes[0];
    if (s === undefined) throw new Broken(line, `a ${f.type} fact without a cause`, chain, f.seq);
    if (s < c.first) {
      r.outsideExport++;
      return undefined;
    }
    const got = c.facts.get(s);
    if (!got) throw new Broken(line, `its cause, fact ${s}, is not in the chain before it`, chain, f.seq);
    return got;
  };
  switch (f.type) {
    case 'intent.proposed': {
      const d = f.data as { intent?: { id?: unknown }; digest?: unknown };
      if (typeof d.digest !== 'string' || sha256Hex(canonicalJson(d.intent)) !== d.digest)
        throw new Broken(line, 'the intent digest is not sha256(JCS(intent))', chain, f.seq);
      if (d.intent?.id !== f.intentId) throw new Broken(line, 'the intent is not the one the fact names', chain, f.seq);
      seen.digest = d.digest;
      break;
    }
    case 'approval':
      if (typeof f.data.digest === 'string') seen.digest = f.data.digest;
      break;
    case 'decision': {
      const d = f.data.decision as Decision | undefined;
      if (!d || d.intentId !== f.intentId) throw new Broken(line, 'the decision is not for the intent the fact names', chain, f.seq);
      const of = cause();
      if (of) {
        if ((of.type !== 'intent.proposed' && of.type !== 'approval') || of.intentId !== f.intentId)
          throw new Broken(line, `the decision's cause (fact ${f.causes[0]}) is not the proposal of intent ${f.intentId}`, chain, f.seq);
        if (of.digest !== undefined && of.digest !== d.intentDigest)
          throw new Broken(line, 'the decision was made for other intent content (intentDigest differs)', chain, f.seq);
      }
      seen.verdict = d.verdict;
      if (d.sig !== '') {
        if (!keyFor(d.authority, 'the decision', d.sig).verify(d))
          throw new Broken(line, 'the decision signature does not verify', chain, f.seq);
        r.decisions.signed++;
      } else seen.unsigned = true;
      break;
    }
    case 'transition':
      if (f.intentId !== undefined) {
        const d = cause();
        if (d && (d.type !== 'decision' || d.intentId !== f.intentId || d.verdict !== 'granted'))
          throw new Broken(
            line,
            `the transition's cause (fact ${f.causes[0]}) is not a granted decision for intent ${f.intentId}`,
            chain,
            f.seq,
          );
        r.transitions++;
      }
      break;
    default:
  }
  c.facts.set(f.seq, seen);
  c.seq = f.seq;
  c.hash = f.hash;
  r.facts++;
}

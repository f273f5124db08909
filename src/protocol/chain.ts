import { canonicalJson, sha256Hex } from './canonical.js';
import { FACT_VERSION, type Fact, type FactBody, type FactDraft } from './fact.js';

/**
 * Chains facts: each fact belongs to one chain (an actor, or a runtime chain for facts with
 * no actor) and sits at `seq` = the position in that chain, with `prev` = the hash of the
 * chain's previous fact ("" before the first) and
 *
 *     hash = hex(sha256(utf8(prev + JCS(body))))      (fact `v: 2`)
 *
 * body = the fact without `prev` and `hash`, JCS = RFC 8785 canonical JSON. Facts written
 * before (`v: 1`) hashed `JSON.stringify(body)` in the key order they were written in
 * (`v, seq, at, type, origin, actor?, intentId?, causes, data`); they still verify by that
 * rule, every new fact is `v: 2`. The same code chains facts in both deployments.
 */
export interface ChainCursor {
  seq: number;
  hash: string;
}

/** Appends one fact to the chain at `cursor` (advances it). */
export function chainFact(cursor: ChainCursor, draft: FactDraft, at: string): { fact: Fact; body: string } {
  const body: FactBody = {
    v: FACT_VERSION,
    seq: cursor.seq + 1,
    at,
    type: draft.type,
    origin: draft.origin,
    ...(draft.actor !== undefined ? { actor: draft.actor } : {}),
    ...(draft.intentId !== undefined ? { intentId: draft.intentId } : {}),
    causes: draft.causes ?? [],
    data: draft.data,
  };
  const text = canonicalJson(body);
  const prev = cursor.hash;
  const hash = sha256Hex(prev + text);
  cursor.seq = body.seq;
  cursor.hash = hash;
  // The body becomes the fact: prev and hash go after the hashed fields, as in a copy.
  const fact = body as Fact;
  fact.prev = prev;
  fact.hash = hash;
  return { fact, body: text };
}

/** The text a fact's hash covers: JCS of the body (`v: 2`), or for `v: 1` facts the body's JSON in its own key order. */
export function factBodyText(f: Fact): string {
  const { prev: _p, hash: _h, ...body } = f;
  return f.v === 1 ? JSON.stringify(body) : canonicalJson(body);
}

/**
 * Checks that `facts` continue the chain at `from`: consecutive seqs, each prev the hash
 * before it, each hash recomputed. Returns the first broken seq, or the new head.
 */
export function checkChain(
  facts: readonly Fact[],
  from: ChainCursor = { seq: 0, hash: '' },
): { ok: true; head: ChainCursor } | { ok: false; brokenAt: number; reason: string } {
  let seq = from.seq;
  let prev = from.hash;
  for (const f of facts) {
    if (f.seq !== seq + 1)
      return { ok: false, brokenAt: seq + 1, reason: f.seq <= seq ? `fact ${f.seq} repeats a position` : `fact ${seq + 1} is missing` };
    if (f.prev !== prev) return { ok: false, brokenAt: f.seq, reason: 'prev does not match the previous hash' };
    const hash = sha256Hex(prev + factBodyText(f));
    if (hash !== f.hash) return { ok: false, brokenAt: f.seq, reason: 'hash does not match the fact body and the previous hash' };
    seq = f.seq;
    prev = f.hash;
  }
  return { ok: true, head: { seq, hash: prev } };
}

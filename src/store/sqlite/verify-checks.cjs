'use strict';
// The row checks of journal verification, shared by the main thread (verify-store.ts) and the
// verify workers (verify-worker.cjs). Plain CommonJS so that a worker thread loads it without
// a TypeScript loader, like commit-worker.cjs.
//
// A fact row, as read: [pos, chain, seq, prev + body, length of prev, hash, type, actor,
// intent_id, at] (VERIFY_SQL in sqlite-store.ts): prev + body, concatenated by SQLite, is
// exactly what the hash is over; the body starts at prev's length. A checkpoint row: [pos,
// heads (JSON text), prev, hash].
//
// A row is right when sha256(prev + body) is its hash and its index columns say what its body
// says; a chain is right when each row's seq and prev continue the row before it in the chain.
// Both halves are local to a range of positions except at the range's first row of each
// chain, so ranges can be checked apart (and in parallel) and stitched together in order:
// `summarizeRange` reports, per chain, the first row's (seq, prev) and the last row's
// (seq, hash), and the caller checks the first against where the chain stood before.
const crypto = require('node:crypto');

/** sha256 as lowercase hex; the one-shot `crypto.hash` where the Node version has it. */
const sha256Hex =
  typeof crypto.hash === 'function'
    ? (text) => crypto.hash('sha256', text, 'hex')
    : (text) => crypto.createHash('sha256').update(text).digest('hex');

/**
 * A checkpoint's hash: sha256(prev + JSON.stringify(heads)). Heads are [chain, seq, hash]
 * lists (strings and integers, no objects), for which JSON.stringify writes exactly the RFC 8785
 * canonical JSON: the hash is sha256(prev + JCS(heads)).
 */
function checkpointHash(prev, heads) {
  return sha256Hex(prev + JSON.stringify(heads));
}

// eslint-disable-next-line no-control-regex -- exactly the characters JSON.stringify escapes
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/**
 * Where `s` ends in `text` if `text` has it at `o`, else -1 (and from -1, -1). `indexOf` from
 * `o` rather than `startsWith` at `o`: the same answer (a miss scans on, but only a broken row
 * misses), and V8 runs it a few times faster.
 */
function after(text, o, s) {
  return o >= 0 && text.indexOf(s, o) === o ? o + s.length : -1;
}

/** Where the JSON string literal of `s` (as JSON.stringify writes it) ends, if `text` has it at `o`. */
function afterString(text, o, s) {
  if (o < 0) return -1;
  // The common case (ids, times, types) needs no escaping: compare in place, build nothing.
  if (NEEDS_ESCAPE.test(s)) return after(text, o, JSON.stringify(s));
  return text.charCodeAt(o) === 34 && text.indexOf(s, o + 1) === o + 1 && text.charCodeAt(o + 1 + s.length) === 34 ? o + s.length + 2 : -1;
}

/**
 * The index columns (seq, at, type, actor, intent_id) must say what the hashed body says, or
 * lookups by actor or intent (and restore's replay) would read a history other than the
 * verified one. The check compares the body's fixed pieces in place, without a parse. The
 * body is `text` from `offset` on. `type` undefined: a row without index columns (only its
 * seq is checked).
 *
 * Bodies of `v: 2` facts are RFC 8785 canonical JSON: the keys in code-unit order, so `actor`,
 * `at` and `causes` open the text and, since `data` is always an object, `intentId`,
 * `origin`, `seq`, `type` and `v` close it:
 * `{["actor":…,]"at":…,"causes":[…],"data":{…}[,"intentId":…],"origin":"…","seq":…,"type":…,"v":2}`.
 * Bodies of `v: 1` facts have the order they were written in
 * (`{"v":1,"seq":…,"at":…,"type":…,"origin":…,["actor":…,]["intentId":…,]"causes":…`).
 */
function indexMismatch(chain, seq, text, offset, type, actor, intentId, at) {
  if (text.startsWith('{"v":1,', offset)) return indexMismatchV1(chain, seq, text, offset, type, actor, intentId, at);
  // The tail, from its end: `,"seq":N,"type":T,"v":2}`.
  const tail = `,"seq":${seq},"type":`;
  if (!text.endsWith(',"v":2}')) return 'fact body carries another seq';
  const typeEnd = text.length - ',"v":2}'.length;
  const seqAt = text.lastIndexOf(tail, typeEnd);
  if (seqAt < offset) return 'fact body carries another seq';
  if (type === undefined) return undefined;
  if (afterString(text, seqAt + tail.length, type) !== typeEnd) return 'seq, time or type columns disagree with the fact body';
  // `,"origin":"…"` right before the seq; before it the end of intentId's string, or of data.
  if (text.charCodeAt(seqAt - 1) !== 34) return 'seq, time or type columns disagree with the fact body';
  const originAt = text.lastIndexOf(',"origin":"', seqAt - 2);
  if (originAt < offset) return 'seq, time or type columns disagree with the fact body';
  if (intentId != null) {
    const literal = ',"intentId":' + JSON.stringify(intentId);
    if (originAt - literal.length < offset || text.indexOf(literal, originAt - literal.length) !== originAt - literal.length)
      return 'actor or intent columns disagree with the fact body';
  } else if (text.charCodeAt(originAt - 1) !== 125) return 'actor or intent columns disagree with the fact body';
  // The head: `{["actor":A,]"at":AT,"causes":`.
  let o = offset + 1;
  if (actor != null) o = after(text, afterString(text, after(text, o, '"actor":'), actor), ',');
  else if (text.startsWith('"actor":', o)) return 'actor or intent columns disagree with the fact body';
  o = afterString(text, after(text, o, '"at":'), at ?? '');
  if (after(text, o, ',"causes":') < 0) return 'actor or intent columns disagree with the fact body';
  if (actor != null && actor !== chain) return 'the chain column disagrees with the fact body';
  return undefined;
}

function indexMismatchV1(chain, seq, text, offset, type, actor, intentId, at) {
  let o = after(text, after(text, offset, '{"v":1,"seq":'), String(seq));
  if (type === undefined) return after(text, o, ',') < 0 ? 'fact body carries another seq' : undefined;
  o = afterString(text, after(text, o, ',"at":'), at ?? '');
  o = afterString(text, after(text, o, ',"type":'), type);
  o = after(text, o, ',"origin":"');
  if (o < 0) return 'seq, time or type columns disagree with the fact body';
  const originEnd = text.indexOf('"', o);
  o = originEnd < 0 ? -1 : originEnd + 1;
  if (actor != null) o = afterString(text, after(text, o, ',"actor":'), actor);
  if (intentId != null) o = afterString(text, after(text, o, ',"intentId":'), intentId);
  if (after(text, o, ',"causes":') < 0) return 'actor or intent columns disagree with the fact body';
  if (actor != null && actor !== chain) return 'the chain column disagrees with the fact body';
  return undefined;
}

const REASON = {
  link: (pos) => `checkpoint at position ${pos} does not link to the one before (history was rewritten)`,
  missing: (chain, seq) => `a signed checkpoint names fact ${seq} of ${chain}, which is missing`,
  mismatch: 'a signed checkpoint names another hash here (history was rewritten)',
};

/** Parsed heads, or undefined when the column is not a list of [chain, seq, hash]. */
function parseHeads(text) {
  let heads;
  try {
    heads = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(heads)) return undefined;
  for (const h of heads) {
    if (!Array.isArray(h) || h.length !== 3 || typeof h[0] !== 'string' || typeof h[1] !== 'number' || typeof h[2] !== 'string')
      return undefined;
  }
  return heads;
}

/**
 * Checks one checkpoint: it links to `prevHash` (skipped when null: the caller stitches it),
 * its hash is over its own heads, and every head it names is a fact with that hash. `chains`
 * holds where each chain seen so far in the range stands (its last [.., .., seq, hash]);
 * `lookup(chain, seq)` gives a stored fact's hash, or undefined when there is none.
 * Returns [pos, chain, seq, reason] for the first thing wrong, or undefined.
 */
function checkCheckpoint(cp, prevHash, chains, lookup) {
  const [pos, headsText, prev, hash] = cp;
  const heads = parseHeads(headsText);
  if (heads === undefined || (prevHash !== null && prev !== prevHash) || checkpointHash(prev, heads) !== hash)
    return [pos, '', 0, REASON.link(pos)];
  for (const [chain, seq, named] of heads) {
    const c = chains.get(chain);
    const stored = c !== undefined && c[2] === seq ? c[3] : lookup(chain, seq);
    if (stored === undefined) return [pos, chain, seq, REASON.missing(chain, seq)];
    if (stored !== named) return [pos, chain, seq, REASON.mismatch];
  }
  return undefined;
}

/**
 * Checks the fact rows (and, if given, the checkpoint rows) of one range of positions, in
 * position order, without knowing what came before the range. Stops at the first row found
 * wrong (`broken`): the caller then re-checks the range row by row from where the chains
 * stood, which names the exact fact and reason.
 */
function summarizeRange(rows, cps, lookup) {
  /** chain -> [first seq, first prev, last seq, last hash] */
  const chains = new Map();
  let count = 0;
  let lastPos = 0;
  let broken = false;
  let ci = 0;
  let cpBad;
  const checkCheckpointsUpTo = (pos) => {
    for (; ci < cps.length && cps[ci][0] <= pos; ci++) {
      if (cpBad === undefined) cpBad = checkCheckpoint(cps[ci], ci === 0 ? null : cps[ci - 1][3], chains, lookup);
    }
  };
  for (const r of rows) {
    const pos = r[0];
    if (ci < cps.length) checkCheckpointsUpTo(pos - 1);
    const chain = r[1];
    const seq = r[2];
    const prevBody = r[3];
    const prevLength = r[4];
    const hash = r[5];
    let c = chains.get(chain);
    if (c === undefined) {
      c = [seq, prevBody.slice(0, prevLength), seq, hash];
      chains.set(chain, c);
    } else if (seq !== c[2] + 1 || prevLength !== c[3].length || !prevBody.startsWith(c[3])) {
      broken = true;
      break;
    } else {
      c[2] = seq;
      c[3] = hash;
    }
    if (sha256Hex(prevBody) !== hash || indexMismatch(chain, seq, prevBody, prevLength, r[6], r[7], r[8], r[9]) !== undefined) {
      broken = true;
      break;
    }
    count++;
    lastPos = pos;
  }
  if (!broken) checkCheckpointsUpTo(Infinity);
  const firstCp = cps[0];
  const lastCp = cps[cps.length - 1];
  return {
    count,
    lastPos,
    broken,
    chains: broken ? [] : [...chains].map(([chain, c]) => [chain, c[0], c[1], c[2], c[3]]),
    checkpoints: cps.length,
    firstCheckpoint: firstCp === undefined ? null : [firstCp[0], firstCp[2]],
    lastCheckpointHash: lastCp === undefined ? null : lastCp[3],
    checkpointBroken: cpBad ?? null,
  };
}

module.exports = { sha256Hex, checkpointHash, indexMismatch, checkCheckpoint, summarizeRange, REASON };

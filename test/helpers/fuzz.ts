/**
 * Generators of malformed messages for the door fuzz tests (fast-check), and a runner that
 * sends them in concurrent batches and counts what came back per door.
 *
 * Every generated intent body is built so that it can never be executed: either it targets
 * an actor that does not exist (a fully valid body is then `unknown_actor`), or it carries at
 * least one mistake. So "nothing but `intent.rejected` facts" is a property the runtime must
 * keep, not a property of the generator's luck.
 */
import fc from 'fast-check';

export const enc = new TextEncoder();

/** The seed every fuzz property uses: ICE_FUZZ_SEED, else a fixed one (printed by the tests). */
export const FUZZ_SEED = Number(process.env['ICE_FUZZ_SEED'] ?? 20_261_130);
/** Messages per door: ICE_FUZZ_MESSAGES, default 10 000. */
export const FUZZ_MESSAGES = Number(process.env['ICE_FUZZ_MESSAGES'] ?? 10_000);

export interface RawMsg {
  subject: string;
  payload: Uint8Array;
  /** What the generator meant, for a readable counterexample. */
  what: string;
}

/** The most a generated message carries: under the test servers' max_payload of 65 536 bytes. */
export const MAX_SENDABLE = 65_000;

/** A message that fast-check prints as one line (subject, intent, size, first bytes), not as a byte array. */
export function rawMsg(subject: string, body: Uint8Array, what: string): RawMsg {
  // nats.js refuses to send more than the server's max_payload (64 KiB in these tests);
  // a body grown past it by a combination of mistakes is cut (and then no longer JSON).
  const payload = body.length > MAX_SENDABLE ? body.subarray(0, MAX_SENDABLE) : body;
  if (payload !== body) what = `${what}, cut to ${MAX_SENDABLE} bytes`;
  return {
    subject,
    payload,
    what,
    [fc.toStringMethod]: () =>
      `${JSON.stringify(subject)} ← ${what} (${payload.length} bytes: ${short(new TextDecoder().decode(payload.subarray(0, 80)), 60)})`,
  } as RawMsg;
}

/** Existing actors the fuzz runtimes hold; bodies aimed at them always carry a mistake. */
export const LIVE = ['deployment/web', 'run/r1'] as const;
const GHOSTS = ['deployment/ghost', 'run/ghost', 'deployment/g-1', 'nosuchkind/x'];

const PRINCIPALS = ['agent:bot', 'agent:a.b', 'svc:billing', 'human:alice', 'agent:x%y', 'agent:%2E'];

/** A subject token: printable, no `.`, `*`, `>` or whitespace (what NATS lets a client publish). */
export const token = fc.string({
  unit: fc.constantFrom(...'abcXYZ019:%_-@!#$&\'()+,;=~^`|{}[]\\"'.split(''), 'é', '\u4e16', '\u{1F600}'),
  minLength: 1,
  maxLength: 24,
});

const encodePrincipal = (p: string) => p.replaceAll('%', '%25').replaceAll('.', '%2E');

/** Principal tokens, canonical and not: other escapes, lower-case hex, lone `%`, double encoding. */
const principalTokenArb = fc.oneof(
  fc.constantFrom(...PRINCIPALS).map(encodePrincipal),
  fc.constantFrom(
    'agent%3Abot',
    'agent:a%2eb',
    'agent:bot%',
    'agent:bot%2',
    'agent:bot%zz',
    'agent:a%252Eb',
    'agent%253Abot',
    'bot',
    ':',
    '%',
    '%25',
    '%2E',
    'AGENT:BOT',
  ),
  token,
);

const kindId = fc.oneof(
  fc.constantFrom(...LIVE, ...GHOSTS).map((a) => a.replace('/', '.')),
  fc.tuple(token, token).map(([k, i]) => `${k}.${i}`),
);

/** Subjects under `ice.as.>`: canonical, wrong token counts, mangled principal or target tokens. */
export const asSubject = fc.oneof(
  fc.tuple(principalTokenArb, kindId).map(([p, t]) => `ice.as.${p}.${t}`),
  fc.array(token, { minLength: 1, maxLength: 6 }).map((ts) => `ice.as.${ts.join('.')}`),
);

/** Subjects under `ice.intent.>`. */
export const intentSubject = fc.oneof(
  kindId.map((t) => `ice.intent.${t}`),
  fc.array(token, { minLength: 1, maxLength: 6 }).map((ts) => `ice.intent.${ts.join('.')}`),
);

/**
 * A string whose JSON encoding is n bytes or so (cheap to generate: no per-character
 * shrinking), from 5 000 bytes to just under the servers' 64 KiB max_payload, and never
 * under 5 000 characters (longer than any string field may be).
 */
export const hugeString = fc
  .tuple(fc.integer({ min: 5_000, max: 60_000 }), fc.constantFrom('x', 'é', '\u4e16', '\u{1F600}', '\\', '"', '\u0000'))
  .map(([n, c]) => c.repeat(Math.max(5_000, Math.ceil(n / (Buffer.byteLength(JSON.stringify(c)) - 2)))));

/** JSON text nested `depth` levels (arrays or objects), up to far past the runtime's limit. */
export const deepText = fc
  .tuple(fc.constantFrom(15, 16, 17, 64, 1_000, 8_000), fc.boolean())
  .map(([d, arrays]) => (arrays ? '['.repeat(d) + ']'.repeat(d) : '{"a":'.repeat(d) + '1' + '}'.repeat(d)));

const wrongType = fc.oneof(
  fc.constantFrom<unknown>(null, true, false, 0, -1, 1.5, 1e308, '', [], {}, [[]], { type: 'X' }),
  fc.jsonValue({ maxDepth: 3 }),
);

type Body = Record<string, unknown>;

const baseBody = fc.record({
  id: fc.oneof(fc.constant('fz-1'), fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_:-]{0,20}$/)),
  proposer: fc.constantFrom(...PRINCIPALS.slice(0, 4)),
  target: fc.constantFrom<string>(...GHOSTS, ...LIVE),
  action: fc.constantFrom('CONFIGURE', 'SCALE', 'DEPLOY', 'START', 'EXPLODE', 'FAIL', 'type'),
  params: fc.constantFrom<unknown>({ version: '1.0.0', replicas: 2 }, { replicas: 3 }, {}, { environment: 'production' }),
});

/** One mistake applied to a body (as a JSON text transform where JSON.stringify cannot say it). */
const mistake: fc.Arbitrary<{ what: string; apply: (b: Body) => Body | string }> = fc.oneof(
  fc.constantFrom('id', 'proposer', 'target', 'action').map((k) => ({ what: `drop ${k}`, apply: (b: Body) => omit(b, k) })),
  fc
    .tuple(fc.constantFrom('id', 'proposer', 'target', 'action', 'params', 'v', 'runId', 'rationale', 'causationId'), wrongType)
    .filter(([k, v]) => !(k === 'params' && isPlainObject(v)) && typeof v !== 'string' && !(k === 'v' && v === 1))
    .map(([k, v]) => ({ what: `${k}: ${short(v)}`, apply: (b: Body) => ({ ...b, [k]: v }) })),
  fc
    .tuple(token, wrongType)
    .filter(
      ([k]) => !['id', 'proposer', 'target', 'action', 'params', 'v', 'runId', 'rationale', 'causationId', 'correlationId'].includes(k),
    )
    .map(([k, v]) => ({ what: `unknown key ${short(k)}`, apply: (b: Body) => ({ ...b, [k]: v }) })),
  fc
    .tuple(fc.constantFrom('id', 'proposer', 'target', 'action', 'rationale', 'correlationId', 'params.version'), hugeString)
    .map(([k, s]) => ({
      what: `huge ${k} (${s.length} chars)`,
      apply: (b: Body) => (k === 'params.version' ? { ...b, params: { version: s, replicas: 1 } } : { ...b, [k]: s }),
    })),
  fc.constantFrom('__proto__', 'constructor', 'prototype').chain((key) =>
    fc.constantFrom('top', 'params', 'nested').map((where) => ({
      what: `${key} key (${where})`,
      apply: (b: Body) => {
        const json = JSON.stringify(b);
        const inject = `"${key}":{"polluted":true}`;
        if (where === 'top') return `{${inject},${json.slice(1)}`;
        const at = where === 'params' ? inject : `"deep":{"deeper":{${inject}}}`;
        return json.replace(/"params":\{(\}?)/, (_m, close: string) => `"params":{${at}${close ? '}' : ','}`);
      },
    })),
  ),
  deepText.map((t) => ({
    what: `params nested ${t.length / 2} chars deep`,
    apply: (b: Body) => JSON.stringify({ ...b, params: 0 }).replace('"params":0', `"params":${t}`),
  })),
  fc.constantFrom(2, 0, '1', null).map((v) => ({ what: `v: ${String(v)}`, apply: (b: Body) => ({ ...b, v }) })),
  fc.constant({ what: 'params.type', apply: (b: Body) => ({ ...b, params: { ...(b['params'] as object), type: 'RESET' } }) }),
  fc.constant({ what: 'array envelope', apply: (b: Body) => [b] as unknown as Body }),
);

/** A malformed or unexecutable intent body, as JSON text, with what was done to it. */
export const badIntentBody: fc.Arbitrary<{ what: string; text: string; target: string; proposer: string }> = fc
  .tuple(baseBody, fc.array(mistake, { minLength: 0, maxLength: 3 }))
  .map(([b, ms]) => {
    // aimed at a live actor, a body always carries a mistake (the first generated one, or a fixed one)
    const all = LIVE.includes(b.target as (typeof LIVE)[number]) && ms.length === 0 ? [FALLBACK] : ms;
    // mistakes that edit the object first, those that produce text (forbidden keys, depth) last:
    // a text is parsed back only when two of the latter meet
    const ordered = [...all].sort((x, y) => Number(isTextMistake(x)) - Number(isTextMistake(y)));
    let cur: Body | string = b;
    for (const m of ordered) cur = typeof cur === 'string' ? patchText(cur, m) : m.apply(cur);
    const text = typeof cur === 'string' ? cur : JSON.stringify(cur);
    return { what: all.map((m) => m.what).join(' + ') || 'valid body, ghost target', text, target: b.target, proposer: b.proposer };
  });

const isTextMistake = (m: { what: string }) => / key \(|^params nested /.test(m.what);

const FALLBACK = { what: 'unknown key zz', apply: (b: Body) => ({ ...b, zz: 1 }) };

/** A mistake given a body already turned into text: parse it back when possible, else append garbage. */
function patchText(text: string, m: { apply: (b: Body) => Body | string }): string {
  try {
    const v = JSON.parse(text) as unknown;
    if (isPlainObject(v) && !Object.prototype.hasOwnProperty.call(v, '__proto__')) {
      const r = m.apply(v);
      return typeof r === 'string' ? r : JSON.stringify(r);
    }
  } catch {
    // deep or odd text: fall through
  }
  return `${text.slice(0, -1)},"zz":1}`;
}

/** Bytes that are not a JSON intent: invalid UTF-8, empty, not JSON, JSON of every type, deep, huge. */
export const rawPayload: fc.Arbitrary<{ what: string; bytes: Uint8Array }> = fc.oneof(
  fc.constant({ what: 'empty', bytes: new Uint8Array(0) }),
  fc
    .constantFrom([0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0xe2, 0x82], [0xf4, 0x90, 0x80, 0x80], [0xfe, 0xff, 0x00, 0x7b])
    .map((b) => ({ what: `invalid UTF-8 ${b.map((x) => x.toString(16)).join(' ')}`, bytes: new Uint8Array(b) })),
  fc.uint8Array({ maxLength: 256 }).map((b) => ({ what: `${b.length} random bytes`, bytes: b })),
  fc
    .tuple(fc.constantFrom('{"id":"x"', '{"v":1,}', '[1,2', 'nul', '"\\u12"', '{"a":1}{', 'NaN', '1e999999', '-', '{"__proto__":'), token)
    .map(([t, x]) => ({ what: `not JSON ${short(t)}`, bytes: enc.encode(t + (x.length > 3 ? x : '')) })),
  fc.jsonValue({ maxDepth: 4 }).map((v) => ({ what: `JSON ${short(v)}`, bytes: enc.encode(JSON.stringify(v)) })),
  fc
    .constantFrom('null', 'true', '0', '-0', '1e308', '""', '[]', '{}', '"ice"', '[null]')
    .map((t) => ({ what: `JSON ${t}`, bytes: enc.encode(t) })),
  deepText.map((t) => ({ what: `nested ${t.length / 2}`, bytes: enc.encode(t) })),
  hugeString.map((s) => ({ what: `huge string ${s.length} chars`, bytes: enc.encode(JSON.stringify(s)) })),
  fc.constantFrom('{"__proto__":{"x":1}}', '{"constructor":{"prototype":{"x":1}}}', '{"prototype":1}').map((t) => ({
    what: `forbidden key ${t}`,
    bytes: enc.encode(t),
  })),
);

/** Arguments for an operation that are never valid: wrong types, unknown keys, huge, deep. */
export const garbageArgs: fc.Arbitrary<{ what: string; bytes: Uint8Array }> = fc.oneof(
  rawPayload,
  fc
    .tuple(fc.jsonValue({ maxDepth: 3 }), token)
    .map(([v, k]) => ({ what: `object with unknown key ${short(k)}`, bytes: enc.encode(JSON.stringify({ [`zz${k}`]: v })) })),
);

export function omit(b: Body, k: string): Body {
  const { [k]: _, ...rest } = b;
  return rest;
}

export function isPlainObject(v: unknown): v is Body {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A value shown in a line, cut short. */
export function short(v: unknown, n = 60): string {
  let s: string;
  try {
    s = typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v));
  } catch {
    s = String(v);
  }
  return s.length > n ? `${s.slice(0, n)}…(${s.length})` : s;
}

export interface DoorCount {
  door: string;
  messages: number;
  rejected: number;
  typedErrors: number;
  other: number;
  ms: number;
  /** The fast-check seeds the door ran with (the first is FUZZ_SEED). */
  seeds: number[];
}

/**
 * Runs a fast-check property over batches of generated messages sent concurrently: every
 * message must be answered within the send's bounded wait, and `classify` must accept the
 * answer (`rejected`, `typed`, or undefined = the property fails, with the message and answer).
 */
export async function fuzzDoor<T>(opts: {
  door: string;
  arb: fc.Arbitrary<T>;
  send: (m: T) => Promise<unknown>;
  classify: (reply: unknown, m: T) => 'rejected' | 'typed' | 'other' | string;
  messages?: number;
  batch?: number;
  describe?: (m: T) => string;
}): Promise<DoorCount> {
  const batch = opts.batch ?? 200;
  const target = opts.messages ?? FUZZ_MESSAGES;
  const count: DoorCount = { door: opts.door, messages: 0, rejected: 0, typedErrors: 0, other: 0, ms: 0, seeds: [] };
  const t0 = performance.now();
  // Batches of 1..batch messages in flight at once: a failing batch shrinks down to the one
  // message that fails (a fixed-length batch could not drop its innocent members).
  const property = fc.asyncProperty(fc.array(opts.arb, { minLength: 1, maxLength: batch, size: 'max' }), async (ms) => {
    const replies = await Promise.all(
      ms.map((m) =>
        opts.send(m).then(
          (r) => ({ ok: true as const, r }),
          (e: unknown) => ({ ok: false as const, e }),
        ),
      ),
    );
    for (const [i, rep] of replies.entries()) {
      const m = ms[i]!;
      const what = opts.describe ? opts.describe(m) : short(m, 200);
      if (!rep.ok) throw new Error(`${opts.door}: no answer to ${what}: ${String(rep.e)}`);
      const c = opts.classify(rep.r, m);
      count.messages++;
      if (c === 'rejected') count.rejected++;
      else if (c === 'typed') count.typedErrors++;
      else if (c === 'other') count.other++;
      else throw new Error(`${opts.door}: ${what} was answered with ${short(rep.r, 400)} (${c})`);
    }
  });
  // Batch lengths vary (about batch/2.5 on average): runs with the next seeds until the door got its messages
  // (aiming a little low, so that the last seed's runs top it up rather than overshoot by a tenth).
  for (let seed = FUZZ_SEED; count.messages < target; seed++) {
    count.seeds.push(seed);
    const numRuns = Math.max(1, Math.ceil((target - count.messages) / (batch / 2.3)));
    await fc.assert(property, { seed, numRuns, endOnFailure: process.env['ICE_FUZZ_NO_SHRINK'] === '1', verbose: 1 });
  }
  count.ms = Math.round(performance.now() - t0);
  return count;
}

export function printCounts(title: string, counts: DoorCount[]): void {
  const lines = counts.map(
    (c) =>
      `${c.door.padEnd(34)} messages ${String(c.messages).padStart(6)}  rejected ${String(c.rejected).padStart(6)}  typed errors ${String(
        c.typedErrors,
      ).padStart(6)}  other ${String(c.other).padStart(5)}  ${(c.ms / 1000).toFixed(1)} s  seeds ${c.seeds.join(',')}`,
  );
  console.log(`${title} (seed ${FUZZ_SEED}; replay with ICE_FUZZ_SEED=${FUZZ_SEED})\n${lines.join('\n')}`);
}

import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { principalMatches, scopeMatches } from '../../src/authority/scope.js';
import {
  ActorAddressSchema,
  DEFAULT_LIMITS,
  DecisionSchema,
  FactSchema,
  GrantRequestSchema,
  GrantSchema,
  IntentSchema,
  OutcomeSchema,
  ScopeSchema,
  SnapshotRecordSchema,
  SubjectPatternSchema,
  Subjects,
  addressFromIntentSubject,
  parseIntentSubject,
  principalFromSubject,
  principalToken,
  canonicalJson,
  checkJsonShape,
  intentDigest,
  isAddress,
  jsonByteLength,
  parseAddress,
  parseJsonBounded,
  sha256Hex,
  splitAddress,
  type Intent,
} from '../../src/protocol/index.js';

const intent = (over: Partial<Intent> = {}): Intent =>
  IntentSchema.parse({
    v: 1,
    id: 'i-1',
    proposer: 'agent:bot',
    target: 'deployment/web',
    action: 'CONFIGURE',
    params: { version: '1.0.0', replicas: 2 },
    ...over,
  });

/** `n` levels of nested objects: 1 → {}, 2 → {a:{}}, … */
function nest(n: number, leaf: unknown = {}): unknown {
  let v: unknown = leaf;
  for (let i = 1; i < n; i++) v = { a: v };
  return v;
}

describe('canonical JSON', () => {
  it('does not depend on key order, at any depth', () => {
    const a = { b: 1, a: { y: [1, { q: true, p: null }], x: 'x' }, c: 'é' };
    const b = { c: 'é', a: { x: 'x', y: [1, { p: null, q: true }] }, b: 1 };
    expect(canonicalJson(a)).toBe(canonicalJson(b));
    expect(canonicalJson(a)).toBe('{"a":{"x":"x","y":[1,{"p":null,"q":true}]},"b":1,"c":"é"}');
  });

  it('keeps array order and distinguishes different values', () => {
    expect(canonicalJson([1, 2])).not.toBe(canonicalJson([2, 1]));
    expect(canonicalJson({ a: 1 })).not.toBe(canonicalJson({ a: '1' }));
    expect(canonicalJson({ a: null })).not.toBe(canonicalJson({}));
  });

  it('drops undefined members and writes undefined array items as null, like JSON', () => {
    const v = { a: undefined, b: [undefined, 1], c: 2 };
    expect(canonicalJson(v)).toBe('{"b":[null,1],"c":2}');
    expect(JSON.parse(canonicalJson(v))).toEqual(JSON.parse(JSON.stringify(v)));
  });

  it('escapes strings and keys as JSON does and round-trips', () => {
    const v = { 'we"ird\nkey': 'line\u2028sep "quoted" \\ \u0000', n: -0.5e-7, big: 1e21 };
    expect(JSON.parse(canonicalJson(v))).toEqual(v);
  });

  it.each([NaN, Infinity, -Infinity])('rejects %s, also nested', (n) => {
    expect(() => canonicalJson(n)).toThrow(TypeError);
    expect(() => canonicalJson({ a: [1, { b: n }] })).toThrow(TypeError);
  });

  it('rejects values JSON cannot carry', () => {
    expect(() => canonicalJson(10n)).toThrow(TypeError);
    expect(() => canonicalJson(Symbol('s'))).toThrow(TypeError);
  });

  it('sha256Hex is sha256 in hex', () => {
    expect(sha256Hex('abc')).toBe(createHash('sha256').update('abc').digest('hex'));
    expect(sha256Hex('abc')).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('intentDigest', () => {
  it('is stable: same intent, any key order, same digest', () => {
    const a = intent();
    const b = IntentSchema.parse({
      params: { replicas: 2, version: '1.0.0' },
      action: 'CONFIGURE',
      target: 'deployment/web',
      proposer: 'agent:bot',
      id: 'i-1',
      v: 1,
    });
    expect(intentDigest(a)).toBe(intentDigest(b));
    expect(intentDigest(a)).toBe(intentDigest(structuredClone(a)));
    expect(intentDigest(a)).toMatch(/^[0-9a-f]{64}$/);
  });

  it.each<[string, Partial<Intent>]>([
    ['id', { id: 'i-2' }],
    ['proposer', { proposer: 'agent:other' }],
    ['target', { target: 'deployment/api' as Intent['target'] }],
    ['action', { action: 'SUBMIT' }],
    ['params', { params: { version: '1.0.0', replicas: 3 } }],
    ['runId', { runId: 'r-1' }],
    ['rationale', { rationale: 'because' }],
  ])('changes when %s changes', (_name, over) => {
    expect(intentDigest(intent(over))).not.toBe(intentDigest(intent()));
  });

  it('treats omitted params as {} (the schema default)', () => {
    const a = IntentSchema.parse({ v: 1, id: 'x', proposer: 'agent:a', target: 'run/r', action: 'EXECUTE' });
    const b = IntentSchema.parse({ v: 1, id: 'x', proposer: 'agent:a', target: 'run/r', action: 'EXECUTE', params: {} });
    expect(intentDigest(a)).toBe(intentDigest(b));
  });
});

describe('scope patterns (kind/id:ACTION)', () => {
  it.each<[string, string, string, boolean]>([
    // exact
    ['deployment/web:CONFIGURE', 'deployment/web', 'CONFIGURE', true],
    ['deployment/web:CONFIGURE', 'deployment/web', 'SUBMIT', false],
    ['deployment/web:CONFIGURE', 'deployment/web2', 'CONFIGURE', false],
    ['deployment/web:CONFIGURE', 'deployment/we', 'CONFIGURE', false],
    ['deployment/web:CONFIGURE', 'run/web', 'CONFIGURE', false],
    // * in the id
    ['deployment/web-*:DEPLOY', 'deployment/web-1', 'DEPLOY', true],
    ['deployment/web-*:DEPLOY', 'deployment/web-', 'DEPLOY', true],
    ['deployment/web-*:DEPLOY', 'deployment/api-1', 'DEPLOY', false],
    ['deployment/*:DEPLOY', 'deployment/anything_at-all', 'DEPLOY', true],
    ['deployment/*:DEPLOY', 'deployment/x', 'SCALE', false],
    ['deployment/*:DEPLOY', 'run/x', 'DEPLOY', false],
    ['run/r-*:*', 'run/r-42', 'EXECUTE', true],
    ['run/r-*:*', 'run/s-42', 'EXECUTE', false],
    // * action
    ['deployment/web:*', 'deployment/web', 'RETIRE', true],
    ['deployment/web:*', 'deployment/api', 'RETIRE', false],
    ['deployment/web:MARK_*', 'deployment/web', 'MARK_FAILED', true],
    ['deployment/web:MARK_*', 'deployment/web', 'DEPLOY', false],
    // * kind
    ['*/web:DEPLOY', 'deployment/web', 'DEPLOY', true],
    ['dep*/web:DEPLOY', 'deployment/web', 'DEPLOY', true],
    ['dep*/web:DEPLOY', 'run/web', 'DEPLOY', false],
    // * whole
    ['*', 'deployment/web', 'DEPLOY', true],
    ['*', 'run/r', 'RUNTIME_ABORT', true],
    // * never crosses / or :
    ['*:DEPLOY', 'deployment/web', 'DEPLOY', false],
    ['deployment/*', 'deployment/web', 'DEPLOY', false],
    ['*/*', 'deployment/web', 'DEPLOY', false],
    ['*/*:*', 'deployment/web', 'DEPLOY', true],
    // regex metacharacters are literal
    ['deployment/a.b:X', 'deployment/aXb', 'X', false],
    ['deployment/a+:X', 'deployment/aa', 'X', false],
    ['deployment/(a|b):X', 'deployment/a', 'X', false],
  ])('%s on %s:%s → %s', (scope, target, action, expected) => {
    expect(scopeMatches(scope, target, action)).toBe(expected);
  });
});

describe('principal patterns (type:name)', () => {
  it.each<[string, string, boolean]>([
    ['agent:bot', 'agent:bot', true],
    ['agent:bot', 'agent:bot2', false],
    ['agent:bot', 'agent:bo', false],
    ['agent:bot', 'human:bot', false],
    ['agent:*', 'agent:bot', true],
    ['agent:*', 'agent:release-bot.v2@corp', true],
    ['agent:*', 'human:alice', false],
    ['agent:*', 'agentx:bot', false],
    ['*:alice', 'human:alice', true],
    ['*:alice', 'human:bob', false],
    ['agent:b*t', 'agent:bot', true],
    ['agent:b*t', 'agent:boat', true],
    ['agent:b*t', 'agent:bots', false],
    ['*', 'svc:anything', true],
    ['agent.x:*', 'agentXx:a', false],
  ])('%s vs %s → %s', (pattern, principal, expected) => {
    expect(principalMatches(pattern, principal)).toBe(expected);
  });
});

describe('JSON limits', () => {
  const limits = { maxBytes: 1024, maxDepth: 4 };

  it('accepts values within the limits', () => {
    expect(checkJsonShape({ a: [1, { b: 'c' }], d: null }, limits)).toBeUndefined();
    expect(checkJsonShape('plain', limits)).toBeUndefined();
    expect(checkJsonShape(null, limits)).toBeUndefined();
  });

  it('allows exactly maxDepth levels and refuses one more', () => {
    expect(checkJsonShape(nest(4), limits)).toBeUndefined();
    expect(checkJsonShape(nest(4, 'leaf'), limits)).toBeUndefined();
    const issue = checkJsonShape(nest(5), limits);
    expect(issue).toMatchObject({ code: 'too_deep', path: 'a.a.a.a' });
    // Arrays count as levels too.
    expect(checkJsonShape([[[[]]]], limits)).toBeUndefined();
    expect(checkJsonShape([[[[[]]]]], limits)).toMatchObject({ code: 'too_deep', path: '0.0.0.0' });
    // With the defaults.
    expect(checkJsonShape(nest(DEFAULT_LIMITS.maxDepth), DEFAULT_LIMITS)).toBeUndefined();
    expect(checkJsonShape(nest(DEFAULT_LIMITS.maxDepth + 1), DEFAULT_LIMITS)?.code).toBe('too_deep');
  });

  it('survives hostile depth without blowing the stack (and refuses cycles)', () => {
    let deep: unknown[] = [];
    const root = deep;
    for (let i = 0; i < 200_000; i++) {
      const next: unknown[] = [];
      deep.push(next);
      deep = next;
    }
    expect(checkJsonShape(root, DEFAULT_LIMITS)?.code).toBe('too_deep');
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    expect(checkJsonShape(cyclic, DEFAULT_LIMITS)?.code).toBe('too_deep');
  });

  it.each<[string, string]>([
    ['{"__proto__":{"admin":true}}', '__proto__'],
    ['{"constructor":{"prototype":{}}}', 'constructor'],
    ['{"prototype":1}', 'prototype'],
    ['{"a":{"b":{"__proto__":1}}}', 'a.b.__proto__'],
    ['{"list":[1,{"ok":true},{"constructor":"x"}]}', 'list.2.constructor'],
    ['[[{"prototype":null}]]', '0.0.prototype'],
  ])('refuses forbidden key in %s at %s', (text, path) => {
    const value: unknown = JSON.parse(text);
    expect(checkJsonShape(value, DEFAULT_LIMITS)).toMatchObject({ code: 'forbidden_key', path });
    const parsed = parseJsonBounded(text, DEFAULT_LIMITS);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.issue).toMatchObject({ code: 'forbidden_key', path });
  });

  it.each<[string, unknown, string]>([
    ['a bigint', { a: { b: 10n } }, 'a.b'],
    ['a symbol', { s: Symbol('x') }, 's'],
    ['a function', { list: [1, () => 2] }, 'list.1'],
    ['NaN', { n: NaN }, 'n'],
    ['Infinity', [Infinity], '0'],
    ['-Infinity at the top', -Infinity, ''],
  ])('refuses %s (not a JSON value) at its path', (_name, value, path) => {
    expect(checkJsonShape(value, DEFAULT_LIMITS)).toMatchObject({ code: 'not_json', path });
  });

  it('does not refuse forbidden words as values or as parts of keys', () => {
    expect(checkJsonShape({ name: '__proto__', constructorName: 'x', prototypes: ['constructor'] }, DEFAULT_LIMITS)).toBeUndefined();
  });

  it('refuses text over maxBytes, counting bytes not characters', () => {
    const ascii = JSON.stringify({ s: 'x'.repeat(1000) });
    expect(Buffer.byteLength(ascii)).toBeLessThanOrEqual(1024);
    expect(parseJsonBounded(ascii, limits).ok).toBe(true);
    const multi = JSON.stringify({ s: 'é'.repeat(600) }); // 600 chars, 1200 bytes
    expect(multi.length).toBeLessThan(1024);
    const r = parseJsonBounded(multi, limits);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issue).toMatchObject({ code: 'too_large', path: '' });
    expect(jsonByteLength({ s: 'é'.repeat(600) })).toBe(Buffer.byteLength(multi));
  });

  it('refuses invalid JSON text', () => {
    const r = parseJsonBounded('{"a":', limits);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issue.code).toBe('invalid_json');
    const ok = parseJsonBounded('{"a":[1,2]}', limits);
    expect(ok).toEqual({ ok: true, value: { a: [1, 2] } });
  });

  it('JSON.parse of __proto__ does not pollute Object.prototype', () => {
    parseJsonBounded('{"__proto__":{"polluted":true}}', DEFAULT_LIMITS);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('zod schemas', () => {
  it('IntentSchema accepts a minimal intent and fills defaults', () => {
    const r = IntentSchema.safeParse({ v: 1, id: 'a:b_c-1', proposer: 'agent:planner', target: 'run/r-1', action: 'EXECUTE' });
    expect(r.success).toBe(true);
    if (r.success) expect(r.data.params).toEqual({});
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['missing id', { id: undefined }, 'id'],
    ['id with a dot', { id: 'a.b' }, 'id'],
    ['id with a space', { id: 'a b' }, 'id'],
    ['id starting with -', { id: '-a' }, 'id'],
    ['id too long', { id: 'a'.repeat(129) }, 'id'],
    ['principal without type', { proposer: 'bot' }, 'proposer'],
    ['principal upper-case type', { proposer: 'Agent:bot' }, 'proposer'],
    ['target without id', { target: 'deployment' }, 'target'],
    ['target upper-case kind', { target: 'Deployment/web' }, 'target'],
    ['target with a dot', { target: 'deployment/a.b' }, 'target'],
    ['action with a space', { action: 'DO IT' }, 'action'],
    ['action starting with a digit', { action: '1GO' }, 'action'],
    ['params an array', { params: [1] }, 'params'],
    ['params a string', { params: 'x' }, 'params'],
    ['version 2', { v: 2 }, 'v'],
    ['unknown key', { extra: 1 }, ''],
    ['rationale too long', { rationale: 'x'.repeat(4001) }, 'rationale'],
    ['id a number', { id: 7 }, 'id'],
  ])('IntentSchema rejects %s', (_name, over, path) => {
    const r = IntentSchema.safeParse({ v: 1, id: 'i', proposer: 'agent:a', target: 'run/r', action: 'EXECUTE', ...over });
    expect(r.success).toBe(false);
    if (!r.success) expect(r.error.issues.map((i) => i.path.join('.'))).toContain(path);
  });

  it('ScopeSchema', () => {
    for (const ok of ['*', 'deployment/web:DEPLOY', 'deployment/*:DEPLOY', 'run/r-*:*', '*/*:*', 'deployment/web:MARK_*']) {
      expect(ScopeSchema.safeParse(ok).success, ok).toBe(true);
    }
    for (const bad of [
      '',
      'deployment',
      'deployment/web',
      '*:*',
      'Deployment/web:X',
      'deployment/web:X:Y',
      'deployment/we b:X',
      '**',
      'deployment/web:DE-PLOY',
    ]) {
      expect(ScopeSchema.safeParse(bad).success, bad).toBe(false);
    }
  });

  it('SubjectPatternSchema', () => {
    for (const ok of ['agent:bot', 'agent:*', '*:alice', '*', 'human:alice@corp.com', 'svc-x:a.b']) {
      expect(SubjectPatternSchema.safeParse(ok).success, ok).toBe(true);
    }
    for (const bad of ['', 'agent', 'Agent:bot', 'agent:', 'agent: bot', ':bot', 'agent:bot/x']) {
      expect(SubjectPatternSchema.safeParse(bad).success, bad).toBe(false);
    }
  });

  it('GrantRequestSchema defaults `by` and is strict', () => {
    const r = GrantRequestSchema.parse({ subject: 'agent:a', scope: '*' });
    expect(r.by).toBe('operator');
    expect(GrantRequestSchema.safeParse({ subject: 'agent:a', scope: '*', ttlMs: 0 }).success).toBe(false);
    expect(GrantRequestSchema.safeParse({ subject: 'agent:a', scope: '*', ttlMs: 1.5 }).success).toBe(false);
    expect(GrantRequestSchema.safeParse({ subject: 'agent:a', scope: '*', maxUses: 0 }).success).toBe(false);
    expect(GrantRequestSchema.safeParse({ subject: 'agent:a', scope: '*', expiresAt: 'tomorrow' }).success).toBe(false);
    expect(GrantRequestSchema.safeParse({ subject: 'agent:a', scope: '*', uses: 0 }).success).toBe(false);
    expect(GrantRequestSchema.safeParse({ subject: 'agent:a', scope: '*', runId: 'r-1', maxUses: 3, ttlMs: 1000, note: 'n' }).success).toBe(
      true,
    );
  });

  it('GrantSchema requires uses and a valid issuedAt', () => {
    const g = { v: 1, id: 'g1', subject: 'agent:a', scope: '*', issuedAt: '2026-01-01T00:00:00.000Z', issuedBy: 'op', uses: 0 };
    expect(GrantSchema.safeParse(g).success).toBe(true);
    expect(GrantSchema.safeParse({ ...g, uses: -1 }).success).toBe(false);
    expect(GrantSchema.safeParse({ ...g, issuedAt: 'now' }).success).toBe(false);
  });

  it('DecisionSchema', () => {
    const d = {
      v: 1,
      id: 'd1',
      intentId: 'i1',
      intentDigest: 'a'.repeat(64),
      verdict: 'granted',
      reasons: [{ code: 'grant', message: 'ok' }],
      issuedAt: '2026-01-01T00:00:00.000Z',
      expiresAt: '2026-01-01T00:00:30.000Z',
      authority: 'k',
      sig: 's',
    };
    expect(DecisionSchema.safeParse(d).success).toBe(true);
    expect(DecisionSchema.safeParse({ ...d, verdict: 'maybe' }).success).toBe(false);
    expect(DecisionSchema.safeParse({ ...d, intentDigest: 'A'.repeat(64) }).success).toBe(false);
    expect(DecisionSchema.safeParse({ ...d, sig: undefined }).success).toBe(false);
    expect(DecisionSchema.safeParse({ ...d, reasons: [{ code: 'x' }] }).success).toBe(false);
  });

  it('FactSchema', () => {
    const f = {
      v: 1,
      seq: 1,
      at: '2026-01-01T00:00:00.000Z',
      type: 'transition',
      origin: 'runtime',
      causes: [],
      data: {},
      prev: '',
      hash: 'h',
    };
    expect(FactSchema.safeParse(f).success).toBe(true);
    expect(FactSchema.safeParse({ ...f, type: 'made.up' }).success).toBe(false);
    expect(FactSchema.safeParse({ ...f, seq: 0 }).success).toBe(false);
    expect(FactSchema.safeParse({ ...f, origin: 'agent' }).success).toBe(false);
    expect(FactSchema.safeParse({ ...f, causes: [0] }).success).toBe(false);
  });

  it('OutcomeSchema discriminates on status', () => {
    expect(
      OutcomeSchema.safeParse({ v: 1, status: 'executed', intentId: 'i', actor: 'run/r', from: 'A', to: 'B', decisionId: 'd', seq: 3 })
        .success,
    ).toBe(true);
    expect(OutcomeSchema.safeParse({ v: 1, status: 'executed', intentId: 'i', actor: 'run/r', decisionId: 'd', seq: 3 }).success).toBe(
      false,
    );
    expect(OutcomeSchema.safeParse({ v: 1, status: 'rejected', issues: [{ path: '', code: 'x', message: 'm' }] }).success).toBe(true);
    expect(OutcomeSchema.safeParse({ v: 1, status: 'failed', intentId: 'i', actor: 'a', error: { code: 'E', message: 'm' } }).success).toBe(
      true,
    );
    expect(
      OutcomeSchema.safeParse({ v: 1, status: 'denied', intentId: 'i', actor: 'a', decisionId: 'd', reasons: [], seq: 1, extra: 1 })
        .success,
    ).toBe(false);
    expect(OutcomeSchema.safeParse({ v: 1, status: 'done' }).success).toBe(false);
  });

  it('SnapshotRecordSchema', () => {
    const s = {
      v: 1,
      actor: 'run/r',
      kind: 'run',
      seq: 0,
      status: 'active',
      state: 'CREATED',
      snapshot: {},
      updatedAt: '2026-01-01T00:00:00.000Z',
    };
    expect(SnapshotRecordSchema.safeParse(s).success).toBe(true);
    expect(SnapshotRecordSchema.safeParse({ ...s, status: 'zombie' }).success).toBe(false);
    expect(SnapshotRecordSchema.safeParse({ ...s, seq: -1 }).success).toBe(false);
  });
});

describe('addresses and subjects', () => {
  it('parses and splits addresses', () => {
    expect(isAddress('deployment/web-1_x')).toBe(true);
    for (const bad of ['deployment', '/web', 'deployment/', 'a/b/c', 'deployment/a.b', 'deployment/a b', '1kind/x', 'kind/-x']) {
      expect(isAddress(bad), bad).toBe(false);
      expect(() => parseAddress(bad)).toThrow(TypeError);
      expect(ActorAddressSchema.safeParse(bad).success).toBe(false);
    }
    expect(splitAddress(parseAddress('run/r-1'))).toEqual({ kind: 'run', id: 'r-1' });
  });

  it('maps addresses to subjects and back', () => {
    expect(Subjects.intent('deployment/web')).toBe('ice.intent.deployment.web');
    expect(addressFromIntentSubject(Subjects.intent('deployment/web'))).toBe('deployment/web');
    expect(Subjects.intent('not an address')).toBe('ice.intent._invalid._');
    expect(addressFromIntentSubject('ice.intent._invalid._')).toBeUndefined();
    expect(addressFromIntentSubject('ice.intent.a.b.c')).toBeUndefined();
    expect(Subjects.fact()).toBe('ice.fact._runtime._');
    expect(Subjects.fact('run/r')).toBe('ice.fact.run.r');
  });

  it('parses intent subjects with one parser: canonical principal tokens only, every mistake named', () => {
    expect(parseIntentSubject('ice.as.agent:planner.deployment.web')).toEqual({
      ok: true,
      principal: 'agent:planner',
      target: 'deployment/web',
    });
    expect(parseIntentSubject('ice.intent.deployment.web')).toEqual({ ok: true, principal: undefined, target: 'deployment/web' });
    for (const p of ['agent:a.b', 'svc:x@y.z', 'human:alice']) {
      const subject = Subjects.intentAs(p, 'run/r-1');
      expect(parseIntentSubject(subject)).toEqual({ ok: true, principal: p, target: 'run/r-1' });
      expect(principalFromSubject(subject)).toBe(p);
    }
    expect(principalToken('agent:a.b')).toBe('agent:a%2Eb');
    const bad: Array<[string, string, string]> = [
      ['ice.as.agent%3Aplanner.deployment.web', 'principal', 'principal_encoding'],
      ['ice.as.agent:a%2eb.deployment.web', 'principal', 'principal_encoding'],
      ['ice.as.agent:a%.deployment.web', 'principal', 'principal_encoding'],
      ['ice.as.agent:a%2.deployment.web', 'principal', 'principal_encoding'],
      ['ice.as.agent:a%252Eb.deployment.web', 'principal', 'principal_invalid'],
      ['ice.as.planner.deployment.web', 'principal', 'principal_invalid'],
      ['ice.as.agent:x.deployment', 'subject', 'subject_tokens'],
      ['ice.as.agent:x.deployment.web.extra', 'subject', 'subject_tokens'],
      ['ice.as.agent:x', 'subject', 'subject_tokens'],
      ['ice.intent.deployment', 'subject', 'subject_tokens'],
      ['ice.intent.deployment.web.x', 'subject', 'subject_tokens'],
      ['ice.as.agent:x.Deployment.web', 'target', 'subject_target'],
      ['ice.intent.deployment.-web', 'target', 'subject_target'],
      ['ice.fact.deployment.web', 'subject', 'subject_prefix'],
    ];
    for (const [subject, path, code] of bad) {
      const r = parseIntentSubject(subject);
      expect(r.ok, subject).toBe(false);
      if (r.ok) continue;
      expect(r.issue, subject).toMatchObject({ path, code });
      expect(r.issue.expected, subject).toBeTypeOf('string');
      expect(principalFromSubject(subject), subject).toBeUndefined();
    }
  });
});

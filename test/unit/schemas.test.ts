import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import * as protocol from '../../src/protocol/index.js';
import { FactSchema, IntentSchema, OutcomeSchema, type Fact, type Outcome } from '../../src/protocol/index.js';
import type { Runtime } from '../../src/index.js';
// @ts-expect-error -- plain .mjs script without type declarations
import { buildSchemas, diffSchemas } from '../../scripts/gen-schemas.mjs';
import { MODES, iid, tempRuntime } from '../helpers/runtime.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const schemasDir = join(root, 'schemas');
const build = buildSchemas as (p: unknown, zz: unknown) => Map<string, string>;
const diff = diffSchemas as (g: Map<string, string>, dir: string) => string[];

// ---------------------------------------------------------------------------------------------
// A deliberately small JSON Schema (2020-12) checker for exactly the keywords our generated
// schemas use. Any other keyword throws, so a generator change that introduces one fails here
// instead of being silently ignored.

type JsonSchema = Record<string, unknown>;
const ANNOTATIONS = new Set(['$schema', 'title', 'description', '$comment', 'default', 'format']);

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function typeMatches(want: string, v: unknown): boolean {
  const got = typeOf(v);
  return want === got || (want === 'number' && got === 'integer');
}

/** Returns the paths (with a reason) where `v` violates `s`; empty when valid. */
function check(s: JsonSchema, v: unknown, path = ''): string[] {
  const errs: string[] = [];
  const at = (why: string) => errs.push(`${path || '(root)'}: ${why}`);
  for (const [k, rule] of Object.entries(s)) {
    if (ANNOTATIONS.has(k)) continue;
    switch (k) {
      case 'type': {
        const types = Array.isArray(rule) ? (rule as string[]) : [rule as string];
        if (!types.some((t) => typeMatches(t, v))) at(`expected ${types.join('|')}, got ${typeOf(v)}`);
        break;
      }
      case 'const':
        if (JSON.stringify(v) !== JSON.stringify(rule)) at(`expected const ${JSON.stringify(rule)}`);
        break;
      case 'enum':
        if (!(rule as unknown[]).some((e) => JSON.stringify(e) === JSON.stringify(v))) at('not in enum');
        break;
      case 'pattern':
        if (typeof v === 'string' && !new RegExp(rule as string, 'u').test(v)) at(`does not match ${String(rule)}`);
        break;
      case 'minLength':
        if (typeof v === 'string' && [...v].length < (rule as number)) at('too short');
        break;
      case 'maxLength':
        if (typeof v === 'string' && [...v].length > (rule as number)) at('too long');
        break;
      case 'minimum':
        if (typeof v === 'number' && v < (rule as number)) at('below minimum');
        break;
      case 'maximum':
        if (typeof v === 'number' && v > (rule as number)) at('above maximum');
        break;
      case 'exclusiveMinimum':
        if (typeof v === 'number' && v <= (rule as number)) at('not above exclusiveMinimum');
        break;
      case 'required':
        if (typeOf(v) === 'object') for (const r of rule as string[]) if (!(r in (v as object))) at(`missing ${r}`);
        break;
      case 'properties':
        if (typeOf(v) === 'object') {
          for (const [pk, ps] of Object.entries(rule as Record<string, JsonSchema>)) {
            if (Object.hasOwn(v as object, pk)) errs.push(...check(ps, (v as Record<string, unknown>)[pk], path ? `${path}.${pk}` : pk));
          }
        }
        break;
      case 'additionalProperties':
        if (typeOf(v) === 'object') {
          const known = Object.keys((s['properties'] as object | undefined) ?? {});
          for (const [pk, pv] of Object.entries(v as Record<string, unknown>)) {
            if (known.includes(pk)) continue;
            if (rule === false) at(`unexpected key ${pk}`);
            else errs.push(...check(rule as JsonSchema, pv, path ? `${path}.${pk}` : pk));
          }
        }
        break;
      case 'propertyNames':
        if (typeOf(v) === 'object')
          for (const pk of Object.keys(v as object)) errs.push(...check(rule as JsonSchema, pk, `${path}[key ${pk}]`));
        break;
      case 'maxItems':
        if (Array.isArray(v) && v.length > (rule as number)) at('too many items');
        break;
      case 'items':
        if (Array.isArray(v)) v.forEach((item, i) => errs.push(...check(rule as JsonSchema, item, `${path}.${i}`)));
        break;
      case 'oneOf': {
        const n = (rule as JsonSchema[]).filter((sub) => check(sub, v, path).length === 0).length;
        if (n !== 1) at(`matches ${n} of oneOf, expected exactly 1`);
        break;
      }
      default:
        throw new Error(`schema keyword ${k} is not supported by this test's checker; extend it`);
    }
  }
  return errs;
}

function schemaFile(name: string): JsonSchema {
  return JSON.parse(readFileSync(join(schemasDir, name), 'utf8')) as JsonSchema;
}

/** What the runtime's intake accepts as an envelope: `v` defaults to 1 (validateIntent). */
function zodAcceptsIntent(x: unknown): boolean {
  const withV = typeof x === 'object' && x !== null && !Array.isArray(x) && (x as { v?: unknown }).v === undefined ? { ...x, v: 1 } : x;
  return IntentSchema.safeParse(withV).success;
}

// ---------------------------------------------------------------------------------------------

describe('schemas/*.schema.json', () => {
  it('are exactly what scripts/gen-schemas.mjs generates from src/protocol', () => {
    const generated = build(protocol, z);
    expect([...generated.keys()].sort()).toEqual([
      'decision.schema.json',
      'fact.schema.json',
      'grant-delegation.schema.json',
      'grant.schema.json',
      'intent.schema.json',
      'outcome.schema.json',
      'snapshot-record.schema.json',
    ]);
    const problems = diff(generated, schemasDir);
    expect(problems, 'schemas/ drifted from src/protocol: run `npm run build && node scripts/gen-schemas.mjs`').toEqual([]);
  });

  // `npm test` builds first, so dist/ is there.
  it('gen-schemas --check exits non-zero on drift', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'ice-schemas-'));
    try {
      for (const [f, text] of build(protocol, z)) writeFileSync(join(tmp, f), text);
      writeFileSync(join(tmp, 'outcome.schema.json'), '{}\n');
      const r = spawnSync(process.execPath, [join(root, 'scripts/gen-schemas.mjs'), '--check', '--dir', tmp], { encoding: 'utf8' });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('differs: outcome.schema.json');
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  describe('agree with zod on sample payloads', () => {
    const intentSchema = schemaFile('intent.schema.json');
    const good = { proposer: 'agent:bot', target: 'deployment/web', action: 'CONFIGURE', params: { version: '1.0.0', replicas: 2 } };
    const intents: Array<[string, unknown, boolean]> = [
      ['full', { v: 1, id: 'i-1', ...good, runId: 'r-1', causationId: 'c', correlationId: 'x', rationale: 'because' }, true],
      ['minimal (no v, no params)', { id: 'i:2', proposer: 'svc:billing', target: 'run/r_1', action: 'START' }, true],
      ['missing id', good, false],
      ['id with a dot (not a subject token)', { id: 'a.b', ...good }, false],
      ['bad target', { id: 'i-3', ...good, target: 'Deployment/web' }, false],
      ['bad proposer', { id: 'i-4', ...good, proposer: 'bot' }, false],
      ['unknown key', { id: 'i-5', ...good, extra: 1 }, false],
      ['wrong version', { v: 2, id: 'i-6', ...good }, false],
      ['params not an object', { id: 'i-7', ...good, params: [1] }, false],
      ['rationale too long', { id: 'i-8', ...good, rationale: 'x'.repeat(4001) }, false],
      ['not an object', 'hello', false],
    ];
    it.each(intents)('intent: %s', (_name, sample, valid) => {
      const errs = check(intentSchema, sample);
      expect(errs.length === 0, errs.join('; ')).toBe(valid);
      expect(zodAcceptsIntent(sample)).toBe(valid);
    });

    const outcomeSchema = schemaFile('outcome.schema.json');
    const outcomes: Array<[string, unknown, boolean]> = [
      [
        'executed',
        {
          v: 1,
          status: 'executed',
          intentId: 'i-1',
          actor: 'deployment/web',
          from: 'draft',
          to: 'draft',
          decisionId: 'd_1',
          grantId: 'g_1',
          seq: 5,
        },
        true,
      ],
      [
        'denied',
        {
          v: 1,
          status: 'denied',
          intentId: 'i-1',
          actor: 'deployment/web',
          decisionId: 'd_1',
          reasons: [{ code: 'no_grant', message: 'no' }],
          seq: 5,
        },
        true,
      ],
      ['pending', { v: 1, status: 'pending', intentId: 'i-1', actor: 'deployment/web', decisionId: 'd_1', reasons: [], seq: 5 }, true],
      [
        'rejected (server, journaled)',
        {
          v: 1,
          status: 'rejected',
          intentId: 'i-1',
          issues: [{ path: 'params.version', code: 'invalid_format', message: 'bad', expected: 'x' }],
          seq: 3,
        },
        true,
      ],
      ['rejected (no id, no seq)', { v: 1, status: 'rejected', issues: [{ path: '', code: 'invalid_type', message: 'bad' }] }, true],
      ['failed', { v: 1, status: 'failed', intentId: 'i-1', actor: 'deployment/web', error: { code: 'E_TIMEOUT', message: 'slow' } }, true],
      ['executed without from', { v: 1, status: 'executed', intentId: 'i-1', actor: 'a/b', to: 'x', decisionId: 'd', seq: 1 }, false],
      ['unknown status', { v: 1, status: 'done', intentId: 'i-1' }, false],
      ['extra key', { v: 1, status: 'failed', intentId: 'i', actor: 'a/b', error: { code: 'c', message: 'm' }, more: true }, false],
      ['non-integer seq', { v: 1, status: 'pending', intentId: 'i', actor: 'a/b', decisionId: 'd', reasons: [], seq: 1.5 }, false],
    ];
    it.each(outcomes)('outcome: %s', (_name, sample, valid) => {
      const errs = check(outcomeSchema, sample);
      expect(errs.length === 0, errs.join('; ')).toBe(valid);
      expect(OutcomeSchema.safeParse(sample).success).toBe(valid);
    });

    it('snapshot record: valid and invalid samples', () => {
      const s = schemaFile('snapshot-record.schema.json');
      const ok = {
        v: 1,
        actor: 'deployment/web',
        kind: 'deployment',
        seq: 0,
        status: 'active',
        state: 'draft',
        snapshot: { any: ['thing'] },
        updatedAt: '2025-01-01T00:00:00.000Z',
      };
      const bad = { ...ok, seq: -1, status: 'sleeping' };
      expect(check(s, ok)).toEqual([]);
      expect(protocol.SnapshotRecordSchema.safeParse(ok).success).toBe(true);
      expect(check(s, bad).length).toBeGreaterThan(0);
      expect(protocol.SnapshotRecordSchema.safeParse(bad).success).toBe(false);
    });
  });

  describe.each(MODES)('agree with zod on payloads a real runtime produces (%s)', (mode) => {
    let rt: Runtime;
    let close: () => Promise<void>;
    const outs: Outcome[] = [];
    beforeAll(async () => {
      ({ rt, close } = await tempRuntime({ mode }));
      await rt.spawn('deployment/web', { service: 'web' });
      await rt.grants.issue({ subject: 'agent:bot', scope: 'deployment/web:*', maxUses: 10, ttlMs: 60_000, note: 'test' });
      const base = { proposer: 'agent:bot', target: 'deployment/web' };
      outs.push(await rt.propose({ id: iid(), ...base, action: 'CONFIGURE', params: { version: '1.0.0', replicas: 2 } }));
      outs.push(
        await rt.propose({ id: iid(), proposer: 'agent:other', target: 'deployment/web', action: 'SUBMIT', params: { author: 'a' } }),
      );
      outs.push(await rt.propose({ id: iid(), ...base, action: 'CONFIGURE', params: { version: 'x', replicas: 0 } }));
      outs.push(await rt.propose({ nonsense: true }));
    });
    afterAll(async () => close?.());

    it('outcomes', () => {
      expect(outs.map((o) => o.status)).toEqual(['executed', 'denied', 'rejected', 'rejected']);
      const s = schemaFile('outcome.schema.json');
      for (const o of outs) {
        expect(check(s, o)).toEqual([]);
        expect(OutcomeSchema.safeParse(o).success).toBe(true);
      }
    });

    it('facts, decisions and grants', async () => {
      // every chain: the actor's and the runtime chain (grant, rejections)
      const facts: Fact[] = await rt.journal.tail({ limit: 1000 });
      expect(facts.length).toBeGreaterThan(5);
      expect(new Set(facts.map((f) => f.actor))).toEqual(new Set(['deployment/web', rt.runtimeChain]));
      const factSchema = schemaFile('fact.schema.json');
      const decisionSchema = schemaFile('decision.schema.json');
      let decisions = 0;
      for (const f of facts) {
        expect(check(factSchema, f)).toEqual([]);
        expect(FactSchema.safeParse(f).success).toBe(true);
        const d = (f.data as { decision?: unknown }).decision;
        if (f.type === 'decision' && d) {
          decisions++;
          expect(check(decisionSchema, d)).toEqual([]);
          expect(protocol.DecisionSchema.safeParse(d).success).toBe(true);
          // a tampered decision fails both
          const bad = { ...(d as object), intentDigest: 'not-hex' };
          expect(check(decisionSchema, bad).length).toBeGreaterThan(0);
          expect(protocol.DecisionSchema.safeParse(bad).success).toBe(false);
        }
      }
      expect(decisions).toBe(2);
      const grantSchema = schemaFile('grant.schema.json');
      const grants = rt.grants.list();
      expect(grants.length).toBe(1);
      for (const g of grants) {
        expect(check(grantSchema, g)).toEqual([]);
        expect(protocol.GrantSchema.safeParse(g).success).toBe(true);
        const bad = { ...g, scope: 'deployment web' };
        expect(check(grantSchema, bad).length).toBeGreaterThan(0);
        expect(protocol.GrantSchema.safeParse(bad).success).toBe(false);
        // the use it paid for is listed (usedBy), and the list is bounded
        expect(g).toMatchObject({ uses: 1, usedBy: [outs[0]!.intentId] });
        const tooMany = { ...g, usedBy: Array.from({ length: 101 }, (_, i) => `i-${i}`) };
        expect(check(grantSchema, tooMany)).toEqual(['usedBy: too many items']);
        expect(protocol.GrantSchema.safeParse(tooMany).success).toBe(false);
      }
    });
  });
});

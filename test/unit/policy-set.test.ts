import { readFileSync } from 'node:fs';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { exampleActors } from '../../actors/index.js';
import {
  actionIds,
  buildCedarSchema,
  compilePolicySet,
  principalEntity,
  resourceEntity,
  type CompiledPolicySet,
  type PolicySource,
} from '../../src/policy/index.js';
import { toCedarValue } from '../../src/policy/cedar-mapping.js';
// @ts-expect-error a plain ES module of the benchmarks
import { realisticPolicySet } from '../../bench/lib/cedar-policies.mjs';

const demo: PolicySource = {
  files: [{ name: 'policies/deployments.cedar', text: readFileSync('policies/deployments.cedar', 'utf8') }],
  groups: { name: 'policies/groups.yaml', text: readFileSync('policies/groups.yaml', 'utf8') },
};

describe('Cedar mapping', () => {
  it('maps principals, actors and colliding event names', () => {
    expect(principalEntity('agent:planner')).toEqual({ type: 'Agent', id: 'planner' });
    expect(principalEntity('human:alice')).toEqual({ type: 'Human', id: 'alice' });
    expect(principalEntity('service:billing')).toEqual({ type: 'Service', id: 'billing' });
    expect(principalEntity('svc:billing')).toEqual({ type: 'Service', id: 'billing' });
    expect(principalEntity('operator:x')).toEqual({ type: 'Operator', id: 'x' });
    expect(principalEntity('ci-bot:a:b')).toEqual({ type: 'CiBot', id: 'a:b' });
    expect(resourceEntity('deployment/web')).toEqual({ type: 'Deployment', id: 'web' });
    const ids = actionIds(exampleActors);
    expect(ids.get('deployment/DEPLOY')).toBe('DEPLOY');
    expect(ids.get('deployment/SUBMIT')).toBe('deployment/SUBMIT');
    expect(ids.get('run/SUBMIT')).toBe('run/SUBMIT');
  });

  it('types params from the zod schemas, leaving out what Cedar cannot type', () => {
    const schema = buildCedarSchema([
      {
        kind: 'box',
        events: {
          PUT: z.strictObject({
            n: z.int(),
            x: z.number(),
            s: z.enum(['a', 'b']),
            tags: z.array(z.string()),
            o: z.string().optional(),
            u: z.unknown(),
          }),
        },
      },
    ]);
    const ctx = (schema[''] as { actions: Record<string, { appliesTo: { context: { attributes: Record<string, unknown> } } }> }).actions
      .PUT!.appliesTo.context.attributes;
    expect(ctx.params).toEqual({
      type: 'Record',
      required: true,
      attributes: {
        n: { type: 'Long', required: true },
        x: { type: 'Extension', name: 'decimal', required: true },
        s: { type: 'String', required: true },
        tags: { type: 'Set', element: { type: 'String' }, required: true },
        o: { type: 'String', required: false },
      },
    });
    expect(Object.keys(ctx)).toEqual(['params', 'state', 'run', 'time']);
  });

  it('converts values: decimals where typed, no forged entity references, no nulls', () => {
    expect(toCedarValue({ a: 1, b: 1.5, c: null, d: { __entity: { type: 'Group', id: 'ops' } }, e: [1, 'x'] })).toEqual({
      a: 1,
      b: { __extn: { fn: 'decimal', arg: '1.5000' } },
      d: {},
      e: [1, 'x'],
    });
    expect(toCedarValue(2, { type: 'Extension', name: 'decimal' })).toEqual({ __extn: { fn: 'decimal', arg: '2.0000' } });
  });
});

/** Cedar on the whole set with every group as an entity: what the pre-filtered call must equal. */
function fullCedar(
  set: CompiledPolicySet,
  source: PolicySource,
  req: Parameters<CompiledPolicySet['evaluate']>[0],
): { decision: string; reason: string[] } {
  const groups = (source.groups?.text ?? '').split('\n');
  const members = new Map<string, string[]>();
  let current = '';
  for (const line of groups) {
    const g = /^ {2}([A-Za-z0-9_.-]+):\s*(\[(.*)\])?\s*$/.exec(line);
    if (g) {
      current = g[1]!;
      members.set(current, g[3] ? g[3].split(',').map((s) => s.trim().replace(/^"|"$/g, '')) : []);
    } else if (/^ {4}- /.test(line)) members.get(current)!.push(line.trim().slice(2).trim());
  }
  const match = (pattern: string, p: string) =>
    new RegExp('^' + pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/:]*') + '$').test(p);
  const entities = [...members.keys()].map((g) => ({
    uid: { type: 'Group', id: g },
    attrs: {},
    parents: [...members].filter(([, ms]) => ms.includes(`group:${g}`)).map(([p]) => ({ type: 'Group', id: p })),
  }));
  const principal = principalEntity(req.principal);
  const parents = [...members]
    .filter(([, ms]) => ms.some((m) => !m.startsWith('group:') && match(m, req.principal)))
    .map(([g]) => ({ type: 'Group', id: g }));
  const kind = req.target.split('/')[0]!;
  const d = new Date(req.now);
  const r = cedar.isAuthorized({
    principal,
    action: { type: 'Action', id: set.actionId(kind, req.action)! },
    resource: resourceEntity(req.target),
    context: {
      params: toCedarValue(req.params)!,
      state: req.state,
      actor: toCedarValue(req.actorContext)!,
      time: { epochMs: req.now, iso: d.toISOString(), hour: d.getUTCHours(), minute: d.getUTCMinutes(), weekday: d.getUTCDay() },
    },
    policies: { staticPolicies: Object.fromEntries([...set.policies.keys()].map((id) => [id, set.policyText(id)!])) },
    entities: [{ uid: principal, attrs: {}, parents }, ...entities],
  });
  if (r.type !== 'success') throw new Error(JSON.stringify(r.errors));
  return { decision: r.response.decision, reason: [...r.response.diagnostics.reason].sort() };
}

describe('CompiledPolicySet.evaluate', () => {
  for (const [name, source] of [
    ['the demo set', demo],
    ['the benchmark set', realisticPolicySet() as PolicySource],
  ] as const) {
    it(`decides as Cedar on the whole set does (${name}, property)`, () => {
      const set = compilePolicySet(source, exampleActors, 1);
      const principals = [
        'agent:release-bot',
        'human:alice',
        'human:carol',
        'agent:rogue',
        'agent:team3-x',
        'human:lead1',
        'agent:builder-7',
        'service:x',
        'operator:o',
      ];
      const requests = fc.record({
        principal: fc.constantFrom(...principals),
        target: fc.constantFrom('deployment/web', 'deployment/frozen', 'deployment/team3-api'),
        action: fc.constantFrom('CONFIGURE', 'DEPLOY', 'SCALE', 'APPROVE', 'RETIRE', 'MARK_HEALTHY'),
        replicas: fc.integer({ min: 1, max: 100 }),
        environment: fc.constantFrom('staging', 'production'),
        state: fc.constantFrom('draft', 'in_review', 'approved', 'live', 'rolling_out'),
        attempts: fc.integer({ min: 0, max: 8 }),
        now: fc.integer({ min: Date.parse('2026-11-28T00:00:00Z'), max: Date.parse('2026-12-02T00:00:00Z') }),
      });
      fc.assert(
        fc.property(requests, (r) => {
          const params: Record<string, unknown> =
            r.action === 'CONFIGURE'
              ? { version: r.replicas % 7 === 0 ? '0.0.1' : '1.2.3', replicas: r.replicas }
              : r.action === 'DEPLOY'
                ? { environment: r.environment }
                : r.action === 'SCALE'
                  ? { replicas: r.replicas }
                  : r.action === 'APPROVE'
                    ? { reviewer: 'alice' }
                    : {};
          const req = {
            principal: r.principal,
            target: r.target,
            action: r.action,
            params,
            state: r.state,
            actorContext: { service: r.target.split('/')[1]!, replicas: 1, reviewers: ['bob'], requiredApprovals: 1, attempts: r.attempts },
            now: r.now,
          };
          const v = set.evaluate(req);
          const full = fullCedar(set, source, req);
          if (v.effect === 'none') expect(full).toEqual({ decision: 'deny', reason: [] });
          else {
            expect(full.decision).toBe(v.effect === 'permit' ? 'allow' : 'deny');
            expect([...v.ids].sort()).toEqual(full.reason);
          }
        }),
        { numRuns: 300 },
      );
    });
  }
});

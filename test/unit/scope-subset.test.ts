import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { delegateFrom, usesLeft } from '../../src/authority/delegation.js';
import { scopeMatches } from '../../src/authority/scope.js';
import { globCovers, scopeCovers } from '../../src/authority/scope-subset.js';
import { DelegationRefusedError } from '../../src/errors.js';
import { ScopeSchema, type Grant } from '../../src/protocol/index.js';
import { ManualClock } from '../../src/util/clock.js';
import { sequentialIds } from '../../src/util/ids.js';

/**
 * The scope containment of delegation: `scopeCovers(parent, child)` holds exactly when every
 * `kind/id:ACTION` the child matches, the parent matches. Patterns are drawn over a small
 * alphabet so that wildcards and literals collide often; `z`/`Z` never occur in them, which is
 * what the witness of a non-containment is built from.
 */

const part = (chars: string[]) => fc.array(fc.constantFrom(...chars, '*'), { minLength: 1, maxLength: 5 }).map((a) => a.join(''));
const kindPart = part(['a', 'b', '-']);
const idPart = part(['a', 'b', '_']);
const actionPart = part(['A', 'B']);
const scope = fc.oneof(
  { weight: 1, arbitrary: fc.constant('*') },
  { weight: 9, arbitrary: fc.tuple(kindPart, idPart, actionPart).map(([k, i, a]) => `${k}/${i}:${a}`) },
);
/** Non-empty fills valid in every part of a scope. */
const letters = fc.array(fc.constantFrom('a', 'b', 'z'), { minLength: 1, maxLength: 3 }).map((a) => a.join(''));
const fill = fc.array(fc.constantFrom('a', 'b', 'A', 'B', '-', '_', 'z'), { maxLength: 4 }).map((a) => a.join(''));

/** A target the child scope matches: each `*` filled by one of `fills` (cycled). */
function instance(child: string, fills: string[], fresh = false): string {
  const full = child === '*' ? '*/*:*' : child;
  let n = 0;
  return full.replace(/\*/g, () => (fresh ? 'z' : (fills[n++ % Math.max(1, fills.length)] ?? '')));
}
const splitTarget = (t: string) => {
  const colon = t.lastIndexOf(':');
  return { target: t.slice(0, colon), action: t.slice(colon + 1) };
};
const matches = (pattern: string, t: string) => {
  const { target, action } = splitTarget(t);
  return scopeMatches(pattern, target, action);
};

describe('scopeCovers (delegation scope containment)', () => {
  it('the generated scopes are valid scopes', () => {
    fc.assert(fc.property(scope, (s) => ScopeSchema.safeParse(s).success));
  });

  it('is sound: when the parent covers the child, every target the child matches the parent matches', () => {
    fc.assert(
      fc.property(scope, scope, fc.array(fill, { minLength: 1, maxLength: 6 }), (parent, child, fills) => {
        const t = instance(child, fills);
        expect(matches(child, t)).toBe(true);
        if (scopeCovers(parent, child)) expect(matches(parent, t), `${parent} ⊇ ${child} but misses ${t}`).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it('is exact: when it says no, the child matches a target (its stars filled with a fresh letter) the parent does not', () => {
    let refused = 0;
    fc.assert(
      fc.property(scope, scope, (parent, child) => {
        if (scopeCovers(parent, child)) return;
        refused++;
        const witness = instance(child, [], true);
        expect(matches(child, witness)).toBe(true);
        expect(matches(parent, witness), `${parent} ⊉ ${child}, yet it matches the witness ${witness}`).toBe(false);
      }),
      { numRuns: 3000 },
    );
    expect(refused).toBeGreaterThan(100);
  });

  it('is reflexive and transitive, and `*` covers everything', () => {
    fc.assert(fc.property(scope, (s) => scopeCovers(s, s) && scopeCovers('*', s)));
    fc.assert(
      fc.property(scope, scope, scope, (a, b, c) => {
        if (scopeCovers(a, b) && scopeCovers(b, c)) expect(scopeCovers(a, c)).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it('covers a child that differs only by having fewer wildcards (star replaced by a literal)', () => {
    fc.assert(
      fc.property(scope, fc.array(letters, { minLength: 1, maxLength: 3 }), (parent, fills) => {
        const child = instance(parent, fills);
        expect(ScopeSchema.safeParse(child).success).toBe(true);
        expect(scopeCovers(parent, child), `${parent} ⊇ ${child}`).toBe(true);
      }),
    );
  });

  it.each([
    ['*', '*', true],
    ['*', 'deployment/*:*', true],
    ['deployment/*:*', 'deployment/*:DEPLOY', true],
    ['deployment/*:*', '*', false],
    ['*/*:*', '*', true],
    ['deployment/*:DEPLOY', 'deployment/*:*', false],
    ['deployment/web-*:*', 'deployment/web-eu:SCALE', true],
    ['deployment/web-*:*', 'deployment/web*:*', false],
    ['deployment/*-eu:*', 'deployment/web-*:*', false],
    ['deployment/*-eu:*', 'deployment/web-*-eu:*', true],
    ['deployment/a*b:*', 'deployment/a*c*b:*', true],
    ['deployment/a*b:*', 'deployment/ab*:*', false],
    ['run/r-*:*', 'run/r-1:COMMIT', true],
    ['run/r-*:*', 'deployment/r-1:COMMIT', false],
  ])('scopeCovers(%s, %s) is %s', (parent, child, expected) => {
    expect(scopeCovers(parent, child)).toBe(expected);
  });

  it('globCovers treats runs of stars as one', () => {
    expect(globCovers('a**', 'a*b*')).toBe(true);
    expect(globCovers('**', '')).toBe(true);
    expect(globCovers('a', '*')).toBe(false);
  });
});

describe('delegateFrom: a delegated grant is never wider than its parent', () => {
  const clock = new ManualClock(Date.parse('2030-01-01T00:00:00Z'));
  const at = (ms: number) => new Date(clock.now() + ms).toISOString();
  const parentArb = fc.record({
    scope,
    expiresIn: fc.option(fc.integer({ min: 1000, max: 1_000_000 }), { nil: undefined }),
    maxUses: fc.option(fc.integer({ min: 1, max: 10 }), { nil: undefined }),
    uses: fc.integer({ min: 0, max: 10 }),
    runId: fc.option(fc.constantFrom('r1', 'r2'), { nil: undefined }),
  });
  const reqArb = fc.record({
    scope: fc.option(scope, { nil: undefined }),
    expiresIn: fc.option(fc.integer({ min: 1, max: 2_000_000 }), { nil: undefined }),
    maxUses: fc.option(fc.integer({ min: 1, max: 12 }), { nil: undefined }),
    runId: fc.option(fc.constantFrom('r1', 'r2'), { nil: undefined }),
  });

  it('either refuses naming one field, or every term of the child is within the parent', () => {
    const fields = new Map<string, number>();
    fc.assert(
      fc.property(parentArb, reqArb, (p, r) => {
        const parent: Grant = {
          v: 1,
          id: 'g-parent',
          subject: 'agent:*',
          scope: p.scope,
          issuedAt: at(0),
          issuedBy: 'operator',
          uses: p.maxUses !== undefined ? Math.min(p.uses, p.maxUses - 1) : p.uses,
          ...(p.expiresIn !== undefined ? { expiresAt: at(p.expiresIn) } : {}),
          ...(p.maxUses !== undefined ? { maxUses: p.maxUses } : {}),
          ...(p.runId !== undefined ? { runId: p.runId } : {}),
        };
        const req = {
          parentId: parent.id,
          by: 'agent:holder',
          subject: 'agent:other',
          ...(r.scope !== undefined ? { scope: r.scope } : {}),
          ...(r.expiresIn !== undefined ? { expiresAt: at(r.expiresIn) } : {}),
          ...(r.maxUses !== undefined ? { maxUses: r.maxUses } : {}),
          ...(r.runId !== undefined ? { runId: r.runId } : {}),
        };
        let made: ReturnType<typeof delegateFrom>;
        try {
          made = delegateFrom(parent, req, { clock, ids: sequentialIds(), lookup: () => undefined });
        } catch (e) {
          expect(e).toBeInstanceOf(DelegationRefusedError);
          const err = e as DelegationRefusedError;
          expect(['scope', 'expiresAt', 'maxUses', 'runId']).toContain(err.field);
          expect(err.issues).toEqual([expect.objectContaining({ path: err.field, expected: err.expected })]);
          fields.set(err.field, (fields.get(err.field) ?? 0) + 1);
          return;
        }
        const { child, parent: after } = made;
        expect(scopeCovers(parent.scope, child.scope)).toBe(true);
        if (parent.expiresAt) expect(Date.parse(child.expiresAt!)).toBeLessThanOrEqual(Date.parse(parent.expiresAt));
        if (parent.maxUses !== undefined) {
          expect(child.maxUses).toBeLessThanOrEqual(usesLeft(parent)!);
          expect(usesLeft(after)).toBe(usesLeft(parent)! - child.maxUses!);
        }
        if (parent.runId !== undefined) expect(child.runId).toBe(parent.runId);
        expect(child).toMatchObject({ parentId: parent.id, delegatedBy: 'agent:holder', subject: 'agent:other', uses: 0 });
      }),
      { numRuns: 2000 },
    );
    // every kind of refusal was seen
    expect([...fields.keys()].sort()).toEqual(['expiresAt', 'maxUses', 'runId', 'scope']);
  });
});

/**
 * Runtime API calls that take untrusted input refuse garbage with a typed error before
 * anything is looked up or written (found by the door fuzz tests, fuzz-doors.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError, type Runtime } from '../../src/index.js';
import { MODES, tempRuntime, type TempRuntime } from '../helpers/runtime.js';

describe.each(MODES)('runtime API input (%s)', (mode) => {
  let h: TempRuntime;
  let rt: Runtime;
  beforeAll(async () => {
    h = await tempRuntime({ mode });
    rt = h.rt;
  });
  afterAll(async () => h?.close());

  it('grants.issue refuses a ttlMs past 3650 days (it threw a RangeError, or issued a grant expiring in year 160470)', async () => {
    for (const ttlMs of [9e15, 5e15, Number.MAX_SAFE_INTEGER, 3650 * 86_400_000 + 1]) {
      const err = await rt.grants.issue({ subject: 'agent:x', scope: 'deployment/web:*', ttlMs }).catch((e: unknown) => e);
      expect(err, String(ttlMs)).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).issues).toEqual([expect.objectContaining({ path: 'ttlMs', code: 'too_big' })]);
    }
    expect(rt.grants.list()).toEqual([]);
    const g = await rt.grants.issue({ subject: 'agent:x', scope: 'deployment/web:*', ttlMs: 3650 * 86_400_000 });
    expect(g.expiresAt).toMatch(/^\d{4}-/);
  });

  it('approvals.approve / deny refuse arguments that are not an intent id, a principal name and a note/reason (an object id reached SQLite as named parameters)', async () => {
    const cases: Array<[unknown, unknown, unknown, string]> = [
      [{}, 'human:a', undefined, 'intentId'],
      [['x'], 'human:a', undefined, 'intentId'],
      [5, 'human:a', undefined, 'intentId'],
      ['a.b', 'human:a', undefined, 'intentId'],
      ['i-1', 7, undefined, 'by'],
      ['i-1', '', undefined, 'by'],
      ['i-1', 'human:a', { x: 1 }, 'note'],
    ];
    for (const [id, by, note, path] of cases) {
      const err = await rt.approvals.approve(id as never, by as never, note as never).catch((e: unknown) => e);
      expect(err, JSON.stringify([id, by, note])).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).issues.map((i) => i.path)).toContain(path);
    }
    const deny = await rt.approvals.deny('i-1', 'human:a', '' as never).catch((e: unknown) => e);
    expect(deny).toBeInstanceOf(ValidationError);
    // well-formed arguments for an intent that is not pending: NotFound, as before
    await expect(rt.approvals.approve('i-none', 'human:a')).rejects.toMatchObject({ code: 'E_APPROVAL_UNKNOWN_INTENT' });
  });
});

import { createActor, setup } from 'xstate';
import { describe, expect, it } from 'vitest';
import { ConfigError, VersionError } from '../../src/errors.js';
import { defineActor, definitionsFromModule, type ActorDefinition } from '../../src/host/index.js';
import { checkStartedVersion, restorableSnapshot, snapshotRecord, storedSnapshotPage } from '../../src/host/migrations.js';
import { allStoredSnapshots, checkActors, formatCheck } from '../../src/cli/actors-check.js';
import { SnapshotRecordSchema, type Fact, type SnapshotRecord } from '../../src/protocol/index.js';
import { counterEvents, counterV1, counterV2, counterV2Lost, counterV3 } from '../helpers/versioned-counter.js';

const machine = setup({}).createMachine({ id: 'm', initial: 'a', states: { a: {} } });
const define = (more: Record<string, unknown>) => defineActor({ kind: 'thing', machine, events: {}, ...more });

/** A stored record of a v1 counter at `n`, as JSON (what a store gives back). */
function storedV1(n: number, address = 'counter/a'): SnapshotRecord {
  const a = createActor(counterV1.machine).start();
  a.send({ type: 'SET', n });
  const rec = snapshotRecord(
    { address, def: counterV1, status: 'active', state: 'counting', persisted: a.getPersistedSnapshot() },
    3,
    new Date(0).toISOString(),
  );
  a.stop();
  return JSON.parse(JSON.stringify(rec)) as SnapshotRecord;
}

function refusal(f: () => unknown): VersionError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(VersionError);
    return e as VersionError;
  }
  throw new Error('expected a VersionError');
}

describe('defineActor: version and migrations', () => {
  it('defaults to version 1 with no migrations', () => {
    const d = define({});
    expect(d.version).toBe(1);
    expect(d.migrations).toEqual({});
  });

  it('takes a positive integer version and steps from 1 to version - 1 (a missing step is allowed)', () => {
    const step = (p: unknown) => p;
    const d = define({ version: 4, migrations: { 1: step, 3: step } });
    expect(d.version).toBe(4);
    expect(Object.keys(d.migrations)).toEqual(['1', '3']);
  });

  it.each([0, -1, 1.5, '2', Number.NaN, 2 ** 60])('refuses version %s', (version) => {
    expect(() => define({ version })).toThrow(ConfigError);
    expect(() => define({ version })).toThrow(/thing: version must be a positive integer/);
  });

  it.each([
    [{ 0: (p: unknown) => p }, /migrations\["0"\].*from 1 to 2/],
    [{ 3: (p: unknown) => p }, /migrations\["3"\].*from 1 to 2 \(version is 3\)/],
    [{ x: (p: unknown) => p }, /migrations\["x"\]/],
    [{ '01': (p: unknown) => p }, /migrations\["01"\]/],
    [{ 1: 'not a function' }, /migrations\[1\] must be a function/],
  ])('refuses migrations %o', (migrations, message) => {
    expect(() => define({ version: 3, migrations })).toThrow(message);
  });

  it('refuses migrations at version 1 saying to raise the version', () => {
    expect(() => define({ migrations: { 1: (p: unknown) => p } })).toThrow(/raise version to migrate/);
  });

  it('a module definition without a version (made before versions) is version 1', () => {
    const [d] = definitionsFromModule({ actors: [{ kind: 'old', machine, events: {} }] });
    expect(d).toMatchObject({ kind: 'old', version: 1, migrations: {} });
  });

  it('refuses migrations that are not an object', () => {
    expect(() => define({ version: 2, migrations: [(p: unknown) => p] })).toThrow(/migrations must be an object/);
  });
});

describe('snapshot records and versions', () => {
  it('a record names the machine and the version; records without them (written before) still parse', () => {
    const rec = storedV1(5);
    expect(rec).toMatchObject({ machine: 'counter', version: 1 });
    expect(SnapshotRecordSchema.parse(rec)).toEqual(rec);
    const { machine: _m, version: _v, ...old } = rec;
    expect(SnapshotRecordSchema.parse(old)).toEqual(old);
    expect(SnapshotRecordSchema.safeParse({ ...rec, version: 0 }).success).toBe(false);
  });

  it('the same version restores as stored', () => {
    const rec = storedV1(5);
    const r = restorableSnapshot(rec.actor, counterV1, rec);
    expect(r).toMatchObject({ from: 1, to: 1, migrated: false });
    expect(r.snapshot).toBe(rec.snapshot);
  });

  it('a lower version is migrated on a copy, and the result round-trips through JSON into a live actor', () => {
    const rec = storedV1(5);
    const before = structuredClone(rec);
    const r = restorableSnapshot(rec.actor, counterV2, rec);
    expect(r).toMatchObject({ from: 1, to: 2, migrated: true });
    expect((r.snapshot as { context: unknown }).context).toEqual({ total: 5 });
    expect(rec).toEqual(before);
    const a = createActor(counterV2.machine, { snapshot: JSON.parse(JSON.stringify(r.snapshot)) as never }).start();
    a.send({ type: 'INC' });
    expect(a.getSnapshot().context).toEqual({ total: 6 });
    expect(a.getSnapshot().value).toBe('counting');
    a.stop();
  });

  it('a record without a version is version 1', () => {
    const { version: _v, machine: _m, ...old } = storedV1(2);
    expect(restorableSnapshot(old.actor, counterV2, old)).toMatchObject({ from: 1, to: 2, migrated: true });
  });

  it('a missing step: refused naming the actor, both versions and the step', () => {
    const e = refusal(() => restorableSnapshot('counter/a', counterV3, storedV1(5)));
    expect(e).toMatchObject({ code: 'E_VERSION', actor: 'counter/a', stored: 1, running: 3, problem: 'no_path' });
    expect(e.message).toBe(
      'E_VERSION: counter/a stored at version 1, running version 3: no migration from version 2 to 3 ' +
        '(add migrations[2] to the definition of kind counter, or run version 1)',
    );
  });

  it('a higher stored version: refused', () => {
    const rec = { ...storedV1(5), version: 2 };
    const e = refusal(() => restorableSnapshot('counter/a', counterV1, rec));
    expect(e).toMatchObject({ stored: 2, running: 1, problem: 'newer' });
    expect(e.message).toMatch(/counter\/a stored at version 2, running version 1: .*run version 2 or later/);
  });

  it('a migration that throws: refused with its message, the record unchanged', () => {
    const rec = storedV1(13);
    const before = structuredClone(rec);
    const e = refusal(() => restorableSnapshot('counter/a', counterV2, rec));
    expect(e).toMatchObject({ stored: 1, running: 2, problem: 'migration_threw' });
    expect(e.message).toMatch(/migration from version 1 to 2 threw: unlucky count 13/);
    expect(rec).toEqual(before);
  });

  it('a migrated snapshot the machine cannot restore: refused', () => {
    const e = refusal(() => restorableSnapshot('counter/a', counterV2Lost, storedV1(5)));
    expect(e).toMatchObject({ stored: 1, running: 2, problem: 'snapshot_invalid' });
    expect(e.message).toMatch(/migrated to version 2 is not one machine counter can restore: .*nowhere/);
  });

  it('a migration returning no object: refused', () => {
    const def = defineActor({
      kind: 'counter',
      machine: counterV2.machine,
      events: counterEvents,
      version: 2,
      migrations: { 1: () => undefined },
    });
    expect(refusal(() => restorableSnapshot('counter/a', def, storedV1(1))).message).toMatch(
      /a persisted snapshot is an object, got undefined/,
    );
  });

  it('a record whose version is not a positive integer: refused as damaged', () => {
    const rec = { ...storedV1(1), version: 'two' } as unknown as SnapshotRecord;
    expect(refusal(() => restorableSnapshot('counter/a', counterV2, rec))).toMatchObject({ problem: 'bad_record' });
  });
});

describe('ice actors check (the verdicts)', () => {
  const defs = (counter: ActorDefinition) => [counter];
  it('names each actor restorable, to migrate, or not restorable with why', () => {
    const records = [storedV1(5, 'counter/a'), storedV1(13, 'counter/b'), { ...storedV1(1, 'ghost/x'), kind: 'ghost' }];
    const rows = checkActors(records, defs(counterV2));
    expect(rows.map((r) => [r.actor, r.verdict, r.problem])).toEqual([
      ['counter/a', 'migrate', undefined],
      ['counter/b', 'not_restorable', 'migration_threw'],
      ['ghost/x', 'not_restorable', 'kind_not_registered'],
    ]);
    expect(rows[0]).toMatchObject({ stored: 1, running: 2, machine: 'counter' });
    const text = formatCheck(rows);
    expect(text.split('\n')[0]).toBe('3 actors: 0 restorable as stored, 1 after migration, 2 not restorable');
    expect(text).toContain('counter/a  migrates v1 → v2');
    expect(text).toMatch(/counter\/b {2}not restorable \(migration_threw\): .*unlucky count 13/);
    expect(checkActors(records.slice(0, 1), defs(counterV1))[0]).toMatchObject({ verdict: 'restorable', stored: 1, running: 1 });
    expect(checkActors(records.slice(0, 1), defs(counterV3))[0]).toMatchObject({ verdict: 'not_restorable', problem: 'no_path' });
  });

  it('a stored snapshot the running machine cannot restore, at the same version', () => {
    const rec = storedV1(5);
    const lost = { ...rec, snapshot: { ...(rec.snapshot as object), value: 'nowhere' } };
    const [row] = checkActors([lost], defs(counterV1));
    expect(row).toMatchObject({ verdict: 'not_restorable', problem: 'snapshot_invalid', stored: 1, running: 1 });
    expect(row!.message).toMatch(/the stored snapshot is not one machine counter can restore/);
    const [garbage] = checkActors([{ ...rec, snapshot: 'garbage' }], defs(counterV1));
    expect(garbage).toMatchObject({ verdict: 'not_restorable', problem: 'snapshot_invalid' });
    // the Host checks an unmigrated snapshot when it creates the actor (E_RESTORE), not here
    expect(restorableSnapshot(rec.actor, counterV1, lost)).toMatchObject({ migrated: false });
  });
});

describe('without a snapshot, from actor.started', () => {
  const started = (data: Record<string, unknown>) => ({ type: 'actor.started', data }) as unknown as Fact;
  it('a chain started by the running or an earlier version replays on the running machine', () => {
    expect(() => checkStartedVersion('counter/a', counterV2, started({ kind: 'counter', version: 1 }))).not.toThrow();
    expect(() => checkStartedVersion('counter/a', counterV2, started({ kind: 'counter' }))).not.toThrow();
  });
  it('one started by a later version is refused', () => {
    const e = refusal(() => checkStartedVersion('counter/a', counterV1, started({ kind: 'counter', version: 3 })));
    expect(e).toMatchObject({ stored: 3, running: 1, problem: 'newer' });
  });
});

describe('stored snapshot pages', () => {
  const records = ['counter/a', 'counter/b', 'counter/c', 'counter/d', 'counter/e'].map((a) => storedV1(1, a));
  const store = {
    actors: () => Promise.resolve(records.map((r) => ({ actor: r.actor, kind: r.kind, seq: r.seq, status: r.status, state: r.state }))),
    latestSnapshot: (a: string) => Promise.resolve(records.find((r) => r.actor === a)),
  };
  it('pages by address up to limit, then by bytes (at least one record a page)', async () => {
    const p1 = await storedSnapshotPage(store, { limit: 2, maxBytes: Infinity });
    expect(p1.records.map((r) => r.actor)).toEqual(['counter/a', 'counter/b']);
    expect(p1.next).toBe('counter/b');
    const p3 = await storedSnapshotPage(store, { after: 'counter/d', limit: 2, maxBytes: Infinity });
    expect(p3).toEqual({ records: [records[4]] });
    const all = await allStoredSnapshots((after) =>
      storedSnapshotPage(store, { ...(after !== undefined ? { after } : {}), limit: 2, maxBytes: Infinity }),
    );
    expect(all).toEqual(records);
    const tiny = await storedSnapshotPage(store, { limit: 100, maxBytes: 1 });
    expect(tiny.records).toHaveLength(1);
    expect(tiny.next).toBe('counter/a');
  });
});

import { describe, expect, it } from 'vitest';
import { createActor, fromCallback, fromPromise, fromTransition, setup, spawnChild, type Snapshot } from 'xstate';
import { journalEvent, storedChild, withoutEffects, withoutLostChildren } from '../../src/host/children.js';
import { ActorAddressSchema, parseChildAddress } from '../../src/protocol/index.js';

let runs = 0;
const inner = setup({
  actors: {
    ping: fromPromise(() => {
      runs++;
      return new Promise<never>(() => {});
    }),
  },
}).createMachine({ id: 'inner', initial: 'waiting', states: { waiting: { invoke: { id: 'ping', src: 'ping' } } } });

const parent = setup({
  actors: {
    inner,
    call: fromPromise(() => {
      runs++;
      return new Promise<never>(() => {});
    }),
    listen: fromCallback(() => () => {}),
    count: fromTransition((n: number) => n + 1, 0),
  },
}).createMachine({
  id: 'parent',
  entry: [spawnChild('inner', { id: 'inner' }), spawnChild('listen', { id: 'listen' }), spawnChild('count', { id: 'count' })],
  initial: 'calling',
  states: { calling: { invoke: { id: 'call', src: 'call' } } },
});

/** The persisted snapshot as a store gives it back: a JSON round trip. */
function persisted(): unknown {
  const a = createActor(parent);
  a.start();
  const p = JSON.parse(JSON.stringify(a.getPersistedSnapshot())) as unknown;
  a.stop();
  return p;
}

describe('children', () => {
  it('a stored snapshot loses its in-flight effects (at any depth), keeps machines and pure logic', () => {
    const p = persisted();
    const { snapshot, lost } = withoutLostChildren(parent, p);
    expect(lost.map((l) => [l.path, l.parent, l.src])).toEqual([
      ['inner/ping', 'inner', 'ping'],
      ['listen', '', 'listen'],
      ['call', '', 'call'],
    ]);
    expect(lost.every((l) => l.reason.includes('in flight'))).toBe(true);
    const kept = snapshot as { children: Record<string, { snapshot: { children?: object } }> };
    expect(Object.keys(kept.children).sort()).toEqual(['count', 'inner']);
    expect(kept.children.inner!.snapshot.children).toEqual({});
    // the input is not changed
    expect(Object.keys((p as { children: object }).children).sort()).toEqual(['call', 'count', 'inner', 'listen']);
    // restored from what is kept, nothing runs again
    const before = runs;
    const a = createActor(parent, { snapshot: snapshot as Snapshot<unknown> });
    a.start();
    expect(runs).toBe(before);
    a.stop();
  });

  it('a child whose logic the machine does not name is removed; when it was active, it is lost', () => {
    const p = persisted() as { children: Record<string, { src: unknown }> };
    p.children.inner!.src = 'renamed';
    const { snapshot, lost } = withoutLostChildren(parent, p);
    expect(lost.find((l) => l.path === 'inner')?.reason).toContain('not named');
    expect(Object.keys((snapshot as { children: object }).children)).not.toContain('inner');
  });

  it('a replay machine names no effect that runs', () => {
    const before = runs;
    const a = createActor(withoutEffects(parent));
    a.start();
    expect(runs).toBe(before);
    expect(Object.keys((a.getSnapshot() as { children: object }).children).sort()).toEqual(['call', 'count', 'inner', 'listen']);
    a.stop();
  });

  it('reads a child at a path from a stored snapshot', () => {
    expect(storedChild(persisted(), 'inner')).toMatchObject({ path: 'inner', src: 'inner', state: 'waiting', status: 'active' });
    expect(storedChild(persisted(), 'count')).toMatchObject({ state: 'active', context: 0 });
    expect(storedChild(persisted(), 'inner/nobody')).toBeUndefined();
  });

  it('journals events as JSON, errors as { name, message, code? }', () => {
    const err = Object.assign(new Error('down'), { code: 'E_DOWN' });
    expect(journalEvent({ type: 'xstate.error.actor.x', error: err })).toEqual({
      type: 'xstate.error.actor.x',
      error: { name: 'Error', message: 'down', code: 'E_DOWN' },
    });
    expect(journalEvent({ type: 'x', n: 1n })).toMatchObject({ type: 'x', error: { code: 'E_CHILD_EVENT' } });
  });

  it('child addresses: parsed for reading, refused as intent targets with what to do', () => {
    expect(parseChildAddress('deployment/web/worker')).toEqual({ parent: 'deployment/web', child: 'worker' });
    expect(parseChildAddress('deployment/web/a/0.b:c')).toEqual({ parent: 'deployment/web', child: 'a/0.b:c' });
    expect(parseChildAddress('deployment/web')).toBeUndefined();
    expect(parseChildAddress('deployment/web/')).toBeUndefined();
    const r = ActorAddressSchema.safeParse('deployment/web/worker');
    expect(r.success).toBe(false);
    expect(r.error?.issues).toHaveLength(1);
    expect(r.error?.issues[0]?.message).toContain('a child actor takes no intents');
    expect(ActorAddressSchema.safeParse('deployment/web').success).toBe(true);
  });
});

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploymentActor } from '../../actors/index.js';
import type { ActorDefinition } from '../../src/host/index.js';
import type { Runtime } from '../../src/index.js';
import type { SnapshotRecord } from '../../src/protocol/index.js';
import { ice } from '../helpers/ice-cli.js';
import { MODES, iid, tempRuntime, type TempRuntime } from '../helpers/runtime.js';

/**
 * A module defining kind `counter` at `version`: context `{ count }` at version 1,
 * `{ total }` after, with the migration 1 → 2 (throwing on a count of 13) and no other.
 */
function counterModule(version: number): string {
  return `import { assign, setup } from 'xstate';
import { z } from 'zod';
import { defineActor } from '${join(process.cwd(), 'dist/src/index.js')}';
const field = ${version === 1 ? "'count'" : "'total'"};
const machine = setup({}).createMachine({
  id: 'counter',
  initial: 'idle',
  context: { [field]: 0 },
  on: { SET: { target: '.counting', actions: assign({ [field]: ({ event }) => event.n }) } },
  states: {
    idle: { on: { INC: { target: 'counting', actions: assign({ [field]: ({ context }) => context[field] + 1 }) } } },
    counting: { on: { INC: { actions: assign({ [field]: ({ context }) => context[field] + 1 }) } } },
  },
});
const countToTotal = (p) => {
  if (p.context.count === 13) throw new Error('unlucky count 13');
  return { ...p, context: { total: p.context.count } };
};
export const actors = [
  defineActor({
    kind: 'counter',
    machine,
    events: { INC: z.strictObject({}), SET: z.strictObject({ n: z.int() }) },
    version: ${version},
    migrations: ${version > 1 ? '{ 1: countToTotal }' : '{}'},
  }),
];
`;
}

interface Row {
  actor: string;
  verdict: string;
  stored: number;
  running?: number;
  problem?: string;
  message?: string;
}

// Inside the repository so the modules resolve xstate and zod like a user's project would.
const dir = join(process.cwd(), 'test-artifacts');
const mods: Record<number, string> = {};
beforeAll(() => {
  mkdirSync(dir, { recursive: true });
  for (const v of [1, 2, 3]) {
    mods[v] = join(dir, `counter-v${v}-${process.pid}.mjs`);
    writeFileSync(mods[v], counterModule(v));
  }
});
afterAll(() => {
  for (const m of Object.values(mods)) rmSync(m, { force: true });
});

const load = async (v: number): Promise<ActorDefinition[]> => [
  ...((await import(pathToFileURL(mods[v]!).href)) as { actors: ActorDefinition[] }).actors,
  deploymentActor,
];

describe.each(MODES)('ice actors check (%s)', (mode) => {
  it('reports each stored actor restorable, after migration, or not (and why), with --json and exit codes; writes nothing', async () => {
    const t: TempRuntime = await tempRuntime({ mode, actors: await load(1) });
    const where = () => (mode === 'embedded' ? ['--data', t.dir] : ['--nats', t.server!.url]);
    const check = (...args: string[]) => ice(['actors', 'check', ...args, ...where()]);
    const rows = async (...args: string[]) => {
      const r = await check('--json', ...args);
      return { code: r.code, rows: JSON.parse(r.stdout) as Row[], stderr: r.stderr };
    };
    const propose = (rt: Runtime, target: string, action: string, params: Record<string, unknown> = {}) =>
      rt.propose({ id: iid('c'), proposer: 'agent:c', target, action, params });
    try {
      const rt = t.rt;
      await rt.grants.issue({ subject: 'agent:c', scope: '*' });
      await rt.spawn('counter/a');
      await rt.spawn('counter/b');
      await rt.spawn('deployment/web', { service: 'web' });
      expect((await propose(rt, 'counter/a', 'INC')).status).toBe('executed');
      expect((await propose(rt, 'counter/b', 'SET', { n: 13 })).status).toBe('executed');
      const addresses = ['counter/a', 'counter/b', 'deployment/web'];
      const stored = async () => Promise.all(addresses.map((a) => t.storedSnapshot(a)));
      const chains = async () => Promise.all(addresses.map((a) => t.rt.journal.chain(a)));
      const before: { records: Array<SnapshotRecord | undefined>; chains: unknown } = { records: await stored(), chains: await chains() };

      const same = await check('--actors', mods[1]!);
      expect(same.code, same.stderr).toBe(0);
      expect(same.stdout.trim()).toBe('3 actors: 3 restorable as stored, 0 after migration, 0 not restorable');

      const v2 = await rows('--actors', mods[2]!);
      expect(v2.code).toBe(1);
      expect(v2.rows.map((r) => [r.actor, r.verdict, r.stored, r.running, r.problem])).toEqual([
        ['counter/a', 'migrate', 1, 2, undefined],
        ['counter/b', 'not_restorable', 1, 2, 'migration_threw'],
        ['deployment/web', 'restorable', 1, 1, undefined],
      ]);
      expect(v2.rows[1]!.message).toMatch(
        /counter\/b stored at version 1, running version 2: migration from version 1 to 2 threw: unlucky count 13/,
      );

      const v3 = await check('--actors', mods[3]!);
      expect(v3.code).toBe(1);
      const lines = v3.stdout.trim().split('\n');
      expect(lines[0]).toBe('3 actors: 1 restorable as stored, 0 after migration, 2 not restorable');
      expect(lines).toContainEqual(
        expect.stringMatching(
          /^ {2}counter\/a {2}not restorable \(no_path\): .*stored at version 1, running version 3: no migration from version 2 to 3/,
        ),
      );
      expect(lines).toContainEqual(expect.stringMatching(/^ {2}counter\/b {2}not restorable \(no_path\)/));

      // without the module that defines the kind
      const none = await rows();
      expect(none.code).toBe(1);
      expect(none.rows.filter((r) => r.problem === 'kind_not_registered').map((r) => r.actor)).toEqual(['counter/a', 'counter/b']);

      // nothing was written by any check
      expect(await stored()).toEqual(before.records);
      expect(await chains()).toEqual(before.chains);

      // once a version 2 runtime has restored counter/a, it is stored at version 2
      const rt2 = await t.restart({ actors: await load(2) });
      expect((await propose(rt2, 'counter/a', 'INC')).status).toBe('executed');
      await rt2.store.drain();
      const after = await rows('--actors', mods[2]!);
      expect(after.rows.find((r) => r.actor === 'counter/a')).toMatchObject({ verdict: 'restorable', stored: 2, running: 2 });
      expect(after.rows.find((r) => r.actor === 'counter/b')).toMatchObject({ verdict: 'not_restorable', problem: 'migration_threw' });
    } finally {
      await t.close();
    }
  });
});

import { describe, expect, it } from 'vitest';
import { deploymentActor } from '../../actors/index.js';
import type { Runtime } from '../../src/index.js';
import type { ActorDefinition } from '../../src/host/index.js';
import { MODES, iid, tempRuntime, until } from '../helpers/runtime.js';
import { counterV1, counterV2, counterV2Lost, counterV3 } from '../helpers/versioned-counter.js';

const kinds = (counter: ActorDefinition) => [counter, deploymentActor];

async function propose(rt: Runtime, target: string, action: string, params: Record<string, unknown> = {}) {
  return rt.propose({ id: iid('v'), proposer: 'agent:v', target, action, params });
}

/** The runtime's `actor.failed` facts about `actor`. */
async function failedFacts(rt: Runtime, actor: string) {
  return (await rt.journal.tail({ limit: 1000 })).filter((f) => f.type === 'actor.failed' && f.data.actor === actor);
}

describe.each(MODES)('snapshot versions and migrations (%s)', (mode) => {
  it('migrates a lower version on restore, refuses what has no path for that actor alone, and leaves its data as it was', async () => {
    const t = await tempRuntime({ mode, actors: kinds(counterV1) });
    try {
      let rt = t.rt;
      await rt.grants.issue({ subject: 'agent:v', scope: '*' });
      await rt.spawn('counter/a');
      await rt.spawn('counter/b');
      await rt.spawn('deployment/web', { service: 'web' });
      expect((await propose(rt, 'counter/a', 'INC')).status).toBe('executed');
      expect((await propose(rt, 'counter/a', 'INC')).status).toBe('executed');
      expect((await propose(rt, 'counter/b', 'SET', { n: 13 })).status).toBe('executed');
      const a1 = (await t.storedSnapshot('counter/a'))!;
      const b1 = (await t.storedSnapshot('counter/b'))!;
      expect(a1).toMatchObject({ machine: 'counter', version: 1, state: 'counting' });
      expect((a1.snapshot as { context: unknown }).context).toEqual({ count: 2 });
      const [started] = await rt.journal.chain('counter/a', 1, 1);
      expect(started!.data).toMatchObject({ kind: 'counter', version: 1 });
      const chainA1 = await rt.journal.chain('counter/a');

      // Version 3 without a step 2 → 3: counter/a is refused, its data left as stored.
      rt = await t.restart({ actors: kinds(counterV3) });
      const refused = await propose(rt, 'counter/a', 'INC');
      expect(refused.status).toBe('failed');
      const err = refused.status === 'failed' ? refused.error : undefined;
      expect(err?.code).toBe('E_VERSION');
      expect(err?.message).toMatch(/counter\/a stored at version 1, running version 3: no migration from version 2 to 3/);
      expect(await t.storedSnapshot('counter/a')).toEqual(a1);
      expect(await rt.journal.chain('counter/a')).toEqual(chainA1);
      expect((await failedFacts(rt, 'counter/a'))[0]!.data.message).toMatch(/E_VERSION: counter\/a stored at version 1, running version 3/);
      // every other actor keeps being served
      expect((await propose(rt, 'deployment/web', 'CONFIGURE', { version: '1.0.0', replicas: 2 })).status).toBe('executed');

      // A migration whose result the machine cannot restore: refused the same way.
      rt = await t.restart({ actors: kinds(counterV2Lost) });
      const lost = await propose(rt, 'counter/a', 'INC');
      expect(lost.status === 'failed' && lost.error).toMatchObject({ code: 'E_VERSION' });
      expect(lost.status === 'failed' && lost.error.message).toMatch(
        /counter\/a stored at version 1, running version 2: the snapshot migrated to version 2 is not one machine counter can restore/,
      );
      expect(await t.storedSnapshot('counter/a')).toEqual(a1);
      expect(await rt.journal.chain('counter/a')).toEqual(chainA1);
      expect(await failedFacts(rt, 'deployment/web')).toEqual([]);

      // Version 2 with a step 1 → 2: counter/a is migrated in its restore turn; counter/b's
      // migration throws and only counter/b is refused.
      rt = await t.restart({ actors: kinds(counterV2) });
      const inc = await propose(rt, 'counter/a', 'INC');
      expect(inc.status).toBe('executed');
      expect(rt.hosting('counter/a')).toMatchObject({ state: 'counting', context: { total: 3 } });
      const chainA2 = await rt.journal.chain('counter/a');
      const after = chainA2.slice(chainA1.length);
      expect(after.map((f) => f.type)).toEqual(['actor.migrated', 'actor.restored', 'intent.proposed', 'decision', 'transition']);
      expect(after[0]!.data).toEqual({ from: 1, to: 2, machine: 'counter' });
      expect(after[1]!.data).toMatchObject({ fromSeq: a1.seq, replayed: 0, state: 'counting' });
      await until('the migrated snapshot stored', async () => (await t.storedSnapshot('counter/a'))?.seq === chainA2.at(-1)!.seq);
      const a2 = (await t.storedSnapshot('counter/a'))!;
      expect(a2).toMatchObject({ machine: 'counter', version: 2, state: 'counting' });
      expect((a2.snapshot as { context: unknown }).context).toEqual({ total: 3 });

      const chainB = await rt.journal.chain('counter/b');
      const thrown = await propose(rt, 'counter/b', 'INC');
      expect(thrown.status === 'failed' && thrown.error).toMatchObject({ code: 'E_VERSION' });
      expect(thrown.status === 'failed' && thrown.error.message).toMatch(
        /counter\/b stored at version 1, running version 2: migration from version 1 to 2 threw: unlucky count 13/,
      );
      expect(await t.storedSnapshot('counter/b')).toEqual(b1);
      expect(await rt.journal.chain('counter/b')).toEqual(chainB);
      expect((await failedFacts(rt, 'counter/b')).length).toBeGreaterThan(0);
      expect((await propose(rt, 'counter/a', 'INC')).status).toBe('executed');
      expect((await propose(rt, 'deployment/web', 'SUBMIT', { author: 'agent:v' })).status).toBe('executed');
      expect((await rt.journal.verify()).ok).toBe(true);

      // Back to version 1: counter/a, now stored at version 2, is refused (a later version wrote it).
      rt = await t.restart({ actors: kinds(counterV1) });
      const newer = await propose(rt, 'counter/a', 'INC');
      expect(newer.status === 'failed' && newer.error.message).toMatch(
        /counter\/a stored at version 2, running version 1: written by a later/,
      );
      expect((await t.storedSnapshot('counter/a'))!.version).toBe(2);
      // counter/b was never migrated: version 1 restores it as it was.
      expect((await propose(rt, 'counter/b', 'INC')).status).toBe('executed');
      expect(rt.hosting('counter/b')).toMatchObject({ context: { count: 14 } });
    } finally {
      await t.close();
    }
  });
});

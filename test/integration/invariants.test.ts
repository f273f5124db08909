import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Outcome, Runtime } from '../../src/index.js';
import { replayActor, type ActorDefinition } from '../../src/index.js';
import { deploymentActor } from '../../actors/index.js';
import { checkInvariants, openJournal, type CheckInvariantsOptions } from '../../src/testing/index.js';
import { MODES, iid, tempRuntime, type Mode, type TempRuntime } from '../helpers/runtime.js';

const open: TempRuntime[] = [];
afterEach(async () => {
  for (const h of open.splice(0)) await h.close();
});

/** A small history on a fresh runtime of `mode`, then the runtime stopped; what checkInvariants reads. */
async function history(mode: Mode): Promise<{ h: TempRuntime; acked: Map<string, Outcome>; where: CheckInvariantsOptions }> {
  const h = await tempRuntime({ mode });
  open.push(h);
  const rt: Runtime = h.rt;
  const acked = new Map<string, Outcome>();
  await rt.spawn('deployment/a', { service: 'a' });
  await rt.grants.issue({ subject: 'agent:x', scope: 'deployment/a:CONFIGURE', maxUses: 10 });
  for (let i = 1; i <= 5; i++) {
    const id = iid();
    acked.set(
      id,
      await rt.propose({
        id,
        proposer: 'agent:x',
        target: 'deployment/a',
        action: 'CONFIGURE',
        params: { version: `1.0.${i}`, replicas: i },
      }),
    );
  }
  const denied = iid();
  acked.set(
    denied,
    await rt.propose({ id: denied, proposer: 'agent:x', target: 'deployment/a', action: 'SUBMIT', params: { author: 'x' } }),
  );
  const rejected = iid();
  acked.set(rejected, await rt.propose({ id: rejected, proposer: 'agent:x', target: 'deployment/nope', action: 'CONFIGURE', params: {} }));
  expect([...acked.values()].map((o) => o.status)).toEqual([
    'executed',
    'executed',
    'executed',
    'executed',
    'executed',
    'denied',
    'rejected',
  ]);
  await rt.stop();
  return { h, acked, where: mode === 'embedded' ? { dataDir: h.dir } : { servers: h.server!.url } };
}

describe.each(MODES)('checkInvariants (testing kit, %s)', (mode) => {
  it('passes on an intact store', async () => {
    const { acked, where } = await history(mode);
    const r = await checkInvariants({ ...where, acknowledged: acked });
    expect(r).toMatchObject({ ok: true, violations: [], acknowledged: 7, actors: 1, executed: 5, chains: 2 });
    // the actor's chain (started + 5 × 4 with grant.used + 2) and the runtime chain (grant, rejection)
    expect(r.facts).toBe(1 + 20 + 2 + 2);
  });

  it('passes with a node still running (cluster: the store is read, not the node)', async () => {
    const h = await tempRuntime({ mode });
    open.push(h);
    await h.rt.spawn('deployment/live', { service: 'l' });
    await h.rt.grants.issue({ subject: 'agent:x', scope: '*' });
    const id = iid();
    const o = await h.rt.propose({
      id,
      proposer: 'agent:x',
      target: 'deployment/live',
      action: 'CONFIGURE',
      params: { version: '1.0.0', replicas: 1 },
    });
    expect(o.status).toBe('executed');
    await h.rt.store.drain();
    // embedded: a read-only connection to the live data dir (no lock needed)
    const where: CheckInvariantsOptions = mode === 'embedded' ? { dataDir: h.dir } : { servers: h.server!.url };
    expect(await checkInvariants({ ...where, acknowledged: new Map([[id, o]]) })).toMatchObject({ ok: true, executed: 1 });
  });

  it('finds an acknowledged intent that is missing from the journal', async () => {
    const { acked, where } = await history(mode);
    acked.set('never-executed', {
      v: 1,
      status: 'executed',
      intentId: 'never-executed',
      actor: 'deployment/a',
      from: 'draft',
      to: 'draft',
      decisionId: 'd',
      seq: 3,
    });
    const r = await checkInvariants({ ...where, acknowledged: acked });
    expect(r.ok).toBe(false);
    expect(r.violations).toEqual(['acknowledged never-executed has 0 transitions']);
  });

  it("finds a transition executed on a stale copy of the actor: its recorded from → to is not the replay's", async () => {
    const { where } = await history(mode);
    const view = await openJournal(where);
    const chain = await view.reader.chain('deployment/a', 1, 1000);
    await view.close();
    const def = deploymentActor as unknown as ActorDefinition;
    expect(replayActor(def, chain).mismatches).toEqual([]);
    // the third CONFIGURE as an owner would record it that still believed the actor was in review
    const at = chain.filter((f) => f.type === 'transition')[2]!;
    const stale = chain.map((f) => (f === at ? { ...f, data: { ...f.data, from: 'in_review' } } : f));
    expect(replayActor(def, stale).mismatches).toEqual([
      { seq: at.seq, recorded: { from: 'in_review', to: 'draft' }, replayed: { from: 'draft', to: 'draft' } },
    ]);
  });

  it('finds an acknowledged outcome that names another seq than the journal', async () => {
    const { acked, where } = await history(mode);
    const [id, o] = [...acked].find(([, x]) => x.status === 'executed')!;
    acked.set(id, { ...o, seq: (o as { seq: number }).seq + 1 } as Outcome);
    const r = await checkInvariants({ ...where, acknowledged: acked });
    expect(r.violations).toEqual([
      `acknowledged ${id} named deployment/a#${(o as { seq: number }).seq + 1}, the journal has deployment/a#${(o as { seq: number }).seq}`,
    ]);
  });
});

// Embedded only: it edits the SQLite file. A JetStream stream's messages cannot be edited in place,
// and the cluster's newest snapshot is read from the chain's last journal message itself.
describe.runIf(MODES.includes('embedded'))('checkInvariants on a tampered data dir (embedded)', () => {
  it('finds a snapshot that differs from the replay of its journal', async () => {
    const { h, acked } = await history('embedded');
    const db = new Database(join(h.dir, 'ice.db'));
    db.prepare(`UPDATE snapshots SET body = replace(body, '"replicas":5', '"replicas":50') WHERE actor = 'deployment/a'`).run();
    db.close();
    const r = await checkInvariants({ dataDir: h.dir, acknowledged: acked });
    expect(r.ok).toBe(false);
    expect(r.violations).toEqual(['deployment/a: stored context differs from replay']);
  });
});

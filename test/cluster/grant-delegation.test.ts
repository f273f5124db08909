import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntime, type Fact, type Grant, type IntentInput, type Outcome, type Runtime } from '../../src/index.js';
import { DelegationRefusedError } from '../../src/errors.js';
import { startNatsServer, type NatsServer } from '../../src/testing/index.js';
import { createLogger } from '../../src/util/logger.js';
import { iid, until } from '../helpers/runtime.js';

/**
 * Delegation across two cluster nodes on one JetStream (a real nats-server): grants live in
 * the ICE_GRANTS bucket that every node watches. A delegation made on A is usable through B;
 * revoking the parent on B denies the child's intents on A (the parent's record alone stops
 * the whole subtree, and the descendants' records follow); two nodes carving the last use of
 * one parent at once cannot both succeed.
 */

const configure = (proposer: string, target: string, n: number): IntentInput => ({
  id: iid('cdg'),
  proposer,
  target,
  action: 'CONFIGURE',
  params: { version: `2.0.${n}`, replicas: 1 },
});

describe('grant delegation across two cluster nodes', () => {
  let server: NatsServer;
  let a: Runtime;
  let b: Runtime;
  const start = (node: string) =>
    createRuntime({ node, logger: createLogger({ level: 'silent' }), cluster: { servers: server.url, leaseTtlMs: 3000 } });
  const seenOn = (rt: Runtime, id: string, ok: (g: Grant) => boolean = () => true) =>
    until(`grant ${id} on ${rt.node}`, () => rt.grants.list().find((g) => g.id === id && ok(g)));

  beforeAll(async () => {
    server = await startNatsServer({ jetstream: true });
    a = await start('a');
    b = await start('b');
    await a.spawn('deployment/c1', { service: 'c1' });
    await b.spawn('deployment/c2', { service: 'c2' });
  }, 60_000);
  afterAll(async () => {
    await b?.stop().catch(() => {});
    await a?.stop().catch(() => {});
    await server?.stop();
  });

  it('a delegation on A is usable on B; a revoke of the parent on B denies the child and grandchild on A', async () => {
    const root = await a.grants.issue({ id: 'cg1', subject: 'agent:lead', scope: 'deployment/*:*', maxUses: 20 });
    const child = await a.grants.delegate({ parentId: root.id, id: 'cg2', by: 'agent:lead', subject: 'agent:mid', maxUses: 10 });
    await seenOn(b, child.id);
    // the parent's uses were carved on the shared record
    await seenOn(b, root.id, (g) => g.delegatedUses === 10);

    for (const target of ['deployment/c1', 'deployment/c2']) {
      const o = (await b.propose(configure('agent:mid', target, 1))) as Outcome;
      expect(o, target).toMatchObject({ status: 'executed', grantId: child.id });
    }
    // a grandchild delegated on B by the child's holder, usable on A
    const grand = await b.grants.delegate({
      parentId: child.id,
      id: 'cg3',
      by: 'agent:mid',
      subject: 'agent:leaf',
      scope: 'deployment/c1:*',
      maxUses: 2,
    });
    await seenOn(a, grand.id);
    expect(await a.propose(configure('agent:leaf', 'deployment/c1', 2))).toMatchObject({ status: 'executed', grantId: grand.id });

    await b.grants.revoke(root.id, 'operator:bob', 'cut');
    await seenOn(a, root.id, (g) => g.revokedAt !== undefined);
    for (const [who, target] of [
      ['agent:leaf', 'deployment/c1'],
      ['agent:mid', 'deployment/c1'],
      ['agent:mid', 'deployment/c2'],
    ] as const) {
      const o = (await a.propose(configure(who, target, 3))) as Outcome & { reasons?: Array<{ code: string }> };
      expect(o.status, `${who} ${target}`).toBe('denied');
      expect(o.reasons!.map((r) => r.code)).toContain('grant_revoked');
    }
    // every node's view marks the descendants revoked with the root
    for (const rt of [a, b]) {
      await seenOn(rt, child.id, (g) => g.revokedWith === root.id);
      await seenOn(rt, grand.id, (g) => g.revokedWith === root.id && g.revokedBy === 'operator:bob');
    }
    // B's runtime chain: one grant.revoked fact each
    const facts = (await b.journal.tail({ limit: 1000, chain: '_runtime/b' })).filter((f: Fact) => f.type === 'grant.revoked').reverse();
    expect(facts.map((f) => f.data)).toEqual([
      { grantId: root.id, by: 'operator:bob', reason: 'cut', cascade: [child.id, grand.id] },
      { grantId: child.id, by: 'operator:bob', reason: 'cut', revokedWith: root.id },
      { grantId: grand.id, by: 'operator:bob', reason: 'cut', revokedWith: root.id },
    ]);
    // and the delegations are facts on the chains of the nodes that made them
    const delegatedOn = async (rt: Runtime) =>
      (await rt.journal.tail({ limit: 1000, chain: `_runtime/${rt.node}` }))
        .filter((f) => f.type === 'grant.delegated')
        .map((f) => (f.data.grant as Grant).id);
    expect(await delegatedOn(a)).toContain(child.id);
    expect(await delegatedOn(b)).toContain(grand.id);
  });

  it('two nodes delegating the last use of one parent at once: exactly one succeeds', async () => {
    for (let round = 0; round < 5; round++) {
      const p = await a.grants.issue({ id: `cg-last-${round}`, subject: 'agent:lead', scope: 'deployment/*:*', maxUses: 1 });
      await seenOn(b, p.id);
      const results = await Promise.allSettled(
        [a, b].map((rt, i) => rt.grants.delegate({ parentId: p.id, by: 'agent:lead', subject: `agent:d${i}`, maxUses: 1 })),
      );
      const ok = results.filter((r) => r.status === 'fulfilled');
      const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(ok, `round ${round}`).toHaveLength(1);
      expect(refused[0]!.reason).toBeInstanceOf(DelegationRefusedError);
      const after = await until('the parent settled', () => a.grants.list().find((g) => g.id === p.id && g.delegatedUses === 1));
      expect(after.uses + after.delegatedUses!).toBeLessThanOrEqual(after.maxUses!);
    }
  });
});

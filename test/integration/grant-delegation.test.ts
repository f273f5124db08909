import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, DelegationRefusedError, type IceClient } from '../../src/client/index.js';
import { DelegationRefusedError as RuntimeDelegationRefusedError, NotFoundError } from '../../src/errors.js';
import type { Fact, Grant, IntentInput, Outcome, Runtime } from '../../src/index.js';
import { NatsTransport } from '../../src/transport/index.js';
import { startNatsServer, type NatsServer } from '../../src/testing/index.js';
import { ice } from '../helpers/ice-cli.js';
import { MODES, iid, tempDir, tempRuntime, until, type Mode, type TempRuntime } from '../helpers/runtime.js';

/**
 * Delegation in both modes: a holder of a grant hands a narrower one to another principal
 * (`rt.grants.delegate`, `grant.delegate` over `ice.admin.as.<principal>`, `ice grant
 * delegate`); a wider one is refused naming the field; the delegate's grant authorizes its
 * intents; revoking a grant revokes everything delegated from it, each with its own fact; and
 * an agent delegates over NATS with its own identity (`client.delegate`), refused for a grant
 * it does not hold.
 */

const CONFIG = (n: number) => ({ version: `1.0.${n}`, replicas: 2 });
const configure = (proposer: string, target = 'deployment/web', n = 0): IntentInput => ({
  id: iid('dg'),
  proposer,
  target,
  action: 'CONFIGURE',
  params: CONFIG(n),
});
const future = (ms: number) => new Date(Date.now() + ms).toISOString();

/** The runtime chain's grant facts, oldest first. */
async function grantFacts(rt: Runtime): Promise<Fact[]> {
  return (await rt.journal.tail({ limit: 10_000 })).filter((f) => f.type.startsWith('grant.') && f.type !== 'grant.used').reverse();
}

async function refusal(p: Promise<unknown>): Promise<RuntimeDelegationRefusedError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(RuntimeDelegationRefusedError);
  return e as RuntimeDelegationRefusedError;
}

describe.each(MODES)('grant delegation (%s)', (mode: Mode) => {
  let h: TempRuntime;
  let server: NatsServer | undefined;
  let transport: NatsTransport | undefined;
  let agent: IceClient;
  let url: string;
  const rt = () => h.rt;

  beforeAll(async () => {
    if (mode === 'embedded') {
      server = await startNatsServer({ jetstream: false });
      transport = await NatsTransport.connect({ servers: server.url, name: 'ice-delegation-node' });
      h = await tempRuntime({ mode, transport, node: 'd1' });
      url = server.url;
    } else {
      h = await tempRuntime({ mode });
      url = h.server!.url;
    }
    for (const a of ['web', 'api', 'db']) await rt().spawn(`deployment/${a}`, { service: a });
    agent = await connect({ servers: url, name: 'agent-planner', timeoutMs: 10_000 });
  }, 60_000);
  afterAll(async () => {
    await agent?.close();
    await h?.close();
    await transport?.close().catch(() => {});
    await server?.stop();
  });

  it('delegates a narrower grant; the delegate is authorized by it and the decision names the chain', async () => {
    const root = await rt().grants.issue({ id: `g-root-${mode}`, subject: 'agent:planner', scope: 'deployment/*:*', maxUses: 10 });
    const child = await rt().grants.delegate({
      parentId: root.id,
      id: `g-child-${mode}`,
      by: 'agent:planner',
      subject: 'agent:deployer',
      scope: 'deployment/web:*',
      maxUses: 4,
      ttlMs: 3_600_000,
    });
    expect(child).toMatchObject({
      parentId: root.id,
      delegatedBy: 'agent:planner',
      issuedBy: 'agent:planner',
      subject: 'agent:deployer',
      scope: 'deployment/web:*',
      maxUses: 4,
      uses: 0,
    });
    // the uses went from the parent to the child
    expect(
      rt()
        .grants.list()
        .find((g) => g.id === root.id),
    ).toMatchObject({ delegatedUses: 4, uses: 0 });

    const ok = (await rt().propose(configure('agent:deployer', 'deployment/web', 1))) as Outcome;
    expect(ok).toMatchObject({ status: 'executed', grantId: child.id });
    const facts = await rt().journal.factsOfIntent(ok.intentId!);
    const decision = facts.find((f) => f.type === 'decision')!.data.decision as { reasons: Array<{ code: string; message: string }> };
    expect(decision.reasons.find((r) => r.code === 'grant')!.message).toContain(`grant ${child.id} (delegated from ${root.id})`);
    expect(facts.map((f) => f.type)).toEqual(['intent.proposed', 'decision', 'grant.used', 'transition']);

    // outside the child's scope: denied
    const other = (await rt().propose(configure('agent:deployer', 'deployment/api', 1))) as Outcome;
    expect(other.status).toBe('denied');

    const delegated = (await grantFacts(rt())).filter((f) => f.type === 'grant.delegated');
    expect(delegated.map((f) => (f.data.grant as Grant).id)).toContain(child.id);
    expect(delegated.find((f) => (f.data.grant as Grant).id === child.id)!.data).toMatchObject({
      parentId: root.id,
      by: 'agent:planner',
      usesFromParent: 4,
    });
  });

  it('refuses a wider delegation naming the field and what was expected, and records nothing', async () => {
    const parent = await rt().grants.issue({
      id: `g-narrow-${mode}`,
      subject: 'agent:planner',
      scope: 'deployment/*:CONFIGURE',
      maxUses: 3,
      expiresAt: future(3_600_000),
      runId: 'r-1',
    });
    const base = { parentId: parent.id, by: 'agent:planner', subject: 'agent:x', maxUses: 1 };
    const before = rt().grants.list().length;
    const factsBefore = (await grantFacts(rt())).length;
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['scope', { scope: 'deployment/*:*' }, 'a scope within deployment/*:CONFIGURE'],
      ['scope', { scope: '*' }, 'a scope within deployment/*:CONFIGURE'],
      ['expiresAt', { expiresAt: future(7_200_000) }, `at most ${parent.expiresAt}`],
      ['maxUses', { maxUses: 4 }, 'at most 3'],
      ['maxUses', { maxUses: undefined }, 'maxUses from 1 to 3'],
      ['runId', { runId: 'r-2' }, 'run r-1 (or leave it out)'],
      ['by', { by: 'agent:mallory' }, 'a principal matching agent:planner'],
    ];
    for (const [field, change, expected] of cases) {
      const req = { ...base, ...change };
      if (change.maxUses === undefined && 'maxUses' in change) delete (req as { maxUses?: number }).maxUses;
      const e = await refusal(rt().grants.delegate(req as Parameters<Runtime['grants']['delegate']>[0]));
      expect(e.field, JSON.stringify(change)).toBe(field);
      expect(e.expected).toBe(expected);
      expect(e.issues[0]).toMatchObject({ path: field, expected });
      expect(e.message).toContain(field);
    }
    await expect(rt().grants.delegate({ ...base, parentId: 'g-nope' })).rejects.toBeInstanceOf(NotFoundError);
    expect(rt().grants.list()).toHaveLength(before);
    expect(await grantFacts(rt())).toHaveLength(factsBefore);
    // what is within is taken: the terms left out are the parent's
    const ok = await rt().grants.delegate({ ...base, scope: 'deployment/web:CONFIGURE' });
    expect(ok).toMatchObject({ runId: 'r-1', expiresAt: parent.expiresAt, maxUses: 1, scope: 'deployment/web:CONFIGURE' });
  });

  it('a run binding may be added under an unbound parent; a used-up or revoked parent delegates nothing', async () => {
    const p = await rt().grants.issue({ id: `g-unbound-${mode}`, subject: 'agent:planner', scope: 'deployment/*:*', maxUses: 1 });
    const bound = await rt().grants.delegate({ parentId: p.id, by: 'agent:planner', subject: 'agent:y', runId: 'r-9', maxUses: 1 });
    expect(bound.runId).toBe('r-9');
    // all of p's uses went to the child
    const e = await refusal(rt().grants.delegate({ parentId: p.id, by: 'agent:planner', subject: 'agent:z', maxUses: 1 }));
    expect(e.field).toBe('parentId');
    expect(e.issues[0]!.code).toBe('parent_used_up');
    await rt().grants.revoke(bound.id, 'operator:test');
    const r = await refusal(rt().grants.delegate({ parentId: bound.id, by: 'agent:y', subject: 'agent:z', maxUses: 1 }));
    expect(r.issues[0]!.code).toBe('parent_revoked');
  });

  it('revoking a grant revokes its child and grandchild: their intents are denied, each revocation is a fact', async () => {
    const g1 = await rt().grants.issue({ id: `g1-${mode}`, subject: 'agent:lead', scope: 'deployment/*:*' });
    const g2 = await rt().grants.delegate({
      parentId: g1.id,
      id: `g2-${mode}`,
      by: 'agent:lead',
      subject: 'agent:mid',
      scope: 'deployment/db:*',
    });
    const g3 = await rt().grants.delegate({ parentId: g2.id, id: `g3-${mode}`, by: 'agent:mid', subject: 'agent:leaf' });
    expect(g3).toMatchObject({ scope: 'deployment/db:*', parentId: g2.id });
    expect(await rt().propose(configure('agent:leaf', 'deployment/db', 2))).toMatchObject({ status: 'executed', grantId: g3.id });
    expect(await rt().propose(configure('agent:mid', 'deployment/db', 3))).toMatchObject({ status: 'executed', grantId: g2.id });

    const revoked = await rt().grants.revoke(g1.id, 'operator:alice', 'rotation');
    expect(revoked.revokedBy).toBe('operator:alice');
    const byId = new Map(
      rt()
        .grants.list()
        .map((g) => [g.id, g]),
    );
    expect(byId.get(g2.id)).toMatchObject({ revokedBy: 'operator:alice', revokedWith: g1.id });
    expect(byId.get(g3.id)).toMatchObject({ revokedBy: 'operator:alice', revokedWith: g1.id });

    for (const who of ['agent:leaf', 'agent:mid', 'agent:lead']) {
      const o = (await rt().propose(configure(who, 'deployment/db', 4))) as Outcome & {
        reasons?: Array<{ code: string; message: string }>;
      };
      expect(o.status, who).toBe('denied');
      expect(o.reasons!.map((r) => r.code)).toContain('grant_revoked');
    }
    const leaf = (await rt().propose(configure('agent:leaf', 'deployment/db', 5))) as Outcome & {
      reasons: Array<{ code: string; message: string }>;
    };
    expect(leaf.reasons.find((r) => r.code === 'grant_revoked')!.message).toContain(
      `grant ${g3.id} (delegated from ${g2.id}, from ${g1.id})`,
    );

    const revokedFacts = (await grantFacts(rt())).filter(
      (f) => f.type === 'grant.revoked' && [g1.id, g2.id, g3.id].includes(f.data.grantId as string),
    );
    expect(revokedFacts.map((f) => f.data)).toEqual([
      { grantId: g1.id, by: 'operator:alice', reason: 'rotation', cascade: [g2.id, g3.id] },
      { grantId: g2.id, by: 'operator:alice', reason: 'rotation', revokedWith: g1.id },
      { grantId: g3.id, by: 'operator:alice', reason: 'rotation', revokedWith: g1.id },
    ]);
    // revoking again changes nothing and records nothing
    const n = (await grantFacts(rt())).length;
    await rt().grants.revoke(g1.id, 'operator:alice');
    expect(await grantFacts(rt())).toHaveLength(n);
  });

  it('an agent delegates over NATS as itself (client.delegate); refused for a grant it does not hold', async () => {
    const g = await rt().grants.issue({ id: `g-agent-${mode}`, subject: 'agent:planner', scope: 'deployment/api:*' });
    const child = await agent.delegate({ parentId: g.id, by: 'agent:planner', subject: 'agent:helper', scope: 'deployment/api:CONFIGURE' });
    expect(child).toMatchObject({ parentId: g.id, delegatedBy: 'agent:planner', issuedBy: 'agent:planner', subject: 'agent:helper' });
    await until('the delegated grant on the node', () =>
      rt()
        .grants.list()
        .find((x) => x.id === child.id),
    );
    expect(await agent.propose(configure('agent:helper', 'deployment/api', 6))).toMatchObject({ status: 'executed', grantId: child.id });

    // agent:other does not hold g: its principal is the one on the subject, and the node refuses it
    const notHeld = await agent.delegate({ parentId: g.id, by: 'agent:other', subject: 'agent:helper2' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(notHeld).toBeInstanceOf(DelegationRefusedError);
    expect(notHeld).toMatchObject({ field: 'by', parentId: g.id, expected: 'a principal matching agent:planner' });

    // a request naming another delegator than the subject's principal is refused before anything is done
    const t = await NatsTransport.connect({ servers: url, name: 'agent-mallory' });
    try {
      const reply = (
        await t.request(
          'ice.admin.as.agent:other.grant.delegate',
          { parentId: g.id, by: 'agent:planner', subject: 'agent:helper3' },
          { timeoutMs: 10_000 },
        )
      ).data as { error?: { code: string; issues?: Array<{ path: string; code: string }> } };
      expect(reply.error).toMatchObject({ code: 'E_VALIDATION', issues: [{ path: 'by', code: 'identity_mismatch' }] });
    } finally {
      await t.close();
    }
    expect(
      rt()
        .grants.list()
        .filter((x) => x.parentId === g.id)
        .map((x) => x.id),
    ).toEqual([child.id]);

    // grant.show over NATS: the chain and the children
    const view = await agent.grant(child.id, 'agent:planner');
    expect(view.chain.map((l) => l.grant.id)).toEqual([g.id, child.id]);
    expect(view.status).toBe('active');

    // the CLI over NATS sends as --as: the holder delegates, another principal is refused (exit 2, at `by`)
    const cli = await ice(['grant', 'delegate', g.id, '--to', 'agent:helper4', '--as', 'agent:planner', '--nats', url, '--json']);
    expect(cli.code, cli.stderr).toBe(0);
    expect(JSON.parse(cli.stdout)).toMatchObject({ parentId: g.id, delegatedBy: 'agent:planner', subject: 'agent:helper4' });
    const cliRefused = await ice(['grant', 'delegate', g.id, '--to', 'agent:helper5', '--as', 'agent:other', '--nats', url]);
    expect(cliRefused.code).toBe(2);
    expect(cliRefused.stderr).toContain('by: agent:other does not hold grant');
    const shown = await ice(['grant', 'show', g.id, '--nats', url, '--as', 'operator:alice', '--json']);
    expect(shown.code, shown.stderr).toBe(0);
    expect((JSON.parse(shown.stdout) as { children: Array<{ grant: Grant }> }).children.map((l) => l.grant.subject).sort()).toEqual([
      'agent:helper',
      'agent:helper4',
    ]);
  });

  it('a malformed delegation is a ValidationError naming the field, locally and over NATS', async () => {
    const bad = { parentId: 'g x', by: 'agent:planner', subject: 'agent:*' };
    await expect(rt().grants.delegate(bad)).rejects.toMatchObject({
      code: 'E_VALIDATION',
      issues: expect.arrayContaining([expect.objectContaining({ path: 'parentId' }), expect.objectContaining({ path: 'subject' })]),
    });
    await expect(agent.delegate(bad)).rejects.toMatchObject({ code: 'E_VALIDATION' });
  });
});

describe('ice grant delegate / show (embedded, CLI)', () => {
  const d = tempDir('ice-cli-delegate-');
  afterAll(() => d.cleanup());
  const data = ['--data', d.dir];

  it('delegates, refuses wider (exit 2, naming the field), shows the chain and children with status, and cascades a revoke', async () => {
    expect((await ice(['spawn', 'deployment/web', '--input', '{"service":"web"}', ...data])).code).toBe(0);
    expect(
      (await ice(['grant', 'issue', '--id', 'g1', '--to', 'agent:planner', '--scope', 'deployment/*:*', '--max-uses', '5', ...data])).code,
    ).toBe(0);
    const d2 = await ice([
      'grant',
      'delegate',
      'g1',
      '--id',
      'g2',
      '--to',
      'agent:deployer',
      '--as',
      'agent:planner',
      '--scope',
      'deployment/web:*',
      '--uses',
      '2',
      '--json',
      ...data,
    ]);
    expect(d2.code, d2.stderr).toBe(0);
    expect(JSON.parse(d2.stdout)).toMatchObject({ id: 'g2', parentId: 'g1', delegatedBy: 'agent:planner', maxUses: 2 });
    const d3 = await ice(['grant', 'delegate', 'g2', '--id', 'g3', '--to', 'agent:bot', '--as', 'agent:deployer', '--uses', '1', ...data]);
    expect(d3.code, d3.stderr).toBe(0);
    expect(d3.stdout).toContain('delegated g3');

    const wide = await ice([
      'grant',
      'delegate',
      'g2',
      '--to',
      'agent:bot',
      '--as',
      'agent:deployer',
      '--uses',
      '1',
      '--scope',
      'deployment/*:*',
      ...data,
    ]);
    expect(wide.code).toBe(2);
    expect(wide.stderr).toContain('scope: deployment/*:* is not within deployment/web:*');
    expect(wide.stderr).toContain('expected a scope within deployment/web:*');
    const many = await ice(['grant', 'delegate', 'g2', '--to', 'agent:bot', '--as', 'agent:deployer', '--uses', '5', ...data]);
    expect(many.code).toBe(2);
    expect(many.stderr).toContain('maxUses');
    expect(many.stderr).toContain('expected at most 1');

    const show = await ice(['grant', 'show', 'g3', ...data]);
    expect(show.code, show.stderr).toBe(0);
    const lines = show.stdout.split('\n');
    const chainAt = lines.indexOf('chain');
    expect(lines[chainAt + 1]).toMatch(/^\s+g1\s+active\s+agent:planner → deployment\/\*:\*/);
    expect(lines[chainAt + 2]).toMatch(/└─ g2\s+active\s+agent:deployer → deployment\/web:\*\s+from g1 by agent:planner/);
    expect(lines[chainAt + 3]).toMatch(/└─ g3\s+active\s+agent:bot → deployment\/web:\*\s+from g2 by agent:deployer/);
    expect(show.stdout).toContain('delegated (0)');

    const json = JSON.parse((await ice(['grant', 'show', 'g1', '--json', ...data])).stdout) as {
      status: string;
      usesLeft: number;
      chain: Array<{ grant: Grant }>;
      children: Array<{ grant: Grant; status: string }>;
    };
    expect(json).toMatchObject({ status: 'active', usesLeft: 3 });
    expect(json.chain.map((l) => l.grant.id)).toEqual(['g1']);
    expect(json.children.map((l) => [l.grant.id, l.status])).toEqual([['g2', 'active']]);

    expect((await ice(['grant', 'revoke', 'g1', ...data])).code).toBe(0);
    const after = await ice(['grant', 'show', 'g2', ...data]);
    expect(after.stdout).toMatch(/^g2\s+revoked/);
    expect(after.stdout).toMatch(/revoked .* by operator with g1/);
    expect(after.stdout).toMatch(/g3\s+revoked/);
    const denied = await ice([
      'propose',
      'deployment/web',
      'CONFIGURE',
      '--as',
      'agent:bot',
      '--params',
      '{"version":"1.0.0","replicas":1}',
      ...data,
    ]);
    expect(denied.code).toBe(11);
    expect(denied.stdout).toContain('grant_revoked');

    const missing = await ice(['grant', 'show', 'g-nope', ...data]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('E_NOT_FOUND');
  });
});

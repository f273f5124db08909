import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock, type Decision, type Fact, type Outcome, type Runtime } from '../../src/index.js';
import { ValidationError } from '../../src/errors.js';
import type { PolicySource } from '../../src/policy/index.js';
import { createLogger } from '../../src/util/logger.js';
import { ice } from '../helpers/ice-cli.js';
import { MODES, tempDir, tempRuntime, type TempRuntime } from '../helpers/runtime.js';

const GROUPS = { name: 'groups.yaml', text: 'groups:\n  ops:\n    - human:alice\n    - human:bob\n' };
const POLICIES = `// test policies
@id("replica-cap")
@reason("at most 10 replicas")
forbid (principal, action == Action::"CONFIGURE", resource is Deployment)
when { context.params.replicas > 10 };

@id("ops-configure")
permit (principal in Group::"ops", action == Action::"CONFIGURE", resource is Deployment);

@id("bot2-big-needs-ops")
@approval("2")
@approvers("group:ops")
@approval_ttl("30m")
@reason("bot2 configuring more than 3 replicas needs two of ops")
permit (principal == Agent::"bot2", action == Action::"CONFIGURE", resource is Deployment)
when { context.params.replicas > 3 && context.state == "draft" };
`;
const SOURCE: PolicySource = { files: [{ name: 'deploy.cedar', text: POLICIES }], groups: GROUPS };

/** The decision recorded for an intent. */
async function decisionOf(rt: Runtime, intentId: string): Promise<Decision> {
  const facts: Fact[] = await rt.journal.factsOfIntent(intentId);
  const f = facts.filter((x) => x.type === 'decision').at(-1);
  if (!f) throw new Error(`no decision fact for ${intentId}`);
  return (f.data as { decision: Decision }).decision;
}

const configure = (id: string, proposer: string, target: string, replicas: number) => ({
  id,
  proposer,
  target,
  action: 'CONFIGURE',
  params: { version: '1.0.0', replicas },
});

for (const mode of MODES) {
  describe(`Cedar policy sets (${mode})`, () => {
    let h: TempRuntime;
    let rt: Runtime;
    // Monday 10:00 UTC
    const clock = new ManualClock(Date.parse('2026-11-30T10:00:00Z'));
    beforeAll(async () => {
      h = await tempRuntime({ mode, clock, logger: createLogger({ level: 'silent' }) });
      rt = h.rt;
      await rt.grants.issue({ subject: 'agent:bot', scope: 'deployment/*:*' });
      await rt.grants.issue({ subject: 'agent:bot2', scope: 'deployment/*:*' });
    });
    afterAll(async () => {
      await h?.close();
    });

    it('without a set, decisions name no policies', async () => {
      await rt.spawn('deployment/a0', { service: 'a0' });
      const o = await rt.propose(configure('p0', 'agent:bot', 'deployment/a0', 20));
      expect(o.status).toBe('executed');
      expect((await decisionOf(rt, 'p0')).policies).toBeUndefined();
      expect(rt.policies.version()).toBe(0);
    });

    it('apply installs version 1 and records policy.applied with version, hash and who', async () => {
      const r = await rt.policies.apply(SOURCE, 'operator:carol');
      expect(r).toMatchObject({ version: 1, count: 3, appliedBy: 'operator:carol' });
      expect(r.hash).toMatch(/^[0-9a-f]{64}$/);
      expect(rt.policies.version()).toBe(1);
      const facts = await rt.journal.tail({ chain: rt.runtimeChain, limit: 50 });
      const applied = facts.filter((f) => f.type === 'policy.applied');
      expect(applied).toHaveLength(1);
      expect(applied[0]!.data).toMatchObject({ version: 1, hash: r.hash, by: 'operator:carol', policies: 3 });
      // the same set again: no new version
      expect(await rt.policies.apply(SOURCE, 'operator:carol')).toMatchObject({ version: 1, unchanged: true });
      expect(rt.policies.list().map((x) => x.version)).toEqual([1]);
    });

    it('a forbid denies even with a grant, naming the version and the policy', async () => {
      await rt.spawn('deployment/a1', { service: 'a1' });
      const o = await rt.propose(configure('p1', 'agent:bot', 'deployment/a1', 20));
      expect(o.status).toBe('denied');
      const d = await decisionOf(rt, 'p1');
      expect(d.policies).toEqual({ version: 1, ids: ['replica-cap'] });
      expect(d.reasons.map((x) => x.code)).toContain('policy_forbid');
      expect(d.reasons.find((x) => x.code === 'policy_forbid')!.message).toContain('at most 10 replicas');
      // within the cap the grant lets it through; the decision still names the version
      expect((await rt.propose(configure('p1b', 'agent:bot', 'deployment/a1', 2))).status).toBe('executed');
      expect((await decisionOf(rt, 'p1b')).policies).toEqual({ version: 1, ids: [] });
    });

    it('a permit lets an intent through without a grant; no permit and no grant is denied', async () => {
      await rt.spawn('deployment/a2', { service: 'a2' });
      const o = await rt.propose(configure('p2', 'human:alice', 'deployment/a2', 2));
      expect(o.status).toBe('executed');
      const d = await decisionOf(rt, 'p2');
      expect(d.grantId).toBeUndefined();
      expect(d.policies).toEqual({ version: 1, ids: ['ops-configure'] });
      const o2 = await rt.propose(configure('p2b', 'human:mallory', 'deployment/a2', 2));
      expect(o2.status).toBe('denied');
      expect((o2 as { reasons: Array<{ code: string }> }).reasons.map((x) => x.code)).toContain('no_grant');
      expect((await decisionOf(rt, 'p2b')).policies).toEqual({ version: 1, ids: [] });
    });

    it('a permit with approval annotations makes the decision pending with that requirement', async () => {
      await rt.spawn('deployment/a3', { service: 'a3' });
      const o = await rt.propose(configure('p3', 'agent:bot2', 'deployment/a3', 5));
      expect(o.status).toBe('pending');
      const d = await decisionOf(rt, 'p3');
      expect(d.verdict).toBe('pending');
      expect(d.policies).toEqual({ version: 1, ids: ['bot2-big-needs-ops'] });
      expect(d.requirement).toEqual({
        policy: 'bot2-big-needs-ops',
        quorum: 2,
        approvers: ['group:ops'],
        ttlMs: 1_800_000,
        reason: 'bot2 configuring more than 3 replicas needs two of ops',
      });
      // the quorum is the policy's: two distinct members of ops, from the set's groups file
      await expect(rt.approvals.approve('p3', 'human:carol', 'ok')).rejects.toMatchObject({ code: 'E_APPROVAL_NOT_ALLOWED' });
      const first: Outcome = await rt.approvals.approve('p3', 'human:bob', 'ok');
      expect(first.status).toBe('pending');
      const approved: Outcome = await rt.approvals.approve('p3', 'human:alice', 'ok');
      expect(approved.status).toBe('executed');
      // a small change needs no approval: the annotated permit does not apply
      await rt.spawn('deployment/a3b', { service: 'a3b' });
      expect((await rt.propose(configure('p3b', 'agent:bot2', 'deployment/a3b', 2))).status).toBe('executed');
    });

    it('the kinds’ code rules still apply next to the Cedar set', async () => {
      // deployment's code rule: an agent's production DEPLOY needs a human (require_approval)
      const dep = 'deployment/a4';
      await rt.spawn(dep, { service: 'a4' });
      await rt.grants.issue({ subject: 'human:alice', scope: 'deployment/*:APPROVE' });
      expect((await rt.propose(configure('p4a', 'agent:bot', dep, 2))).status).toBe('executed');
      expect(
        (await rt.propose({ id: 'p4b', proposer: 'agent:bot', target: dep, action: 'SUBMIT', params: { author: 'agent:bot' } })).status,
      ).toBe('executed');
      expect(
        (await rt.propose({ id: 'p4c', proposer: 'human:alice', target: dep, action: 'APPROVE', params: { reviewer: 'alice' } })).status,
      ).toBe('executed');
      const o = await rt.propose({
        id: 'p4d',
        proposer: 'agent:bot',
        target: dep,
        action: 'DEPLOY',
        params: { environment: 'production' },
      });
      expect(o.status).toBe('pending');
      const d = await decisionOf(rt, 'p4d');
      expect(d.policyRule).toBe('production-deploy-needs-human');
      expect(d.policies).toEqual({ version: 1, ids: [] });
    });

    it('an invalid set is refused with file, line and reason, and the set in force stays', async () => {
      const refused = async (text: string) => {
        const e = await rt.policies
          .apply({ files: [{ name: 'bad.cedar', text }], groups: GROUPS }, 'operator:carol')
          .catch((x: unknown) => x);
        expect(e).toBeInstanceOf(ValidationError);
        return (e as ValidationError).issues;
      };
      const parse = await refused('// ok\npermit(principal, action, resource) when {');
      expect(parse[0]).toMatchObject({ path: expect.stringMatching(/^bad\.cedar:2:\d+$/), code: 'policy_parse' });
      const action = await refused('\n\npermit(principal, action == Action::"LAUNCH", resource);');
      expect(action[0]).toMatchObject({ path: expect.stringMatching(/^bad\.cedar:3:\d+$/), code: 'policy_invalid' });
      expect(action[0]!.message).toContain('unrecognized action');
      const attr = await refused('permit(principal, action == Action::"CONFIGURE", resource) when { context.params.replica > 1 };');
      expect(attr[0]).toMatchObject({ path: expect.stringMatching(/^bad\.cedar:1:\d+$/), code: 'policy_invalid' });
      expect(attr[0]!.message).toContain('params.replica');
      expect(attr[0]!.expected).toContain('replicas');
      const lockout = await refused('permit(principal, action, resource);\nforbid (principal is Operator, action, resource);');
      expect(lockout[0]).toMatchObject({ path: 'bad.cedar:2', code: 'policy_lockout' });
      const ann = await refused('@approval("two") permit(principal, action, resource);');
      expect(ann[0]).toMatchObject({ path: 'bad.cedar:1', code: 'policy_annotation' });
      // past what a signed pending decision may carry (its schema): refused, not signed
      const many = await refused('@approval("500") permit(principal, action, resource);');
      expect(many[0]).toMatchObject({ path: 'bad.cedar:1', code: 'policy_annotation', expected: expect.stringContaining('1 to 100') });
      const long = await refused('@approval_ttl("999999999d") permit(principal, action, resource);');
      expect(long[0]).toMatchObject({ path: 'bad.cedar:1', code: 'policy_annotation' });
      expect(long[0]!.message).toContain('@approval_ttl');
      const groups = await rt.policies
        .apply(
          {
            files: [{ name: 'ok.cedar', text: 'permit(principal in Group::"ops", action, resource);' }],
            groups: { name: 'g.yaml', text: 'groups:\n  ops: [group:nobody]\n' },
          },
          'operator:carol',
        )
        .catch((x: unknown) => x);
      expect((groups as ValidationError).issues[0]).toMatchObject({ path: 'g.yaml:2', code: 'groups_invalid' });
      // still version 1, still deciding with it
      expect(rt.policies.version()).toBe(1);
      expect(rt.policies.list()).toHaveLength(1);
      await rt.spawn('deployment/a5', { service: 'a5' });
      expect((await rt.propose(configure('p5', 'agent:bot', 'deployment/a5', 20))).status).toBe('denied');
      expect((await decisionOf(rt, 'p5')).policies).toEqual({ version: 1, ids: ['replica-cap'] });
    });

    it('a new version takes effect at once, and survives a restart', async () => {
      const relaxed: PolicySource = { files: [{ name: 'deploy.cedar', text: POLICIES.replace('> 10', '> 50') }], groups: GROUPS };
      expect((await rt.policies.apply(relaxed, 'operator:carol')).version).toBe(2);
      await rt.spawn('deployment/a6', { service: 'a6' });
      expect((await rt.propose(configure('p6', 'agent:bot', 'deployment/a6', 20))).status).toBe('executed');
      expect((await decisionOf(rt, 'p6')).policies).toEqual({ version: 2, ids: [] });
      rt = await h.restart({ clock, logger: createLogger({ level: 'silent' }) });
      expect(rt.policies.version()).toBe(2);
      expect(rt.policies.show(1).hash).not.toBe(rt.policies.show(2).hash);
      await rt.spawn('deployment/a7', { service: 'a7' });
      expect((await rt.propose(configure('p7', 'agent:bot', 'deployment/a7', 60))).status).toBe('denied');
      expect((await decisionOf(rt, 'p7')).policies).toEqual({ version: 2, ids: ['replica-cap'] });
    });
  });
}

describe('ice policy check / test / apply / ls / show (data dir)', () => {
  const t = tempDir('ice-policy-cli-');
  const pol = join(t.dir, 'pol');
  const data = join(t.dir, 'data');
  beforeAll(() => {
    mkdirSync(pol);
    writeFileSync(join(pol, 'deploy.cedar'), POLICIES);
    writeFileSync(join(pol, 'groups.yaml'), GROUPS.text);
    writeFileSync(
      join(t.dir, 'cases.yaml'),
      `cases:
  - name: cap beats the grant
    principal: agent:bot
    target: deployment/web
    action: CONFIGURE
    params: { version: 1.0.0, replicas: 20 }
    grant: true
    expect: denied
    policies: [replica-cap]
  - name: ops configure without a grant
    principal: human:alice
    target: deployment/web
    action: CONFIGURE
    params: { version: 1.0.0, replicas: 2 }
    expect: granted
    policies: [ops-configure]
  - name: bot2 big change waits for ops
    principal: agent:bot2
    target: deployment/web
    action: CONFIGURE
    params: { version: 1.0.0, replicas: 5 }
    state: draft
    grant: true
    expect: pending
  - name: a stranger is denied
    principal: human:mallory
    target: deployment/web
    action: CONFIGURE
    params: { version: 1.0.0, replicas: 2 }
    expect: denied
`,
    );
    writeFileSync(
      join(t.dir, 'wrong-cases.yaml'),
      `cases:\n  - name: wrongly expected\n    principal: human:mallory\n    target: deployment/web\n    action: CONFIGURE\n    params: { version: 1.0.0, replicas: 2 }\n    expect: granted\n`,
    );
    writeFileSync(
      join(t.dir, 'bad.cedar'),
      'permit(principal, action, resource);\n\nforbid(principal, action == Action::"NOPE", resource);\n',
    );
  });
  afterAll(() => t.cleanup());

  it('check accepts a valid set and refuses a bad one with file and line (exit 1)', async () => {
    const ok = await ice(['policy', 'check', pol]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('ok  3 policies');
    const bad = await ice(['policy', 'check', join(t.dir, 'bad.cedar')]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/bad\.cedar:3:\d+ +for policy `.*bad\.cedar#2`, unrecognized action `Action::"NOPE"`/);
  });

  it('test prints pass/fail per case and exits 1 on a failure', async () => {
    const r = await ice(['policy', 'test', pol, join(t.dir, 'cases.yaml')]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout.match(/^pass /gm)).toHaveLength(4);
    expect(r.stdout).toContain('4 passed, 0 failed');
    const w = await ice(['policy', 'test', pol, join(t.dir, 'wrong-cases.yaml')]);
    expect(w.code).toBe(1);
    expect(w.stdout).toContain('FAIL  wrongly expected');
    expect(w.stdout).toContain('1 failed');
  });

  it('apply stores a version in the data dir; ls and show read it; a bad set is refused (exit 2)', async () => {
    const a = await ice(['policy', 'apply', pol, '--data', data, '--by', 'operator:dana']);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toMatch(/applied version 1 +3 policies/);
    const bad = await ice(['policy', 'apply', join(t.dir, 'bad.cedar'), '--data', data]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/bad\.cedar:3:\d+: for policy/);
    const ls = await ice(['policy', 'ls', '--data', data, '--json']);
    const rows = JSON.parse(ls.stdout) as Array<{ version: number; appliedBy: string; count: number }>;
    expect(rows).toEqual([expect.objectContaining({ version: 1, appliedBy: 'operator:dana', count: 3 })]);
    const show = await ice(['policy', 'show', '1', '--data', data]);
    expect(show.stdout).toContain('@id("replica-cap")');
    expect(show.stdout).toContain('human:alice');
    const missing = await ice(['policy', 'show', '7', '--data', data]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('no policy set version 7');
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import {
  ApprovalRefusedError,
  ManualClock,
  type Fact,
  type IntentInput,
  type Outcome,
  type PolicyRule,
  type Runtime,
  type RuntimeOptions,
} from '../../src/index.js';
import { MODES, iid, tempRuntime, until, type Mode, type TempRuntime } from '../helpers/runtime.js';
import { checkInvariants } from '../../src/testing/index.js';

/**
 * N-of-M approvals through the whole runtime, in both modes (embedded: a data dir; cluster: a
 * node on a nats-server of its own), with a ManualClock so the approval deadline is exact.
 * Every approval, refusal and expiry must leave a fact citing the pending decision, and
 * `causes` alone must lead from a transition back to its `intent.proposed`.
 */

const BOT = 'agent:bot';
const WEB = 'deployment/web';
const HOUR = 3_600_000;
const open: TempRuntime[] = [];
afterEach(async () => {
  for (const h of open.splice(0)) await h.close();
});

/** Big CONFIGUREs (replicas > 50) need `approval`; smaller ones run at once. */
const rule = (approval: PolicyRule['approval']): PolicyRule => ({
  id: 'big-needs-two',
  effect: 'require_approval',
  scope: 'deployment/*:CONFIGURE',
  when: ({ intent }) => (intent.params.replicas as number) > 50,
  reason: 'big changes need two people',
  ...(approval ? { approval } : {}),
});
const TWO_OF_THREE = { quorum: 2, approvers: ['human:alice', 'human:bob', 'human:carol'], ttlMs: HOUR };

async function setup(mode: Mode, approval: PolicyRule['approval'] = TWO_OF_THREE, extra: RuntimeOptions = {}) {
  const clock = new ManualClock();
  const h = await tempRuntime({ mode, clock, policies: [rule(approval)], ...extra });
  open.push(h);
  await h.rt.spawn(WEB);
  await h.rt.grants.issue({ subject: BOT, scope: `${WEB}:*` });
  return { h, clock };
}

const big = (over: Partial<IntentInput> = {}): IntentInput => ({
  id: iid('q'),
  proposer: BOT,
  target: WEB,
  action: 'CONFIGURE',
  params: { version: '3.0.0', replicas: 80 },
  ...over,
});

async function pending(rt: Runtime, intent = big()): Promise<{ intent: IntentInput; decisionFact: Fact; proposed: Fact }> {
  const o = await rt.propose(intent);
  expect(o.status, JSON.stringify(o)).toBe('pending');
  const facts = await rt.journal.factsOfIntent(intent.id);
  expect(facts.map((f) => f.type)).toEqual(['intent.proposed', 'decision']);
  return { intent, proposed: facts[0]!, decisionFact: facts[1]! };
}

const codes = (o: Outcome): string[] => ('reasons' in o ? o.reasons.map((r) => r.code) : []);
const transitions = async (rt: Runtime): Promise<Fact[]> => (await rt.journal.chain(WEB)).filter((f) => f.type === 'transition');

/** Follows `causes` (first cause) from `fact` back to its chain's start; the types met, newest first. */
async function causeTypes(rt: Runtime, fact: Fact): Promise<string[]> {
  const bySeq = new Map((await rt.journal.chain(fact.actor!)).map((f) => [f.seq, f]));
  const out: string[] = [];
  for (let f: Fact | undefined = fact; f; f = f.causes[0] === undefined ? undefined : bySeq.get(f.causes[0])) out.push(f.type);
  return out;
}

/** The error `p` rejects with, checked to be an ApprovalRefusedError (in-process) or to carry its code (forwarded). */
async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  const e = (await p.then(
    () => {
      throw new Error('expected a refusal');
    },
    (err: unknown) => err,
  )) as { code: string; message: string };
  expect(e.code).toMatch(/^E_APPROVAL_/);
  return e;
}

describe.each(MODES)('approval quorums (%s)', (mode) => {
  it('2 of 3: the first approval is recorded (1 of 2) and changes nothing; the second distinct approver executes it', async () => {
    const { h } = await setup(mode);
    const { rt } = h;
    const { intent, decisionFact, proposed } = await pending(rt);
    const decision = decisionFact.data.decision as { requirement?: unknown; verdict: string };
    expect(decision.requirement).toEqual({ policy: 'big-needs-two', ...TWO_OF_THREE, reason: 'big changes need two people' });

    const first = await rt.approvals.approve(intent.id, 'human:alice', 'fine by me');
    expect(first).toMatchObject({ status: 'pending', intentId: intent.id });
    expect(codes(first)).toEqual(['approval_recorded']);
    expect(first.status === 'pending' && first.reasons[0]!.message).toMatch(/^approval recorded, 1 of 2/);
    expect(await transitions(rt)).toHaveLength(0);
    const [listed, ...more] = await rt.approvals.list();
    expect(more).toEqual([]);
    expect(listed).toMatchObject({
      intentId: intent.id,
      requirement: { quorum: 2, approvers: TWO_OF_THREE.approvers, ttlMs: HOUR, policy: 'big-needs-two' },
      approvals: [{ by: 'human:alice', note: 'fine by me' }],
      remaining: 1,
      expiresAt: new Date(Date.parse(decisionFact.at) + HOUR).toISOString(),
    });
    expect(listed!.approvals[0]!.at).toMatch(/^\d{4}-/);

    const second = await rt.approvals.approve(intent.id, 'human:bob');
    expect(second).toMatchObject({ status: 'executed', intentId: intent.id, from: 'draft', to: 'draft' });
    expect(((await rt.actor(WEB))!.context as { replicas: number }).replicas).toBe(80);
    const facts = await rt.journal.factsOfIntent(intent.id);
    expect(facts.map((f) => f.type)).toEqual(['intent.proposed', 'decision', 'approval', 'approval', 'decision', 'transition']);
    const [, , a1, a2, d2, t] = facts as [Fact, Fact, Fact, Fact, Fact, Fact];
    expect(a1.data).toMatchObject({ approved: true, by: 'human:alice', note: 'fine by me', count: 1, quorum: 2 });
    expect(a2.data).toMatchObject({ approved: true, by: 'human:bob', count: 2, quorum: 2 });
    // every approval fact cites the pending decision it settles
    expect(a1.causes).toEqual([decisionFact.seq]);
    expect(a2.causes).toEqual([decisionFact.seq]);
    expect(d2.data.decision).toMatchObject({ verdict: 'granted', approvedBy: 'human:alice,human:bob' });
    // causes alone lead from the transition back to intent.proposed
    expect(await causeTypes(rt, t)).toEqual(['transition', 'decision', 'approval', 'decision', 'intent.proposed']);
    expect(decisionFact.causes).toEqual([proposed.seq]);
    expect(await rt.approvals.list()).toEqual([]);
    expect(await transitions(rt)).toHaveLength(1);
    expect((await rt.journal.verify()).ok).toBe(true);
    // the journal-only invariants (chaos kit) hold, the approval path's causes included
    if (mode === 'embedded') await rt.stop();
    const where = mode === 'embedded' ? { dataDir: h.dir } : { servers: h.server!.url };
    expect(await checkInvariants({ ...where, acknowledged: new Map([[intent.id, second]]) })).toMatchObject({ ok: true, executed: 1 });
  });

  it('two distinct approvals at once both count: one is recorded (1 of 2), the other reaches the quorum and executes', async () => {
    const { h } = await setup(mode);
    const { rt } = h;
    const { intent } = await pending(rt);
    const results = await Promise.all([rt.approvals.approve(intent.id, 'human:alice'), rt.approvals.approve(intent.id, 'human:bob')]);
    expect(results.map((o) => o.status).sort()).toEqual(['executed', 'pending']);
    expect(await transitions(rt)).toHaveLength(1);
    const approvals = (await rt.journal.factsOfIntent(intent.id)).filter((f) => f.type === 'approval');
    expect(approvals.map((f) => [f.data.count, f.data.quorum])).toEqual([
      [1, 2],
      [2, 2],
    ]);
    expect(new Set(approvals.map((f) => f.data.by))).toEqual(new Set(['human:alice', 'human:bob']));
  });

  it('the proposer never approves its own intent; a repeat counts once; someone not admitted is refused — each a fact', async () => {
    const { h } = await setup(mode, { quorum: 2, approvers: ['human:*'], ttlMs: HOUR });
    const { rt } = h;
    await rt.grants.issue({ subject: 'human:dave', scope: `${WEB}:CONFIGURE` });
    const { intent, decisionFact } = await pending(rt, big({ proposer: 'human:dave' }));

    const self = await refusal(rt.approvals.approve(intent.id, 'human:dave', 'mine'));
    expect(self.code).toBe('E_APPROVAL_SELF');
    expect(await rt.approvals.approve(intent.id, 'human:erin').catch((e: unknown) => e)).toMatchObject({ status: 'pending' });
    const repeat = await rt.approvals.approve(intent.id, 'human:erin', 'again').catch((e: unknown) => e);
    expect(repeat).toBeInstanceOf(ApprovalRefusedError);
    expect(repeat).toMatchObject({ code: 'E_APPROVAL_REPEAT', refusal: 'repeat', intentId: intent.id });
    const agent = await refusal(rt.approvals.approve(intent.id, 'agent:helper'));
    expect(agent.code).toBe('E_APPROVAL_NOT_ALLOWED');
    expect(agent.message).toMatch(/human:\*/);

    // still pending with one approval; nothing ran
    expect((await rt.approvals.list()).map((p) => [p.intentId, p.approvals.map((a) => a.by), p.remaining])).toEqual([
      [intent.id, ['human:erin'], 1],
    ]);
    expect(await transitions(rt)).toHaveLength(0);
    const refused = (await rt.journal.factsOfIntent(intent.id)).filter((f) => f.type === 'approval.refused');
    expect(refused.map((f) => [f.data.by, f.data.refusal, f.data.note ?? null, f.causes])).toEqual([
      ['human:dave', 'self_approval', 'mine', [decisionFact.seq]],
      ['human:erin', 'repeat', 'again', [decisionFact.seq]],
      ['agent:helper', 'not_allowed', null, [decisionFact.seq]],
    ]);
    expect(refused.every((f) => f.actor === WEB && f.origin === 'operator' && f.data.attempt === 'approve')).toBe(true);

    // a denial by someone not admitted is refused too; one by an approver ends it, citing the pending decision
    expect((await refusal(rt.approvals.deny(intent.id, 'agent:helper', 'no'))).code).toBe('E_APPROVAL_NOT_ALLOWED');
    const d = await rt.approvals.deny(intent.id, 'human:frank', 'not today');
    expect(d).toMatchObject({ status: 'denied' });
    expect(codes(d)).toEqual(['approval_refused']);
    const last = (await rt.journal.factsOfIntent(intent.id)).at(-1)!;
    expect(last).toMatchObject({ type: 'approval', causes: [decisionFact.seq], data: { approved: false, by: 'human:frank' } });
    expect(await rt.approvals.list()).toEqual([]);
  });

  it('group:<name> approvers are admitted through the injected membership; without it nobody is', async () => {
    const sre = new Set(['human:erin', 'human:gil']);
    const { h } = await setup(
      mode,
      { quorum: 2, approvers: ['group:sre'], ttlMs: HOUR },
      { isMember: (p, g) => g === 'sre' && sre.has(p) },
    );
    const { rt } = h;
    const { intent } = await pending(rt);
    expect((await refusal(rt.approvals.approve(intent.id, 'human:frank'))).code).toBe('E_APPROVAL_NOT_ALLOWED');
    expect(await rt.approvals.approve(intent.id, 'human:erin')).toMatchObject({ status: 'pending' });
    expect(await rt.approvals.approve(intent.id, 'human:gil')).toMatchObject({ status: 'executed' });

    const restarted = await h.restart({ isMember: undefined as never });
    const p2 = await pending(restarted);
    expect((await refusal(restarted.approvals.approve(p2.intent.id, 'human:erin'))).code).toBe('E_APPROVAL_NOT_ALLOWED');
  });

  it('after ttlMs the intent expires: a late approval is refused and the intent ends denied approval_expired, as facts', async () => {
    const { h, clock } = await setup(mode);
    const { rt } = h;
    const { intent, decisionFact } = await pending(rt);
    expect(await rt.approvals.approve(intent.id, 'human:alice')).toMatchObject({ status: 'pending' });
    clock.advance(HOUR - 1);
    expect((await rt.approvals.list()).map((p) => p.intentId)).toEqual([intent.id]);
    clock.advance(1);
    const late = await refusal(rt.approvals.approve(intent.id, 'human:bob', 'sorry, late'));
    expect(late.code).toBe('E_APPROVAL_EXPIRED');
    expect(await transitions(rt)).toHaveLength(0);
    const facts = await rt.journal.factsOfIntent(intent.id);
    expect(facts.map((f) => f.type)).toEqual(['intent.proposed', 'decision', 'approval', 'approval.expired', 'approval.refused']);
    const [, , , expired, refused] = facts as [Fact, Fact, Fact, Fact, Fact];
    expect(expired).toMatchObject({ origin: 'runtime', causes: [decisionFact.seq], data: { approvals: ['human:alice'], quorum: 2 } });
    expect(refused).toMatchObject({ causes: [expired.seq], data: { by: 'human:bob', note: 'sorry, late', refusal: 'expired' } });
    expect(await rt.approvals.list()).toEqual([]);
    // the intent's outcome is the denial, for repeats too
    await rt.store.drain();
    const again = await rt.propose(intent);
    expect(again).toMatchObject({ status: 'denied', seq: expired.seq });
    expect(codes(again)).toEqual(['approval_expired']);
    // and a later approval is told it is settled
    expect((await refusal(rt.approvals.approve(intent.id, 'human:carol'))).code).toBe('E_APPROVAL_NOT_PENDING');
  });

  it('expiry is noticed by listing too, and survives a restart (the deadline is in the stored record)', async () => {
    const { h, clock } = await setup(mode);
    const { intent, decisionFact } = await pending(h.rt);
    await h.restart({ clock });
    clock.advance(HOUR);
    expect(await h.rt.approvals.list()).toEqual([]);
    const facts = await h.rt.journal.factsOfIntent(intent.id);
    expect(facts.map((f) => f.type)).toEqual(['intent.proposed', 'decision', 'approval.expired']);
    expect(facts[2]!.causes).toEqual([decisionFact.seq]);
    await h.rt.store.drain();
    expect(codes(await h.rt.propose(intent))).toEqual(['approval_expired']);
  });

  it("a node's sweep denies an intent past its deadline with nobody asking", async () => {
    const { h, clock } = await setup(mode, TWO_OF_THREE, { approvalSweepMs: 20 });
    const { rt } = h;
    const { intent } = await pending(rt);
    clock.advance(HOUR);
    const expired = await until('the sweep expires it', async () =>
      (await rt.journal.factsOfIntent(intent.id)).find((f) => f.type === 'approval.expired'),
    );
    expect(expired.data).toMatchObject({ policy: 'big-needs-two', approvals: [] });
    expect(await rt.store.pending(intent.id)).toEqual([]);
  });

  it('an approval for an unknown intent is refused and recorded on the runtime chain', async () => {
    const { h } = await setup(mode);
    const { rt } = h;
    const e = await refusal(rt.approvals.approve('i-never-proposed', 'human:alice', 'hm'));
    expect(e.code).toBe('E_APPROVAL_UNKNOWN_INTENT');
    const f = (await rt.journal.chain(rt.runtimeChain)).filter((x) => x.type === 'approval.refused');
    expect(f.map((x) => [x.intentId, x.data.by, x.data.refusal, x.data.note])).toEqual([
      ['i-never-proposed', 'human:alice', 'unknown_intent', 'hm'],
    ]);
  });

  it('the quorum re-decides against the current state: the actor moved on, so the intent is denied', async () => {
    const { h } = await setup(mode);
    const { rt } = h;
    expect((await rt.propose(big({ params: { version: '1.0.0', replicas: 2 } }))).status).toBe('executed');
    const { intent } = await pending(rt);
    expect((await rt.propose({ id: iid('s'), proposer: BOT, target: WEB, action: 'SUBMIT', params: { author: 'bot' } })).status).toBe(
      'executed',
    );
    await rt.approvals.approve(intent.id, 'human:alice');
    const o = await rt.approvals.approve(intent.id, 'human:carol');
    expect(o.status).toBe('denied');
    expect(codes(o)).toContain('wrong_state');
    expect((await rt.actor(WEB))!.state).toBe('in_review');
    expect(((await rt.actor(WEB))!.context as { replicas: number }).replicas).toBe(2);
    expect((await rt.journal.factsOfIntent(intent.id)).map((f) => f.type)).toEqual([
      'intent.proposed',
      'decision',
      'approval',
      'approval',
      'decision',
    ]);
    expect(await rt.approvals.list()).toEqual([]);
  });

  it('the quorum re-decides against the current grants: a grant revoked meanwhile denies it', async () => {
    const { h } = await setup(mode);
    const { rt } = h;
    const { intent } = await pending(rt);
    await rt.approvals.approve(intent.id, 'human:alice');
    await rt.grants.revoke(rt.grants.list()[0]!.id, 'operator:x', 'changed my mind');
    const o = await rt.approvals.approve(intent.id, 'human:bob');
    expect(o.status).toBe('denied');
    expect(codes(o)).toContain('grant_revoked');
    expect(await transitions(rt)).toHaveLength(0);
    expect(await rt.approvals.list()).toEqual([]);
  });

  it('approvals so far survive a restart; the next distinct approver completes the quorum', async () => {
    const { h, clock } = await setup(mode);
    const { intent } = await pending(h.rt);
    await h.rt.approvals.approve(intent.id, 'human:alice', 'first');
    const rt = await h.restart({ clock });
    const [p] = await rt.approvals.list();
    expect(p).toMatchObject({ intentId: intent.id, approvals: [{ by: 'human:alice', note: 'first' }], remaining: 1 });
    expect((await refusal(rt.approvals.approve(intent.id, 'human:alice'))).code).toBe('E_APPROVAL_REPEAT');
    expect(await rt.approvals.approve(intent.id, 'human:carol')).toMatchObject({ status: 'executed' });
    expect(await transitions(rt)).toHaveLength(1);
  });

  it('a rule without an approval spec keeps the old behaviour: one approver, anyone but the proposer', async () => {
    const { h } = await setup(mode, {});
    const { rt } = h;
    const { intent, decisionFact } = await pending(rt);
    expect(decisionFact.data.decision).toMatchObject({ requirement: { quorum: 1, approvers: ['*'] } });
    expect((await refusal(rt.approvals.approve(intent.id, BOT))).code).toBe('E_APPROVAL_SELF');
    expect(await rt.approvals.approve(intent.id, 'operator:ops')).toMatchObject({ status: 'executed' });
  });
});

describe.runIf(MODES.includes('cluster'))('approval quorums across two cluster nodes', () => {
  it('approvals arriving at the node that does not own the actor reach the quorum there; a restart of the owner keeps them', async () => {
    const clock = new ManualClock();
    const h = await tempRuntime({ mode: 'cluster', clock, policies: [rule(TWO_OF_THREE)] });
    open.push(h);
    const n2 = await h.node('n2', { clock });
    await h.rt.spawn(WEB);
    const g = await h.rt.grants.issue({ subject: BOT, scope: `${WEB}:*` });
    await until('n2 sees the grant', () => n2.grants.list().some((x) => x.id === g.id));
    const { intent, decisionFact } = await pending(h.rt);
    expect(h.rt.hosting(WEB)).toBeDefined();
    expect(n2.hosting(WEB)).toBeUndefined();

    // through n2, which forwards to the owner n1
    expect(await n2.approvals.approve(intent.id, 'human:alice', 'via n2')).toMatchObject({ status: 'pending' });
    expect((await refusal(n2.approvals.approve(intent.id, 'human:alice'))).code).toBe('E_APPROVAL_REPEAT');
    expect((await refusal(n2.approvals.approve(intent.id, BOT))).code).toBe('E_APPROVAL_SELF');
    expect(n2.hosting(WEB)).toBeUndefined();
    await until('n2 lists the approval so far', async () => (await n2.approvals.list())[0]?.approvals.length === 1);

    // the owner restarts: its approvals so far are in the store
    const n1 = await h.restart({ clock });
    const [p] = await n1.approvals.list();
    expect(p).toMatchObject({ approvals: [{ by: 'human:alice', note: 'via n2' }], remaining: 1 });
    const o = await n2.approvals.approve(intent.id, 'human:bob');
    expect(o).toMatchObject({ status: 'executed', intentId: intent.id });
    const facts = await n2.journal.factsOfIntent(intent.id);
    expect(facts.map((f) => f.type)).toEqual([
      'intent.proposed',
      'decision',
      'approval',
      'approval.refused',
      'approval.refused',
      'approval',
      'decision',
      'transition',
    ]);
    expect(facts.filter((f) => f.type.startsWith('approval')).every((f) => f.causes[0] === decisionFact.seq)).toBe(true);
    expect(await causeTypes(n2, facts.at(-1)!)).toEqual(['transition', 'decision', 'approval', 'decision', 'intent.proposed']);
    await until('no node lists it', async () => (await n1.approvals.list()).length === 0 && (await n2.approvals.list()).length === 0);
    expect((await n2.journal.verify()).ok).toBe(true);
  });
});

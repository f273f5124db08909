import { afterEach, describe, expect, it } from 'vitest';
import { exampleActors } from '../../actors/index.js';
import { Authority, AuthorityKey, GrantBook } from '../../src/authority/index.js';
import type { ActorView } from '../../src/authority/index.js';
import {
  ApprovalRefusedError,
  ConflictError,
  ManualClock,
  NotFoundError,
  Subjects,
  intentDigest,
  sequentialIds,
  type Fact,
  type Grant,
  type IntentInput,
  type Outcome,
  type PolicyRule,
  type Runtime,
  type RuntimeOptions,
  type SnapshotRecord,
} from '../../src/index.js';
import { validateIntent } from '../../src/authority/validate.js';
import { ActorRegistry } from '../../src/host/index.js';
import { DEFAULT_LIMITS } from '../../src/protocol/index.js';
import { NatsTransport } from '../../src/transport/index.js';
import { embeddedCore } from '../helpers/core.js';
import { MODES, iid, tempRuntime, until, type Mode, type TempRuntime } from '../helpers/runtime.js';

/**
 * The authority through the whole runtime (`rt.propose`), with a ManualClock so expiry is
 * exact, in every mode of MODES: embedded (a data dir) and cluster (a node on a nats-server
 * of its own). Every denial is also checked for having no effect: facts, but no transition,
 * and the snapshot in the store unchanged.
 *
 * The cluster-only suite at the end covers what needs two nodes on one JetStream: a run
 * living on another node, two nodes racing for a grant's last use, approvals settled through
 * a node that does not own the actor, principal-bound subjects on every node.
 */

const BOT = 'agent:bot';
const CONFIG = { version: '1.0.0', replicas: 2 };

interface Ctx {
  /** The runtime under test (a new one after `restart`). */
  readonly rt: Runtime;
  h: TempRuntime;
  clock: ManualClock;
  /**
   * Stops the runtime and opens it again on the same data: the data dir (embedded), or a node
   * of the same name on the same JetStream (cluster).
   */
  restart(extra?: RuntimeOptions): Promise<Runtime>;
}

const open: TempRuntime[] = [];
afterEach(async () => {
  for (const h of open.splice(0)) await h.close();
});

async function setupIn(mode: Mode, extra: RuntimeOptions = {}): Promise<Ctx> {
  const clock = new ManualClock();
  const h = await tempRuntime({ mode, clock, ...extra });
  open.push(h);
  return {
    get rt() {
      return h.rt;
    },
    h,
    clock,
    restart: (more = {}) => h.restart(more),
  };
}

const transitionsOf = async (rt: Runtime, actor: string): Promise<Fact[]> =>
  (await rt.journal.chain(actor)).filter((f) => f.type === 'transition');

async function propose(rt: Runtime, intent: Omit<IntentInput, 'id'> & { id?: string }): Promise<Outcome & { id: string }> {
  const id = intent.id ?? iid('a');
  const o = await rt.propose({ ...intent, id });
  return { ...o, id };
}

const codes = (o: Outcome): string[] => ('reasons' in o ? o.reasons.map((r) => r.code) : []);

/**
 * Proposes and asserts a denial with `code` that changed nothing: the intent left an
 * `intent.proposed` and a `decision` fact on the actor's chain, no transition, and the
 * actor's snapshot (in memory and in the store) is exactly what it was.
 */
async function expectDenied(ctx: Pick<Ctx, 'rt' | 'h'>, intent: Omit<IntentInput, 'id'> & { id?: string }, code: string): Promise<Outcome> {
  const { rt, h } = ctx;
  const before = {
    detail: await rt.actor(intent.target),
    stored: await h.storedSnapshot(intent.target),
    transitions: (await transitionsOf(rt, intent.target)).length,
  };
  const o = await propose(rt, intent);
  expect(o.status, JSON.stringify(o)).toBe('denied');
  expect(codes(o)).toContain(code);
  const facts = await rt.journal.factsOfIntent(o.id);
  expect(facts.map((f) => f.type)).toEqual(['intent.proposed', 'decision']);
  expect(facts.every((f) => f.actor === intent.target)).toBe(true);
  expect(o.status === 'denied' && o.seq).toBe(facts[1]!.seq);
  expect((facts[1]!.data.decision as { verdict: string }).verdict).toBe('denied');
  expect(await transitionsOf(rt, intent.target)).toHaveLength(before.transitions);
  const after = await rt.actor(intent.target);
  expect(after?.state).toBe(before.detail?.state);
  // the chain moved on by the denial's facts; the actor did not
  expect(after?.seq).toBe(facts[1]!.seq);
  expect(after?.snapshot).toEqual(before.detail?.snapshot);
  const stored = await h.storedSnapshot(intent.target);
  expect(stateOf(stored)).toEqual(stateOf(before.stored));
  expect(stored?.seq).toBe(facts[1]!.seq);
  return o;
}

async function expectExecuted(rt: Runtime, intent: Omit<IntentInput, 'id'> & { id?: string }): Promise<Outcome & { id: string }> {
  const o = await propose(rt, intent);
  expect(o.status, JSON.stringify(o)).toBe('executed');
  const facts = await rt.journal.factsOfIntent(o.id);
  // a grant with maxUses: the use it spent is a fact of the same turn
  const limited = o.status === 'executed' && rt.grants.list().find((g) => g.id === o.grantId)?.maxUses !== undefined;
  expect(facts.map((f) => f.type)).toEqual(['intent.proposed', 'decision', ...(limited ? ['grant.used'] : []), 'transition']);
  expect(o.status === 'executed' && o.seq).toBe(facts.at(-1)!.seq);
  return o;
}

/** What a stored snapshot record says about the actor (not where in its chain it was written). */
const stateOf = (r: SnapshotRecord | undefined) => r && { status: r.status, state: r.state, snapshot: r.snapshot };

const grantOf = (rt: Runtime, id: string): Grant => {
  const g = rt.grants.list().find((x) => x.id === id);
  if (!g) throw new Error(`grant ${id} not on ${rt.node}`);
  return g;
};

describe.each(MODES)('authority (%s)', (mode) => {
  const setup = (extra: RuntimeOptions = {}) => setupIn(mode, extra);

  describe('grants by scope', () => {
    it('exact scope: only that action on that actor', async () => {
      const ctx = await setup();
      const { rt } = ctx;
      await rt.spawn('deployment/web');
      await rt.spawn('deployment/api');
      await rt.grants.issue({ subject: BOT, scope: 'deployment/web:CONFIGURE' });
      const ok = await expectExecuted(rt, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG });
      expect(ok.status === 'executed' && ok.grantId).toBe(rt.grants.list()[0]!.id);
      await expectDenied(ctx, { proposer: BOT, target: 'deployment/web', action: 'SUBMIT', params: { author: 'bot' } }, 'no_grant');
      await expectDenied(ctx, { proposer: BOT, target: 'deployment/api', action: 'CONFIGURE', params: CONFIG }, 'no_grant');
    });

    it('`*` in the id', async () => {
      const ctx = await setup();
      const { rt } = ctx;
      for (const a of ['deployment/web-1', 'deployment/web-2', 'deployment/api-1']) await rt.spawn(a);
      await rt.grants.issue({ subject: BOT, scope: 'deployment/web-*:CONFIGURE' });
      await expectExecuted(rt, { proposer: BOT, target: 'deployment/web-1', action: 'CONFIGURE', params: CONFIG });
      await expectExecuted(rt, { proposer: BOT, target: 'deployment/web-2', action: 'CONFIGURE', params: CONFIG });
      await expectDenied(ctx, { proposer: BOT, target: 'deployment/api-1', action: 'CONFIGURE', params: CONFIG }, 'no_grant');
      await expectDenied(ctx, { proposer: BOT, target: 'deployment/web-1', action: 'SUBMIT', params: { author: 'x' } }, 'no_grant');
    });

    it('`*` action', async () => {
      const ctx = await setup();
      const { rt } = ctx;
      await rt.spawn('deployment/web');
      await rt.spawn('deployment/api');
      await rt.grants.issue({ subject: BOT, scope: 'deployment/web:*' });
      await expectExecuted(rt, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG });
      const s = await expectExecuted(rt, { proposer: BOT, target: 'deployment/web', action: 'SUBMIT', params: { author: 'bot' } });
      expect(s.status === 'executed' && [s.from, s.to]).toEqual(['draft', 'in_review']);
      await expectDenied(ctx, { proposer: BOT, target: 'deployment/api', action: 'CONFIGURE', params: CONFIG }, 'no_grant');
    });

    it('`*` whole scope covers every actor and action', async () => {
      const ctx = await setup();
      const { rt } = ctx;
      await rt.spawn('deployment/web');
      await rt.spawn('run/r1');
      await rt.grants.issue({ subject: BOT, scope: '*' });
      await expectExecuted(rt, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG });
      await expectExecuted(rt, { proposer: BOT, target: 'run/r1', action: 'PROVISION', params: { resources: [] } });
      await expectDenied(ctx, { proposer: 'agent:other', target: 'run/r1', action: 'LOAD_CONTEXT', params: {} }, 'no_grant');
    });
  });

  describe('subject patterns', () => {
    it('`agent:*` matches any agent and nobody else', async () => {
      const ctx = await setup();
      const { rt } = ctx;
      await rt.spawn('deployment/web');
      await rt.grants.issue({ subject: 'agent:*', scope: 'deployment/web:CONFIGURE' });
      await expectExecuted(rt, { proposer: 'agent:a', target: 'deployment/web', action: 'CONFIGURE', params: CONFIG });
      await expectExecuted(rt, { proposer: 'agent:b.v2', target: 'deployment/web', action: 'CONFIGURE', params: CONFIG });
      await expectDenied(ctx, { proposer: 'human:a', target: 'deployment/web', action: 'CONFIGURE', params: CONFIG }, 'no_grant');
    });

    it('an exact subject matches only itself; `*` matches everyone', async () => {
      const ctx = await setup();
      const { rt } = ctx;
      await rt.spawn('deployment/web');
      await rt.spawn('deployment/api');
      await rt.grants.issue({ subject: 'agent:a', scope: 'deployment/web:CONFIGURE' });
      await rt.grants.issue({ subject: '*', scope: 'deployment/api:CONFIGURE' });
      await expectExecuted(rt, { proposer: 'agent:a', target: 'deployment/web', action: 'CONFIGURE', params: CONFIG });
      await expectDenied(ctx, { proposer: 'agent:ab', target: 'deployment/web', action: 'CONFIGURE', params: CONFIG }, 'no_grant');
      await expectExecuted(rt, { proposer: 'svc:billing', target: 'deployment/api', action: 'CONFIGURE', params: CONFIG });
    });
  });

  describe('expiry', () => {
    it('ttlMs: usable until expiresAt, denied with grant_expired from then on', async () => {
      const ctx = await setup();
      const { rt, clock } = ctx;
      await rt.spawn('deployment/web');
      const g = await rt.grants.issue({ subject: BOT, scope: 'deployment/web:CONFIGURE', ttlMs: 60_000 });
      expect(Date.parse(g.expiresAt!)).toBe(clock.now() + 60_000);
      await expectExecuted(rt, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG });
      clock.advance(59_999);
      await expectExecuted(rt, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG });
      clock.advance(1);
      await expectDenied(ctx, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG }, 'grant_expired');
      clock.advance(3_600_000);
      await expectDenied(ctx, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG }, 'grant_expired');
    });

    it('absolute expiresAt', async () => {
      const ctx = await setup();
      const { rt, clock } = ctx;
      await rt.spawn('deployment/web');
      await rt.grants.issue({ subject: BOT, scope: 'deployment/web:*', expiresAt: new Date(clock.now() + 1000).toISOString() });
      await expectExecuted(rt, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG });
      clock.advance(1500);
      const o = await expectDenied(ctx, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG }, 'grant_expired');
      expect(codes(o)).toContain('no_grant');
    });

    it('an expired grant does not hide a later valid one', async () => {
      const ctx = await setup();
      const { rt, clock } = ctx;
      await rt.spawn('deployment/web');
      await rt.grants.issue({ subject: BOT, scope: 'deployment/web:CONFIGURE', ttlMs: 10 });
      clock.advance(10);
      const g2 = await rt.grants.issue({ subject: BOT, scope: 'deployment/*:CONFIGURE' });
      const o = await expectExecuted(rt, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG });
      expect(o.status === 'executed' && o.grantId).toBe(g2.id);
    });
  });

  describe('revocation', () => {
    it('a revoked grant denies with grant_revoked, also after a restart', async () => {
      const ctx = await setup();
      await ctx.rt.spawn('deployment/web');
      const g = await ctx.rt.grants.issue({ subject: BOT, scope: 'deployment/web:CONFIGURE' });
      await expectExecuted(ctx.rt, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG });
      const r = await ctx.rt.grants.revoke(g.id, 'human:ops', 'compromised');
      expect(r.revokedAt).toBeDefined();
      expect(r.revokedBy).toBe('human:ops');
      await expectDenied(ctx, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG }, 'grant_revoked');
      // grant changes are facts on the runtime chain of the node that made them
      const revokedFacts = (await ctx.rt.journal.chain(ctx.rt.runtimeChain)).filter((f) => f.type === 'grant.revoked');
      expect(revokedFacts.map((f) => [f.actor, f.data.grantId])).toEqual([[ctx.rt.runtimeChain, g.id]]);

      await ctx.restart();
      expect(grantOf(ctx.rt, g.id).revokedAt).toBe(r.revokedAt);
      await expectDenied(ctx, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG }, 'grant_revoked');
    });

    it('revoking an unknown grant throws NotFoundError; revoking twice keeps the first revocation', async () => {
      const ctx = await setup();
      await expect(ctx.rt.grants.revoke('nope')).rejects.toBeInstanceOf(NotFoundError);
      const g = await ctx.rt.grants.issue({ subject: BOT, scope: '*' });
      const r1 = await ctx.rt.grants.revoke(g.id, 'a');
      ctx.clock.advance(1000);
      const r2 = await ctx.rt.grants.revoke(g.id, 'b');
      expect(r2).toEqual(r1);
      expect((await ctx.rt.journal.chain(ctx.rt.runtimeChain)).filter((f) => f.type === 'grant.revoked')).toHaveLength(1);
    });

    it('issuing a grant id twice is a conflict', async () => {
      const ctx = await setup();
      await ctx.rt.grants.issue({ id: 'g-fixed', subject: BOT, scope: '*' });
      await expect(ctx.rt.grants.issue({ id: 'g-fixed', subject: BOT, scope: '*' })).rejects.toBeInstanceOf(ConflictError);
      expect(ctx.rt.grants.list()).toHaveLength(1);
    });
  });

  describe('max uses', () => {
    it('executes exactly N times, then grant_exhausted', async () => {
      const ctx = await setup();
      const { rt } = ctx;
      await rt.spawn('deployment/web');
      const g = await rt.grants.issue({ subject: BOT, scope: 'deployment/web:CONFIGURE', maxUses: 3 });
      const results: string[] = [];
      const executed: string[] = [];
      for (let i = 0; i < 5; i++) {
        const o = await propose(rt, {
          proposer: BOT,
          target: 'deployment/web',
          action: 'CONFIGURE',
          params: { version: `1.0.${i}`, replicas: 1 },
        });
        results.push(o.status === 'denied' ? `denied:${codes(o).join('+')}` : o.status);
        if (o.status === 'executed') executed.push(o.id);
      }
      expect(results.filter((r) => r === 'executed')).toHaveLength(3);
      expect(results.slice(0, 3)).toEqual(['executed', 'executed', 'executed']);
      for (const r of results.slice(3)) expect(r).toContain('grant_exhausted');
      expect(grantOf(rt, g.id)).toMatchObject({ uses: 3, usedBy: executed });
      expect(await transitionsOf(rt, 'deployment/web')).toHaveLength(3);
      expect(((await rt.actor('deployment/web'))!.context as { version: string }).version).toBe('1.0.2');
    });

    it('the use count survives a restart', async () => {
      const ctx = await setup();
      await ctx.rt.spawn('deployment/web');
      const g = await ctx.rt.grants.issue({ subject: BOT, scope: 'deployment/web:CONFIGURE', maxUses: 3 });
      await expectExecuted(ctx.rt, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG });
      await expectExecuted(ctx.rt, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG });
      await ctx.restart();
      expect(grantOf(ctx.rt, g.id).uses).toBe(2);
      await expectExecuted(ctx.rt, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG });
      await expectDenied(ctx, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG }, 'grant_exhausted');
      await ctx.restart();
      expect(grantOf(ctx.rt, g.id).uses).toBe(3);
      await expectDenied(ctx, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG }, 'grant_exhausted');
    });

    it('denied and pending decisions do not spend a use', async () => {
      const ctx = await setup({
        policies: [
          {
            id: 'big-needs-human',
            effect: 'require_approval',
            scope: 'deployment/*:CONFIGURE',
            when: ({ intent }) => (intent.params.replicas as number) > 50,
          },
        ],
      });
      const { rt } = ctx;
      await rt.spawn('deployment/web');
      const g = await rt.grants.issue({ subject: BOT, scope: 'deployment/web:*', maxUses: 1 });
      // wrong state (with the grant found) and pending: no use spent
      await expectDenied(
        ctx,
        { proposer: BOT, target: 'deployment/web', action: 'DEPLOY', params: { environment: 'staging' } },
        'wrong_state',
      );
      const p = await propose(rt, {
        proposer: BOT,
        target: 'deployment/web',
        action: 'CONFIGURE',
        params: { version: '1.0.0', replicas: 99 },
      });
      expect(p.status).toBe('pending');
      expect(grantOf(rt, g.id)).toMatchObject({ uses: 0 });
      expect(grantOf(rt, g.id).usedBy ?? []).toEqual([]);
      const e = await expectExecuted(rt, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG });
      expect(grantOf(rt, g.id)).toMatchObject({ uses: 1, usedBy: [e.id] });
      await expectDenied(ctx, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG }, 'grant_exhausted');
    });

    it('concurrent proposals against a 2-use grant: exactly 2 execute', async () => {
      const ctx = await setup();
      const { rt } = ctx;
      const actors = Array.from({ length: 6 }, (_, i) => `deployment/c${i}`);
      for (const a of actors) await rt.spawn(a);
      await rt.grants.issue({ subject: BOT, scope: 'deployment/*:CONFIGURE', maxUses: 2 });
      const outs = await Promise.all(actors.map((a) => propose(rt, { proposer: BOT, target: a, action: 'CONFIGURE', params: CONFIG })));
      const executed = outs.filter((o) => o.status === 'executed');
      expect(executed).toHaveLength(2);
      expect(outs.filter((o) => o.status === 'denied' && codes(o).includes('grant_exhausted'))).toHaveLength(4);
      const g = rt.grants.list()[0]!;
      expect(g.uses).toBe(2);
      expect([...(g.usedBy ?? [])].sort()).toEqual(executed.map((o) => o.id).sort());
    });
  });

  describe('run binding', () => {
    async function runSetup() {
      const ctx = await setup();
      const { rt } = ctx;
      await rt.spawn('run/r1', { goal: 'ship' });
      await rt.spawn('run/r2');
      await rt.spawn('deployment/web');
      await rt.grants.issue({ subject: BOT, scope: 'run/*:*' });
      await rt.grants.issue({ subject: BOT, scope: 'deployment/web:*', runId: 'r1' });
      return ctx;
    }

    const toExecuting = async (rt: Runtime, run: string) => {
      await expectExecuted(rt, { proposer: BOT, target: run, action: 'PROVISION', params: { resources: [] } });
      await expectExecuted(rt, { proposer: BOT, target: run, action: 'LOAD_CONTEXT', params: { sources: [] } });
      await expectExecuted(rt, { proposer: BOT, target: run, action: 'EXECUTE' });
    };

    it('an intent without a runId, or with another run, does not match a run-bound grant', async () => {
      const ctx = await runSetup();
      await toExecuting(ctx.rt, 'run/r1');
      await toExecuting(ctx.rt, 'run/r2');
      const none = await expectDenied(ctx, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG }, 'no_grant');
      expect(codes(none)).toContain('grant_run_mismatch');
      const other = await expectDenied(
        ctx,
        { proposer: BOT, target: 'deployment/web', runId: 'r2', action: 'CONFIGURE', params: CONFIG },
        'no_grant',
      );
      expect(codes(other)).toContain('grant_run_mismatch');
    });

    it('run_not_executing before EXECUTE and after SUBMIT; executed while EXECUTING', async () => {
      const ctx = await runSetup();
      const { rt } = ctx;
      const intent = { proposer: BOT, target: 'deployment/web', runId: 'r1', action: 'CONFIGURE', params: CONFIG };
      await expectDenied(ctx, intent, 'run_not_executing');
      await expectExecuted(rt, { proposer: BOT, target: 'run/r1', action: 'PROVISION', params: { resources: [] } });
      await expectDenied(ctx, intent, 'run_not_executing');
      await expectExecuted(rt, { proposer: BOT, target: 'run/r1', action: 'LOAD_CONTEXT', params: { sources: [] } });
      await expectDenied(ctx, intent, 'run_not_executing');
      await expectExecuted(rt, { proposer: BOT, target: 'run/r1', action: 'EXECUTE' });
      expect((await rt.actor('run/r1'))!.state).toBe('EXECUTING');
      const ok = await expectExecuted(rt, intent);
      expect(ok.status === 'executed' && ok.to).toBe('draft');
      await expectExecuted(rt, { proposer: BOT, target: 'run/r1', action: 'SUBMIT', params: {} });
      await expectDenied(ctx, intent, 'run_not_executing');
    });

    it('run_not_executing after a runtime abort of the run', async () => {
      const ctx = await runSetup();
      const { rt } = ctx;
      await toExecuting(rt, 'run/r1');
      await expectExecuted(rt, { proposer: BOT, target: 'deployment/web', runId: 'r1', action: 'CONFIGURE', params: CONFIG });
      const f = await rt.signal('run/r1', { type: 'RUNTIME_ABORT', reason: 'kill switch' }, 'operator pressed stop');
      expect(f.type).toBe('transition');
      expect((await rt.actor('run/r1'))!.state).toBe('TERMINATED_BY_RUNTIME');
      await expectDenied(
        ctx,
        { proposer: BOT, target: 'deployment/web', runId: 'r1', action: 'CONFIGURE', params: CONFIG },
        'run_not_executing',
      );
    });

    it('run_not_found when the bound run does not exist', async () => {
      const ctx = await setup();
      await ctx.rt.spawn('deployment/web');
      await ctx.rt.grants.issue({ subject: BOT, scope: 'deployment/web:*', runId: 'ghost' });
      await expectDenied(
        ctx,
        { proposer: BOT, target: 'deployment/web', runId: 'ghost', action: 'CONFIGURE', params: CONFIG },
        'run_not_found',
      );
    });
  });

  describe('state preconditions', () => {
    it('wrong_state: no transition recorded and the actor unchanged', async () => {
      const ctx = await setup();
      const { rt } = ctx;
      await rt.spawn('deployment/web', { service: 'web' });
      await rt.grants.issue({ subject: BOT, scope: 'deployment/web:*' });
      // not reachable from draft at all
      await expectDenied(
        ctx,
        { proposer: BOT, target: 'deployment/web', action: 'DEPLOY', params: { environment: 'staging' } },
        'wrong_state',
      );
      // reachable, but the guard refuses (not configured)
      await expectDenied(ctx, { proposer: BOT, target: 'deployment/web', action: 'SUBMIT', params: { author: 'bot' } }, 'wrong_state');
      await expectExecuted(rt, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG });
      await expectExecuted(rt, { proposer: BOT, target: 'deployment/web', action: 'SUBMIT', params: { author: 'bot' } });
      // the author approving their own change
      await expectDenied(ctx, { proposer: BOT, target: 'deployment/web', action: 'APPROVE', params: { reviewer: 'bot' } }, 'wrong_state');
      expect((await rt.actor('deployment/web'))!.state).toBe('in_review');
      expect(((await rt.actor('deployment/web'))!.context as { reviewers: string[] }).reviewers).toEqual([]);
    });

    it('runtime-only RUNTIME_ABORT: refused as an intent, taken from rt.signal only in live run states', async () => {
      const ctx = await setup();
      const { rt } = ctx;
      await rt.grants.issue({ subject: BOT, scope: '*' });
      const drive = async (run: string, actions: string[]) => {
        for (const action of actions) {
          const params = action === 'ABORT' ? { reason: 'stop' } : {};
          await expectExecuted(rt, { proposer: BOT, target: run, action, params });
        }
      };
      const cases: Array<[string, string[], boolean]> = [
        ['run/l0', [], true],
        ['run/l1', ['PROVISION'], true],
        ['run/l2', ['PROVISION', 'LOAD_CONTEXT'], true],
        ['run/l3', ['PROVISION', 'LOAD_CONTEXT', 'EXECUTE'], true],
        ['run/l4', ['PROVISION', 'LOAD_CONTEXT', 'EXECUTE', 'SUBMIT'], true],
        ['run/c', ['PROVISION', 'LOAD_CONTEXT', 'EXECUTE', 'SUBMIT', 'COMMIT'], false],
        ['run/a', ['ABORT'], false],
        ['run/t', ['ABORT', 'TERMINATE'], false],
      ];
      for (const [run, actions, live] of cases) {
        await rt.spawn(run);
        await drive(run, actions);
        const rejected = await propose(rt, { proposer: BOT, target: run, action: 'RUNTIME_ABORT', params: { reason: 'x' } });
        expect(rejected.status === 'rejected' && rejected.issues[0]!.code).toBe('runtime_only_action');
        const before = (await rt.actor(run))!;
        if (live) {
          const f = await rt.signal(run, { type: 'RUNTIME_ABORT', reason: 'kill' }, 'test');
          expect(f.data).toMatchObject({ from: before.state, to: 'TERMINATED_BY_RUNTIME' });
          expect((await rt.actor(run))!.status).toBe('done');
          expect((await ctx.h.storedSnapshot(run))!.seq).toBe(f.seq);
        } else {
          await expect(rt.signal(run, { type: 'RUNTIME_ABORT', reason: 'kill' }, 'test')).rejects.toBeInstanceOf(ConflictError);
          expect((await rt.actor(run))!.snapshot).toEqual(before.snapshot);
          expect((await rt.actor(run))!.seq).toBe(before.seq);
        }
      }
    });

    it('a stopped actor is denied with actor_not_active', async () => {
      const ctx = await setup();
      await ctx.rt.spawn('deployment/web');
      await ctx.rt.grants.issue({ subject: BOT, scope: '*' });
      await ctx.rt.stopActor('deployment/web', 'decommissioned');
      const chain = await ctx.rt.journal.chain('deployment/web');
      expect(chain.map((f) => f.type)).toEqual(['actor.started', 'actor.stopped']);
      expect(chain[1]).toMatchObject({
        actor: 'deployment/web',
        seq: 2,
        prev: chain[0]!.hash,
        data: { reason: 'decommissioned', state: 'draft' },
      });
      expect(await ctx.rt.actor('deployment/web')).toMatchObject({ status: 'stopped', seq: 2 });
      expect(await ctx.h.storedSnapshot('deployment/web')).toMatchObject({ status: 'stopped', seq: 2 });
      await expectDenied(ctx, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG }, 'actor_not_active');
    });
  });

  describe('policies', () => {
    it('a deny rule beats a grant', async () => {
      const policies: PolicyRule[] = [
        {
          id: 'no-huge',
          effect: 'deny',
          scope: 'deployment/*:CONFIGURE',
          when: ({ intent }) => (intent.params.replicas as number) > 10,
          reason: 'too many replicas',
        },
      ];
      const ctx = await setup({ policies });
      const { rt } = ctx;
      await rt.spawn('deployment/web');
      await rt.grants.issue({ subject: BOT, scope: '*' });
      const o = await expectDenied(
        ctx,
        { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: { version: '1.0.0', replicas: 11 } },
        'policy_deny',
      );
      const d = (await rt.journal.factsOfIntent((o as { intentId: string }).intentId)).find((f) => f.type === 'decision')!.data
        .decision as {
        policyRule?: string;
      };
      expect(d.policyRule).toBe('no-huge');
      expect(o.status === 'denied' && o.reasons[0]!.message).toBe('too many replicas');
      await expectExecuted(rt, {
        proposer: BOT,
        target: 'deployment/web',
        action: 'CONFIGURE',
        params: { version: '1.0.0', replicas: 10 },
      });
    });

    it('a deny rule whose `when` throws applies (fail closed); an allow rule whose `when` throws does not', async () => {
      const boom = () => {
        throw new Error('rule bug');
      };
      const ctx = await setup({
        policies: [
          { id: 'broken-deny', effect: 'deny', scope: 'deployment/a:*', when: boom },
          { id: 'broken-allow', effect: 'allow', scope: 'deployment/b:*', when: boom },
        ],
      });
      await ctx.rt.spawn('deployment/a');
      await ctx.rt.spawn('deployment/b');
      await ctx.rt.grants.issue({ subject: BOT, scope: 'deployment/a:*' });
      await expectDenied(ctx, { proposer: BOT, target: 'deployment/a', action: 'CONFIGURE', params: CONFIG }, 'policy_deny');
      await expectDenied(ctx, { proposer: BOT, target: 'deployment/b', action: 'CONFIGURE', params: CONFIG }, 'no_grant');
    });

    it('an allow rule stands in for a grant, only for what it matches', async () => {
      const policies: PolicyRule[] = [{ id: 'humans-review', effect: 'allow', proposer: 'human:*', scope: 'deployment/*:APPROVE' }];
      const ctx = await setup({ policies });
      const { rt } = ctx;
      await rt.spawn('deployment/web');
      await rt.grants.issue({ subject: BOT, scope: 'deployment/web:CONFIGURE' });
      await rt.grants.issue({ subject: BOT, scope: 'deployment/web:SUBMIT' });
      await expectExecuted(rt, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG });
      await expectExecuted(rt, { proposer: BOT, target: 'deployment/web', action: 'SUBMIT', params: { author: 'bot' } });
      await expectDenied(
        ctx,
        { proposer: 'agent:sneaky', target: 'deployment/web', action: 'APPROVE', params: { reviewer: 'x' } },
        'no_grant',
      );
      await expectDenied(
        ctx,
        { proposer: 'human:alice', target: 'deployment/web', action: 'REJECT', params: { reviewer: 'alice', reason: 'r' } },
        'no_grant',
      );
      const o = await expectExecuted(rt, {
        proposer: 'human:alice',
        target: 'deployment/web',
        action: 'APPROVE',
        params: { reviewer: 'alice' },
      });
      expect(o.status === 'executed' && o.grantId).toBeUndefined();
      const d = (await rt.journal.factsOfIntent(o.id)).find((f) => f.type === 'decision')!.data.decision as {
        policyRule?: string;
        reasons: Array<{ code: string }>;
      };
      expect(d.policyRule).toBe('humans-review');
      expect(d.reasons.map((r) => r.code)).toContain('policy_allow');
    });
  });

  describe('approvals', () => {
    async function pendingSetup() {
      const policies: PolicyRule[] = [
        {
          id: 'big-needs-human',
          effect: 'require_approval',
          scope: 'deployment/*:CONFIGURE',
          when: ({ intent }) => (intent.params.replicas as number) > 50,
        },
      ];
      const ctx = await setup({ policies });
      await ctx.rt.spawn('deployment/web');
      await ctx.rt.grants.issue({ subject: BOT, scope: 'deployment/web:*' });
      const before = { detail: await ctx.rt.actor('deployment/web'), disk: await ctx.h.storedSnapshot('deployment/web') };
      const p = await propose(ctx.rt, {
        proposer: BOT,
        target: 'deployment/web',
        action: 'CONFIGURE',
        params: { version: '3.0.0', replicas: 80 },
      });
      expect(p.status).toBe('pending');
      expect(codes(p)).toContain('approval_required');
      // pending changes nothing yet
      expect((await ctx.rt.journal.factsOfIntent(p.id)).map((f) => f.type)).toEqual(['intent.proposed', 'decision']);
      expect((await ctx.rt.actor('deployment/web'))!.snapshot).toEqual(before.detail!.snapshot);
      expect(stateOf(await ctx.h.storedSnapshot('deployment/web'))).toEqual(stateOf(before.disk));
      expect((await ctx.rt.approvals.list()).map((a) => a.intentId)).toEqual([p.id]);
      // a repeat of the same intent answers pending again, no second decision
      const again = await ctx.rt.propose({
        id: p.id,
        proposer: BOT,
        target: 'deployment/web',
        action: 'CONFIGURE',
        params: { version: '3.0.0', replicas: 80 },
      });
      const { id: _id, ...first } = p;
      expect(again).toEqual(first);
      return { ctx, p };
    }

    it('two approvals of one pending intent at once execute it once; the second is told it is no longer pending', async () => {
      const { ctx, p } = await pendingSetup();
      const results = await Promise.allSettled([
        ctx.rt.approvals.approve(p.id, 'human:alice'),
        ctx.rt.approvals.approve(p.id, 'human:bob'),
      ]);
      const ok = results.filter((r) => r.status === 'fulfilled');
      expect(ok).toHaveLength(1);
      expect((ok[0] as PromiseFulfilledResult<{ status: string }>).value.status).toBe('executed');
      const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(refused.reason).toBeInstanceOf(ApprovalRefusedError);
      expect(refused.reason).toMatchObject({ code: 'E_APPROVAL_NOT_PENDING', refusal: 'not_pending' });
      expect(String(refused.reason.message)).toMatch(/no longer pending/);
      expect(await transitionsOf(ctx.rt, 'deployment/web')).toHaveLength(1);
      const types = (await ctx.rt.journal.factsOfIntent(p.id)).map((f) => f.type);
      expect(types.filter((t) => t === 'approval')).toHaveLength(1);
    });

    it('require_approval → pending; approve executes it', async () => {
      const { ctx, p } = await pendingSetup();
      const { rt } = ctx;
      const o = await rt.approvals.approve(p.id, 'human:alice', 'looks fine');
      expect(o.status).toBe('executed');
      expect(o.status === 'executed' && [o.from, o.to]).toEqual(['draft', 'draft']);
      expect(((await rt.actor('deployment/web'))!.context as { replicas: number }).replicas).toBe(80);
      const types = (await rt.journal.factsOfIntent(p.id)).map((f) => f.type);
      expect(types).toEqual(['intent.proposed', 'decision', 'approval', 'decision', 'transition']);
      const approval = (await rt.journal.factsOfIntent(p.id)).find((f) => f.type === 'approval')!;
      expect(approval.data).toMatchObject({ approved: true, by: 'human:alice', note: 'looks fine' });
      const d2 = (await rt.journal.factsOfIntent(p.id)).filter((f) => f.type === 'decision')[1]!.data.decision as {
        verdict: string;
        approvedBy?: string;
      };
      expect(d2).toMatchObject({ verdict: 'granted', approvedBy: 'human:alice' });
      expect(await rt.approvals.list()).toEqual([]);
      // the stored outcome now answers repeats (once the store settled its derived writes)
      await rt.store.drain();
      const again = await rt.propose({
        id: p.id,
        proposer: BOT,
        target: 'deployment/web',
        action: 'CONFIGURE',
        params: { version: '3.0.0', replicas: 80 },
      });
      expect(again).toEqual(o);
      await expect(rt.approvals.approve(p.id, 'human:bob')).rejects.toMatchObject({ code: 'E_APPROVAL_NOT_PENDING' });
      expect(await transitionsOf(rt, 'deployment/web')).toHaveLength(1);
      expect((await rt.journal.verify()).ok).toBe(true);
    });

    it('require_approval → pending; deny refuses it and nothing changes', async () => {
      const { ctx, p } = await pendingSetup();
      const { rt } = ctx;
      const before = { detail: await rt.actor('deployment/web'), disk: await ctx.h.storedSnapshot('deployment/web') };
      const o = await rt.approvals.deny(p.id, 'human:alice', 'not in the change window');
      expect(o.status).toBe('denied');
      expect(codes(o)).toEqual(['approval_refused']);
      expect((await rt.journal.factsOfIntent(p.id)).map((f) => f.type)).toEqual(['intent.proposed', 'decision', 'approval']);
      expect((await rt.journal.factsOfIntent(p.id))[2]!.data).toMatchObject({
        approved: false,
        by: 'human:alice',
        reason: 'not in the change window',
      });
      expect(await transitionsOf(rt, 'deployment/web')).toHaveLength(0);
      expect((await rt.actor('deployment/web'))!.snapshot).toEqual(before.detail!.snapshot);
      expect(stateOf(await ctx.h.storedSnapshot('deployment/web'))).toEqual(stateOf(before.disk));
      expect(await rt.approvals.list()).toEqual([]);
      await rt.store.drain();
      const again = await rt.propose({
        id: p.id,
        proposer: BOT,
        target: 'deployment/web',
        action: 'CONFIGURE',
        params: { version: '3.0.0', replicas: 80 },
      });
      expect(again).toEqual(o);
      await expect(rt.approvals.approve(p.id, 'human:bob')).rejects.toMatchObject({ code: 'E_APPROVAL_NOT_PENDING' });
    });

    it('a pending approval survives a restart and can be approved afterwards', async () => {
      const { ctx, p } = await pendingSetup();
      await ctx.restart();
      expect((await ctx.rt.approvals.list()).map((a) => a.intentId)).toEqual([p.id]);
      const o = await ctx.rt.approvals.approve(p.id, 'human:alice');
      expect(o.status).toBe('executed');
      // and the final outcome is what answers the id after the next restart
      await ctx.restart();
      expect(await ctx.rt.approvals.list()).toEqual([]);
      const again = await ctx.rt.propose({
        id: p.id,
        proposer: BOT,
        target: 'deployment/web',
        action: 'CONFIGURE',
        params: { version: '3.0.0', replicas: 80 },
      });
      expect(again).toEqual(o);
      expect(await transitionsOf(ctx.rt, 'deployment/web')).toHaveLength(1);
    });

    it('approval re-decides: a grant revoked while pending makes the approval a denial', async () => {
      const { ctx, p } = await pendingSetup();
      const { rt } = ctx;
      await rt.grants.revoke(rt.grants.list()[0]!.id);
      const o = await rt.approvals.approve(p.id, 'human:alice');
      expect(o.status).toBe('denied');
      expect(codes(o)).toContain('grant_revoked');
      expect(await transitionsOf(rt, 'deployment/web')).toHaveLength(0);
      expect(await rt.approvals.list()).toEqual([]);
    });

    it('the deployment kind policy: an agent deploying to production waits for a human', async () => {
      const ctx = await setup();
      const { rt } = ctx;
      await rt.spawn('deployment/web');
      await rt.grants.issue({ subject: BOT, scope: 'deployment/web:*' });
      await rt.grants.issue({ subject: 'human:alice', scope: 'deployment/web:APPROVE' });
      await expectExecuted(rt, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG });
      await expectExecuted(rt, { proposer: BOT, target: 'deployment/web', action: 'SUBMIT', params: { author: 'bot' } });
      await expectExecuted(rt, { proposer: 'human:alice', target: 'deployment/web', action: 'APPROVE', params: { reviewer: 'alice' } });
      const p = await propose(rt, { proposer: BOT, target: 'deployment/web', action: 'DEPLOY', params: { environment: 'production' } });
      expect(p.status).toBe('pending');
      expect((await rt.actor('deployment/web'))!.state).toBe('approved');
      const o = await rt.approvals.approve(p.id, 'human:bob');
      expect(o.status === 'executed' && [o.from, o.to]).toEqual(['approved', 'rolling_out']);
    });
  });

  describe('rejections of bad input', () => {
    it('each is an intent.rejected fact on the runtime chain, at the chain and seq its outcome names; nothing else changes', async () => {
      const ctx = await setup();
      const { rt } = ctx;
      await rt.spawn('deployment/web');
      await rt.grants.issue({ subject: BOT, scope: '*' });
      const webBefore = await rt.journal.chain('deployment/web');
      const storedBefore = await ctx.h.storedSnapshot('deployment/web');
      const cases: Array<[string, Record<string, unknown>, { path: string; code: string }]> = [
        ['not an intent', { nonsense: true }, { path: '', code: 'unrecognized_keys' }],
        [
          'no proposer',
          { id: iid('r'), target: 'deployment/web', action: 'CONFIGURE', params: CONFIG },
          { path: 'proposer', code: 'invalid_type' },
        ],
        [
          'params invalid for the action',
          { id: iid('r'), proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: { version: 'x', replicas: 0 } },
          { path: 'params.version', code: 'invalid_format' },
        ],
        [
          'unknown kind',
          { id: iid('r'), proposer: BOT, target: 'nope/x', action: 'CONFIGURE', params: CONFIG },
          { path: 'target', code: 'unknown_kind' },
        ],
        [
          'unknown action',
          { id: iid('r'), proposer: BOT, target: 'deployment/web', action: 'FLY', params: {} },
          { path: 'action', code: 'unknown_action' },
        ],
        [
          'no such actor',
          { id: iid('r'), proposer: BOT, target: 'deployment/ghost', action: 'CONFIGURE', params: CONFIG },
          { path: 'target', code: 'unknown_actor' },
        ],
      ];
      const seqs: number[] = [];
      for (const [name, raw, issue] of cases) {
        const o = await rt.propose(raw);
        expect(o.status, `${name}: ${JSON.stringify(o)}`).toBe('rejected');
        if (o.status !== 'rejected') continue;
        expect(o.issues, name).toContainEqual(expect.objectContaining(issue));
        expect(o.intentId, name).toBe(raw.id);
        expect(o.chain, name).toBe(rt.runtimeChain);
        const f = await rt.journal.fact(o.chain!, o.seq!);
        expect(f, name).toMatchObject({ type: 'intent.rejected', actor: rt.runtimeChain, seq: o.seq, data: { issues: o.issues } });
        expect(f!.intentId, name).toBe(raw.id);
        seqs.push(o.seq!);
      }
      // consecutive on the runtime chain (nothing else wrote it meanwhile), and linked
      expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
      const runtimeFacts = await rt.journal.chain(rt.runtimeChain);
      for (const f of runtimeFacts.slice(1)) expect(f.prev).toBe(runtimeFacts[runtimeFacts.indexOf(f) - 1]!.hash);
      expect(await rt.journal.chain('deployment/web')).toEqual(webBefore);
      expect(await ctx.h.storedSnapshot('deployment/web')).toEqual(storedBefore);
      expect(await rt.journal.chain('deployment/ghost')).toEqual([]);
      expect((await rt.listActors()).map((a) => a.address)).toEqual(['deployment/web']);
      expect((await rt.journal.verify()).ok).toBe(true);
    });

    it('the facts of a rejected intent are found by its id', async () => {
      const ctx = await setup();
      const id = iid('r');
      const o = await ctx.rt.propose({ id, proposer: BOT, target: 'deployment/ghost', action: 'CONFIGURE', params: CONFIG });
      expect(o.status).toBe('rejected');
      const found = (await ctx.rt.journal.factsOfIntent(id)).map((f) => [f.type, f.actor]);
      expect(found).toEqual([['intent.rejected', ctx.rt.runtimeChain]]);
      // by its chain and seq it is always found
      expect(o.status === 'rejected' && (await ctx.rt.journal.fact(o.chain!, o.seq!))).toMatchObject({
        type: 'intent.rejected',
        intentId: id,
      });
    });
  });

  describe('idempotency', () => {
    it('the same id with the same content answers the stored outcome and executes once; other content is an idempotency_conflict', async () => {
      const ctx = await setup();
      const { rt } = ctx;
      await rt.spawn('deployment/web');
      await rt.grants.issue({ subject: BOT, scope: 'deployment/web:*' });
      const intent = { id: iid('same'), proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG };
      const first = await expectExecuted(rt, intent);
      const { id: _id, ...outcome } = first;
      expect(await rt.propose(intent)).toEqual(outcome);
      // at once, several times: still one execution
      for (const o of await Promise.all([1, 2, 3].map(() => rt.propose(intent)))) expect(o).toEqual(outcome);
      const conflict = await rt.propose({ ...intent, params: { version: '9.9.9', replicas: 9 } });
      expect(conflict).toMatchObject({ status: 'rejected', intentId: intent.id, chain: rt.runtimeChain });
      expect(conflict.status === 'rejected' && conflict.issues.map((i) => i.code)).toEqual(['idempotency_conflict']);
      const rejectedFact = await rt.journal.fact(rt.runtimeChain, conflict.status === 'rejected' ? conflict.seq! : 0);
      expect(rejectedFact).toMatchObject({ type: 'intent.rejected', intentId: intent.id });
      expect(await transitionsOf(rt, 'deployment/web')).toHaveLength(1);
      expect(((await rt.actor('deployment/web'))!.context as { replicas: number }).replicas).toBe(2);
      const onChain = (await rt.journal.chain('deployment/web')).filter((f) => f.intentId === intent.id);
      expect(onChain.map((f) => f.type)).toEqual(['intent.proposed', 'decision', 'transition']);
      // by id: those three, and the rejection of the conflicting reuse on the runtime chain
      const byId = (await rt.journal.factsOfIntent(intent.id)).map((f) => [f.type, f.actor]);
      const onActor = [
        ['intent.proposed', 'deployment/web'],
        ['decision', 'deployment/web'],
        ['transition', 'deployment/web'],
      ];
      expect(byId).toEqual([...onActor, ['intent.rejected', rt.runtimeChain]]);
      // and after a restart, from the store
      await ctx.restart();
      expect(await ctx.rt.propose(intent)).toEqual(outcome);
      expect(await transitionsOf(ctx.rt, 'deployment/web')).toHaveLength(1);
    });

    it('a denied intent repeated is answered, not decided again', async () => {
      const ctx = await setup();
      const { rt } = ctx;
      await rt.spawn('deployment/web');
      const intent = { id: iid('den'), proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG };
      const { id: _id, ...denied } = (await expectDenied(ctx, intent, 'no_grant')) as Outcome & { id: string };
      // a grant issued since does not turn the stored denial into an execution
      await rt.grants.issue({ subject: BOT, scope: 'deployment/web:*' });
      expect(await rt.propose(intent)).toEqual(denied);
      expect((await rt.journal.factsOfIntent(intent.id)).map((f) => f.type)).toEqual(['intent.proposed', 'decision']);
      expect(await transitionsOf(rt, 'deployment/web')).toHaveLength(0);
    });

    it('a retry of an intent paid by a maxUses grant is not charged twice', async () => {
      const ctx = await setup();
      const { rt } = ctx;
      await rt.spawn('deployment/web');
      const g = await rt.grants.issue({ subject: BOT, scope: 'deployment/web:CONFIGURE', maxUses: 1 });
      const intent = { id: iid('paid'), proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG };
      const first = await expectExecuted(rt, intent);
      const { id: _id, ...outcome } = first;
      expect(await rt.propose(intent)).toEqual(outcome);
      expect(grantOf(rt, g.id)).toMatchObject({ uses: 1, usedBy: [intent.id] });
      await expectDenied(ctx, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG }, 'grant_exhausted');
      expect(grantOf(rt, g.id)).toMatchObject({ uses: 1, usedBy: [intent.id] });
    });
  });
});

/**
 * What only a cluster has: several nodes on one JetStream, each owning some actors. Every
 * node may receive any request (the intake queue group, admin requests); the owner decides
 * and executes. These are the cases the cluster used to lack against one process.
 */
describe.runIf(MODES.includes('cluster'))('authority across two cluster nodes (n1, n2 on one JetStream)', () => {
  async function twoNodes(extra: RuntimeOptions = {}) {
    const h = await tempRuntime({ mode: 'cluster', ...extra });
    open.push(h);
    const n2 = await h.node('n2');
    return { h, n1: h.rt, n2 };
  }

  /** Waits until `rt`'s grant watch shows grant `id` (satisfying `ok`). */
  const sees = (rt: Runtime, id: string, ok: (g: Grant) => boolean = () => true): Promise<Grant> =>
    until(`${rt.node} sees grant ${id}`, () => {
      const g = rt.grants.list().find((x) => x.id === id);
      return g && ok(g) ? g : undefined;
    });

  it('a run-bound grant reads the run where it lives: the run on n2, the target actor on n1', async () => {
    const { h, n1, n2 } = await twoNodes();
    await n2.spawn('run/r1', { goal: 'ship' });
    await n1.spawn('deployment/web');
    const gRun = await n1.grants.issue({ subject: BOT, scope: 'run/*:*' });
    const bound = await n1.grants.issue({ subject: BOT, scope: 'deployment/web:*', runId: 'r1' });
    await sees(n2, gRun.id);
    await sees(n2, bound.id);
    const where = async () => ({
      run: [(await n1.actor('run/r1'))?.active, (await n2.actor('run/r1'))?.active],
      web: [(await n1.actor('deployment/web'))?.active, (await n2.actor('deployment/web'))?.active],
    });
    expect(await where()).toEqual({ run: [false, true], web: [true, false] });

    const intent = { proposer: BOT, target: 'deployment/web', runId: 'r1', action: 'CONFIGURE', params: CONFIG };
    await expectDenied({ rt: n1, h }, intent, 'run_not_executing');
    await expectExecuted(n2, { proposer: BOT, target: 'run/r1', action: 'PROVISION', params: { resources: [] } });
    await expectExecuted(n2, { proposer: BOT, target: 'run/r1', action: 'LOAD_CONTEXT', params: { sources: [] } });
    await expectDenied({ rt: n1, h }, intent, 'run_not_executing');
    await expectExecuted(n2, { proposer: BOT, target: 'run/r1', action: 'EXECUTE' });
    expect((await n2.actor('run/r1'))!.state).toBe('EXECUTING');
    // n1 decides for deployment/web and reads run/r1 from the store: EXECUTING
    const ok = await expectExecuted(n1, intent);
    expect(ok.status === 'executed' && ok.grantId).toBe(bound.id);
    // through n2's door as well: forwarded to n1, same reading
    await expectExecuted(n2, intent);
    expect(await where()).toEqual({ run: [false, true], web: [true, false] });
    await expectExecuted(n2, { proposer: BOT, target: 'run/r1', action: 'SUBMIT', params: {} });
    await expectDenied({ rt: n1, h }, intent, 'run_not_executing');
    // a runtime abort of the run on n2, sent through n1 (forwarded to the owner)
    const submitted = (await n2.actor('run/r1'))!.state;
    expect(await n1.signal('run/r1', { type: 'RUNTIME_ABORT', reason: 'kill switch' }, 'operator')).toMatchObject({
      type: 'transition',
      actor: 'run/r1',
      data: { from: submitted, to: 'TERMINATED_BY_RUNTIME' },
    });
    expect(await where()).toEqual({ run: [false, true], web: [true, false] });
    await expectDenied({ rt: n2, h }, intent, 'run_not_executing');
    expect(await transitionsOf(n1, 'deployment/web')).toHaveLength(2);
  });

  it('two nodes racing for the last use of a grant: exactly one executes, the other is denied grant_exhausted', async () => {
    const { n1, n2 } = await twoNodes();
    for (let round = 0; round < 3; round++) {
      const [warm, a, b] = ['warm', 'a', 'b'].map((x) => `deployment/race${round}-${x}`) as [string, string, string];
      await n1.spawn(warm);
      await n1.spawn(a);
      await n2.spawn(b);
      const g = await n1.grants.issue({ subject: BOT, scope: `deployment/race${round}-*:CONFIGURE`, maxUses: 2 });
      await sees(n2, g.id);
      const first = await expectExecuted(n1, { proposer: BOT, target: warm, action: 'CONFIGURE', params: CONFIG });
      // a on n1, b on n2: each owner spends the last use in its own turn
      const [oa, ob] = await Promise.all([
        propose(n1, { proposer: BOT, target: a, action: 'CONFIGURE', params: CONFIG }),
        propose(n2, { proposer: BOT, target: b, action: 'CONFIGURE', params: CONFIG }),
      ]);
      expect([oa.status, ob.status].sort(), JSON.stringify([oa, ob])).toEqual(['denied', 'executed']);
      const [winner, loser] = oa.status === 'executed' ? [oa, ob] : [ob, oa];
      expect(winner.status === 'executed' && winner.grantId).toBe(g.id);
      expect(codes(loser)).toContain('grant_exhausted');
      const loserActor = loser === oa ? a : b;
      const winnerActor = loser === oa ? b : a;
      expect(await transitionsOf(n1, loserActor)).toHaveLength(0);
      expect(await transitionsOf(n2, winnerActor)).toHaveLength(1);
      expect((await n2.journal.factsOfIntent(loser.id)).map((f) => f.type)).toEqual(['intent.proposed', 'decision']);
      // the shared record, as each node's watch shows it
      for (const rt of [n1, n2]) {
        const seen = await sees(rt, g.id, (x) => x.uses === 2);
        expect(seen.usedBy).toEqual([first.id, winner.id]);
      }
      // the winner retried through the other door: its stored outcome, not a second use
      const { id: winnerId, ...winnerOutcome } = winner;
      const retryVia = winner === oa ? n2 : n1;
      expect(await retryVia.propose({ id: winnerId, proposer: BOT, target: winnerActor, action: 'CONFIGURE', params: CONFIG })).toEqual(
        winnerOutcome,
      );
      expect(grantOf(n1, g.id)).toMatchObject({ uses: 2, usedBy: [first.id, winner.id] });
    }
  });

  it('pending intents are approved and denied through a node that does not own the actor', async () => {
    const policies: PolicyRule[] = [
      {
        id: 'big-needs-human',
        effect: 'require_approval',
        scope: 'deployment/*:CONFIGURE',
        when: ({ intent }) => (intent.params.replicas as number) > 50,
      },
    ];
    const { n1, n2 } = await twoNodes({ policies });
    await n1.spawn('deployment/web');
    const g = await n1.grants.issue({ subject: BOT, scope: 'deployment/web:*' });
    await sees(n2, g.id);
    const big = (version: string, replicas: number) => ({
      proposer: BOT,
      target: 'deployment/web',
      action: 'CONFIGURE',
      params: { version, replicas },
    });
    const p = await propose(n2, big('3.0.0', 80));
    const q = await propose(n1, big('4.0.0', 90));
    expect([p.status, q.status]).toEqual(['pending', 'pending']);
    const listed = async (rt: Runtime) => (await rt.approvals.list()).map((x) => x.intentId).sort();
    await until('n2 lists both pending intents', async () => (await listed(n2)).length === 2);
    expect(await listed(n2)).toEqual([p.id, q.id].sort());
    expect(await listed(n1)).toEqual([p.id, q.id].sort());

    const o = await n2.approvals.approve(p.id, 'human:alice', 'looks fine');
    expect(o).toMatchObject({ status: 'executed', intentId: p.id, from: 'draft', to: 'draft', grantId: g.id });
    expect(await n1.actor('deployment/web')).toMatchObject({ active: true, context: { replicas: 80 } });
    expect((await n2.actor('deployment/web'))?.active).toBe(false);
    const pFacts = await n2.journal.factsOfIntent(p.id);
    expect(pFacts.map((f) => f.type)).toEqual(['intent.proposed', 'decision', 'approval', 'decision', 'transition']);
    expect(pFacts[2]!.data).toMatchObject({ approved: true, by: 'human:alice', note: 'looks fine' });
    expect(pFacts[3]!.data.decision).toMatchObject({ verdict: 'granted', approvedBy: 'human:alice' });

    const d = await n2.approvals.deny(q.id, 'human:bob', 'not in the change window');
    expect(d).toMatchObject({ status: 'denied', intentId: q.id });
    expect(codes(d)).toEqual(['approval_refused']);
    expect((await n1.journal.factsOfIntent(q.id)).map((f) => f.type)).toEqual(['intent.proposed', 'decision', 'approval']);
    expect(await transitionsOf(n1, 'deployment/web')).toHaveLength(1);

    await until('both nodes list no pending intent', async () => (await listed(n1)).length === 0 && (await listed(n2)).length === 0);
    await expect(n2.approvals.approve(p.id, 'human:bob')).rejects.toMatchObject({ code: 'E_APPROVAL_NOT_PENDING' });
    await expect(n2.approvals.deny(q.id, 'human:bob', 'again')).rejects.toMatchObject({ code: 'E_APPROVAL_NOT_PENDING' });
  });

  it('an approved or refused intent, repeated through any node, answers its final outcome', async () => {
    const policies: PolicyRule[] = [{ id: 'all-need-human', effect: 'require_approval', scope: 'deployment/*:CONFIGURE' }];
    const { n1, n2 } = await twoNodes({ policies });
    await n1.spawn('deployment/web');
    const g = await n1.grants.issue({ subject: BOT, scope: 'deployment/web:*' });
    await sees(n2, g.id);
    const p = { id: iid('ap'), proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG };
    const q = { id: iid('dn'), proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: { version: '2.0.0', replicas: 3 } };
    expect((await n1.propose(p)).status).toBe('pending');
    expect((await n1.propose(q)).status).toBe('pending');
    const approved = await n1.approvals.approve(p.id, 'human:alice');
    const refused = await n1.approvals.deny(q.id, 'human:alice', 'no');
    expect([approved.status, refused.status]).toEqual(['executed', 'denied']);
    await until('the pending records are gone', async () => (await n2.approvals.list()).length === 0);
    await n1.store.drain();
    // the store's outcome of each id is the final one, from whichever node reads it
    for (const rt of [n1, n2]) {
      expect(await rt.store.outcome(p.id), rt.node).toMatchObject({ outcome: approved });
      expect(await rt.store.outcome(q.id), rt.node).toMatchObject({ outcome: refused });
      expect(await rt.propose(p), rt.node).toEqual(approved);
      expect(await rt.propose(q), rt.node).toEqual(refused);
    }
    // whatever the answer, nothing executed twice
    expect(await transitionsOf(n2, 'deployment/web')).toHaveLength(1);
  });

  it('a stop through another node is an actor.stopped fact on the owner; rejections land on the receiving node’s runtime chain', async () => {
    const { h, n1, n2 } = await twoNodes();
    await n1.spawn('deployment/web');
    const g = await n1.grants.issue({ subject: BOT, scope: '*' });
    await sees(n2, g.id);
    await n2.stopActor('deployment/web', 'decommissioned');
    for (const rt of [n1, n2]) {
      const chain = await rt.journal.chain('deployment/web');
      expect(chain.map((f) => f.type)).toEqual(['actor.started', 'actor.stopped']);
      expect(chain[1]).toMatchObject({ actor: 'deployment/web', seq: 2, prev: chain[0]!.hash, data: { reason: 'decommissioned' } });
    }
    expect(await h.storedSnapshot('deployment/web')).toMatchObject({ status: 'stopped', seq: 2 });
    await expectDenied({ rt: n2, h }, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG }, 'actor_not_active');
    await expectDenied({ rt: n1, h }, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG }, 'actor_not_active');

    const client = await NatsTransport.connect({ servers: h.server!.url, name: 'ice-test-client' });
    try {
      const chains = new Set<string>();
      for (let i = 0; i < 64 && chains.size < 2; i++) {
        const id = iid('bad');
        const o = (
          await client.request(
            'ice.intent.deployment.web',
            { id, proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: { version: 'x', replicas: 0 } },
            { timeoutMs: 10_000 },
          )
        ).data as Outcome;
        expect(o).toMatchObject({ status: 'rejected', intentId: id });
        if (o.status !== 'rejected') continue;
        expect([n1.runtimeChain, n2.runtimeChain]).toContain(o.chain);
        chains.add(o.chain!);
        // the same fact, read through either node
        const f1 = await n1.journal.fact(o.chain!, o.seq!);
        expect(f1).toMatchObject({ type: 'intent.rejected', intentId: id, actor: o.chain, data: { issues: o.issues } });
        expect(await n2.journal.fact(o.chain!, o.seq!)).toEqual(f1);
      }
      expect([...chains].sort()).toEqual(['_runtime/n1', '_runtime/n2']);
      // each node's own door: its own runtime chain
      for (const rt of [n1, n2]) {
        const o = await rt.accept({ id: iid('bad'), proposer: BOT, target: 'deployment/ghost', action: 'CONFIGURE', params: CONFIG });
        expect(o, rt.node).toMatchObject({
          status: 'rejected',
          chain: rt.runtimeChain,
          issues: [expect.objectContaining({ code: 'unknown_actor' })],
        });
        expect(o.status === 'rejected' && (await n1.journal.fact(o.chain!, o.seq!))).toMatchObject({ type: 'intent.rejected' });
      }
    } finally {
      await client.close();
    }
    expect((await n2.journal.verify()).ok).toBe(true);
  });

  it('requirePrincipalSubject: every node refuses plain ice.intent.… subjects; principal-bound ones pass', async () => {
    const { h, n1, n2 } = await twoNodes({ requirePrincipalSubject: true });
    await n1.spawn('deployment/web');
    const g = await n1.grants.issue({ subject: BOT, scope: 'deployment/web:CONFIGURE' });
    await sees(n2, g.id);
    const client = await NatsTransport.connect({ servers: h.server!.url, name: 'ice-test-client' });
    try {
      const refusedBy = new Set<string>();
      for (let i = 0; i < 64 && refusedBy.size < 2; i++) {
        const id = iid('bare');
        const o = (
          await client.request(
            'ice.intent.deployment.web',
            { id, proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG },
            { timeoutMs: 10_000 },
          )
        ).data as Outcome;
        expect(o).toMatchObject({
          status: 'rejected',
          intentId: id,
          issues: [expect.objectContaining({ code: 'unauthenticated_subject' })],
        });
        if (o.status !== 'rejected') continue;
        refusedBy.add(o.chain!);
        expect(await n1.journal.fact(o.chain!, o.seq!)).toMatchObject({ type: 'intent.rejected', intentId: id });
      }
      expect([...refusedBy].sort()).toEqual([n1.runtimeChain, n2.runtimeChain].sort());
      // each node's own door, without the bus (rt.accept takes it as arriving on ice.intent.…)
      for (const rt of [n1, n2]) {
        const id = iid('door');
        const o = await rt.accept({ id, proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG });
        expect(o, rt.node).toMatchObject({
          status: 'rejected',
          intentId: id,
          chain: rt.runtimeChain,
          issues: [expect.objectContaining({ code: 'unauthenticated_subject' })],
        });
      }
      expect(await transitionsOf(n1, 'deployment/web')).toHaveLength(0);

      // the principal-bound subject of the proposer passes, whichever node takes it
      const id = iid('as');
      const ok = (
        await client.request(
          Subjects.intentAs(BOT, 'deployment/web'),
          { id, proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG },
          { timeoutMs: 10_000 },
        )
      ).data as Outcome;
      expect(ok).toMatchObject({ status: 'executed', intentId: id });
      // another principal's subject is refused
      const other = (
        await client.request(
          Subjects.intentAs('agent:other', 'deployment/web'),
          { id: iid('as'), proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG },
          { timeoutMs: 10_000 },
        )
      ).data as Outcome;
      expect(other).toMatchObject({ status: 'rejected', issues: [expect.objectContaining({ code: 'proposer_mismatch' })] });
    } finally {
      await client.close();
    }
    // rt.propose speaks on the principal-bound subject: accepted on both nodes
    await expectExecuted(n1, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG });
    await expectExecuted(n2, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG });
    expect(await transitionsOf(n2, 'deployment/web')).toHaveLength(3);
  });
});

/** The authority and the grant book without a runtime (mode-independent: no store involved but the book's). */
describe('Authority directly', () => {
  it('signs every verdict, binds it to the digest, and stamps the ttl', async () => {
    const c = embeddedCore();
    try {
      const key = AuthorityKey.generate();
      const authority = new Authority({ key, grants: c.grants, clock: c.clock, ids: c.ids, decisionTtlMs: 5000 });
      const v = validateIntent(
        { id: 'x1', proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG },
        new ActorRegistry(exampleActors),
        DEFAULT_LIMITS,
      );
      if (!v.ok) throw new Error('invalid');
      const view = (can: boolean): ActorView => ({ exists: true, status: 'active', state: 'draft', context: {}, can: () => can });
      const denied = authority.decide({ intent: v.intent, digest: v.digest, event: v.event, actor: view(true) });
      expect(denied.verdict).toBe('denied');
      expect(key.verify(denied)).toBe(true);
      await c.grants.issue({ subject: BOT, scope: 'deployment/*:CONFIGURE' });
      const granted = authority.decide({ intent: v.intent, digest: v.digest, event: v.event, actor: view(true) });
      expect(granted).toMatchObject({
        verdict: 'granted',
        intentId: 'x1',
        intentDigest: intentDigest(v.intent),
        authority: key.keyId,
        actorState: 'draft',
      });
      expect(Date.parse(granted.expiresAt) - Date.parse(granted.issuedAt)).toBe(5000);
      expect(key.verify(granted)).toBe(true);
      expect(key.verify({ ...granted, intentDigest: 'f'.repeat(64) })).toBe(false);
      const wrong = authority.decide({ intent: v.intent, digest: v.digest, event: v.event, actor: view(false) });
      expect(wrong.verdict).toBe('denied');
      expect(wrong.reasons.map((r) => r.code)).toContain('wrong_state');
      const stopped = authority.decide({ intent: v.intent, digest: v.digest, event: v.event, actor: { ...view(true), status: 'stopped' } });
      expect(stopped.reasons.map((r) => r.code)).toEqual(['actor_not_active']);
    } finally {
      await c.close();
    }
  });

  it('GrantBook.find prefers the oldest usable grant and reports the near misses; spend charges an intent once', async () => {
    const c = embeddedCore();
    try {
      const { clock, grants: book } = c;
      const revoked = await book.issue({ subject: BOT, scope: '*' });
      await book.revoke(revoked.id);
      clock.advance(1);
      await book.issue({ subject: BOT, scope: '*', ttlMs: 5 });
      clock.advance(1);
      await book.issue({ subject: BOT, scope: '*', runId: 'r9' });
      clock.advance(1);
      const used = await book.issue({ subject: BOT, scope: 'run/*:EXECUTE', maxUses: 1 });
      expect(await book.spend(used.id, 'someone-else')).toMatchObject({ uses: 1, usedBy: ['someone-else'] });
      const v = validateIntent(
        { id: 'y', proposer: BOT, target: 'run/r', action: 'EXECUTE' },
        new ActorRegistry(exampleActors),
        DEFAULT_LIMITS,
      );
      if (!v.ok) throw new Error('invalid');
      clock.advance(10);
      const miss = book.find(v.intent, clock.now());
      expect('misses' in miss && miss.misses.map((m) => m.code)).toEqual([
        'grant_revoked',
        'grant_expired',
        'grant_run_mismatch',
        'grant_exhausted',
      ]);
      // the intent that spent the last use still finds the grant (a retry of it)
      const retry = validateIntent(
        { id: 'someone-else', proposer: BOT, target: 'run/r', action: 'EXECUTE' },
        new ActorRegistry(exampleActors),
        DEFAULT_LIMITS,
      );
      if (!retry.ok) throw new Error('invalid');
      const again = book.find(retry.intent, clock.now());
      expect('grant' in again && again.grant.id).toBe(used.id);
      expect(await book.spend(used.id, 'someone-else')).toMatchObject({ uses: 1, usedBy: ['someone-else'] });
      expect(await book.spend(used.id, 'a-third')).toBeUndefined();
      clock.advance(1);
      const good = await book.issue({ subject: BOT, scope: 'run/*:EXECUTE' });
      const hit = book.find(v.intent, clock.now());
      expect('grant' in hit && hit.grant.id).toBe(good.id);
      // grant changes are facts on the runtime chain, with their records in the store
      expect((await c.reader.chain(c.runtimeChain)).map((f) => f.type)).toEqual([
        'grant.issued',
        'grant.revoked',
        'grant.issued',
        'grant.issued',
        'grant.issued',
        'grant.issued',
      ]);
      // `spend` alone persists nothing: the host stores the spent record with the intent's turn
      const reopened = new GrantBook(await c.journal.grants(), () => Promise.resolve(), clock, sequentialIds(100));
      expect(reopened.list()).toEqual(
        book
          .list()
          .map((g) => (g.id === used.id ? { ...g, uses: 0, usedBy: undefined } : g))
          .map(stripUndefined),
      );
    } finally {
      await c.close();
    }
  });
});

const stripUndefined = <T extends object>(o: T): T => JSON.parse(JSON.stringify(o)) as T;

import { afterEach, describe, expect, it } from 'vitest';
import { exampleActors } from '../../actors/index.js';
import { Authority, AuthorityKey, GrantBook } from '../../src/authority/index.js';
import type { ActorView } from '../../src/authority/index.js';
import {
  ConflictError,
  ManualClock,
  NotFoundError,
  createRuntime,
  intentDigest,
  sequentialIds,
  type Fact,
  type IntentInput,
  type Outcome,
  type PolicyRule,
  type Runtime,
  type RuntimeOptions,
} from '../../src/index.js';
import { Journal } from '../../src/journal/index.js';
import { SqliteStore } from '../../src/store/index.js';
import { validateIntent } from '../../src/authority/validate.js';
import { ActorRegistry } from '../../src/host/index.js';
import { DEFAULT_LIMITS } from '../../src/protocol/index.js';
import { iid, tempDir } from '../helpers/runtime.js';

/**
 * The authority through the whole runtime (`rt.propose`), with a ManualClock so expiry is
 * exact. Every denial is also checked for having no effect: facts, but no transition, and
 * the snapshot on disk unchanged.
 */

const BOT = 'agent:bot';
const CONFIG = { version: '1.0.0', replicas: 2 };

interface Ctx {
  rt: Runtime;
  dir: string;
  clock: ManualClock;
  /** Opens a fresh runtime on the same dir (the previous one is stopped first). */
  restart(extra?: RuntimeOptions): Promise<Runtime>;
}

const open: Array<{ stop: () => Promise<void>; cleanup: () => void }> = [];
afterEach(async () => {
  for (const o of open.splice(0)) {
    await o.stop();
    o.cleanup();
  }
});

async function setup(extra: RuntimeOptions = {}): Promise<Ctx> {
  const t = tempDir('ice-authority-');
  const clock = new ManualClock();
  let rt = await createRuntime({ dataDir: t.dir, clock, ...extra });
  const entry = { stop: () => rt.stop(), cleanup: t.cleanup };
  open.push(entry);
  const ctx: Ctx = {
    rt,
    dir: t.dir,
    clock,
    async restart(more = {}) {
      await rt.stop();
      rt = await createRuntime({ dataDir: t.dir, clock, ...extra, ...more });
      ctx.rt = rt;
      return rt;
    },
  };
  return ctx;
}

/** The actor's snapshot record as stored on disk, read over a separate read-only connection. */
async function diskSnapshot(dir: string, actor: string) {
  const ro = new SqliteStore(dir, { readonly: true });
  try {
    return ro.snapshot(actor);
  } finally {
    await ro.close();
  }
}

const transitionsOf = (rt: Runtime, actor: string): Fact[] =>
  rt.journal.tail({ actor, limit: 10_000 }).filter((f) => f.type === 'transition');

async function propose(rt: Runtime, intent: Omit<IntentInput, 'id'> & { id?: string }): Promise<Outcome & { id: string }> {
  const id = intent.id ?? iid('a');
  const o = await rt.propose({ ...intent, id });
  return { ...o, id };
}

const codes = (o: Outcome): string[] => ('reasons' in o ? o.reasons.map((r) => r.code) : []);

/**
 * Proposes and asserts a denial with `code` that changed nothing: the intent left an
 * `intent.proposed` and a `decision` fact, no transition, and the actor's snapshot (memory
 * and disk) is byte-for-byte what it was.
 */
async function expectDenied(ctx: Ctx, intent: Omit<IntentInput, 'id'> & { id?: string }, code: string): Promise<Outcome> {
  const { rt, dir } = ctx;
  const before = {
    detail: rt.actor(intent.target),
    disk: await diskSnapshot(dir, intent.target),
    transitions: transitionsOf(rt, intent.target).length,
  };
  const o = await propose(rt, intent);
  expect(o.status, JSON.stringify(o)).toBe('denied');
  expect(codes(o)).toContain(code);
  const facts = rt.journal.factsOfIntent(o.id);
  expect(facts.map((f) => f.type)).toEqual(['intent.proposed', 'decision']);
  expect((facts[1]!.data.decision as { verdict: string }).verdict).toBe('denied');
  expect(transitionsOf(rt, intent.target)).toHaveLength(before.transitions);
  const after = rt.actor(intent.target);
  expect(after?.state).toBe(before.detail?.state);
  expect(after?.seq).toBe(before.detail?.seq);
  expect(after?.snapshot).toEqual(before.detail?.snapshot);
  expect(await diskSnapshot(dir, intent.target)).toEqual(before.disk);
  return o;
}

async function expectExecuted(rt: Runtime, intent: Omit<IntentInput, 'id'> & { id?: string }): Promise<Outcome & { id: string }> {
  const o = await propose(rt, intent);
  expect(o.status, JSON.stringify(o)).toBe('executed');
  const facts = rt.journal.factsOfIntent(o.id);
  expect(facts.map((f) => f.type)).toContain('transition');
  return o;
}

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
    expect(ctx.rt.journal.tail({ limit: 50 }).some((f) => f.type === 'grant.revoked' && f.data.grantId === g.id)).toBe(true);

    await ctx.restart();
    expect(ctx.rt.grants.list().find((x) => x.id === g.id)?.revokedAt).toBe(r.revokedAt);
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
    expect(ctx.rt.journal.tail({ limit: 50 }).filter((f) => f.type === 'grant.revoked')).toHaveLength(1);
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
    for (let i = 0; i < 5; i++) {
      const o = await propose(rt, {
        proposer: BOT,
        target: 'deployment/web',
        action: 'CONFIGURE',
        params: { version: `1.0.${i}`, replicas: 1 },
      });
      results.push(o.status === 'denied' ? `denied:${codes(o).join('+')}` : o.status);
    }
    expect(results.filter((r) => r === 'executed')).toHaveLength(3);
    expect(results.slice(0, 3)).toEqual(['executed', 'executed', 'executed']);
    for (const r of results.slice(3)) expect(r).toContain('grant_exhausted');
    expect(rt.grants.list().find((x) => x.id === g.id)!.uses).toBe(3);
    expect(transitionsOf(rt, 'deployment/web')).toHaveLength(3);
    expect((rt.actor('deployment/web')!.context as { version: string }).version).toBe('1.0.2');
  });

  it('the use count survives a restart', async () => {
    const ctx = await setup();
    await ctx.rt.spawn('deployment/web');
    const g = await ctx.rt.grants.issue({ subject: BOT, scope: 'deployment/web:CONFIGURE', maxUses: 3 });
    await expectExecuted(ctx.rt, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG });
    await expectExecuted(ctx.rt, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG });
    await ctx.restart();
    expect(ctx.rt.grants.list().find((x) => x.id === g.id)!.uses).toBe(2);
    await expectExecuted(ctx.rt, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG });
    await expectDenied(ctx, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG }, 'grant_exhausted');
    await ctx.restart();
    expect(ctx.rt.grants.list().find((x) => x.id === g.id)!.uses).toBe(3);
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
    expect(rt.grants.list().find((x) => x.id === g.id)!.uses).toBe(0);
    await expectExecuted(rt, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG });
    expect(rt.grants.list().find((x) => x.id === g.id)!.uses).toBe(1);
    await expectDenied(ctx, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG }, 'grant_exhausted');
  });

  it('concurrent proposals against a 2-use grant: exactly 2 execute', async () => {
    const ctx = await setup();
    const { rt } = ctx;
    const actors = Array.from({ length: 6 }, (_, i) => `deployment/c${i}`);
    for (const a of actors) await rt.spawn(a);
    await rt.grants.issue({ subject: BOT, scope: 'deployment/*:CONFIGURE', maxUses: 2 });
    const outs = await Promise.all(actors.map((a) => propose(rt, { proposer: BOT, target: a, action: 'CONFIGURE', params: CONFIG })));
    expect(outs.filter((o) => o.status === 'executed')).toHaveLength(2);
    expect(outs.filter((o) => o.status === 'denied' && codes(o).includes('grant_exhausted'))).toHaveLength(4);
    expect(rt.grants.list()[0]!.uses).toBe(2);
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
    expect(rt.actor('run/r1')!.state).toBe('EXECUTING');
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
    expect(rt.actor('run/r1')!.state).toBe('TERMINATED_BY_RUNTIME');
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
    expect(rt.actor('deployment/web')!.state).toBe('in_review');
    expect((rt.actor('deployment/web')!.context as { reviewers: string[] }).reviewers).toEqual([]);
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
      const before = rt.actor(run)!;
      if (live) {
        const f = await rt.signal(run, { type: 'RUNTIME_ABORT', reason: 'kill' }, 'test');
        expect(f.data).toMatchObject({ from: before.state, to: 'TERMINATED_BY_RUNTIME' });
        expect(rt.actor(run)!.status).toBe('done');
        expect((await diskSnapshot(ctx.dir, run))!.seq).toBe(f.seq);
      } else {
        await expect(rt.signal(run, { type: 'RUNTIME_ABORT', reason: 'kill' }, 'test')).rejects.toBeInstanceOf(ConflictError);
        expect(rt.actor(run)!.snapshot).toEqual(before.snapshot);
        expect(rt.actor(run)!.seq).toBe(before.seq);
      }
    }
  });

  it('a stopped actor is denied with actor_not_active', async () => {
    const ctx = await setup();
    await ctx.rt.spawn('deployment/web');
    await ctx.rt.grants.issue({ subject: BOT, scope: '*' });
    await ctx.rt.stopActor('deployment/web', 'decommissioned');
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
    const d = rt.journal.factsOfIntent((o as { intentId: string }).intentId).find((f) => f.type === 'decision')!.data.decision as {
      policyRule?: string;
    };
    expect(d.policyRule).toBe('no-huge');
    expect(o.status === 'denied' && o.reasons[0]!.message).toBe('too many replicas');
    await expectExecuted(rt, { proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: { version: '1.0.0', replicas: 10 } });
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
    const d = rt.journal.factsOfIntent(o.id).find((f) => f.type === 'decision')!.data.decision as {
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
    const before = { detail: ctx.rt.actor('deployment/web'), disk: await diskSnapshot(ctx.dir, 'deployment/web') };
    const p = await propose(ctx.rt, {
      proposer: BOT,
      target: 'deployment/web',
      action: 'CONFIGURE',
      params: { version: '3.0.0', replicas: 80 },
    });
    expect(p.status).toBe('pending');
    expect(codes(p)).toContain('approval_required');
    // pending changes nothing yet
    expect(ctx.rt.journal.factsOfIntent(p.id).map((f) => f.type)).toEqual(['intent.proposed', 'decision']);
    expect(ctx.rt.actor('deployment/web')!.snapshot).toEqual(before.detail!.snapshot);
    expect(await diskSnapshot(ctx.dir, 'deployment/web')).toEqual(before.disk);
    expect(ctx.rt.approvals.list().map((a) => a.intentId)).toEqual([p.id]);
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

  it('require_approval → pending; approve executes it', async () => {
    const { ctx, p } = await pendingSetup();
    const { rt } = ctx;
    const o = await rt.approvals.approve(p.id, 'human:alice', 'looks fine');
    expect(o.status).toBe('executed');
    expect(o.status === 'executed' && [o.from, o.to]).toEqual(['draft', 'draft']);
    expect((rt.actor('deployment/web')!.context as { replicas: number }).replicas).toBe(80);
    const types = rt.journal.factsOfIntent(p.id).map((f) => f.type);
    expect(types).toEqual(['intent.proposed', 'decision', 'approval', 'decision', 'transition']);
    const approval = rt.journal.factsOfIntent(p.id).find((f) => f.type === 'approval')!;
    expect(approval.data).toMatchObject({ approved: true, by: 'human:alice', note: 'looks fine' });
    const d2 = rt.journal.factsOfIntent(p.id).filter((f) => f.type === 'decision')[1]!.data.decision as {
      verdict: string;
      approvedBy?: string;
    };
    expect(d2).toMatchObject({ verdict: 'granted', approvedBy: 'human:alice' });
    expect(rt.approvals.list()).toEqual([]);
    // the stored outcome now answers repeats
    const again = await rt.propose({
      id: p.id,
      proposer: BOT,
      target: 'deployment/web',
      action: 'CONFIGURE',
      params: { version: '3.0.0', replicas: 80 },
    });
    expect(again).toEqual(o);
    await expect(rt.approvals.approve(p.id, 'human:bob')).rejects.toBeInstanceOf(NotFoundError);
    expect(transitionsOf(rt, 'deployment/web')).toHaveLength(1);
    expect(rt.journal.verify().ok).toBe(true);
  });

  it('require_approval → pending; deny refuses it and nothing changes', async () => {
    const { ctx, p } = await pendingSetup();
    const { rt } = ctx;
    const before = { detail: rt.actor('deployment/web'), disk: await diskSnapshot(ctx.dir, 'deployment/web') };
    const o = await rt.approvals.deny(p.id, 'human:alice', 'not in the change window');
    expect(o.status).toBe('denied');
    expect(codes(o)).toEqual(['approval_refused']);
    expect(rt.journal.factsOfIntent(p.id).map((f) => f.type)).toEqual(['intent.proposed', 'decision', 'approval']);
    expect(rt.journal.factsOfIntent(p.id)[2]!.data).toMatchObject({
      approved: false,
      by: 'human:alice',
      reason: 'not in the change window',
    });
    expect(transitionsOf(rt, 'deployment/web')).toHaveLength(0);
    expect(rt.actor('deployment/web')!.snapshot).toEqual(before.detail!.snapshot);
    expect(await diskSnapshot(ctx.dir, 'deployment/web')).toEqual(before.disk);
    expect(rt.approvals.list()).toEqual([]);
    const again = await rt.propose({
      id: p.id,
      proposer: BOT,
      target: 'deployment/web',
      action: 'CONFIGURE',
      params: { version: '3.0.0', replicas: 80 },
    });
    expect(again).toEqual(o);
    await expect(rt.approvals.approve(p.id, 'human:bob')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('a pending approval survives a restart and can be approved afterwards', async () => {
    const { ctx, p } = await pendingSetup();
    await ctx.restart();
    expect(ctx.rt.approvals.list().map((a) => a.intentId)).toEqual([p.id]);
    const o = await ctx.rt.approvals.approve(p.id, 'human:alice');
    expect(o.status).toBe('executed');
  });

  it('approval re-decides: a grant revoked while pending makes the approval a denial', async () => {
    const { ctx, p } = await pendingSetup();
    const { rt } = ctx;
    await rt.grants.revoke(rt.grants.list()[0]!.id);
    const o = await rt.approvals.approve(p.id, 'human:alice');
    expect(o.status).toBe('denied');
    expect(codes(o)).toContain('grant_revoked');
    expect(transitionsOf(rt, 'deployment/web')).toHaveLength(0);
    expect(rt.approvals.list()).toEqual([]);
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
    expect(rt.actor('deployment/web')!.state).toBe('approved');
    const o = await rt.approvals.approve(p.id, 'human:bob');
    expect(o.status === 'executed' && [o.from, o.to]).toEqual(['approved', 'rolling_out']);
  });
});

describe('Authority directly', () => {
  it('signs every verdict, binds it to the digest, and stamps the ttl', async () => {
    const t = tempDir('ice-authority-direct-');
    const store = new SqliteStore(t.dir);
    try {
      const clock = new ManualClock();
      const journal = new Journal(store, { clock });
      const ids = sequentialIds();
      const grants = new GrantBook([], journal, clock, ids);
      const key = AuthorityKey.generate();
      const authority = new Authority({ key, grants, journal, clock, ids, decisionTtlMs: 5000 });
      const registry = new ActorRegistry(exampleActors);
      const v = validateIntent(
        { id: 'x1', proposer: BOT, target: 'deployment/web', action: 'CONFIGURE', params: CONFIG },
        registry,
        DEFAULT_LIMITS,
      );
      if (!v.ok) throw new Error('invalid');
      const view = (can: boolean): ActorView => ({ exists: true, status: 'active', state: 'draft', context: {}, can: () => can });
      const denied = authority.decide({ intent: v.intent, digest: v.digest, event: v.event, actor: view(true) });
      expect(denied.verdict).toBe('denied');
      expect(key.verify(denied)).toBe(true);
      await grants.issue({ subject: BOT, scope: 'deployment/*:CONFIGURE' });
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
      await journal.drain();
    } finally {
      await store.close();
      t.cleanup();
    }
  });

  it('GrantBook.find prefers the oldest usable grant and reports the near misses', async () => {
    const t = tempDir('ice-grantbook-');
    const store = new SqliteStore(t.dir);
    try {
      const clock = new ManualClock();
      const journal = new Journal(store, { clock });
      const book = new GrantBook([], journal, clock, sequentialIds());
      const revoked = await book.issue({ subject: BOT, scope: '*' });
      await book.revoke(revoked.id);
      clock.advance(1);
      await book.issue({ subject: BOT, scope: '*', ttlMs: 5 });
      clock.advance(1);
      await book.issue({ subject: BOT, scope: '*', runId: 'r9' });
      clock.advance(1);
      const v = validateIntent(
        { id: 'y', proposer: BOT, target: 'run/r', action: 'EXECUTE' },
        new ActorRegistry(exampleActors),
        DEFAULT_LIMITS,
      );
      if (!v.ok) throw new Error('invalid');
      clock.advance(10);
      const miss = book.find(v.intent, clock.now());
      expect('misses' in miss && miss.misses.map((m) => m.code)).toEqual(['grant_revoked', 'grant_expired', 'grant_run_mismatch']);
      clock.advance(1);
      const good = await book.issue({ subject: BOT, scope: 'run/*:EXECUTE' });
      const hit = book.find(v.intent, clock.now());
      expect('grant' in hit && hit.grant.id).toBe(good.id);
      // the store holds what the book holds
      expect(new GrantBook(store.grants(), journal, clock, sequentialIds(100)).list()).toEqual(book.list());
      await journal.drain();
    } finally {
      await store.close();
      t.cleanup();
    }
  });
});

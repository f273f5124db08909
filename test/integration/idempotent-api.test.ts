import { afterEach, describe, expect, it } from 'vitest';
import {
  AlreadyExistsError,
  ExistingDiffersError,
  ValidationError,
  type EnsureGrantRequest,
  type Fact,
  type Runtime,
} from '../../src/index.js';
import { runAdminOp } from '../../src/admin/index.js';
import { MODES, iid, tempRuntime, type Mode, type TempRuntime } from '../helpers/runtime.js';

/**
 * The create-or-return forms for programs that set up their grants and actors on every start
 * (`rt.grants.ensure`, `rt.spawn(…, { ifAbsent: true })`), in every mode of MODES: called
 * again, after a restart, or by two nodes at once, they leave one fact; asked for something
 * other than what exists, they throw a typed error naming the field.
 */

const GRANT: EnsureGrantRequest = {
  id: 'g-bot-web',
  subject: 'agent:bot',
  scope: 'deployment/web:*',
  maxUses: 5,
  expiresAt: '2100-01-01T00:00:00.000Z',
  note: 'the bot deploys web',
};
const WEB = { service: 'web' };

/** What a program runs on every start. */
async function bootstrap(rt: Runtime) {
  const web = await rt.spawn('deployment/web', WEB, { ifAbsent: true });
  const grant = await rt.grants.ensure(GRANT);
  return { web, grant };
}

/** Every fact of every chain (one store, so any node reads them all). */
const allFacts = (rt: Runtime): Promise<Fact[]> => rt.journal.tail({ limit: 100_000 });
const issuedFacts = async (rt: Runtime, id: string) =>
  (await allFacts(rt)).filter((f) => f.type === 'grant.issued' && (f.data as { grant: { id: string } }).grant.id === id);
const startedFacts = async (rt: Runtime, actor: string) => (await rt.journal.chain(actor)).filter((f) => f.type === 'actor.started');
const key = (f: Fact) => `${f.actor}#${f.seq}:${f.hash}`;

const open: TempRuntime[] = [];
afterEach(async () => {
  for (const h of open.splice(0)) await h.close();
});
async function setupIn(mode: Mode): Promise<TempRuntime> {
  const h = await tempRuntime({ mode });
  open.push(h);
  return h;
}

/** The error a promise rejects with (fails the test if it resolves). */
async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

describe.each(MODES)('idempotent bootstrap (%s)', (mode) => {
  it('grants.ensure twice: one grant.issued fact on the runtime chain, the same grant back', async () => {
    const { rt } = await setupIn(mode);
    const first = await rt.grants.ensure(GRANT);
    const again = await rt.grants.ensure({ ...GRANT, note: 'notes are not compared', by: 'someone-else' });
    expect(again).toEqual(first);
    expect(first).toMatchObject({ id: GRANT.id, subject: GRANT.subject, maxUses: 5, uses: 0, note: GRANT.note });
    const onChain = (await rt.journal.chain(rt.runtimeChain)).filter((f) => f.type === 'grant.issued');
    expect(onChain).toHaveLength(1);
    expect(await issuedFacts(rt, GRANT.id)).toHaveLength(1);
    // the same instant spelled another way is the same expiry
    await expect(rt.grants.ensure({ ...GRANT, expiresAt: '2100-01-01T00:00:00Z' })).resolves.toEqual(first);
  });

  it('grants.ensure with other terms: ExistingDiffersError naming the field; nothing written', async () => {
    const { rt } = await setupIn(mode);
    await rt.grants.ensure(GRANT);
    const before = await allFacts(rt);
    const cases: Array<[Partial<EnsureGrantRequest>, string]> = [
      [{ subject: 'agent:other' }, 'subject'],
      [{ scope: 'deployment/*:*' }, 'scope'],
      [{ runId: 'r1' }, 'runId'],
      [{ maxUses: 6 }, 'maxUses'],
      [{ maxUses: undefined }, 'maxUses'],
      [{ expiresAt: '2101-01-01T00:00:00.000Z' }, 'expiresAt'],
      [{ expiresAt: undefined }, 'expiresAt'],
    ];
    for (const [change, field] of cases) {
      const e = await rejection(rt.grants.ensure({ ...GRANT, ...change }));
      expect(e).toBeInstanceOf(ExistingDiffersError);
      expect(e).toMatchObject({ code: 'E_EXISTS_DIFFERENT', action: 'reject', kind: 'grant', id: GRANT.id, field });
      expect((e as Error).message).toContain(GRANT.id);
      expect((e as Error).message).toContain(field);
    }
    expect((await allFacts(rt)).map(key)).toEqual(before.map(key));
    expect(rt.grants.list().find((g) => g.id === GRANT.id)).toMatchObject({ maxUses: 5, subject: GRANT.subject });
  });

  it('grants.ensure after a revoke: ExistingDiffersError on revokedAt, no new grant', async () => {
    const { rt } = await setupIn(mode);
    await rt.grants.ensure(GRANT);
    await rt.grants.revoke(GRANT.id, 'operator', 'no more deploys');
    const e = await rejection(rt.grants.ensure(GRANT));
    expect(e).toBeInstanceOf(ExistingDiffersError);
    expect(e).toMatchObject({ code: 'E_EXISTS_DIFFERENT', id: GRANT.id, field: 'revokedAt' });
    expect((e as Error).message).toMatch(/g-bot-web was revoked at .* by operator/);
    expect(await issuedFacts(rt, GRANT.id)).toHaveLength(1);
    expect(rt.grants.list().find((g) => g.id === GRANT.id)?.revokedAt).toBeDefined();
  });

  it('grants.ensure needs an id and refuses ttlMs (ValidationError naming them)', async () => {
    const { rt } = await setupIn(mode);
    const { id: _id, ...noId } = GRANT;
    const e1 = await rejection(rt.grants.ensure(noId as EnsureGrantRequest));
    expect(e1).toBeInstanceOf(ValidationError);
    expect((e1 as ValidationError).issues.map((i) => i.path)).toEqual(['id']);
    const { expiresAt: _e, ...noExpiry } = GRANT;
    const e2 = await rejection(rt.grants.ensure({ ...noExpiry, ttlMs: 60_000 } as EnsureGrantRequest));
    expect(e2).toBeInstanceOf(ValidationError);
    expect((e2 as ValidationError).issues.map((i) => i.path)).toEqual(['ttlMs']);
    expect(rt.grants.list()).toEqual([]);
  });

  it('grants.issue of a taken id throws AlreadyExistsError naming grants.ensure', async () => {
    const { rt } = await setupIn(mode);
    await rt.grants.issue(GRANT);
    const e = await rejection(rt.grants.issue(GRANT));
    expect(e).toBeInstanceOf(AlreadyExistsError);
    expect(e).toMatchObject({ code: 'E_CONFLICT', kind: 'grant', id: GRANT.id });
    expect((e as Error).message).toContain('rt.grants.ensure(req)');
    // ensure accepts what issue left: the same terms
    await expect(rt.grants.ensure(GRANT)).resolves.toMatchObject({ id: GRANT.id });
    expect(await issuedFacts(rt, GRANT.id)).toHaveLength(1);
  });

  it('spawn ifAbsent twice: one actor.started fact, created true then false', async () => {
    const { rt } = await setupIn(mode);
    const first = await rt.spawn('deployment/web', WEB, { ifAbsent: true });
    expect(first).toMatchObject({ address: 'deployment/web', kind: 'deployment', created: true, seq: 1 });
    const again = await rt.spawn('deployment/web', WEB, { ifAbsent: true });
    expect(again).toMatchObject({ address: 'deployment/web', kind: 'deployment', state: first.state, created: false, seq: 1 });
    expect(await startedFacts(rt, 'deployment/web')).toHaveLength(1);
    expect(await rt.journal.chain('deployment/web')).toHaveLength(1);
  });

  it('spawn ifAbsent with another input: ExistingDiffersError naming the input field', async () => {
    const { rt } = await setupIn(mode);
    await rt.spawn('deployment/web', WEB, { ifAbsent: true });
    const e = await rejection(rt.spawn('deployment/web', { service: 'api' }, { ifAbsent: true }));
    expect(e).toBeInstanceOf(ExistingDiffersError);
    expect(e).toMatchObject({
      code: 'E_EXISTS_DIFFERENT',
      kind: 'actor',
      id: 'deployment/web',
      field: 'input.service',
      existing: 'web',
      requested: 'api',
    });
    const e2 = await rejection(rt.spawn('deployment/web', undefined, { ifAbsent: true }));
    expect(e2).toMatchObject({ code: 'E_EXISTS_DIFFERENT', field: 'input', existing: WEB, requested: null });
    expect(await rt.journal.chain('deployment/web')).toHaveLength(1);
  });

  it('spawn of an existing actor without ifAbsent throws AlreadyExistsError naming ifAbsent', async () => {
    const { rt } = await setupIn(mode);
    await rt.spawn('deployment/web', WEB);
    const e = await rejection(rt.spawn('deployment/web', WEB));
    expect(e).toBeInstanceOf(AlreadyExistsError);
    expect(e).toMatchObject({ code: 'E_CONFLICT', kind: 'actor', id: 'deployment/web' });
    expect((e as Error).message).toContain('{ ifAbsent: true }');
  });

  it('spawn ifAbsent of a stopped actor returns it as it is (status stopped), no fact', async () => {
    const { rt } = await setupIn(mode);
    await rt.spawn('deployment/web', WEB);
    await rt.stopActor('deployment/web', 'retired');
    const n = (await rt.journal.chain('deployment/web')).length;
    const again = await rt.spawn('deployment/web', WEB, { ifAbsent: true });
    expect(again).toMatchObject({ created: false, status: 'stopped' });
    expect(await rt.journal.chain('deployment/web')).toHaveLength(n);
  });

  it('the same bootstrap after a restart: nothing thrown, no new fact', async () => {
    const h = await setupIn(mode);
    const first = await bootstrap(h.rt);
    expect(first.web.created).toBe(true);
    expect(await bootstrap(h.rt)).toMatchObject({ web: { created: false }, grant: first.grant });
    for (let i = 0; i < 2; i++) {
      const rt = await h.restart();
      const before = (await allFacts(rt)).map(key);
      const again = await bootstrap(rt);
      expect(again.web).toMatchObject({ created: false, address: 'deployment/web', seq: first.web.seq });
      expect(again.grant).toEqual(first.grant);
      expect((await allFacts(rt)).map(key)).toEqual(before);
    }
    expect(await issuedFacts(h.rt, GRANT.id)).toHaveLength(1);
    expect(await startedFacts(h.rt, 'deployment/web')).toHaveLength(1);
    // and what it set up works: the grant pays for the bot's intent
    const out = await h.rt.propose({
      id: iid(),
      proposer: 'agent:bot',
      target: 'deployment/web',
      action: 'CONFIGURE',
      params: { version: '1.0.0', replicas: 2 },
    });
    expect(out).toMatchObject({ status: 'executed', grantId: GRANT.id });
  });

  it('admin ops: grant.issue with ensure, spawn with ifAbsent', async () => {
    const { rt } = await setupIn(mode);
    for (let i = 0; i < 2; i++) {
      await expect(runAdminOp(rt, 'spawn', { address: 'deployment/web', input: WEB, ifAbsent: true })).resolves.toMatchObject({
        address: 'deployment/web',
        created: i === 0,
      });
      await expect(runAdminOp(rt, 'grant.issue', { ...GRANT, ensure: true })).resolves.toMatchObject({ id: GRANT.id });
    }
    expect(await issuedFacts(rt, GRANT.id)).toHaveLength(1);
    expect(await startedFacts(rt, 'deployment/web')).toHaveLength(1);
    await expect(runAdminOp(rt, 'grant.issue', { ...GRANT, maxUses: 1, ensure: true })).rejects.toMatchObject({
      code: 'E_EXISTS_DIFFERENT',
      field: 'maxUses',
    });
    await expect(runAdminOp(rt, 'grant.issue', GRANT)).rejects.toThrow(/ensure: true/);
    await expect(runAdminOp(rt, 'spawn', { address: 'deployment/web', input: WEB })).rejects.toThrow(/ifAbsent: true/);
  });
});

describe.runIf(MODES.includes('cluster'))('idempotent bootstrap, two nodes at once (cluster)', () => {
  it('two nodes bootstrapping concurrently leave one grant.issued and one actor.started fact', async () => {
    const h = await setupIn('cluster');
    const n2 = await h.node('n2');
    for (let round = 0; round < 5; round++) {
      const grant = { ...GRANT, id: `g-race-${round}` };
      const actor = `deployment/race-${round}`;
      const boot = async (rt: Runtime) => {
        const a = await rt.spawn(actor, WEB, { ifAbsent: true });
        const g = await rt.grants.ensure(grant);
        return { a, g };
      };
      const [r1, r2] = await Promise.all([boot(h.rt), boot(n2)]);
      expect([r1.a.created, r2.a.created].sort()).toEqual([false, true]);
      expect(r1.g).toEqual(r2.g);
      expect(await issuedFacts(h.rt, grant.id)).toHaveLength(1);
      expect(await startedFacts(h.rt, actor)).toHaveLength(1);
      expect(await h.rt.journal.chain(actor)).toHaveLength(1);
    }
    // grants and actors by themselves, each node twice at once
    const many = await Promise.all(
      [h.rt, n2, h.rt, n2].map((rt) =>
        Promise.all([rt.grants.ensure({ ...GRANT, id: 'g-many' }), rt.spawn('run/many', {}, { ifAbsent: true })]),
      ),
    );
    expect(many.filter(([, a]) => a.created)).toHaveLength(1);
    expect(await issuedFacts(h.rt, 'g-many')).toHaveLength(1);
    expect(await startedFacts(h.rt, 'run/many')).toHaveLength(1);
  });
});

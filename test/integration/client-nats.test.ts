/**
 * The typed client and the plain wire protocol against a real nats-server and a runtime that
 * serves intents over it (docs/protocol.md).
 */
import { connect as natsConnect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  IntentRejectedError,
  NoRespondersError,
  ProtocolError,
  TimeoutError,
  ValidationError,
  connect,
  type IceClient,
} from '../../src/client/index.js';
import { createRuntime, FactSchema, OutcomeSchema, type Fact, type Outcome, type Runtime } from '../../src/index.js';
import { NatsTransport } from '../../src/transport/nats-transport.js';
import type { SqliteJournal } from '../../src/store/index.js';
import type { Msg } from '../../src/transport/transport.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { iid, tempDir } from '../helpers/runtime.js';
import { waitUntil } from '../helpers/transport-contract.js';

const CONFIGURE = (version = '1.0.0', replicas = 2) => ({ action: 'CONFIGURE', params: { version, replicas } });
/** How many facts the runtime's store holds (position of the newest, across every chain). */
const lastPos = (rt: Runtime): number => (rt.store as SqliteJournal).lastPos;

describe('IceClient against a runtime over a real nats-server', () => {
  let server: NatsServer;
  let rtTransport: NatsTransport;
  let rt: Runtime;
  let cleanupDir: () => void;
  let ice: IceClient;
  const clientErrors: Error[] = [];
  let runtimeStopped = false;

  const stopRuntime = async () => {
    if (runtimeStopped) return;
    runtimeStopped = true;
    await rt.stop();
    await rtTransport.close();
  };

  beforeAll(async () => {
    server = await startNatsServer({ jetstream: false });
    const t = tempDir('ice-client-');
    cleanupDir = t.cleanup;
    rtTransport = await NatsTransport.connect({ servers: server.url, name: 'ice-runtime-under-test' });
    rt = await createRuntime({ dataDir: t.dir, transport: rtTransport, node: 'client-test' });
    for (const a of ['web', 'd2', 'rel', 'fix', 'idem', 'raw']) await rt.spawn(`deployment/${a}`, { service: a });
    await rt.grants.issue({ subject: 'agent:bot', scope: 'deployment/*:*' });
    ice = await connect({ servers: server.url, name: 'ice-client-under-test', timeoutMs: 5000, onError: (e) => clientErrors.push(e) });
  }, 30_000);

  afterAll(async () => {
    await ice?.close();
    if (rt) await stopRuntime().catch(() => {});
    cleanupDir?.();
    await server?.stop();
  });

  it('proposes an intent (id generated) → executed, and watch() receives its transition fact', async () => {
    const facts: Fact[] = [];
    const w = await ice.watch('deployment/web', (f) => {
      facts.push(f);
    });
    expect(w.subject).toBe('ice.fact.deployment.web');
    const out = await ice.propose({ proposer: 'agent:bot', target: 'deployment/web', ...CONFIGURE() });
    expect(out).toMatchObject({ v: 1, status: 'executed', actor: 'deployment/web', from: 'draft', to: 'draft' });
    if (out.status !== 'executed') throw new Error('unreachable');
    expect(out.intentId).toMatch(/^i_[a-z0-9]+$/);
    expect(out.grantId).toBeDefined();
    await waitUntil('transition fact', () => facts.some((f) => f.type === 'transition' && f.intentId === out.intentId));
    const tr = facts.find((f) => f.type === 'transition' && f.intentId === out.intentId)!;
    expect(tr.seq).toBe(out.seq);
    expect(tr.actor).toBe('deployment/web');
    expect(tr.data).toMatchObject({ from: 'draft', to: 'draft', event: { type: 'CONFIGURE', version: '1.0.0', replicas: 2 } });
    // the whole causal chain of the intent went by: proposed → decision → transition
    expect(facts.filter((f) => f.intentId === out.intentId).map((f) => f.type)).toEqual(['intent.proposed', 'decision', 'transition']);
    w.unsubscribe();
    expect(clientErrors).toEqual([]);
  });

  it('watch() validates its address and supports kind/* and *', async () => {
    await expect(ice.watch('not an address', () => {})).rejects.toBeInstanceOf(ValidationError);
    const kindFacts: Fact[] = [];
    const all: Fact[] = [];
    const w1 = await ice.watch('deployment/*', (f) => void kindFacts.push(f));
    const w2 = await ice.watch('*', (f) => void all.push(f));
    expect([w1.subject, w2.subject]).toEqual(['ice.fact.deployment.*', 'ice.fact.>']);
    const g = await rt.grants.issue({ subject: 'agent:watcher', scope: 'deployment/web:SCALE' });
    const out = await ice.propose({ proposer: 'agent:bot', target: 'deployment/web', ...CONFIGURE('1.0.1') });
    await waitUntil(
      'facts on both watches',
      () =>
        kindFacts.some((f) => f.intentId === out.intentId && f.type === 'transition') &&
        all.some((f) => f.type === 'grant.issued' && f.data['grant'] !== undefined),
    );
    expect(all.some((f) => f.type === 'grant.issued' && JSON.stringify(f.data).includes(g.id))).toBe(true);
    expect(kindFacts.every((f) => f.actor?.startsWith('deployment/'))).toBe(true);
    w1.unsubscribe();
    w2.unsubscribe();
  });

  it('denied is final for that intent id; a new id is decided afresh', async () => {
    const id = iid('deny');
    const intent = { id, proposer: 'agent:nobody', target: 'deployment/d2', ...CONFIGURE() };
    const first = await ice.propose(intent);
    expect(first.status).toBe('denied');
    if (first.status !== 'denied') throw new Error('unreachable');
    expect(first.reasons.map((r) => r.code)).toContain('no_grant');
    await rt.grants.issue({ subject: 'agent:nobody', scope: 'deployment/d2:CONFIGURE' });
    expect(await ice.propose(intent)).toEqual(first); // same id → the recorded denial
    const fresh = await ice.propose({ ...intent, id: iid('deny') });
    expect(fresh.status).toBe('executed');
  });

  it('rejected by the runtime (params do not fit the action): issues with field paths, journaled', async () => {
    const bad = { id: iid('bad'), proposer: 'agent:bot', target: 'deployment/web', ...CONFIGURE('x', 0) };
    const out = await ice.propose(bad);
    expect(out.status).toBe('rejected');
    if (out.status !== 'rejected') throw new Error('unreachable');
    expect(out.intentId).toBe(bad.id);
    expect(out.seq).toBeTypeOf('number'); // an intent.rejected fact was written, on the runtime chain
    expect(out.chain).toBe(rt.runtimeChain);
    expect(await rt.journal.fact(out.chain!, out.seq!)).toMatchObject({ type: 'intent.rejected', intentId: bad.id });
    expect(out.issues.map((i) => i.path).sort()).toEqual(['params.replicas', 'params.version']);
    const err = await ice.propose(bad, { throwOnRejected: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntentRejectedError);
    expect((err as IntentRejectedError).local).toBe(false);
    expect((err as IntentRejectedError).issues.map((i) => i.path).sort()).toEqual(['params.replicas', 'params.version']);
    // unknown actor and unknown action are the runtime's to know
    const ghost = await ice.propose({ proposer: 'agent:bot', target: 'deployment/ghost', ...CONFIGURE() });
    expect(ghost).toMatchObject({ status: 'rejected', issues: [{ path: 'target', code: 'unknown_actor' }] });
    const noSuch = await ice.propose({ proposer: 'agent:bot', target: 'deployment/web', action: 'EXPLODE' });
    expect(noSuch).toMatchObject({ status: 'rejected', issues: [{ path: 'action', code: 'unknown_action' }] });
  });

  it('rejected locally (envelope invalid): no round trip, issues with field paths', async () => {
    const head = lastPos(rt);
    const input = { id: 'has.dot', proposer: 'bot', target: 'Deployment/web', action: 'CONFIGURE', extra: 1 } as never;
    const out = await ice.propose(input);
    expect(out.status).toBe('rejected');
    if (out.status !== 'rejected') throw new Error('unreachable');
    expect(out.seq).toBeUndefined();
    expect(out.issues.map((i) => i.path).sort()).toEqual(['', 'id', 'proposer', 'target']);
    expect(out.issues.find((i) => i.path === '')?.code).toBe('unrecognized_keys');
    const err = await ice.propose(input, { throwOnRejected: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntentRejectedError);
    expect((err as IntentRejectedError).local).toBe(true);
    // limits: size and forbidden keys
    const big = await ice.propose({
      proposer: 'agent:bot',
      target: 'deployment/web',
      action: 'CONFIGURE',
      params: { blob: 'x'.repeat(70_000) },
    });
    expect(big).toMatchObject({ status: 'rejected', issues: [{ path: '', code: 'too_large' }] });
    const proto = JSON.parse(
      '{"proposer":"agent:bot","target":"deployment/web","action":"CONFIGURE","params":{"__proto__":{"x":1}}}',
    ) as never;
    expect(await ice.propose(proto)).toMatchObject({ status: 'rejected', issues: [{ path: 'params.__proto__', code: 'forbidden_key' }] });
    const bigint = await ice.propose({ proposer: 'agent:bot', target: 'deployment/web', action: 'SCALE', params: { replicas: 2n } });
    expect(bigint.status).toBe('rejected'); // not JSON: refused as input, not thrown
    expect(bigint).not.toHaveProperty('seq');
    expect(lastPos(rt)).toBe(head); // nothing reached the runtime
  });

  it('a rejected intent is not recorded against its id: fixed, the same id goes through', async () => {
    const id = iid('fix');
    const rejected = await ice.propose({ id, proposer: 'agent:bot', target: 'deployment/fix', ...CONFIGURE('nope') });
    expect(rejected.status).toBe('rejected');
    const fixed = await ice.propose({ id, proposer: 'agent:bot', target: 'deployment/fix', ...CONFIGURE('2.0.0') });
    expect(fixed).toMatchObject({ status: 'executed', intentId: id });
  });

  it('idempotency: the same id and content returns the same outcome; different content is a conflict', async () => {
    const id = iid('idem');
    const intent = { id, proposer: 'agent:bot', target: 'deployment/idem', ...CONFIGURE('3.0.0') };
    const [a, b] = await Promise.all([ice.propose(intent), ice.propose(intent)]); // concurrent duplicates
    const c = await ice.propose({ ...intent, v: 1, params: { replicas: 2, version: '3.0.0' } }); // same content, other spelling
    expect(a.status).toBe('executed');
    expect(b).toEqual(a);
    expect(c).toEqual(a);
    expect((await rt.journal.factsOfIntent(id)).filter((f) => f.type === 'transition')).toHaveLength(1);
    const conflict = await ice.propose({ ...intent, params: { version: '3.0.1', replicas: 2 } });
    expect(conflict).toMatchObject({ status: 'rejected', intentId: id, issues: [{ path: 'id', code: 'idempotency_conflict' }] });
    expect(await ice.propose(intent)).toEqual(a); // the original still answers
  });

  it('pending: the same id later returns the outcome of the human decision', async () => {
    const by = { proposer: 'agent:bot', target: 'deployment/rel' } as const;
    await ice.propose({ ...by, ...CONFIGURE('4.0.0') });
    expect((await ice.propose({ ...by, action: 'SUBMIT', params: { author: 'alice' } })).status).toBe('executed');
    expect((await ice.propose({ ...by, action: 'APPROVE', params: { reviewer: 'bob' } })).status).toBe('executed');
    const deploy = ice.prepare({ ...by, action: 'DEPLOY', params: { environment: 'production' } });
    const pending = await ice.propose(deploy);
    expect(pending).toMatchObject({ status: 'pending', intentId: deploy.id });
    if (pending.status !== 'pending') throw new Error('unreachable');
    expect(pending.reasons.map((r) => r.code)).toContain('approval_required');
    expect(await ice.propose(deploy)).toEqual(pending); // still waiting
    const approved = await rt.approvals.approve(deploy.id, 'human:carol');
    expect(approved).toMatchObject({ status: 'executed', to: 'rolling_out' });
    expect(await ice.propose(deploy)).toEqual(approved);
  });

  it('a foreign service with a plain NATS client and hand-written JSON gets a valid outcome', async () => {
    const nc: NatsConnection = await natsConnect({ servers: server.url, name: 'foreign-service' });
    try {
      const factTexts: string[] = [];
      const sub = nc.subscribe('ice.fact.deployment.raw', { callback: (_err, m) => void factTexts.push(m.string()) });
      await nc.flush();
      // no "v", no library: exactly what docs/protocol.md shows
      const body =
        '{"id":"py-0001","proposer":"svc:billing","target":"deployment/raw","action":"CONFIGURE","params":{"version":"1.2.3","replicas":3}}';
      await rt.grants.issue({ subject: 'svc:billing', scope: 'deployment/raw:CONFIGURE' });
      const m = await nc.request('ice.intent.deployment.raw', body, { timeout: 5000 });
      const out = OutcomeSchema.parse(JSON.parse(m.string()));
      expect(out).toMatchObject({ status: 'executed', intentId: 'py-0001', actor: 'deployment/raw', from: 'draft', to: 'draft' });
      // a retry of the same bytes (e.g. after a timeout) is answered from the record
      const again = await nc.request('ice.intent.deployment.raw', body, { timeout: 5000 });
      expect(JSON.parse(again.string())).toEqual(out);
      // garbage gets a rejected outcome, not silence
      const junk = OutcomeSchema.parse(
        JSON.parse((await nc.request('ice.intent.deployment.raw', 'not json {', { timeout: 5000 })).string()),
      );
      expect(junk.status).toBe('rejected');
      const empty = OutcomeSchema.parse(JSON.parse((await nc.request('ice.intent.deployment.raw', '', { timeout: 5000 })).string()));
      expect(empty.status).toBe('rejected');
      // the subject must name the target, so NATS permissions on subjects mean something
      const elsewhere = body.replace('py-0001', 'py-0002');
      const wrong = OutcomeSchema.parse(JSON.parse((await nc.request('ice.intent.run.whatever', elsewhere, { timeout: 5000 })).string()));
      expect(wrong).toMatchObject({ status: 'rejected', issues: [expect.objectContaining({ path: 'target', code: 'subject_mismatch' })] });
      await waitUntil('transition fact as JSON', () => factTexts.some((t) => t.includes('"transition"') && t.includes('py-0001')));
      for (const t of factTexts) FactSchema.parse(JSON.parse(t));
      sub.unsubscribe();
    } finally {
      await nc.close();
    }
  });

  describe('when no runtime answers', () => {
    let fake: NatsTransport;
    beforeAll(async () => {
      await stopRuntime();
      fake = await NatsTransport.connect({ servers: server.url, name: 'fake-responder' });
    });
    afterAll(async () => fake?.close());

    it('no responders → NoRespondersError after the retries', async () => {
      const t0 = Date.now();
      const err = await ice
        .propose({ proposer: 'agent:bot', target: 'deployment/web', ...CONFIGURE() }, { retries: 2, retryDelayMs: 50 })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NoRespondersError);
      expect((err as NoRespondersError).subject).toBe('ice.as.agent:bot.deployment.web');
      expect((err as NoRespondersError).action).toBe('retry');
      expect(Date.now() - t0).toBeGreaterThanOrEqual(100); // two pauses, so three attempts
    });

    it('retries after a timeout resend the SAME intent (same id, same body)', async () => {
      const seen: unknown[] = [];
      const sub = fake.subscribe('ice.as.>', (m: Msg) => {
        seen.push(m.data);
        if (seen.length < 3) return; // swallow the first two attempts
        const i = m.data as { id: string; target: string };
        const reply: Outcome = { v: 1, status: 'executed', intentId: i.id, actor: i.target, from: 'a', to: 'b', decisionId: 'd_1', seq: 1 };
        m.respond(reply);
      });
      await fake.flush();
      try {
        const out = await ice.propose(
          { proposer: 'agent:bot', target: 'deployment/web', ...CONFIGURE() },
          { timeoutMs: 200, retries: 2, retryDelayMs: 10 },
        );
        expect(out.status).toBe('executed');
        expect(seen).toHaveLength(3);
        expect(seen[1]).toEqual(seen[0]);
        expect(seen[2]).toEqual(seen[0]);
        expect((seen[0] as { id: string }).id).toBe(out.intentId);

        seen.length = 0;
        const err = await ice
          .propose({ proposer: 'agent:bot', target: 'deployment/web', ...CONFIGURE() }, { timeout: 150, retries: 1, retryDelayMs: 0 })
          .catch((e: unknown) => e);
        expect(err).toBeInstanceOf(TimeoutError);
        expect((err as TimeoutError).timeoutMs).toBe(150);
        expect(seen).toHaveLength(2);
        expect(seen[1]).toEqual(seen[0]);
      } finally {
        sub.unsubscribe();
      }
    });

    it('a reply that is not an outcome for this intent → ProtocolError', async () => {
      const sub = fake.subscribe('ice.as.>', (m: Msg) => {
        const i = m.data as { id: string; target: string; params: { replicas: number } };
        if (i.params.replicas === 1) m.respond({ hello: 'world' });
        else
          m.respond({ v: 1, status: 'executed', intentId: 'someone-else', actor: i.target, from: 'a', to: 'b', decisionId: 'd', seq: 1 });
      });
      await fake.flush();
      try {
        const e1 = await ice
          .propose({ proposer: 'agent:bot', target: 'deployment/web', ...CONFIGURE('1.0.0', 1) })
          .catch((e: unknown) => e);
        expect(e1).toBeInstanceOf(ProtocolError);
        const e2 = await ice
          .propose({ proposer: 'agent:bot', target: 'deployment/web', ...CONFIGURE('1.0.0', 2) })
          .catch((e: unknown) => e);
        expect(e2).toBeInstanceOf(ProtocolError);
        expect((e2 as ProtocolError).issues[0]?.code).toBe('intent_mismatch');
      } finally {
        sub.unsubscribe();
      }
    });
  });
});

describe('NATS permissions from docs/protocol.md', () => {
  let server: NatsServer;
  let rtTransport: NatsTransport;
  let rt: Runtime;
  let cleanupDir: () => void;

  beforeAll(async () => {
    // The least-privilege users the security section recommends, on nats-server 2.9.
    server = await startNatsServer({
      jetstream: false,
      extraConfig: `
authorization {
  users = [
    { user: "ice-runtime", password: "rt-secret", permissions: {
        publish: { allow: ["ice.fact.>", "ice.authority.decide"] }
        subscribe: { allow: ["ice.intent.>", "ice.as.>", "ice.authority.decide", "_INBOX.>"] }
        allow_responses: true
    } }
    { user: "planner", password: "planner-secret", permissions: {
        publish: { allow: ["ice.as.agent:planner.>"] }
        subscribe: { allow: ["_INBOX_planner.>"] }
    } }
    { user: "ops", password: "ops-secret", permissions: {
        publish: { allow: ["ice.intent.>", "ice.as.>"] }
        subscribe: { allow: ["_INBOX.>"] }
    } }
    { user: "observer", password: "observer-secret", permissions: {
        publish: { deny: [">"] }
        subscribe: { allow: ["ice.fact.>"] }
    } }
  ]
}`,
    });
    const t = tempDir('ice-client-perm-');
    cleanupDir = t.cleanup;
    rtTransport = await NatsTransport.connect({ servers: server.url, user: 'ice-runtime', pass: 'rt-secret', name: 'ice-runtime' });
    rt = await createRuntime({ dataDir: t.dir, transport: rtTransport, node: 'perm-test', requirePrincipalSubject: true });
    await rt.spawn('deployment/web', { service: 'web' });
    await rt.grants.issue({ subject: 'agent:planner', scope: 'deployment/web:CONFIGURE' });
  }, 30_000);

  afterAll(async () => {
    await rt?.stop();
    await rtTransport?.close();
    cleanupDir?.();
    await server?.stop();
  });

  it('a proposer is bound to the principal its NATS user may publish as', async () => {
    const errors: Error[] = [];
    const planner = await connect({
      servers: server.url,
      user: 'planner',
      pass: 'planner-secret',
      inboxPrefix: '_INBOX_planner',
      onError: (e) => errors.push(e),
    });
    const ops = await connect({ servers: server.url, user: 'ops', pass: 'ops-secret' });
    try {
      // claiming another principal: NATS refuses the publish, nothing reaches the runtime
      const head = lastPos(rt);
      const forged = await planner
        .propose({ proposer: 'agent:admin', target: 'deployment/web', ...CONFIGURE() }, { timeoutMs: 500 })
        .catch((e: unknown) => e);
      expect(String(forged)).toMatch(/Permissions Violation for Publish to "ice\.as\.agent:admin\.deployment\.web"/);
      expect(lastPos(rt)).toBe(head);
      // a user who may publish anywhere still cannot speak for someone else, nor skip the principal
      const body = {
        id: 'ops-1',
        proposer: 'agent:planner',
        target: 'deployment/web',
        action: 'CONFIGURE',
        params: { version: '1.0.0', replicas: 1 },
      };
      const asOther = (await ops.transport.request('ice.as.agent:ops.deployment.web', body, { timeoutMs: 5000 })).data;
      expect(asOther).toMatchObject({
        status: 'rejected',
        issues: [expect.objectContaining({ path: 'proposer', code: 'proposer_mismatch' })],
      });
      const plain = (await ops.transport.request('ice.intent.deployment.web', { ...body, id: 'ops-2' }, { timeoutMs: 5000 })).data;
      expect(plain).toMatchObject({ status: 'rejected', issues: [expect.objectContaining({ code: 'unauthenticated_subject' })] });
    } finally {
      await planner.close();
      await ops.close();
    }
  });

  it('an agent allowed only its own principal subject and inbox can propose; an observer can watch; neither can do more', async () => {
    const errors: Error[] = [];
    const planner = await connect({
      servers: server.url,
      user: 'planner',
      pass: 'planner-secret',
      inboxPrefix: '_INBOX_planner',
      onError: (e) => errors.push(e),
    });
    const observer = await connect({ servers: server.url, user: 'observer', pass: 'observer-secret' });
    try {
      const facts: Fact[] = [];
      await observer.watch('deployment/web', (f) => void facts.push(f));
      const out = await planner.propose({ proposer: 'agent:planner', target: 'deployment/web', ...CONFIGURE() });
      expect(out.status).toBe('executed');
      await waitUntil('observer sees the transition', () => facts.some((f) => f.type === 'transition' && f.intentId === out.intentId));

      // the planner may not read facts ...
      await planner.watch('deployment/web', () => {});
      await waitUntil('permission violation reported', () => errors.some((e) => /permission/i.test(e.message)));
      // ... nor talk to the authority directly
      const direct = await planner.transport.request('ice.authority.decide', { intent: {} }, { timeoutMs: 1000 }).catch((e: unknown) => e);
      expect(String(direct)).toMatch(/Permissions Violation for Publish to "ice.authority.decide"/);
    } finally {
      await planner.close();
      await observer.close();
    }
  });
});

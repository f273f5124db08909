import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { exampleActors } from '../../actors/index.js';
import { Authority, AuthorityKey, GrantBook, LocalTrust, validateIntent, type ValidatedIntent } from '../../src/authority/index.js';
import { ActorRegistry, Host } from '../../src/host/index.js';
import { Journal } from '../../src/journal/index.js';
import { DEFAULT_LIMITS, type Decision, type Fact, type Outcome, type UnsignedDecision } from '../../src/protocol/index.js';
import { SqliteStore } from '../../src/store/index.js';
import { ManualClock } from '../../src/util/clock.js';
import { sequentialIds } from '../../src/util/ids.js';
import { silentLogger } from '../../src/util/logger.js';
import { iid, tempDir, tempRuntime } from '../helpers/runtime.js';

/**
 * The host executes nothing on a decision it cannot verify. The pieces are wired as
 * createRuntime wires them (store, journal with signed checkpoints, grant book, authority,
 * host), so host.apply can be handed decisions that were tampered with. Two variants: a host
 * that checks every signature (a decision that crossed a transport), and a host with
 * LocalTrust, where decisions the authority vouched for in-process skip only the signature
 * check — anything else (a copy, an edit, a forgery) is checked in full.
 */

const TARGET = 'deployment/web';
const TTL = 10_000;

interface Core {
  dir: string;
  clock: ManualClock;
  store: SqliteStore;
  journal: Journal;
  key: AuthorityKey;
  grants: GrantBook;
  authority: Authority;
  host: Host;
  registry: ActorRegistry;
  trust: LocalTrust | undefined;
  close(): Promise<void>;
}

async function core(local: boolean): Promise<Core> {
  const t = tempDir('ice-decisions-');
  const clock = new ManualClock();
  const ids = sequentialIds();
  const registry = new ActorRegistry(exampleActors);
  const store = new SqliteStore(t.dir);
  const key = AuthorityKey.generate();
  let host!: Host;
  const journal = new Journal(store, {
    clock,
    attest: (seq, hash) => ({ keyId: key.keyId, sig: key.signHead(seq, hash) }),
    onFlushFailed: (actors) => host.evict(actors),
  });
  const grants = new GrantBook(store.grants(), journal, clock, ids);
  const authority = new Authority({ key, grants, journal, clock, ids, decisionTtlMs: TTL });
  const trust = local ? new LocalTrust() : undefined;
  host = new Host({
    node: 'test',
    registry,
    store,
    journal,
    clock,
    logger: silentLogger(),
    authorityKeys: new Map([[key.keyId, key]]),
    ...(trust ? { trust } : {}),
  });
  return {
    dir: t.dir,
    clock,
    store,
    journal,
    key,
    grants,
    authority,
    host,
    registry,
    trust,
    async close() {
      await journal.drain();
      host.stopAll();
      await store.close();
      t.cleanup();
    },
  };
}

function validated(c: Core, raw: Record<string, unknown>): ValidatedIntent {
  const v = validateIntent(raw, c.registry, DEFAULT_LIMITS);
  if (!v.ok) throw new Error(`test intent invalid: ${JSON.stringify(v.issues)}`);
  return v;
}

/** What the authority service does: decide against the live view; in-process, vouch instead of signing. */
function decide(c: Core, v: ValidatedIntent): Decision {
  const d = c.authority.decide({
    intent: v.intent,
    digest: v.digest,
    event: v.event,
    actor: c.host.view(v.intent.target),
    run: c.host.runView(v.intent.runId),
    kindPolicies: v.def.policies,
    sign: c.trust === undefined,
  });
  return c.trust ? c.trust.vouchDecision(d) : d;
}

async function apply(c: Core, v: ValidatedIntent, d: Decision): Promise<Outcome> {
  const applied = await c.host.withActor(v.intent.target, () => c.host.apply(v.intent, v.digest, d, { event: v.event }));
  await applied.committed;
  return applied.outcome;
}

const unsigned = (d: Decision): UnsignedDecision => {
  const { sig: _sig, ...rest } = d;
  return rest;
};

const allFacts = (c: Core): Fact[] => c.journal.read(1, 100_000);

describe.each([
  ['a host that verifies every signature', false],
  ['a host with LocalTrust (in-process decisions)', true],
])('decision verification: %s', (_name, local) => {
  let c: Core;
  let n = 0;
  const intent = (over: Record<string, unknown> = {}) =>
    validated(c, {
      id: `i-${++n}`,
      proposer: 'agent:bot',
      target: TARGET,
      action: 'CONFIGURE',
      params: { version: '1.0.0', replicas: 2 },
      ...over,
    });

  beforeEach(async () => {
    c = await core(local);
    await c.host.spawn(TARGET, { service: 'web' });
  });
  afterEach(async () => c.close());

  const grant = () => c.grants.issue({ subject: 'agent:bot', scope: `${TARGET}:*` });

  /**
   * Applies `forged` for `v` and checks it was refused for `reason` without any effect:
   * outcome failed/E_DECISION_INVALID, `intent.proposed` + `decision.refused` facts, no
   * transition, no stored outcome, snapshot (memory and disk) unchanged.
   */
  async function expectRefused(v: ValidatedIntent, forged: Decision, reason: string): Promise<void> {
    const headBefore = c.journal.headSeq;
    const diskBefore = c.store.snapshot(TARGET);
    const memBefore = c.host.detail(TARGET);
    const outcome = await apply(c, v, forged);
    expect(outcome.status).toBe('failed');
    expect(outcome.status === 'failed' && outcome.error.code).toBe('E_DECISION_INVALID');
    const added = allFacts(c).filter((f) => f.seq > headBefore);
    expect(added.map((f) => f.type)).toEqual(['intent.proposed', 'decision.refused']);
    const [proposed, refused] = added as [Fact, Fact];
    expect(proposed.intentId).toBe(v.intent.id);
    expect(refused.intentId).toBe(v.intent.id);
    expect(refused.causes).toEqual([proposed.seq]);
    expect(refused.data.reason).toBe(reason);
    expect(refused.data.decisionId).toBe(forged.id);
    expect(outcome.seq).toBe(refused.seq);
    expect(c.store.outcome(v.intent.id)).toBeUndefined();
    expect(c.store.snapshot(TARGET)).toEqual(diskBefore);
    const memAfter = c.host.detail(TARGET)!;
    expect(memAfter.snapshot).toEqual(memBefore!.snapshot);
    expect(memAfter.seq).toBe(memBefore!.seq);
    expect(memAfter.state).toBe(memBefore!.state);
  }

  async function expectExecuted(v: ValidatedIntent, d: Decision): Promise<void> {
    const outcome = await apply(c, v, d);
    expect(outcome.status, JSON.stringify(outcome)).toBe('executed');
    const t = allFacts(c).filter((f) => f.type === 'transition' && f.intentId === v.intent.id);
    expect(t).toHaveLength(1);
    expect(outcome.seq).toBe(t[0]!.seq);
    expect(c.store.snapshot(TARGET)!.seq).toBe(t[0]!.seq);
    expect(c.store.outcome(v.intent.id)?.outcome).toEqual(outcome);
    expect((c.host.detail(TARGET)!.context as { replicas: number }).replicas).toBe((v.intent.params as { replicas: number }).replicas);
  }

  const transitions = () => allFacts(c).filter((f) => f.type === 'transition');

  it('(a) a denied decision edited to granted is refused; the genuine grant then executes', async () => {
    const v = intent({ params: { version: '1.0.0', replicas: 7 } });
    const denied = decide(c, v);
    expect(denied.verdict).toBe('denied');
    const forged: Decision = { ...denied, verdict: 'granted', reasons: [{ code: 'grant', message: 'trust me' }] };
    await expectRefused(v, forged, 'bad_signature');
    await expectRefused(v, { ...denied, verdict: 'granted' }, 'bad_signature');
    if (local) {
      // The vouched original is frozen: it cannot be edited in place either.
      expect(() => {
        (denied as { verdict: string }).verdict = 'granted';
      }).toThrow(TypeError);
      expect(denied.verdict).toBe('denied');
    }
    expect(transitions()).toHaveLength(0);
    await grant();
    const genuine = decide(c, v);
    expect(genuine.verdict).toBe('granted');
    await expectExecuted(v, genuine);
  });

  it('(a2) other edits of a granted decision are refused too', async () => {
    await grant();
    const v = intent();
    const d = decide(c, v);
    expect(d.verdict).toBe('granted');
    await expectRefused(v, { ...d, expiresAt: new Date(c.clock.now() + 10 * TTL).toISOString() }, 'bad_signature');
    await expectRefused(v, { ...d, grantId: 'g_forged' }, 'bad_signature');
    await expectRefused(v, { ...d, reasons: [] }, 'bad_signature');
    await expectRefused(v, { ...d, approvedBy: 'human:nobody' }, 'bad_signature');
    expect(transitions()).toHaveLength(0);
    await expectExecuted(v, d);
  });

  it('(b) a decision for another intent (id or digest mismatch) is refused', async () => {
    await grant();
    const a = intent({ params: { version: '1.0.0', replicas: 3 } });
    const dA = decide(c, a);
    expect(dA.verdict).toBe('granted');
    // another id
    const b = intent({ params: { version: '1.0.0', replicas: 3 } });
    await expectRefused(b, dA, 'intent_mismatch');
    // same id, other content
    const a2 = validated(c, { ...a.intent, params: { version: '9.9.9', replicas: 99 } });
    expect(a2.intent.id).toBe(a.intent.id);
    expect(a2.digest).not.toBe(a.digest);
    await expectRefused(a2, dA, 'digest_mismatch');
    // same id, other target
    const a3 = validated(c, { ...a.intent, target: 'deployment/api' });
    await expectRefused(a3, dA, 'digest_mismatch');
    expect(transitions()).toHaveLength(0);
    await expectExecuted(a, dA);
  });

  it('(c) an expired decision is refused; a fresh one executes', async () => {
    await grant();
    const v = intent({ params: { version: '1.0.0', replicas: 4 } });
    const d = decide(c, v);
    expect(Date.parse(d.expiresAt) - c.clock.now()).toBe(TTL);
    c.clock.advance(TTL); // exactly at expiresAt: expired
    await expectRefused(v, d, 'expired');
    c.clock.advance(60_000);
    await expectRefused(v, d, 'expired');
    expect(transitions()).toHaveLength(0);
    const fresh = decide(c, v);
    c.clock.advance(TTL - 1); // just before it expires
    await expectExecuted(v, fresh);
  });

  it('(d) a decision signed by a different AuthorityKey is refused', async () => {
    await grant();
    const other = AuthorityKey.generate();
    const v = intent({ params: { version: '1.0.0', replicas: 5 } });
    const d = decide(c, v);
    // claims to be from our authority, signed by another key
    await expectRefused(v, other.sign(unsigned(d)), 'bad_signature');
    // honestly names the other authority, which this host does not know
    await expectRefused(v, other.sign({ ...unsigned(d), authority: other.keyId }), 'unknown_authority');
    // a whole decision made up by the other key
    const deniedElsewhere = other.sign({ ...unsigned(d), verdict: 'granted', id: 'd_evil', authority: c.key.keyId });
    await expectRefused(v, deniedElsewhere, 'bad_signature');
    expect(transitions()).toHaveLength(0);
    await expectExecuted(v, d);
  });

  it('(e) a decision with a garbage signature is refused', async () => {
    await grant();
    const v = intent({ params: { version: '1.0.0', replicas: 6 } });
    const d = decide(c, v);
    await expectRefused(v, { ...d, sig: 'garbage' }, 'bad_signature');
    await expectRefused(v, { ...d, sig: '' }, 'bad_signature');
    await expectRefused(v, { ...d, sig: Buffer.alloc(64).toString('base64') }, 'bad_signature');
    await expectRefused(v, { ...d, sig: '%%%not base64%%%' }, 'bad_signature');
    await expectRefused(v, { ...d, sig: undefined } as unknown as Decision, 'bad_signature');
    // a valid signature, but of another decision by the same key
    const sibling = c.authority.decide({
      intent: v.intent,
      digest: v.digest,
      event: v.event,
      actor: c.host.view(TARGET),
      kindPolicies: v.def.policies,
    });
    expect(c.key.verify(sibling)).toBe(true);
    await expectRefused(v, { ...d, sig: sibling.sig }, 'bad_signature');
    expect(transitions()).toHaveLength(0);
    await expectExecuted(v, d);
  });

  it('a refused decision leaves no outcome, so the same intent can still be decided and executed once', async () => {
    await grant();
    const v = intent();
    const d = decide(c, v);
    await expectRefused(v, { ...d, sig: 'x' }, 'bad_signature');
    await expectExecuted(v, d);
    // The genuine decision cannot be replayed into a second execution of the same intent: the
    // actor's state is what it is, but the stored outcome now answers the id.
    expect(c.store.outcome(v.intent.id)?.outcome.status).toBe('executed');
    const verify = c.journal.verify((cp) => cp.keyId === c.key.keyId && c.key.verifyHead(cp.seq, cp.hash, cp.sig));
    expect(verify.ok).toBe(true);
    expect(verify.count).toBe(c.journal.headSeq);
  });

  it('the journal chain and checkpoints verify after all the refusals', async () => {
    await grant();
    const v = intent();
    const d = decide(c, v);
    await expectRefused(v, { ...d, verdict: 'granted', sig: 'AAAA' }, 'bad_signature');
    // a copy is never vouched for, so even in-process an edited binding fails on the signature first
    await expectRefused(v, { ...d, intentId: 'someone-else' }, 'bad_signature');
    await expectExecuted(v, d);
    const verify = c.journal.verify((cp) => cp.keyId === c.key.keyId && c.key.verifyHead(cp.seq, cp.hash, cp.sig));
    expect(verify).toMatchObject({ ok: true, headSeq: c.journal.headSeq });
    // A verifier with another key refuses the checkpoints.
    const other = AuthorityKey.generate();
    expect(c.journal.verify((cp) => other.verifyHead(cp.seq, cp.hash, cp.sig)).ok).toBe(false);
  });
});

describe('signDecisions: each', () => {
  it('journals in-process decisions with their own valid signatures', async () => {
    const { rt, dir, close } = await tempRuntime({ signDecisions: 'each' });
    try {
      await rt.spawn('deployment/signed', { service: 's' });
      await rt.grants.issue({ subject: 'agent:s', scope: 'deployment/signed:CONFIGURE' });
      const o = await rt.propose({
        id: iid(),
        proposer: 'agent:s',
        target: 'deployment/signed',
        action: 'CONFIGURE',
        params: { version: '1.0.0', replicas: 1 },
      });
      expect(o.status).toBe('executed');
      const decision = rt.journal.factsOfIntent(o.intentId!).find((f) => f.type === 'decision')!.data.decision as Decision;
      expect(decision.sig).not.toBe('');
      const key = AuthorityKey.loadPublic(dir)!;
      expect(key.verify(decision)).toBe(true);
      expect(key.verify({ ...decision, verdict: 'denied' })).toBe(false);
    } finally {
      await close();
    }
  });
});

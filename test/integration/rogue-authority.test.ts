import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authority, AuthorityKey, AuthorityService, validateIntent } from '../../src/authority/index.js';
import { Intake } from '../../src/host/intake.js';
import { DEFAULT_LIMITS, type Decision, type Fact, type Intent, type Outcome, type UnsignedDecision } from '../../src/protocol/index.js';
import { startNatsServer, type NatsServer } from '../../src/testing/index.js';
import { NatsTransport, type Subscription } from '../../src/transport/index.js';
import { silentLogger } from '../../src/util/logger.js';
import { embeddedCore, type Core } from '../helpers/core.js';

/**
 * A rogue authority on an open bus. The runtime's pieces as createRuntime wires them (SQLite
 * store, host holding the genuine authority's public key), with an intake that asks for
 * decisions over a real NATS server (`ice.authority.decide`) instead of in-process. A rogue
 * client answers those requests: with a forged decision (signed by another key), an altered
 * one (edited after signing; or genuinely signed for other intent content), an expired one,
 * and a replayed one (a genuine decision of an earlier intent, read from the journal). The
 * host refuses each: the proposer gets `failed`/E_DECISION_INVALID, the actor's chain gets
 * `intent.proposed` + `decision.refused` naming the reason, and nothing executes. Then the
 * genuine authority answers and the same intent executes once.
 */

const TARGET = 'deployment/web';
const TTL = 30_000;
let server: NatsServer;
let core: Core;
let bus: NatsTransport; // the runtime's connection
let rogueConn: NatsTransport;
let proposer: NatsTransport;
let intake: Intake;
let authority: Authority;

beforeAll(async () => {
  server = await startNatsServer({ jetstream: false });
  core = embeddedCore();
  // the host verifies against the wall clock here: decisions cross a real bus
  core.clock.advance(Date.now() - core.clock.now());
  bus = await NatsTransport.connect({ servers: server.url, name: 'runtime' });
  rogueConn = await NatsTransport.connect({ servers: server.url, name: 'rogue' });
  proposer = await NatsTransport.connect({ servers: server.url, name: 'proposer' });
  intake = new Intake({
    registry: core.registry,
    host: core.host,
    transport: bus,
    logger: silentLogger(),
    limits: DEFAULT_LIMITS,
    decideTimeoutMs: 5000,
  });
  intake.listen();
  authority = new Authority({ key: core.key, grants: core.grants, clock: core.clock, ids: core.ids, decisionTtlMs: TTL });
  await core.host.spawn(TARGET, { service: 'web' });
  await core.grants.issue({ subject: 'agent:bot', scope: `${TARGET}:*` });
  await bus.flush();
});
afterAll(async () => {
  intake?.close();
  for (const t of [proposer, rogueConn, bus]) await t?.close();
  await core?.close();
  await server?.stop();
});

let n = 0;
const raw = (replicas: number) => ({
  id: `rogue-${++n}`,
  proposer: 'agent:bot',
  target: TARGET,
  action: 'CONFIGURE',
  params: { version: '1.0.0', replicas },
});

/** What the genuine authority would decide for `intent` now (signed with the genuine key). */
function genuine(intent: unknown): Decision {
  const v = validateIntent(intent, core.registry, DEFAULT_LIMITS);
  if (!v.ok) throw new Error(JSON.stringify(v.issues));
  return authority.decide({
    intent: v.intent,
    digest: v.digest,
    event: v.event,
    actor: core.host.view(TARGET),
    run: undefined,
    kindPolicies: v.def.policies,
  });
}
const unsigned = ({ sig: _sig, ...d }: Decision): UnsignedDecision => d;

/** Plays the authority on the bus until the returned function is called: answers every request with `answer(intent)`. */
async function rogue(answer: (intent: Intent) => Decision): Promise<() => void> {
  const sub: Subscription = rogueConn.subscribe('ice.authority.decide', (m) => {
    m.respond({ decision: answer((m.data as { intent: Intent }).intent) });
  });
  await rogueConn.flush();
  return () => sub.unsubscribe();
}

const propose = async (intent: unknown): Promise<Outcome> =>
  (await proposer.request('ice.intent.deployment.web', intent, { timeoutMs: 10_000 })).data as Outcome;
const chain = (): Promise<Fact[]> => core.reader.chain(TARGET);

async function expectRefused(intent: { id: string }, answer: (i: Intent) => Decision, reason: string): Promise<void> {
  const stop = await rogue(answer);
  try {
    const before = (await chain()).length;
    const out = await propose(intent);
    expect(out.status, JSON.stringify(out)).toBe('failed');
    expect(out.status === 'failed' && out.error.code).toBe('E_DECISION_INVALID');
    const added = (await chain()).slice(before);
    expect(added.map((f) => f.type)).toEqual(['intent.proposed', 'decision.refused']);
    expect(added[1]!.intentId).toBe(intent.id);
    expect((added[1]!.data as { reason: string }).reason).toBe(reason);
    expect(core.store.outcome(intent.id)).toBeUndefined();
  } finally {
    stop();
  }
}

describe('a rogue authority answering ice.authority.decide', () => {
  let replayable: Decision;
  let usedTwice = '';

  it('the genuine authority over the bus: an intent executes (its decision is in the journal)', async () => {
    const service = new AuthorityService(authority, core.registry, core.host, bus, DEFAULT_LIMITS, silentLogger());
    service.listen();
    await bus.flush();
    const i = raw(2);
    const out = await propose(i);
    service.close();
    expect(out.status, JSON.stringify(out)).toBe('executed');
    replayable = (await chain()).find((f) => f.type === 'decision' && f.intentId === i.id)!.data.decision as Decision;
    expect(replayable.verdict).toBe('granted');
    expect(replayable.sig).not.toBe('');
  });

  it('forged: signed by another key under the genuine authority id, or naming an authority the host does not know', async () => {
    const other = AuthorityKey.generate();
    await expectRefused(raw(3), (i) => other.sign(unsigned(genuine(i))), 'bad_signature');
    await expectRefused(raw(3), (i) => other.sign({ ...unsigned(genuine(i)), authority: other.keyId }), 'unknown_authority');
  });

  it('altered: a denied decision edited to granted; a genuine decision for other content of the same intent id', async () => {
    await expectRefused(
      raw(4),
      (i) => ({ ...genuine({ ...i, proposer: 'agent:nobody' }), verdict: 'granted', intentDigest: genuine(i).intentDigest }),
      'bad_signature',
    );
    await expectRefused(raw(5), (i) => genuine({ ...i, params: { version: '6.6.6', replicas: 66 } }), 'digest_mismatch');
  });

  it('expired: genuinely signed, but its time has passed', async () => {
    await expectRefused(
      raw(6),
      (i) => {
        const d = unsigned(genuine(i));
        const issued = Date.now() - 2 * TTL;
        return core.key.sign({ ...d, issuedAt: new Date(issued).toISOString(), expiresAt: new Date(issued + TTL).toISOString() });
      },
      'expired',
    );
  });

  it('replayed: the genuine decision of an earlier intent, read from the journal', async () => {
    await expectRefused(raw(7), () => replayable, 'intent_mismatch');
  });

  it('replayed for the same intent (as if its outcome had not been recorded): a decision is used once', async () => {
    const i = raw(9);
    usedTwice = i.id;
    const v = validateIntent(i, core.registry, DEFAULT_LIMITS);
    if (!v.ok) throw new Error('invalid');
    const d = genuine(i);
    const applyOnce = async () => {
      const applied = await core.host.withActor(TARGET, async () => {
        expect((await core.host.locate(TARGET)).kind).toBe('here');
        return core.host.apply(v.intent, v.digest, d, { event: v.event });
      });
      await applied.committed;
      return applied.outcome;
    };
    expect((await applyOnce()).status).toBe('executed');
    const before = (await chain()).length;
    const again = await applyOnce();
    expect(again.status === 'failed' && again.error.code).toBe('E_DECISION_INVALID');
    const added = (await chain()).slice(before);
    expect(added.map((f) => f.type)).toEqual(['intent.proposed', 'decision.refused']);
    expect((added[1]!.data as { reason: string }).reason).toBe('replayed');
    expect((await chain()).filter((f) => f.type === 'transition' && f.intentId === i.id)).toHaveLength(1);
  });

  it('after every refusal the same intent still executes once when the genuine authority answers; the journal verifies', async () => {
    const i = raw(8);
    await expectRefused(i, () => replayable, 'intent_mismatch');
    const service = new AuthorityService(authority, core.registry, core.host, bus, DEFAULT_LIMITS, silentLogger());
    service.listen();
    await bus.flush();
    try {
      const out = await propose(i);
      expect(out.status, JSON.stringify(out)).toBe('executed');
      expect(await propose(i)).toEqual(out); // a repeat is answered from the stored outcome
    } finally {
      service.close();
    }
    const facts = await chain();
    expect(facts.filter((f) => f.type === 'transition').map((f) => f.intentId)).toEqual(['rogue-1', usedTwice, i.id]);
    expect(facts.filter((f) => f.type === 'decision.refused')).toHaveLength(8);
    await core.journal.drain();
    const verified = await core.reader.verify();
    expect(verified.ok, JSON.stringify(verified)).toBe(true);
  });
});

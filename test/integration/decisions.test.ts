import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Authority, AuthorityKey, LocalTrust, validateIntent, type ValidatedIntent } from '../../src/authority/index.js';
import { checkpointHash, verifyStore } from '../../src/journal/index.js';
import { DEFAULT_LIMITS, sha256Hex, type Decision, type Fact, type Outcome, type UnsignedDecision } from '../../src/protocol/index.js';
import type { Checkpoint } from '../../src/store/index.js';
import { embeddedCore, type Core } from '../helpers/core.js';
import type { Runtime } from '../../src/index.js';
import { MODES, iid, tempDir, tempRuntime, type Mode } from '../helpers/runtime.js';

/**
 * The host executes nothing on a decision it cannot verify. The pieces are wired as
 * createRuntime wires them in embedded mode (SqliteStore, SqliteJournal with signed
 * checkpoints, LocalOwnership, GrantBook recording on the runtime chain, Host; see
 * test/helpers/core.ts), so host.apply can be handed decisions that were tampered with. Two
 * variants: a host that checks every signature (a decision that crossed a transport), and a
 * host with LocalTrust, where decisions the authority vouched for in-process skip only the
 * signature check — anything else (a copy, an edit, a forgery) is checked in full.
 *
 * Facts are per chain: everything an intent leaves is on its actor's chain (`TARGET`),
 * `seq` and `causes` are positions there.
 */

const TARGET = 'deployment/web';
const TTL = 10_000;

interface Ctx {
  core: Core;
  authority: Authority;
  trust: LocalTrust | undefined;
}

function setup(local: boolean): Ctx {
  const trust = local ? new LocalTrust() : undefined;
  const core = embeddedCore(trust ? { trust } : {});
  const authority = new Authority({ key: core.key, grants: core.grants, clock: core.clock, ids: core.ids, decisionTtlMs: TTL });
  return { core, authority, trust };
}

function validated(c: Ctx, raw: Record<string, unknown>): ValidatedIntent {
  const v = validateIntent(raw, c.core.registry, DEFAULT_LIMITS);
  if (!v.ok) throw new Error(`test intent invalid: ${JSON.stringify(v.issues)}`);
  return v;
}

/** What the authority service does: decide against the live view; in-process, vouch instead of signing. */
function decide(c: Ctx, v: ValidatedIntent): Decision {
  const d = c.authority.decide({
    intent: v.intent,
    digest: v.digest,
    event: v.event,
    actor: c.core.host.view(v.intent.target),
    run: c.core.host.runView(v.intent.runId),
    kindPolicies: v.def.policies,
    sign: c.trust === undefined,
  });
  return c.trust ? c.trust.vouchDecision(d) : d;
}

async function apply(c: Ctx, v: ValidatedIntent, d: Decision): Promise<Outcome> {
  const { host } = c.core;
  const applied = await host.withActor(v.intent.target, async () => {
    // as in a real turn: the actor is located (active here) before anything is applied
    const where = await host.locate(v.intent.target);
    expect(where.kind).toBe('here');
    return host.apply(v.intent, v.digest, d, { event: v.event });
  });
  await applied.committed;
  return applied.outcome;
}

const unsigned = (d: Decision): UnsignedDecision => {
  const { sig: _sig, ...rest } = d;
  return rest;
};

/** The facts of the target's chain, oldest first. */
const chainFacts = (c: Ctx): Promise<Fact[]> => c.core.reader.chain(TARGET);
/** The checkpoint check `ice journal verify` runs with this data dir's key. */
const withKey = (c: Ctx) => (cp: Checkpoint) => cp.keyId === c.core.key.keyId && c.core.key.verifyCheckpoint(cp.hash, cp.sig);

describe.each([
  ['a host that verifies every signature', false],
  ['a host with LocalTrust (in-process decisions)', true],
])('decision verification: %s', (_name, local) => {
  let c: Ctx;
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
    c = setup(local);
    await c.core.host.spawn(TARGET, { service: 'web' });
  });
  afterEach(async () => c.core.close());

  const grant = () => c.core.grants.issue({ subject: 'agent:bot', scope: `${TARGET}:*` });

  /**
   * Applies `forged` for `v` and checks it was refused for `reason` without any effect:
   * outcome failed/E_DECISION_INVALID, `intent.proposed` + `decision.refused` facts appended to
   * the actor's chain, no transition, no stored outcome, the actor (in memory and its stored
   * snapshot) unchanged — only its chain moved on by the two facts.
   */
  async function expectRefused(v: ValidatedIntent, forged: Decision, reason: string): Promise<void> {
    const actor = v.intent.target;
    const { store, host, reader } = c.core;
    const headBefore = (await reader.chain(actor)).length;
    const storedBefore = store.snapshot(actor);
    const memBefore = (await host.detail(actor))!;
    expect(memBefore.seq).toBe(headBefore);
    const outcome = await apply(c, v, forged);
    expect(outcome.status).toBe('failed');
    expect(outcome.status === 'failed' && outcome.error.code).toBe('E_DECISION_INVALID');
    const added = await reader.chain(actor, headBefore + 1);
    expect(added.map((f) => f.type)).toEqual(['intent.proposed', 'decision.refused']);
    const [proposed, refused] = added as [Fact, Fact];
    expect([proposed.seq, refused.seq]).toEqual([headBefore + 1, headBefore + 2]);
    expect(proposed.actor).toBe(actor);
    expect(refused.actor).toBe(actor);
    expect(proposed.intentId).toBe(v.intent.id);
    expect(refused.intentId).toBe(v.intent.id);
    expect(refused.causes).toEqual([proposed.seq]);
    expect(refused.prev).toBe(proposed.hash);
    expect(refused.data.reason).toBe(reason);
    expect(refused.data.decisionId).toBe(forged.id);
    expect(outcome.seq).toBe(refused.seq);
    expect(store.outcome(v.intent.id)).toBeUndefined();
    const storedAfter = store.snapshot(actor)!;
    expect({ ...storedAfter, seq: 0, updatedAt: '' }).toEqual({ ...storedBefore, seq: 0, updatedAt: '' });
    expect(storedAfter.seq).toBe(refused.seq);
    const memAfter = (await host.detail(actor))!;
    expect(memAfter.snapshot).toEqual(memBefore.snapshot);
    expect(memAfter.seq).toBe(refused.seq);
    expect(memAfter.state).toBe(memBefore.state);
  }

  async function expectExecuted(v: ValidatedIntent, d: Decision): Promise<void> {
    const { store, host } = c.core;
    const outcome = await apply(c, v, d);
    expect(outcome.status, JSON.stringify(outcome)).toBe('executed');
    const t = (await chainFacts(c)).filter((f) => f.type === 'transition' && f.intentId === v.intent.id);
    expect(t).toHaveLength(1);
    expect(outcome.seq).toBe(t[0]!.seq);
    expect(store.snapshot(TARGET)!.seq).toBe(t[0]!.seq);
    expect(store.outcome(v.intent.id)?.outcome).toEqual(outcome);
    expect(((await host.detail(TARGET))!.context as { replicas: number }).replicas).toBe(
      (v.intent.params as { replicas: number }).replicas,
    );
  }

  const transitions = async () => (await chainFacts(c)).filter((f) => f.type === 'transition');

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
    expect(await transitions()).toHaveLength(0);
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
    await expectRefused(v, { ...d, expiresAt: new Date(c.core.clock.now() + 10 * TTL).toISOString() }, 'bad_signature');
    await expectRefused(v, { ...d, grantId: 'g_forged' }, 'bad_signature');
    await expectRefused(v, { ...d, reasons: [] }, 'bad_signature');
    await expectRefused(v, { ...d, approvedBy: 'human:nobody' }, 'bad_signature');
    expect(await transitions()).toHaveLength(0);
    await expectExecuted(v, d);
  });

  it('(b) a decision for another intent (id or digest mismatch) is refused', async () => {
    await grant();
    await c.core.host.spawn('deployment/api', { service: 'api' });
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
    // same id, other target (refused on that actor's chain)
    const a3 = validated(c, { ...a.intent, target: 'deployment/api' });
    await expectRefused(a3, dA, 'digest_mismatch');
    expect(await transitions()).toHaveLength(0);
    expect((await c.core.reader.chain('deployment/api')).filter((f) => f.type === 'transition')).toHaveLength(0);
    await expectExecuted(a, dA);
  });

  it('(c) an expired decision is refused; a fresh one executes', async () => {
    await grant();
    const v = intent({ params: { version: '1.0.0', replicas: 4 } });
    const d = decide(c, v);
    expect(Date.parse(d.expiresAt) - c.core.clock.now()).toBe(TTL);
    c.core.clock.advance(TTL); // exactly at expiresAt: expired
    await expectRefused(v, d, 'expired');
    c.core.clock.advance(60_000);
    await expectRefused(v, d, 'expired');
    expect(await transitions()).toHaveLength(0);
    const fresh = decide(c, v);
    c.core.clock.advance(TTL - 1); // just before it expires
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
    const deniedElsewhere = other.sign({ ...unsigned(d), verdict: 'granted', id: 'd_evil', authority: c.core.key.keyId });
    await expectRefused(v, deniedElsewhere, 'bad_signature');
    expect(await transitions()).toHaveLength(0);
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
      actor: c.core.host.view(TARGET),
      kindPolicies: v.def.policies,
    });
    expect(c.core.key.verify(sibling)).toBe(true);
    await expectRefused(v, { ...d, sig: sibling.sig }, 'bad_signature');
    expect(await transitions()).toHaveLength(0);
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
    expect(c.core.store.outcome(v.intent.id)?.outcome.status).toBe('executed');
    await c.core.journal.drain();
    const verify = verifyStore(c.core.store, withKey(c));
    expect(verify.ok).toBe(true);
    expect(verify.count).toBe(c.core.store.factCount());
  });

  it('the journal chains and checkpoints verify after all the refusals', async () => {
    await grant();
    const v = intent();
    const d = decide(c, v);
    await expectRefused(v, { ...d, verdict: 'granted', sig: 'AAAA' }, 'bad_signature');
    // a copy is never vouched for, so even in-process an edited binding fails on the signature first
    await expectRefused(v, { ...d, intentId: 'someone-else' }, 'bad_signature');
    await expectExecuted(v, d);
    await c.core.journal.drain();
    const lastPos = c.core.store.lastPos();
    // the actor's chain and the runtime chain (the grant)
    expect(verifyStore(c.core.store, withKey(c))).toMatchObject({ ok: true, chains: 2, count: lastPos, lastPos, attestedPos: lastPos });
    expect(await c.core.reader.verify()).toMatchObject({ ok: true, chains: 2, count: lastPos, attestedPos: lastPos });
    // A verifier with another key refuses the checkpoints.
    const other = AuthorityKey.generate();
    expect(verifyStore(c.core.store, (cp) => other.verifyCheckpoint(cp.hash, cp.sig)).ok).toBe(false);
  });
});

/**
 * The journal keeps decisions honest after the fact too: a decision (or its refusal) altered
 * in the SQLite file is found by `verify` at its chain and seq — by the chain's hashes, or,
 * when the whole suffix of the chain was rewritten with recomputed hashes, by the signed
 * checkpoints (`verifyStore(store, cp => key.verifyCheckpoint(cp.hash, cp.sig))`).
 */
describe('decisions altered in the SQLite journal after the fact', () => {
  let c: Ctx;
  beforeEach(() => {
    c = setup(true);
  });
  afterEach(async () => c.core.close());

  /** On TARGET: a denied intent, a refused forgery, then executed intents after them. */
  async function history(): Promise<{ denied: Fact; refused: Fact; facts: Fact[] }> {
    await c.core.host.spawn(TARGET, { service: 'web' });
    const base = { proposer: 'agent:bot', target: TARGET, action: 'CONFIGURE' };
    const v1 = validated(c, { ...base, id: iid('t'), params: { version: '1.0.0', replicas: 7 } });
    expect((await apply(c, v1, decide(c, v1))).status).toBe('denied');
    await c.core.grants.issue({ subject: 'agent:bot', scope: `${TARGET}:*` });
    const v2 = validated(c, { ...base, id: iid('t'), params: { version: '1.0.1', replicas: 2 } });
    expect((await apply(c, v2, { ...decide(c, v2), sig: 'forged' })).status).toBe('failed');
    for (let i = 0; i < 3; i++) {
      const v = validated(c, { ...base, id: iid('t'), params: { version: `2.0.${i}`, replicas: i + 1 } });
      expect((await apply(c, v, decide(c, v))).status).toBe('executed');
    }
    await c.core.journal.drain();
    const facts = await chainFacts(c);
    const denied = facts.find((f) => f.type === 'decision' && (f.data.decision as Decision).verdict === 'denied')!;
    const refused = facts.find((f) => f.type === 'decision.refused')!;
    expect(denied.intentId).toBe(v1.intent.id);
    expect(refused.intentId).toBe(v2.intent.id);
    expect(verifyStore(c.core.store, withKey(c)).ok).toBe(true);
    return { denied, refused, facts };
  }

  function tamper<T>(fn: (db: Database.Database) => T): T {
    const db = new Database(join(c.core.dir, 'ice.db'));
    try {
      return fn(db);
    } finally {
      db.close();
    }
  }
  const WHERE = 'WHERE chain = ? AND seq = ?';
  const verify = () => verifyStore(c.core.store, withKey(c));

  it('a denied decision edited to granted is found at its chain and seq', async () => {
    const { denied } = await history();
    tamper((db) => {
      const row = db.prepare(`SELECT body FROM facts ${WHERE}`).get(TARGET, denied.seq) as { body: string };
      const edited = row.body.replace('"verdict":"denied"', '"verdict":"granted"');
      expect(edited).not.toBe(row.body);
      expect(db.prepare(`UPDATE facts SET body = ? ${WHERE}`).run(edited, TARGET, denied.seq).changes).toBe(1);
    });
    expect(await c.core.reader.verify()).toMatchObject({ ok: false, brokenChain: TARGET, brokenAt: denied.seq });
    expect(verify().reason).toMatch(/hash does not match/);
  });

  it('a deleted decision.refused row is found at its chain and seq', async () => {
    const { refused } = await history();
    expect(tamper((db) => db.prepare(`DELETE FROM facts ${WHERE}`).run(TARGET, refused.seq).changes)).toBe(1);
    const v = verify();
    expect(v).toMatchObject({ ok: false, brokenChain: TARGET, brokenAt: refused.seq });
    expect(v.reason).toMatch(/missing/);
  });

  it("a decision's hash, prev or index columns edited are found at its chain and seq (and put back, it verifies again)", async () => {
    const { denied } = await history();
    const cases: Array<[string, string, RegExp]> = [
      ['hash', '0'.repeat(64), /hash does not match/],
      ['prev', 'f'.repeat(64), /prev does not match/],
      ['intent_id', 'someone-else', /columns disagree/],
      ['type', 'transition', /columns disagree/],
      ['actor', 'deployment/elsewhere', /columns disagree/],
    ];
    for (const [column, value, reason] of cases) {
      const original = tamper((db) => {
        const row = db.prepare(`SELECT ${column} AS v FROM facts ${WHERE}`).get(TARGET, denied.seq) as { v: string };
        db.prepare(`UPDATE facts SET ${column} = ? ${WHERE}`).run(value, TARGET, denied.seq);
        return row.v;
      });
      const v = verify();
      expect(v, column).toMatchObject({ ok: false, brokenChain: TARGET, brokenAt: denied.seq });
      expect(v.reason, column).toMatch(reason);
      tamper((db) => db.prepare(`UPDATE facts SET ${column} = ? ${WHERE}`).run(original, TARGET, denied.seq));
      expect(verify().ok, column).toBe(true);
    }
  });

  it("a denied decision rewritten to granted with the chain's suffix rehashed is caught by the signed checkpoints", async () => {
    const { denied, facts } = await history();
    const firstCp = tamper((db) => {
      const rows = db
        .prepare('SELECT seq, body, prev FROM facts WHERE chain = ? AND seq >= ? ORDER BY seq')
        .all(TARGET, denied.seq) as Array<{
        seq: number;
        body: string;
        prev: string;
      }>;
      expect(rows.length).toBe(facts.length - denied.seq + 1);
      let prev = rows[0]!.prev;
      for (const r of rows) {
        const body = r.seq === denied.seq ? r.body.replace('"verdict":"denied"', '"verdict":"granted"') : r.body;
        const hash = sha256Hex(prev + body);
        db.prepare(`UPDATE facts SET body = ?, prev = ?, hash = ? ${WHERE}`).run(body, prev, hash, TARGET, r.seq);
        prev = hash;
      }
      // the first checkpoint that names a rewritten fact of the chain
      const cps = db.prepare('SELECT pos, heads FROM checkpoints ORDER BY pos').all() as Array<{ pos: number; heads: string }>;
      for (const cp of cps) {
        const named = (JSON.parse(cp.heads) as Checkpoint['heads']).find(([ch, s]) => ch === TARGET && s >= denied.seq);
        if (named) return { pos: cp.pos, seq: named[1] };
      }
      throw new Error('no checkpoint names the rewritten facts');
    });
    // every link of the chain holds: without the checkpoints nothing is found…
    expect(verifyStore(c.core.store)).toMatchObject({ ok: true });
    // …the signed checkpoints name other hashes
    const v = verify();
    expect(v).toMatchObject({ ok: false, brokenChain: TARGET, brokenAt: firstCp.seq });
    expect(v.reason).toMatch(/checkpoint/);
    expect(firstCp.seq).toBeGreaterThanOrEqual(denied.seq);
    // rewriting the checkpoints as well breaks the newest checkpoint's signature
    tamper((db) => {
      const cps = db.prepare('SELECT pos, heads, prev, hash FROM checkpoints ORDER BY pos').all() as Array<{
        pos: number;
        heads: string;
        prev: string;
        hash: string;
      }>;
      let prev = '';
      for (const cp of cps) {
        if (cp.pos < firstCp.pos) {
          prev = cp.hash;
          continue;
        }
        const heads = (JSON.parse(cp.heads) as Checkpoint['heads']).map(([ch, s, hh]): [string, number, string] => [
          ch,
          s,
          ch === TARGET ? (db.prepare(`SELECT hash FROM facts ${WHERE}`).get(ch, s) as { hash: string }).hash : hh,
        ]);
        const hash = checkpointHash(prev, heads);
        db.prepare('UPDATE checkpoints SET heads = ?, prev = ?, hash = ? WHERE pos = ?').run(JSON.stringify(heads), prev, hash, cp.pos);
        prev = hash;
      }
    });
    const v2 = verify();
    expect(v2.ok).toBe(false);
    expect(v2.reason).toMatch(/signature/);
  });
});

/**
 * How in-process decisions are signed, in each mode. The node's key: the data dir's
 * `authority.key` (embedded), the node's `cluster.keyFile` (cluster).
 */
describe.each(MODES)('signDecisions (%s)', (mode) => {
  async function start(signDecisions?: 'each') {
    const keyDir = tempDir('ice-key-');
    const h = await tempRuntime({
      mode,
      ...(signDecisions ? { signDecisions } : {}),
      ...(mode === 'cluster' ? { cluster: { keyFile: join(keyDir.dir, 'authority.key') } } : {}),
    }).catch((e: unknown) => {
      keyDir.cleanup();
      throw e;
    });
    const key = AuthorityKey.loadPublic(mode === 'cluster' ? keyDir.dir : h.dir)!;
    expect(key.keyId).toBe(h.rt.authorityKeyId);
    const close = async () => {
      await h.close();
      keyDir.cleanup();
    };
    return { rt: h.rt, key, close };
  }

  async function configured(rt: Runtime): Promise<Decision> {
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
    return (await rt.journal.factsOfIntent(o.intentId!)).find((f) => f.type === 'decision')!.data.decision as Decision;
  }

  it("'each': journals in-process decisions with their own valid signatures", async () => {
    const { rt, key, close } = await start('each');
    try {
      const decision = await configured(rt);
      expect(decision.sig).not.toBe('');
      expect(key.verify(decision)).toBe(true);
      expect(key.verify({ ...decision, verdict: 'denied' })).toBe(false);
    } finally {
      await close();
    }
  });

  it("'batch' (the default): in-process decisions are journaled unsigned, attested by the store's signatures (checkpoints, or one per turn in a cluster)", async () => {
    const { rt, key, close } = await start();
    try {
      const decision = await configured(rt);
      expect(decision.sig).toBe('');
      expect(key.verify(decision)).toBe(false);
      await rt.store.drain();
      const v = await rt.journal.verify();
      expect(v.ok).toBe(true);
      // embedded: a signed checkpoint per group commit; cluster: every turn signed by its node
      expect(v.checkpoints).toBeGreaterThan(0);
      expect(v.attestedPos).toBe(v.lastPos);
    } finally {
      await close();
    }
  });
});

/**
 * Property-based fuzzing of every door of a runtime serving over a real nats-server (the
 * server's max_payload set to 64 KiB so that "just over" is cheap), in both modes: an
 * embedded node (SQLite store) and a cluster node (JetStream store). Per door, at least
 * FUZZ_MESSAGES generated malformed messages (default 10 000) in concurrent batches:
 *
 * - every request is answered within a bounded wait, with a typed answer: a `rejected`
 *   outcome on the intent doors, `{ error: { code, message } }` (or a decision / a result for
 *   what happens to be a well-formed request) on the others; the runtime API throws IceErrors;
 * - nothing changes: the actors' state, context and chains, the grants; the only facts added
 *   are `intent.rejected` on the runtime chain.
 *
 * The raw-bytes door against a runtime in a child process is in fuzz-raw-bytes.test.ts.
 * Seed: ICE_FUZZ_SEED (printed); messages per door: ICE_FUZZ_MESSAGES.
 */
import { connect as natsConnect, type NatsConnection } from '@nats-io/transport-node';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_OPS } from '../../src/admin/ops.js';
import { createRuntime, IceError, OutcomeSchema, type Runtime } from '../../src/index.js';
import { NatsTransport } from '../../src/transport/index.js';
import {
  FUZZ_SEED,
  LIVE,
  asSubject,
  badIntentBody,
  enc,
  fuzzDoor,
  garbageArgs,
  intentSubject,
  isPlainObject,
  printCounts,
  rawMsg,
  rawPayload,
  short,
  token,
  type DoorCount,
  type RawMsg,
} from '../helpers/fuzz.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { MODES, tempDir } from '../helpers/runtime.js';

const REPLY_WAIT_MS = 15_000;
const encodePrincipal = (p: string) => p.replaceAll('%', '%25').replaceAll('.', '%2E');

/** An intent door's messages: generated bodies on fitting or broken subjects, and raw payloads. */
const intentDoor = (subjects: fc.Arbitrary<string>, fitting: (b: { proposer: string; target: string }) => string) =>
  fc.oneof(
    {
      weight: 3,
      arbitrary: fc
        .tuple(badIntentBody, fc.oneof(fc.constant(undefined), subjects))
        .map(([b, s]) => rawMsg(s ?? fitting(b), enc.encode(b.text), b.what)),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(subjects, rawPayload).map(([subject, p]) => rawMsg(subject, p.bytes, p.what)),
    },
  );

const outcomeStatus = (reply: unknown): string => {
  const o = OutcomeSchema.safeParse(reply);
  if (!o.success) return 'not an outcome';
  return o.data.status === 'rejected' ? 'rejected' : `status ${o.data.status}`;
};

const typedError = (reply: unknown): boolean =>
  isPlainObject(reply) &&
  isPlainObject(reply['error']) &&
  typeof reply['error']['code'] === 'string' &&
  typeof reply['error']['message'] === 'string';

interface State {
  actors: Record<string, unknown>;
  chains: Record<string, number>;
  runtimeSeq: number;
  grants: string;
}

async function state(rt: Runtime): Promise<State> {
  const actors: Record<string, unknown> = {};
  const chains: Record<string, number> = {};
  for (const a of LIVE) {
    const d = await rt.actor(a);
    actors[a] = { state: d?.state, status: d?.status, context: d?.context, seq: d?.seq };
    chains[a] = (await rt.journal.chain(a, 1, 100_000)).length;
  }
  const head = await rt.journal.tail({ chain: rt.runtimeChain, limit: 1 });
  return { actors, chains, runtimeSeq: head[0]?.seq ?? 0, grants: JSON.stringify(rt.grants.list()) };
}

describe.each(MODES)('fuzzing every door (%s)', (mode) => {
  let server: NatsServer;
  let transport: NatsTransport | undefined;
  let dir: ReturnType<typeof tempDir> | undefined;
  let rt: Runtime;
  let nc: NatsConnection;
  let before: State;
  const counts: DoorCount[] = [];

  const request = async (m: RawMsg): Promise<unknown> => {
    const reply = await nc.request(m.subject, m.payload, { timeout: REPLY_WAIT_MS });
    const text = reply.string();
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return { notJson: text };
    }
  };
  const describeMsg = (m: RawMsg) => `${m.subject} ← ${m.what} (${m.payload.length} bytes)`;

  beforeAll(async () => {
    server = await startNatsServer({ jetstream: mode === 'cluster', extraConfig: 'max_payload: 65536' });
    if (mode === 'embedded') {
      dir = tempDir('ice-fuzz-');
      transport = await NatsTransport.connect({ servers: server.url, name: 'fuzz-runtime' });
      rt = await createRuntime({ dataDir: dir.dir, transport, node: 'fz' });
    } else {
      rt = await createRuntime({ cluster: { servers: server.url }, node: 'fz' });
    }
    await rt.spawn('deployment/web', { service: 'web' });
    await rt.spawn('run/r1', {});
    // a valid intent on a live actor WOULD execute: the generators must never produce one
    await rt.grants.issue({ id: 'g-fuzz', subject: 'agent:*', scope: 'deployment/*:*' });
    nc = await natsConnect({ servers: server.url, name: 'fuzzer' });
    before = await state(rt);
    console.log(`fuzz seed ${FUZZ_SEED} (${mode}); replay with ICE_FUZZ_SEED=${FUZZ_SEED}`);
  }, 60_000);

  afterAll(async () => {
    printCounts(`doors (${mode})`, counts);
    await nc?.close();
    await rt?.stop();
    await transport?.close();
    dir?.cleanup();
    await server?.stop();
  });

  it('ice.as.<principal>.<kind>.<id>: every message rejected', async () => {
    const c = await fuzzDoor({
      door: 'ice.as.<p>.<kind>.<id>',
      arb: intentDoor(asSubject, (b) => `ice.as.${encodePrincipal(b.proposer)}.${b.target.replace('/', '.')}`),
      send: request,
      classify: outcomeStatus,
      describe: describeMsg,
    });
    counts.push(c);
    expect(c.rejected).toBe(c.messages);
  });

  it('ice.intent.<kind>.<id>: every message rejected', async () => {
    const c = await fuzzDoor({
      door: 'ice.intent.<kind>.<id>',
      arb: intentDoor(intentSubject, (b) => `ice.intent.${b.target.replace('/', '.')}`),
      send: request,
      classify: outcomeStatus,
      describe: describeMsg,
    });
    counts.push(c);
    expect(c.rejected).toBe(c.messages);
  });

  it('ice.authority.decide: malformed decide requests get { error } (a well-formed one for a ghost actor a decision)', async () => {
    const decideBody = fc.oneof(
      badIntentBody.map((b) => ({ what: `{intent: ${b.what}}`, text: `{"intent":${b.text},"digest":"00"}` })),
      fc
        .tuple(badIntentBody, fc.jsonValue({ maxDepth: 2 }))
        .map(([b, x]) => ({ what: `{intent, approvedBy: ${short(x)}}`, text: `{"intent":${b.text},"approvedBy":${JSON.stringify(x)}}` })),
      rawPayload.map((p) => ({ what: p.what, text: new TextDecoder().decode(p.bytes) })),
    );
    const c = await fuzzDoor({
      door: 'ice.authority.decide',
      arb: decideBody.map((b) => rawMsg('ice.authority.decide', enc.encode(b.text), b.what)),
      send: request,
      classify: (r) =>
        typedError(r) ? 'typed' : isPlainObject(r) && isPlainObject(r['decision']) ? 'other' : 'neither error nor decision',
      describe: describeMsg,
    });
    counts.push(c);
  });

  it.skipIf(mode !== 'cluster')('ice.node.<node>.intent (forwards): every message rejected', async () => {
    const c = await fuzzDoor({
      door: 'ice.node.<node>.intent',
      arb: fc.oneof(
        {
          weight: 3,
          arbitrary: badIntentBody.map((b) => rawMsg('ice.node.fz.intent', enc.encode(b.text), b.what)),
        },
        { weight: 1, arbitrary: rawPayload.map((p) => rawMsg('ice.node.fz.intent', p.bytes, p.what)) },
      ),
      send: request,
      classify: outcomeStatus,
      describe: describeMsg,
    });
    counts.push(c);
    expect(c.rejected).toBe(c.messages);
  });

  it('ice.admin.<op> and ice.node.<node>.admin.<op> (black box): every request answered with { result } or { error: { code, message } }', async () => {
    const c = await fuzzDoor({
      door: 'ice.admin.<op>',
      arb: fc
        .tuple(fc.constantFrom(...ADMIN_OPS), fc.boolean(), garbageArgs)
        // journal.verify with valid arguments ({}, empty, null) walks the whole journal: on a cluster
        // holding the ~30 000 rejections of the doors above one takes seconds, and a batch of them
        // queued on one node outlasts any bounded wait (reported, src/admin is not changed here).
        // Its argument checking is fuzzed with arguments that are never valid.
        .filter(([op, , a]) => op !== 'journal.verify' || a.what.startsWith('object with unknown key'))
        .map(([op, direct, a]) => rawMsg(direct ? `ice.node.fz.admin.${op}` : `ice.admin.${op}`, a.bytes, a.what)),
      send: request,
      classify: (r) => (typedError(r) ? 'typed' : isPlainObject(r) && 'result' in r ? 'other' : 'neither result nor error'),
      describe: describeMsg,
    });
    counts.push(c);
  });

  const thrown = async (p: () => Promise<unknown>): Promise<unknown> => {
    try {
      return { resolved: await p() };
    } catch (e) {
      return e instanceof IceError ? { iceError: e.code } : { untyped: `${(e as Error)?.name}: ${(e as Error)?.message}` };
    }
  };
  const classifyThrown = (r: unknown) =>
    isPlainObject(r) && 'iceError' in r ? 'typed' : isPlainObject(r) && 'resolved' in r ? 'resolved' : `untyped error ${short(r, 200)}`;

  it('rt.grants.issue(garbage): every call throws a typed error, no grant is issued', async () => {
    const valid = { subject: 'agent:fz', scope: 'deployment/web:CONFIGURE' };
    const bad: Array<[string, unknown[]]> = [
      ['subject', [123, '', 'nocolon', null, 'agent:a b', ['agent:x']]],
      ['scope', ['deployment', 'a/b/c:X', 5, '', ':', { kind: 'x' }]],
      ['ttlMs', [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '1000', 9e15, 5e15, Number.MAX_SAFE_INTEGER, 2 ** 53, 1e308]],
      ['maxUses', [0, -5, 1.5, 2 ** 60, 'many', null]],
      ['expiresAt', ['yesterday', 12, '2026-13-01T00:00:00Z', '']],
      ['runId', ['a.b', '', 7]],
      ['by', ['', 'x'.repeat(300), 5]],
      ['note', ['x'.repeat(2000), {}]],
      ['id', ['has.dot', '', 'x'.repeat(200)]],
    ];
    const mutation = fc.oneof(
      ...bad.map(([k, vs]) => fc.constantFrom(...vs).map((v) => ({ k, v }))),
      fc.tuple(token, fc.jsonValue({ maxDepth: 2 })).map(([k, v]) => ({ k: `zz${k}`, v })),
    );
    const req = fc.oneof(
      {
        weight: 4,
        arbitrary: fc
          .array(mutation, { minLength: 1, maxLength: 3 })
          .map((ms) => Object.fromEntries([...Object.entries(valid), ...ms.map((m) => [m.k, m.v])]) as unknown),
      },
      { weight: 1, arbitrary: fc.anything({ maxDepth: 3 }).filter((v) => !(isPlainObject(v) && typeof v['subject'] === 'string')) },
    );
    const c = await fuzzDoor({
      door: 'rt.grants.issue',
      arb: req,
      send: (r) => thrown(() => rt.grants.issue(r as never)),
      classify: (r) => (classifyThrown(r) === 'resolved' ? `issued a grant ${short(r, 300)}` : classifyThrown(r)),
      describe: (r) => short(r, 300),
    });
    counts.push(c);
    expect(rt.grants.list().map((g) => g.id)).toEqual(['g-fuzz']);
  });

  it('rt.approvals.approve / deny(garbage): every call throws a typed error', async () => {
    const arg = fc.oneof(
      fc.constantFrom<unknown>(undefined, null, '', 'i-none', 5, {}, [], { id: 'x' }, 'a.b', 'x'.repeat(5000)),
      fc.anything({ maxDepth: 2 }),
    );
    const c = await fuzzDoor({
      door: 'rt.approvals.approve/deny',
      arb: fc.tuple(fc.boolean(), arg, arg, arg),
      send: ([approve, id, by, x]) =>
        thrown(() =>
          approve ? rt.approvals.approve(id as never, by as never, x as never) : rt.approvals.deny(id as never, by as never, x as never),
        ),
      classify: (r) => (classifyThrown(r) === 'resolved' ? `settled ${short(r, 300)}` : classifyThrown(r)),
      describe: (m) => short(m, 300),
    });
    counts.push(c);
  });

  it('afterwards: no actor changed, no grant changed, only intent.rejected facts were added, and a valid intent still executes', async () => {
    const after = await state(rt);
    expect(after.actors).toEqual(before.actors);
    expect(after.chains).toEqual(before.chains);
    expect(after.grants).toEqual(before.grants);
    const added: Record<string, number> = {};
    for (let from = before.runtimeSeq + 1; from <= after.runtimeSeq;) {
      const page = await rt.journal.chain(rt.runtimeChain, from, 5_000);
      if (page.length === 0) break;
      for (const f of page) added[f.type] = (added[f.type] ?? 0) + 1;
      from = page[page.length - 1]!.seq + 1;
    }
    expect(Object.values(added).reduce((a, b) => a + b, 0)).toBe(after.runtimeSeq - before.runtimeSeq);
    // (fewer facts than rejected outcomes is expected: concurrent duplicates of one intent id share one outcome)
    expect(added['intent.rejected'] ?? 0).toBeGreaterThan(0);
    const t0 = performance.now();
    const verified = await rt.journal.verify();
    console.log(
      `facts added on ${rt.runtimeChain} (${mode}): ${JSON.stringify(added)}; journal.verify of ${verified.count} facts: ` +
        `${verified.ok ? 'ok' : 'BROKEN'} in ${Math.round(performance.now() - t0)} ms`,
    );
    expect(verified.ok).toBe(true);
    expect(Object.keys(added).filter((t) => t !== 'intent.rejected')).toEqual([]);
    const out = await rt.propose({
      id: `fz-ok-${mode}`,
      proposer: 'agent:ok',
      target: 'deployment/web',
      action: 'CONFIGURE',
      params: { version: '1.0.0', replicas: 1 },
    });
    expect(out).toMatchObject({ status: 'executed' });
  });
});

/**
 * The runtime the door fuzz tests aim at: one node serving over its own nats-server (JetStream
 * in cluster mode; max_payload 64 KiB so that "just over" is cheap), with two live actors and
 * a grant that would let a valid intent on them execute; a plain nats.js client; and the
 * "nothing changed" check (actors, their chains, grants; only `intent.rejected` facts added;
 * the journal verifies; a valid intent still executes).
 */
import { connect as natsConnect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, expect } from 'vitest';
import { createRuntime, OutcomeSchema, type Runtime } from '../../src/index.js';
import { NatsTransport } from '../../src/transport/index.js';
import { FUZZ_SEED, isPlainObject, LIVE, printCounts, type DoorCount, type RawMsg } from './fuzz.js';
import { startNatsServer, type NatsServer } from './nats-server.js';
import { tempDir, type Mode } from './runtime.js';

/** How long one request may wait for its answer before the property fails. */
export const REPLY_WAIT_MS = 15_000;

export interface FuzzNode {
  rt: Runtime;
  server: NatsServer;
  nc: NatsConnection;
  /** Sends a raw message as a request; the answer parsed as JSON (else `{ notJson }`). */
  request(m: RawMsg): Promise<unknown>;
  close(): Promise<void>;
}

export interface FuzzSuite {
  readonly rt: Runtime;
  /** The actors, grants and facts before the first message. */
  readonly before: State;
  /** Each door's counts, printed after the suite. */
  readonly counts: DoorCount[];
  request(m: RawMsg): Promise<unknown>;
}

/**
 * A describe block's fuzz node: started (and the state before taken) before its tests, its
 * per-door counts printed and the node closed after them.
 */
export function fuzzSuite(mode: Mode, label: string): FuzzSuite {
  let node: FuzzNode | undefined;
  let before: State | undefined;
  const counts: DoorCount[] = [];
  beforeAll(async () => {
    node = await startFuzzNode(mode);
    before = await stateOf(node.rt);
    console.log(`fuzz seed ${FUZZ_SEED} (${mode}); replay with ICE_FUZZ_SEED=${FUZZ_SEED}`);
  }, 60_000);
  afterAll(async () => {
    printCounts(`${label} (${mode})`, counts);
    await node?.close();
  });
  return {
    get rt() {
      return node!.rt;
    },
    get before() {
      return before!;
    },
    counts,
    request: (m) => node!.request(m),
  };
}

export async function startFuzzNode(mode: Mode): Promise<FuzzNode> {
  const server = await startNatsServer({ jetstream: mode === 'cluster', extraConfig: 'max_payload: 65536' });
  let transport: NatsTransport | undefined;
  let dir: ReturnType<typeof tempDir> | undefined;
  let rt: Runtime;
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
  const nc = await natsConnect({ servers: server.url, name: 'fuzzer', noAsyncTraces: true });
  return {
    rt,
    server,
    nc,
    async request(m) {
      const reply = await nc.request(m.subject, m.payload, { timeout: REPLY_WAIT_MS });
      const text = reply.string();
      try {
        return JSON.parse(text) as unknown;
      } catch {
        return { notJson: text };
      }
    },
    async close() {
      await nc.close();
      await rt.stop();
      await transport?.close();
      dir?.cleanup();
      await server.stop();
    },
  };
}

export const describeMsg = (m: RawMsg): string => `${m.subject} ← ${m.what} (${m.payload.length} bytes)`;

/** `rejected` for a rejected outcome, else what it is (which fails the property). */
export const outcomeStatus = (reply: unknown): string => {
  const o = OutcomeSchema.safeParse(reply);
  if (!o.success) return 'not an outcome';
  return o.data.status === 'rejected' ? 'rejected' : `status ${o.data.status}`;
};

export const typedError = (reply: unknown): boolean =>
  isPlainObject(reply) &&
  isPlainObject(reply['error']) &&
  typeof reply['error']['code'] === 'string' &&
  typeof reply['error']['message'] === 'string';

export interface State {
  actors: Record<string, unknown>;
  chains: Record<string, number>;
  runtimeSeq: number;
  grants: string;
}

export async function stateOf(rt: Runtime): Promise<State> {
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

/**
 * No actor, chain or grant changed since `before`; every fact added on the runtime chain is
 * an `intent.rejected`; the journal verifies; a valid intent executes.
 */
export async function expectNothingChanged(rt: Runtime, before: State, counts: DoorCount[], label: string): Promise<void> {
  const after = await stateOf(rt);
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
  // intent.rejected for refused intents; approval.refused for well-formed approvals of intents never pending
  expect(Object.keys(added).filter((t) => t !== 'intent.rejected' && t !== 'approval.refused')).toEqual([]);
  // (fewer facts than rejected outcomes is expected: concurrent duplicates of one intent id share one outcome)
  if (counts.some((c) => c.rejected > 0)) expect(added['intent.rejected'] ?? 0).toBeGreaterThan(0);
  const t0 = performance.now();
  const verified = await rt.journal.verify();
  console.log(
    `${label}: facts added on ${rt.runtimeChain}: ${JSON.stringify(added)}; journal.verify of ${verified.count} facts: ` +
      `${verified.ok ? 'ok' : 'BROKEN'} in ${Math.round(performance.now() - t0)} ms`,
  );
  expect(verified.ok).toBe(true);
  const out = await rt.propose({
    id: `fz-ok-${label.replace(/[^A-Za-z0-9_-]/g, '-')}`,
    proposer: 'agent:ok',
    target: 'deployment/web',
    action: 'CONFIGURE',
    params: { version: '1.0.0', replicas: 1 },
  });
  expect(out).toMatchObject({ status: 'executed' });
}

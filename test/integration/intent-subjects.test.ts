/**
 * Every request on an intent subject gets an answer: a malformed `ice.as.…` / `ice.intent.…`
 * subject (token count, principal encoding, target tokens) is `rejected` with an issue naming
 * the mistake and the exact subject to use, journaled as `intent.rejected`, answered by one
 * member of the `ice.intake` queue group — over the embedded bus and over a real nats-server.
 * And what a nats.js v3 client sees when the server refuses its publish (docs/protocol.md).
 */
import {
  connect as natsConnect,
  PermissionViolationError,
  RequestError,
  TimeoutError as NatsTimeoutError,
  type NatsConnection,
} from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntime, OutcomeSchema, PermissionDeniedError, type Outcome, type Runtime } from '../../src/index.js';
import { connect } from '../../src/client/index.js';
import { EmbeddedTransport, NatsTransport, type Transport } from '../../src/transport/index.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { iid, tempDir, until } from '../helpers/runtime.js';

const body = (proposer: string, target = 'deployment/web') => ({
  id: iid('subj'),
  proposer,
  target,
  action: 'CONFIGURE',
  params: { version: '1.0.0', replicas: 2 },
});

interface Case {
  subject: string;
  proposer: string;
  path: string;
  code: string;
  /** The subject the issue names as the one to use. */
  expected: string;
}

const PLANNER = 'ice.as.agent:planner.deployment.web';
const AB = 'ice.as.agent:a%2Eb.deployment.web';
const CASES: Case[] = [
  {
    subject: 'ice.as.agent%3Aplanner.deployment.web',
    proposer: 'agent:planner',
    path: 'principal',
    code: 'principal_encoding',
    expected: PLANNER,
  },
  {
    subject: 'ice.as.agent:planner%.deployment.web',
    proposer: 'agent:planner',
    path: 'principal',
    code: 'principal_encoding',
    expected: PLANNER,
  },
  {
    subject: 'ice.as.agent:planner%zz.deployment.web',
    proposer: 'agent:planner',
    path: 'principal',
    code: 'principal_encoding',
    expected: PLANNER,
  },
  { subject: 'ice.as.agent:a%2eb.deployment.web', proposer: 'agent:a.b', path: 'principal', code: 'principal_encoding', expected: AB },
  // %252E decodes to a literal "%2E": no principal has a "%", so it is not taken for agent:a.b
  { subject: 'ice.as.agent:a%252Eb.deployment.web', proposer: 'agent:a.b', path: 'principal', code: 'principal_invalid', expected: AB },
  { subject: 'ice.as.agent:a.b.deployment.web', proposer: 'agent:a.b', path: 'subject', code: 'subject_tokens', expected: AB },
  { subject: 'ice.as.planner.deployment.web', proposer: 'agent:planner', path: 'principal', code: 'principal_invalid', expected: PLANNER },
  { subject: 'ice.as.agent:planner.deployment', proposer: 'agent:planner', path: 'subject', code: 'subject_tokens', expected: PLANNER },
  {
    subject: 'ice.as.agent:planner.deployment.web.extra',
    proposer: 'agent:planner',
    path: 'subject',
    code: 'subject_tokens',
    expected: PLANNER,
  },
  { subject: 'ice.as.agent:planner', proposer: 'agent:planner', path: 'subject', code: 'subject_tokens', expected: PLANNER },
  { subject: 'ice.as.agent:planner.Deployment.web', proposer: 'agent:planner', path: 'target', code: 'subject_target', expected: PLANNER },
  { subject: 'ice.as.agent:planner.run.web', proposer: 'agent:planner', path: 'target', code: 'subject_mismatch', expected: PLANNER },
  {
    subject: 'ice.intent.deployment',
    proposer: 'agent:planner',
    path: 'subject',
    code: 'subject_tokens',
    expected: 'ice.intent.deployment.web',
  },
  {
    subject: 'ice.intent.deployment.web.extra',
    proposer: 'agent:planner',
    path: 'subject',
    code: 'subject_tokens',
    expected: 'ice.intent.deployment.web',
  },
  {
    subject: 'ice.intent.agent:planner.deployment.web',
    proposer: 'agent:planner',
    path: 'subject',
    code: 'subject_tokens',
    expected: 'ice.intent.deployment.web',
  },
];

type Send = (subject: string, data: unknown) => Promise<unknown>;

interface Bus {
  send: Send;
  nodes: Runtime[];
  close(): Promise<void>;
}

async function embeddedBus(): Promise<Bus> {
  // two runtimes on one in-process bus: their intakes share the `ice.intake` queue group
  const transport = new EmbeddedTransport();
  const dirs = [tempDir('ice-subj-a-'), tempDir('ice-subj-b-')];
  const nodes = [
    await createRuntime({ dataDir: dirs[0]!.dir, transport, node: 'a' }),
    await createRuntime({ dataDir: dirs[1]!.dir, transport, node: 'b' }),
  ];
  return {
    send: async (subject, data) => (await transport.request(subject, data, { timeoutMs: 5000 })).data,
    nodes,
    async close() {
      for (const n of nodes) await n.stop();
      await transport.close();
      for (const d of dirs) d.cleanup();
    },
  };
}

async function natsBus(): Promise<Bus> {
  const server = await startNatsServer({ jetstream: false });
  const dirs = [tempDir('ice-subj-a-'), tempDir('ice-subj-b-')];
  const transports: Transport[] = [];
  const nodes: Runtime[] = [];
  for (const [i, d] of dirs.entries()) {
    const t = await NatsTransport.connect({ servers: server.url, name: `rt-${i}` });
    transports.push(t);
    nodes.push(await createRuntime({ dataDir: d.dir, transport: t, node: `n${i}` }));
  }
  // a plain nats.js client sending JSON text, as a foreign service would
  const nc: NatsConnection = await natsConnect({ servers: server.url, name: 'foreign' });
  return {
    send: async (subject, data) => {
      const m = await nc.request(subject, typeof data === 'string' ? data : JSON.stringify(data), { timeout: 5000 });
      return JSON.parse(m.string()) as unknown;
    },
    nodes,
    async close() {
      await nc.close();
      for (const n of nodes) await n.stop();
      for (const t of transports) await t.close();
      for (const d of dirs) d.cleanup();
      await server.stop();
    },
  };
}

const rejectedFacts = async (nodes: Runtime[]) => {
  let n = 0;
  for (const rt of nodes) n += (await rt.journal.chain(rt.runtimeChain, 1, 100_000)).filter((f) => f.type === 'intent.rejected').length;
  return n;
};

describe.each([
  ['embedded bus', embeddedBus],
  ['nats', natsBus],
] as const)('a malformed intent subject is answered (%s)', (_name, make) => {
  let bus: Bus;
  beforeAll(async () => {
    bus = await make();
  }, 30_000);
  afterAll(async () => bus?.close());

  it.each(CASES)('$subject → $path $code, expected $expected', async (c) => {
    const before = await rejectedFacts(bus.nodes);
    const b = body(c.proposer);
    const out = OutcomeSchema.parse(await bus.send(c.subject, b));
    expect(out).toMatchObject({ status: 'rejected', intentId: b.id, issues: [{ path: c.path, code: c.code, expected: c.expected }] });
    if (out.status !== 'rejected') throw new Error('unreachable');
    expect(out.issues).toHaveLength(1);
    // journaled on the chain of the one node that answered
    const node = bus.nodes.find((n) => n.runtimeChain === out.chain && n.journal)!;
    expect(out.seq).toBeTypeOf('number');
    const answeredBy = await Promise.all(
      bus.nodes.map(async (n) => (await n.journal.chain(n.runtimeChain, out.seq!, 1))[0]?.intentId === b.id),
    );
    expect(answeredBy.filter(Boolean)).toHaveLength(1);
    expect(node).toBeDefined();
    expect(await rejectedFacts(bus.nodes)).toBe(before + 1);
  });

  it('the expected subject is accepted: the same body there is judged on its merits (here: no such actor)', async () => {
    for (const [subject, proposer] of [
      [PLANNER, 'agent:planner'],
      [AB, 'agent:a.b'],
    ] as const) {
      const out = (await bus.send(subject, body(proposer))) as Outcome;
      expect(out).toMatchObject({ status: 'rejected', issues: [{ path: 'target', code: 'unknown_actor' }] });
    }
  });

  it('a malformed subject and a malformed body: the subject issue first, then the body issues', async () => {
    const out = (await bus.send('ice.as.agent:planner.deployment', { id: 'x', proposer: 1 })) as Outcome;
    expect(out.status).toBe('rejected');
    if (out.status !== 'rejected') throw new Error('unreachable');
    expect(out.issues[0]).toMatchObject({ path: 'subject', code: 'subject_tokens', expected: 'ice.as.<principal>.<kind>.<id>' });
    expect(out.issues.slice(1).map((i) => i.path)).toEqual(expect.arrayContaining(['proposer', 'target', 'action']));
    const enc = (await bus.send('ice.as.agent%3Ax.deployment.web', 'not json {')) as Outcome;
    expect(enc).toMatchObject({ status: 'rejected', issues: [{ path: 'principal', code: 'principal_encoding' }, { path: '' }] });
  });

  it('many malformed requests at once: each answered once, by one node', async () => {
    const before = await rejectedFacts(bus.nodes);
    const outs = await Promise.all(Array.from({ length: 50 }, (_, i) => bus.send(`ice.as.agent:p${i}.deployment`, body(`agent:p${i}`))));
    expect(outs.every((o) => (o as Outcome).status === 'rejected')).toBe(true);
    expect(await rejectedFacts(bus.nodes)).toBe(before + 50);
  });
});

describe('a publish the NATS server refuses (nats.js v3, nats-server with per-user permissions)', () => {
  let server: NatsServer;
  let rtTransport: NatsTransport;
  let rt: Runtime;
  let cleanupDir: () => void;

  beforeAll(async () => {
    server = await startNatsServer({
      jetstream: false,
      extraConfig: `
authorization {
  users = [
    { user: "ice-runtime", password: "rt", permissions: {
        publish: { allow: ["ice.fact.>", "ice.authority.decide"] }
        subscribe: { allow: ["ice.intent.>", "ice.as.>", "ice.authority.decide", "_INBOX.>", "ice.admin.>", "ice.node.>", "svc.>"] }
        allow_responses: true
    } }
    { user: "planner", password: "p", permissions: {
        publish: { allow: ["ice.as.agent:planner.>", "svc.>"] }
        subscribe: { allow: ["_INBOX.>"] }
    } }
  ]
}`,
    });
    const t = tempDir('ice-perm-');
    cleanupDir = t.cleanup;
    rtTransport = await NatsTransport.connect({ servers: server.url, user: 'ice-runtime', pass: 'rt' });
    rt = await createRuntime({ dataDir: t.dir, transport: rtTransport, node: 'perm', requirePrincipalSubject: true });
  }, 30_000);

  afterAll(async () => {
    await rt?.stop();
    await rtTransport?.close();
    cleanupDir?.();
    await server?.stop();
  });

  it('request() rejects at once with a RequestError caused by a PermissionViolationError, and a status event', async () => {
    const nc = await natsConnect({ servers: server.url, user: 'planner', pass: 'p' });
    const statuses: Array<{ type: string; error?: unknown }> = [];
    void (async () => {
      for await (const s of nc.status()) statuses.push(s as never);
    })();
    try {
      const t0 = performance.now();
      const err = await nc.request('ice.as.agent:admin.deployment.web', '{}', { timeout: 5000 }).catch((e: unknown) => e);
      const ms = performance.now() - t0;
      expect(err).toBeInstanceOf(RequestError);
      const cause = (err as RequestError).cause;
      expect(cause).toBeInstanceOf(PermissionViolationError);
      expect(cause).toMatchObject({ operation: 'publish', subject: 'ice.as.agent:admin.deployment.web' });
      expect((cause as Error).message).toMatch(/^Permissions Violation for Publish to "ice\.as\.agent:admin\.deployment\.web"$/);
      expect((err as RequestError).isNoResponders()).toBe(false);
      expect(ms).toBeLessThan(1000); // one round trip, not the 5 s timeout
      // the status event is dispatched as the request is rejected, and iterated a tick later
      await until('the error status event', () => statuses.length > 0, 2000);
      expect(statuses).toContainEqual(expect.objectContaining({ type: 'error', error: expect.any(PermissionViolationError) }));
      // the connection is not closed by it: the permitted subject still works
      const ok = JSON.parse((await nc.request(PLANNER, JSON.stringify(body('agent:planner')), { timeout: 5000 })).string()) as Outcome;
      expect(ok.status).toBe('rejected'); // unknown_actor: it reached the runtime
      expect(nc.isClosed()).toBe(false);
      console.log(
        `permission violation: ${(err as Error).name} (cause ${(cause as Error).name}) after ${ms.toFixed(1)} ms; ` +
          `status events: ${statuses.map((s) => s.type).join(',')}`,
      );
    } finally {
      await nc.close();
    }
  });

  it('a request nobody answers in time is a nats.js TimeoutError after the whole timeout; nobody subscribed is a 503 no-responders', async () => {
    const nc = await natsConnect({ servers: server.url, user: 'planner', pass: 'p' });
    const silent = await natsConnect({ servers: server.url, user: 'ice-runtime', pass: 'rt' });
    silent.subscribe('svc.silent'); // receives, never replies
    await silent.flush();
    try {
      const t0 = performance.now();
      const err = await nc.request('svc.silent', '{}', { timeout: 300 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NatsTimeoutError);
      expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
      const none = await nc.request('svc.nobody', '{}', { timeout: 5000 }).catch((e: unknown) => e);
      expect(none).toBeInstanceOf(RequestError);
      expect((none as RequestError).isNoResponders()).toBe(true);
    } finally {
      await silent.close();
      await nc.close();
    }
  });

  it('NatsTransport.request and the typed client map it to PermissionDeniedError (E_PERMISSION), not a retry', async () => {
    const t = await NatsTransport.connect({ servers: server.url, user: 'planner', pass: 'p' });
    try {
      const err = await t.request('ice.as.agent:admin.deployment.web', {}, { timeoutMs: 5000 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PermissionDeniedError);
      expect(err).toMatchObject({ code: 'E_PERMISSION', action: 'terminal', subject: 'ice.as.agent:admin.deployment.web' });
      expect((err as Error).message).toMatch(/Permissions Violation for Publish to "ice\.as\.agent:admin\.deployment\.web"/);
    } finally {
      await t.close();
    }
    const ice = await connect({ servers: server.url, user: 'planner', pass: 'p' });
    try {
      const t0 = performance.now();
      const err = await ice
        .propose(
          { proposer: 'agent:admin', target: 'deployment/web', action: 'CONFIGURE', params: { version: '1.0.0', replicas: 1 } },
          { timeoutMs: 5000, retries: 3 },
        )
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PermissionDeniedError);
      expect(performance.now() - t0).toBeLessThan(1000); // not retried, not waited for
    } finally {
      await ice.close();
    }
  });
});

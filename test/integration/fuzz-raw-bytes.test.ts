/**
 * Raw bytes on every subject a runtime process listens on: a real `ice start` child process
 * (embedded: SQLite store; cluster: JetStream store) on a nats-server whose max_payload is
 * 64 KiB. At least FUZZ_MESSAGES generated payloads (invalid UTF-8, empty, not JSON, JSON of
 * every type, deep, huge, malformed intents) spread over the subjects; one "just over
 * max_payload" per subject over a raw TCP connection (nats.js refuses to send it). Properties:
 * every request is answered within a bounded wait with a typed answer, the process stays up and
 * still executes a valid intent, the actor did not change, only `intent.rejected` facts were added.
 */
import { connect as natsConnect, type NatsConnection } from '@nats-io/transport-node';
import fc from 'fast-check';
import { createConnection } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_OPS } from '../../src/admin/ops.js';
import { OutcomeSchema } from '../../src/index.js';
import { badIntentBody, enc, FUZZ_SEED, fuzzDoor, isPlainObject, printCounts, rawMsg, rawPayload, type RawMsg } from '../helpers/fuzz.js';
import { startIceProcess, type IceProcess } from '../../src/testing/index.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { MODES, tempDir } from '../helpers/runtime.js';

const NODE = 'fzp';
const MAX_PAYLOAD = 65_536;

/** Every subject the node subscribes to (intake, authority, admin, node forwards, micro service). */
function listenedSubjects(mode: string): { typed: string[]; service: string[] } {
  const typed = [
    'ice.intent.deployment.web',
    'ice.intent.deployment.ghost',
    'ice.intent.x',
    'ice.intent.a.b.c.d',
    'ice.as.agent:bot.deployment.web',
    'ice.as.agent%3Abot.deployment.web',
    'ice.as.x',
    'ice.as.agent:bot.deployment.web.extra',
    'ice.authority.decide',
    ...ADMIN_OPS.map((op) => `ice.admin.${op}`),
    ...ADMIN_OPS.map((op) => `ice.node.${NODE}.admin.${op}`),
    ...(mode === 'cluster' ? [`ice.node.${NODE}.intent`] : []),
  ];
  const service = [`ice.node.${NODE}.status`, '$SRV.PING', '$SRV.INFO', '$SRV.STATS', '$SRV.PING.ice-runtime', '$SRV.INFO.ice-runtime'];
  return { typed, service };
}

/** A typed answer: an outcome (intent subjects), `{ error: { code, message } }`, `{ result }`, `{ decision }`. */
function typedAnswer(subject: string, r: unknown): 'rejected' | 'typed' | 'other' | string {
  if (subject.startsWith('ice.intent.') || subject.startsWith('ice.as.') || subject === `ice.node.${NODE}.intent`) {
    const o = OutcomeSchema.safeParse(r);
    return o.success ? (o.data.status === 'rejected' ? 'rejected' : `status ${o.data.status}`) : 'not an outcome';
  }
  if (isPlainObject(r) && isPlainObject(r['error']) && typeof r['error']['code'] === 'string' && typeof r['error']['message'] === 'string')
    return 'typed';
  if (isPlainObject(r) && ('result' in r || 'decision' in r)) return 'other';
  if (subject.startsWith('$SRV.') || subject.endsWith('.status')) return 'other';
  return 'untyped answer';
}

/**
 * Publishes `bytes` bytes on `subject` over a bare TCP connection (nats.js refuses to send
 * more than max_payload) and returns what the server said.
 */
function publishRaw(port: number, subject: string, bytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    let said = '';
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(said);
    }, 3000);
    sock.on('error', () => {});
    sock.on('data', (d: Buffer) => {
      said += d.toString('latin1');
      if (said.includes('INFO ') && !said.includes('\u0000sent')) {
        said += '\u0000sent';
        sock.write('CONNECT {"verbose":false,"pedantic":false,"protocol":1}\r\n');
        // nats-server refuses at the control line and closes; the payload would only race its
        // close (a write after it resets the connection and loses the -ERR), so it follows later
        sock.write(`PUB ${subject} _INBOX.raw.1 ${bytes}\r\n`);
        setTimeout(() => {
          if (!sock.destroyed && !sock.writableEnded) sock.write(Buffer.concat([Buffer.alloc(bytes, 0x7b), Buffer.from('\r\n')]));
        }, 200);
      }
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(said);
    });
    sock.once('error', (e) => {
      clearTimeout(timer);
      if (said) resolve(said);
      else reject(e);
    });
  });
}

describe.each(MODES)('raw bytes on every subject an ice process listens on (%s)', (mode) => {
  let server: NatsServer;
  let node: IceProcess;
  let dir: ReturnType<typeof tempDir>;
  let nc: NatsConnection;
  const { typed, service } = listenedSubjects(mode);

  const request = async (subject: string, payload: Uint8Array | string, timeout = 10_000): Promise<unknown> => {
    const m = await nc.request(subject, payload, { timeout });
    const text = m.string();
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return { notJson: text };
    }
  };
  const admin = async (op: string, args: unknown) => {
    const r = (await request(`ice.admin.${op}`, JSON.stringify(args))) as { result?: unknown; error?: unknown };
    if (r.error) throw new Error(`${op}: ${JSON.stringify(r.error)}`);
    return r.result;
  };
  const runtimeChain = mode === 'cluster' ? `_runtime/${NODE}` : '_runtime/_';
  /** The runtime chain's head seq, and the types of its facts after `fromSeq` (paged: replies stay under max_payload). */
  const runtimeHead = async (): Promise<number> =>
    ((await admin('journal.tail', { chain: runtimeChain, limit: 1 })) as Array<{ seq: number }>)[0]?.seq ?? 0;
  const typesAfter = async (fromSeq: number): Promise<Record<string, number>> => {
    const out: Record<string, number> = {};
    for (let seq = fromSeq + 1; ;) {
      const page = (await admin('journal.chain', { chain: runtimeChain, fromSeq: seq, limit: 20 })) as Array<{ seq: number; type: string }>;
      for (const f of page) out[f.type] = (out[f.type] ?? 0) + 1;
      if (page.length < 20) return out;
      seq = page[page.length - 1]!.seq + 1;
    }
  };
  const actorView = async () => {
    const a = (await admin('actor.show', { address: 'deployment/web', limit: 1 })) as Record<string, unknown>;
    return { state: a['state'], status: a['status'], context: a['context'], seq: a['seq'] };
  };

  beforeAll(async () => {
    server = await startNatsServer({ jetstream: mode === 'cluster', extraConfig: `max_payload: ${MAX_PAYLOAD}` });
    dir = tempDir('ice-fuzz-proc-');
    node = await startIceProcess(dir.dir, {
      command: 'start',
      args: ['--nats', server.url, '--node', NODE, ...(mode === 'cluster' ? ['--cluster'] : [])],
      readyTimeoutMs: 30_000,
    });
    nc = await natsConnect({ servers: server.url, name: 'raw-fuzzer' });
    await admin('spawn', { address: 'deployment/web', input: { service: 'web' } });
    await admin('grant.issue', { subject: 'agent:*', scope: 'deployment/*:*' });
    console.log(`raw-bytes fuzz seed ${FUZZ_SEED} (${mode}), ice start pid ${node.pid}`);
  }, 60_000);

  afterAll(async () => {
    await nc?.close();
    await node?.kill('SIGTERM');
    await server?.stop();
    dir?.cleanup();
  });

  it('every generated payload on every subject is answered with a typed answer; the process stays up, nothing changes', async () => {
    const actorBefore = await actorView();
    const headBefore = await runtimeHead();
    const subjects = [...typed, ...service];
    const payload = fc.oneof(
      { weight: 3, arbitrary: rawPayload },
      { weight: 1, arbitrary: badIntentBody.map((b) => ({ what: b.what, bytes: enc.encode(b.text) })) },
    );
    const c = await fuzzDoor({
      door: `raw bytes (${subjects.length} subjects)`,
      arb: fc
        .tuple(fc.constantFrom(...subjects), payload)
        // journal.verify with valid (empty) arguments walks the whole journal: not a malformed message
        .filter(([s, p]) => !s.endsWith('.journal.verify') || !['empty', 'JSON {}', 'JSON null'].includes(p.what))
        .map(([s, p]) => rawMsg(s, p.bytes, p.what)),
      send: async (m: RawMsg) => request(m.subject, m.payload),
      classify: (r, m) => typedAnswer(m.subject, r),
      describe: (m) => `${m.subject} ← ${m.what}`,
    });
    printCounts(`raw bytes, ice start process (${mode})`, [c]);
    expect(node.child.exitCode).toBeNull();
    expect(node.child.signalCode).toBeNull();
    expect(await actorView()).toEqual(actorBefore);
    const added = await typesAfter(headBefore);
    console.log(`facts added on ${runtimeChain} (${mode}): ${JSON.stringify(added)}`);
    expect(Object.keys(added).filter((t) => t !== 'intent.rejected')).toEqual([]);
  });

  it('a payload just over max_payload is refused by the server (-ERR, connection closed); the process never sees it', async () => {
    const headBefore = await runtimeHead();
    for (const subject of ['ice.intent.deployment.web', 'ice.as.agent:bot.deployment.web', 'ice.authority.decide', 'ice.admin.spawn']) {
      const said = await publishRaw(server.port, subject, MAX_PAYLOAD + 1);
      expect(said, subject).toMatch(/-ERR 'Maximum Payload Violation'/);
    }
    expect(node.child.exitCode).toBeNull();
    expect(await runtimeHead()).toBe(headBefore);
  });

  it('afterwards the process still executes a valid intent', async () => {
    const out = await request(
      'ice.as.agent:bot.deployment.web',
      JSON.stringify({
        id: `raw-ok-${mode}`,
        proposer: 'agent:bot',
        target: 'deployment/web',
        action: 'CONFIGURE',
        params: { version: '1.0.0', replicas: 1 },
      }),
    );
    expect(out).toMatchObject({ status: 'executed' });
    expect(node.child.exitCode).toBeNull();
  });
});

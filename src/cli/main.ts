#!/usr/bin/env node
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command, Option } from 'commander';
import { exampleActors } from '../../actors/index.js';
import { callAdmin, runAdminOp, startAdminServer } from '../admin/index.js';
import { AuthorityKey } from '../authority/index.js';
import { DataDirLockedError, IceError, ValidationError, ensureError, type IssueDetail } from '../errors.js';
import { definitionsFromModule, type ActorDefinition } from '../host/index.js';
import { SqliteJournal, rowToFact, verifyStoreInWorkers } from '../journal/index.js';
import { Subjects, type Fact, type Grant, type Outcome } from '../protocol/index.js';
import { NatsTransport, jetStreamVersionWarning, registerNodeService } from '../transport/index.js';
import { createRuntime, type Runtime } from '../runtime.js';
import { SqliteStore } from '../store/index.js';
import { createLogger } from '../util/logger.js';
import { runDemo } from './demo.js';
import {
  clusterInspectorSource,
  graphToMermaid,
  graphToSvg,
  layoutGraph,
  machineToGraph,
  startInspector,
  type Inspector,
} from '../inspector/index.js';
import { c, formatActors, formatFact, formatGrants, formatOutcome, parseDuration } from './format.js';
import type { ActorDetail, ActorInfo } from '../host/index.js';
import type { PendingRecord } from '../host/ports.js';
import type { VerifyResult } from '../journal/reader.js';

interface Common {
  data: string;
  actors?: string[];
  json?: boolean;
}

/** Exit codes of `ice propose`, so scripts can branch on the outcome. */
export const PROPOSE_EXIT: Record<Outcome['status'], number> = { executed: 0, pending: 10, denied: 11, rejected: 12, failed: 13 };

const VERSION = '0.1.0';
/** Resolves on Ctrl-C or SIGTERM: how every serving command ends. */
const untilStopped = () =>
  new Promise<void>((resolveStop) => {
    process.once('SIGINT', () => resolveStop());
    process.once('SIGTERM', () => resolveStop());
  });
const print = (s: string) => process.stdout.write(s + '\n');
const printJson = (v: unknown) => process.stdout.write(JSON.stringify(v, null, 2) + '\n');

async function loadActors(modules: string[] | undefined): Promise<ActorDefinition[]> {
  const byKind = new Map(exampleActors.map((d) => [d.kind, d as ActorDefinition]));
  for (const m of modules ?? []) {
    const mod = (await import(pathToFileURL(resolve(m)).href)) as Record<string, unknown>;
    for (const d of definitionsFromModule(mod)) byKind.set(d.kind, d);
  }
  return [...byKind.values()];
}

function common(cmd: Command): Command {
  return cmd
    .option('--data <dir>', 'data directory', process.env.ICE_DATA ?? './.ice')
    .option('--actors <module...>', 'extra actor definitions (an ES module exporting `actors` or defineActor results)');
}

async function open(o: Common, level = 'warn'): Promise<Runtime> {
  return createRuntime({
    dataDir: o.data,
    actors: await loadActors(o.actors),
    logger: createLogger({ level: process.env.ICE_LOG_LEVEL ?? level }),
  });
}

/** Runs a change here if no one owns the dir, or through the owner's admin endpoint. */
async function change(o: Common & { nats?: string }, op: string, args: unknown): Promise<unknown> {
  if (o.nats) return adminOverNats(o.nats, op, args);
  let rt: Runtime;
  try {
    rt = await open(o);
  } catch (e) {
    if (e instanceof DataDirLockedError) return callAdmin(resolve(o.data), op, args);
    throw e;
  }
  try {
    return await runAdminOp(rt, op, args);
  } finally {
    await rt.stop();
  }
}

/** An operator change sent to the cluster nodes serving `ice.admin.<op>` on NATS. */
async function adminOverNats(servers: string, op: string, args: unknown): Promise<unknown> {
  const t = await NatsTransport.connect({ servers: servers.split(','), name: 'ice-cli' });
  try {
    const reply = (await t.request(Subjects.admin(op), args, { timeoutMs: 15_000 })).data as {
      result?: unknown;
      error?: { code: string; message: string; issues?: IssueDetail[] };
    };
    if (reply.error?.issues) throw new ValidationError(reply.error.message, reply.error.issues);
    if (reply.error) throw new IceError(reply.error.code, reply.error.message.replace(/^E_[A-Z_]+: /, ''), 'reject');
    return reply.result;
  } finally {
    await t.close();
  }
}

async function proposeOverNats(servers: string, intent: unknown, timeoutMs: number): Promise<Outcome> {
  const t = await NatsTransport.connect({ servers: servers.split(','), name: 'ice-cli' });
  try {
    const target = (intent as { target: string }).target;
    const reply = await t.request(Subjects.intentAs((intent as { proposer: string }).proposer, target), intent, { timeoutMs });
    return reply.data as Outcome;
  } finally {
    await t.close();
  }
}

function readStore(o: Common): SqliteStore {
  if (!existsSync(join(o.data, 'ice.db')))
    throw new IceError(
      'E_NOT_FOUND',
      `no ICE store in ${resolve(o.data)} (run \`ice demo\` or \`ice dev\` first, or pass --data)`,
      'reject',
    );
  return new SqliteStore(o.data, { readonly: true });
}

/**
 * A read command's answer: from the cluster nodes over NATS (`--nats`, admin read requests,
 * answered from JetStream), or from the data dir opened read-only (no lock needed). Both
 * give the same shapes, so the printing below is shared.
 */
async function read<T>(o: Common & { nats?: string }, op: string, args: Record<string, unknown> = {}): Promise<T> {
  if (o.nats) return (await adminOverNats(o.nats, op, args)) as T;
  const store = readStore(o);
  try {
    return (await localRead(store, o, op, args)) as T;
  } finally {
    await store.close();
  }
}

function localRead(store: SqliteStore, o: Common, op: string, a: Record<string, unknown>): unknown {
  const journal = new SqliteJournal(store);
  switch (op) {
    case 'actors.ls':
      return store.actorIndex().map((r): ActorInfo => ({
        address: r.actor,
        kind: r.kind,
        state: r.state,
        status: r.status,
        seq: r.seq,
        owner: '',
        active: false,
      }));
    case 'actor.show': {
      const address = String(a.address);
      const snap = store.snapshot(address);
      if (!snap) throw new IceError('E_NOT_FOUND', `no actor ${address}`, 'reject');
      const detail: ActorDetail = {
        address,
        kind: snap.kind,
        state: snap.state,
        status: snap.status,
        seq: snap.seq,
        owner: '',
        active: false,
        context: (snap.snapshot as { context?: unknown }).context,
        snapshot: snap.snapshot,
      };
      return { ...detail, updatedAt: snap.updatedAt, facts: journal.tail({ chain: address, limit: Number(a.limit ?? 10) }) };
    }
    case 'journal.tail':
      return journal.tail({ limit: Number(a.limit ?? 20), ...(typeof a.chain === 'string' ? { chain: a.chain } : {}) });
    case 'journal.verify': {
      const key = AuthorityKey.loadPublic(resolve(o.data));
      return verifyStoreInWorkers(store, key ? (cp) => cp.keyId === key.keyId && key.verifyCheckpoint(cp.hash, cp.sig) : undefined).then(
        (r) => ({ ...r, keyChecked: !!key }),
      );
    }
    case 'grant.ls':
      return store.grants();
    case 'journal.lastPos':
      return store.lastPos();
    case 'approvals':
      return store.pending();
    default:
      throw new IceError('E_INTERNAL', `no local read ${op}`, 'terminal');
  }
}

function parseJsonOption(name: string, text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ValidationError(`--${name} is not JSON`, [
      { path: name, code: 'invalid_json', message: ensureError(e).message, expected: 'JSON text' },
    ]);
  }
}

const program = new Command('ice')
  .description('ICE runtime: inference proposes, the runtime decides.')
  .version(VERSION)
  .showHelpAfterError();

common(program.command('demo'))
  .description('run the scripted demo on the embedded runtime and verify the journal')
  .action(async (o: Common) => {
    const rt = await open(o);
    try {
      const r = await runDemo(rt);
      process.exitCode = r.verified ? 0 : 1;
    } finally {
      await rt.stop();
    }
  });

interface ServeOptions extends Common {
  requirePrincipalSubjects?: boolean;
  adminPort?: number;
  /** Port, or false for none. */
  inspect?: number | false;
  inspectHost?: string;
  seed?: boolean;
  nats?: string;
  node?: string;
  cluster?: boolean;
  replicas?: number;
  leaseTtl?: string;
  publishInspection?: boolean;
}

/**
 * The first connection of a serving node: each failed attempt is logged with the URLs, and
 * after the connect timeout it gives up with what to do (instead of waiting in silence). Once
 * connected, the node reconnects for as long as it runs. The wait: ICE_CONNECT_TIMEOUT (default 60s).
 */
async function connectLogged(nats: string, name: string, logger: ReturnType<typeof createLogger>): Promise<NatsTransport> {
  const CONNECT_TIMEOUT_MS = parseDuration(process.env.ICE_CONNECT_TIMEOUT ?? '60s');
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await NatsTransport.connect({
        servers: nats.split(','),
        name,
        maxReconnectAttempts: -1,
        connectTimeoutMs: 5000,
        onHandlerError: (err, subject) => logger.error({ err, subject }, 'handler failed'),
      });
    } catch (e) {
      const waited = Date.now() - started;
      if (waited >= CONNECT_TIMEOUT_MS) {
        throw new IceError(
          'E_UNREACHABLE',
          `no NATS server answered at ${nats} for ${Math.round(waited / 1000)} s (${ensureError(e).message}); ` +
            'start one, check --nats, or set ICE_CONNECT_TIMEOUT to wait longer',
          'retry',
        );
      }
      logger.warn({ nats, attempt, err: ensureError(e).message }, 'NATS not reachable yet; retrying');
      await new Promise((r) => setTimeout(r, Math.min(2000, 250 * attempt)));
    }
  }
}

/** `ice dev` and `ice start` (one node on a data dir, or a cluster node): serves until SIGINT/SIGTERM. */
async function serve(o: ServeOptions, title: string): Promise<void> {
  if (o.node !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(o.node)) {
    throw new ValidationError('bad --node', [{ path: 'node', code: 'invalid', message: o.node, expected: '1-64 chars of A-Za-z0-9_-' }]);
  }
  if (o.cluster && o.adminPort !== undefined) {
    throw new ValidationError('--admin-port has no effect with --cluster', [
      {
        path: 'admin-port',
        code: 'no_effect',
        message: 'a cluster node has no local admin endpoint',
        expected: 'operator commands with --nats <url> (they reach every node over NATS)',
      },
    ]);
  }
  if (!o.cluster && (o.replicas !== undefined || o.leaseTtl !== undefined)) {
    throw new ValidationError('--replicas and --lease-ttl need --cluster', [
      {
        path: o.replicas !== undefined ? 'replicas' : 'lease-ttl',
        code: 'no_effect',
        message: 'only cluster nodes use JetStream and leases',
        expected: '--cluster',
      },
    ]);
  }
  const logger = createLogger({ level: process.env.ICE_LOG_LEVEL ?? 'info' });
  let transport: NatsTransport | undefined;
  if (o.nats) {
    transport = await connectLogged(o.nats, `ice-${o.node ?? 'node'}`, logger);
    const warning = jetStreamVersionWarning(transport.serverVersion);
    if (warning) logger.warn({ server: transport.serverVersion }, warning);
  }
  const node = o.node ?? (o.cluster ? `node-${process.pid}` : undefined);
  const rt = await createRuntime({
    ...(o.cluster
      ? {
          cluster: {
            servers: o.nats!.split(','),
            ...(o.replicas !== undefined ? { replicas: o.replicas } : {}),
            ...(o.leaseTtl !== undefined ? { leaseTtlMs: parseDuration(o.leaseTtl) } : {}),
            keyFile: join(resolve(o.data), `node-${node!}.key`),
          },
        }
      : { dataDir: o.data }),
    actors: await loadActors(o.actors),
    logger,
    ...(node ? { node } : {}),
    ...(transport ? { transport } : {}),
    ...(o.requirePrincipalSubjects ? { requirePrincipalSubject: true } : {}),
    ...(o.publishInspection ? { publishInspection: true } : {}),
  });
  const admin = o.cluster ? undefined : await startAdminServer(rt, o.adminPort !== undefined ? { port: o.adminPort } : {});
  if (admin) rt.advertiseAdmin(admin.url, admin.token);
  let inspector: Inspector | undefined;
  if (o.inspect !== undefined && o.inspect !== false) {
    const host = o.inspectHost ?? '127.0.0.1';
    try {
      inspector = await startInspector({ runtime: rt, port: o.inspect, host });
    } catch (e) {
      if ((e as { code?: string }).code !== 'EADDRINUSE') throw e;
      logger.warn(`inspector port ${o.inspect} is taken; using a free port`);
      inspector = await startInspector({ runtime: rt, port: 0, host });
    }
  }
  const service = transport
    ? await registerNodeService(transport, {
        node: rt.node.replace(/[^A-Za-z0-9_-]/g, '_'),
        version: VERSION,
        status: () => ({ node: rt.node, mode: rt.mode, ...rt.stats() }),
      })
    : undefined;
  if (o.seed) await runDemo(rt);
  print(`${c.bold(title)} node ${rt.node} ${rt.mode === 'cluster' ? `in a cluster on ${o.nats ?? ''}` : `serving ${rt.dataDir}`}`);
  print(`  transport ${rt.transport.kind}${o.nats ? ` ${o.nats} (nats-server ${transport!.serverVersion ?? '?'})` : ' (in process)'}`);
  if (admin) print(`  admin endpoint ${admin.url} (token in ${join(rt.dataDir, 'owner.json')})`);
  else print('  operator commands: ice … --nats <url> (ice.admin.* on NATS)');
  if (inspector) print(`  inspector ${c.bold(inspector.url)}`);
  print(`  actors ${(await rt.listActors()).length} · Ctrl-C to stop`);
  print('ready');
  await untilStopped();
  await service?.stop();
  await inspector?.close();
  await admin?.close();
  await rt.stop();
  await transport?.close();
}

common(program.command('dev'))
  .description('run an embedded node until Ctrl-C, with a local admin endpoint for CLI changes')
  .option('--admin-port <port>', 'admin endpoint port on 127.0.0.1 (default: any free port)', (v) => Number(v))
  .option('--nats <url>', 'also serve intents over NATS (comma-separated server URLs)')
  .option('--node <name>', 'node name')
  .option('--seed', 'run the scripted demo once at start')
  .option('--inspect <port>', 'inspector port (default 4848; 0 = any free port)', (v) => Number(v), 4848)
  .option('--no-inspect', 'do not serve the inspector')
  .option('--inspect-host <host>', 'inspector bind address (default 127.0.0.1: it shows contexts and the journal)')
  .action((o: ServeOptions) => serve(o, 'ice dev'));

common(program.command('start'))
  .description('run a node that serves intents over NATS (any language can propose on ice.intent.<kind>.<id>)')
  .requiredOption('--nats <url>', 'NATS server URL(s), comma-separated')
  .option('--node <name>', 'node name (subject-safe)')
  .option('--admin-port <port>', 'admin endpoint port on 127.0.0.1 (not with --cluster: use --nats)', (v) => Number(v))
  .option('--inspect <port>', 'serve the inspector on this port (0 = any free port)', (v) => Number(v))
  .option(
    '--require-principal-subjects',
    'accept intents only on ice.as.<principal>.<kind>.<id> (pair with NATS permissions per principal)',
  )
  .option('--inspect-host <host>', 'inspector bind address (default 127.0.0.1)')
  .option('--cluster', 'share actors with the other cluster nodes through JetStream (journal, snapshots, leases)')
  .option('--replicas <n>', 'JetStream replicas for --cluster (1 for one server, 3 for a cluster; default 1)', (v) => Number(v))
  .option('--lease-ttl <duration>', 'actor lease length for --cluster (default 5s)')
  .option('--publish-inspection', "publish this node's XState inspection events on ice.inspect.> (for ice inspect --nats)")
  .action((o: ServeOptions) => serve(o, o.cluster ? 'ice start --cluster' : 'ice start'));

common(program.command('inspect'))
  .description('serve the inspector for a cluster: journal, snapshots and owners read from JetStream')
  .requiredOption('--nats <url>', 'NATS server URL(s) of the cluster, comma-separated')
  .option('--inspect <port>', 'inspector port (0 = any free port)', (v) => Number(v), 4848)
  .option('--inspect-host <host>', 'bind address (default 127.0.0.1: it shows contexts and the journal)')
  .action(async (o: Common & { nats: string; inspect: number; inspectHost?: string }) => {
    const t = await NatsTransport.connect({ servers: o.nats.split(','), name: 'ice-inspect', maxReconnectAttempts: -1 });
    const source = await clusterInspectorSource(t, await loadActors(o.actors));
    const inspector = await startInspector({ runtime: source, port: o.inspect, host: o.inspectHost ?? '127.0.0.1' });
    print(`${c.bold('ice inspect')} ${o.nats} → ${c.bold(inspector.url)}`);
    print('ready');
    await untilStopped();
    await inspector.close();
    await source.close();
    await t.close();
  });

common(program.command('propose <target> <action>'))
  .description('propose an intent and print its outcome (exit 0 executed, 10 pending, 11 denied, 12 rejected, 13 failed)')
  .requiredOption('--as <principal>', 'who proposes, e.g. agent:planner')
  .option('--params <json>', 'params as JSON', '{}')
  .option('--id <id>', 'intent id (reuse it to retry idempotently); default: a fresh id')
  .option('--run <runId>', 'the ICE run this intent belongs to')
  .option('--rationale <text>', "the proposer's stated reason")
  .option('--json', 'print the outcome as JSON')
  .option('--nats <url>', 'propose over NATS to whatever nodes serve there, instead of the local data dir')
  .option('--timeout <duration>', 'how long to wait for the outcome', '30s')
  .action(
    async (
      target: string,
      action: string,
      o: Common & { as: string; params: string; id?: string; run?: string; rationale?: string; nats?: string; timeout: string },
    ) => {
      const intent = {
        id: o.id ?? `cli-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
        proposer: o.as,
        target,
        action,
        params: parseJsonOption('params', o.params),
        ...(o.run ? { runId: o.run } : {}),
        ...(o.rationale ? { rationale: o.rationale } : {}),
      };
      const outcome = o.nats
        ? await proposeOverNats(o.nats, intent, parseDuration(o.timeout))
        : ((await change(o, 'propose', { intent })) as Outcome);
      if (o.json) printJson(outcome);
      else print(`${intent.id}  ${formatOutcome(outcome)}`);
      process.exitCode = PROPOSE_EXIT[outcome.status];
    },
  );

async function spawnAction(address: string, o: Common & { input?: string }): Promise<void> {
  const a = (await change(o, 'spawn', { address, input: parseJsonOption('input', o.input) })) as { address: string; state: string };
  print(`${a.address} started in ${a.state}`);
}

common(program.command('spawn <address>'))
  .description('create an actor, e.g. `ice spawn deployment/web --input \'{"service":"web"}\'`')
  .option('--input <json>', 'input for the machine, as JSON')
  .option('--nats <url>', 'send it to the cluster nodes on NATS instead of the local data dir')
  .action(spawnAction);

const grant = program.command('grant').description('issue, list and revoke capability grants');
common(grant.command('issue'))
  .description('grant a principal a scope over kind/id:ACTION')
  .requiredOption('--to <principal>', 'who gets it, e.g. agent:planner (wildcards: *)')
  .requiredOption('--scope <pattern>', 'kind/id:ACTION with * wildcards, e.g. deployment/*:DEPLOY')
  .option('--run <runId>', 'only for intents of this run, while it is EXECUTING')
  .option('--ttl <duration>', 'expires after, e.g. 30m, 2h, 7d')
  .option('--expires <iso>', 'expires at (ISO 8601)')
  .option('--max-uses <n>', 'number of executions allowed', (v) => Number(v))
  .option('--by <who>', 'who issues it', process.env.USER ? `operator:${process.env.USER}` : 'operator')
  .option('--note <text>', 'why')
  .option('--json', 'print the grant as JSON')
  .option('--nats <url>', 'send it to the cluster nodes on NATS instead of the local data dir')
  .action(
    async (
      o: Common & { to: string; scope: string; run?: string; ttl?: string; expires?: string; maxUses?: number; by: string; note?: string },
    ) => {
      const g = (await change(o, 'grant.issue', {
        subject: o.to,
        scope: o.scope,
        by: o.by,
        ...(o.run ? { runId: o.run } : {}),
        ...(o.ttl ? { ttlMs: parseDuration(o.ttl) } : {}),
        ...(o.expires ? { expiresAt: o.expires } : {}),
        ...(o.maxUses !== undefined ? { maxUses: o.maxUses } : {}),
        ...(o.note ? { note: o.note } : {}),
      })) as Grant;
      if (o.json) printJson(g);
      else print(`issued ${formatGrants([g])}`);
    },
  );
common(grant.command('ls'))
  .description('list grants')
  .option('--json', 'JSON output')
  .option('--nats <url>', 'read the cluster over NATS instead of the local data dir')
  .action(async (o: Common & { nats?: string }) => {
    const gs = (await read<Grant[]>(o, 'grant.ls')).sort((a, b) => a.issuedAt.localeCompare(b.issuedAt));
    if (o.json) printJson(gs);
    else print(formatGrants(gs));
  });
common(grant.command('revoke <id>'))
  .description('revoke a grant; it stops counting at once')
  .option('--by <who>', 'who revokes it', 'operator')
  .option('--reason <text>', 'why')
  .option('--nats <url>', 'send it to the cluster nodes on NATS instead of the local data dir')
  .action(async (id: string, o: Common & { by: string; reason?: string }) => {
    const g = (await change(o, 'grant.revoke', { id, by: o.by, ...(o.reason ? { reason: o.reason } : {}) })) as Grant;
    print(`revoked ${g.id} at ${g.revokedAt}`);
  });

common(program.command('approvals'))
  .description('list intents waiting for a human approval')
  .option('--json', 'JSON output')
  .option('--nats <url>', 'read the cluster over NATS instead of the local data dir')
  .action(async (o: Common & { nats?: string }) => {
    const ps = await read<PendingRecord[]>(o, 'approvals');
    if (o.json) printJson(ps);
    else if (ps.length === 0) print(c.dim('(nothing pending)'));
    else
      for (const p of ps) {
        const i = p.intent as { proposer: string; action: string; params: unknown };
        print(`${p.intentId}  ${p.actor}  ${i.proposer} ${i.action} ${JSON.stringify(i.params)}  ${c.dim(p.createdAt)}`);
      }
  });
common(program.command('approve <intentId>'))
  .description('approve a pending intent; the authority decides it again with the approval')
  .option('--by <who>', 'the approving human', process.env.USER ? `human:${process.env.USER}` : 'human:operator')
  .option('--note <text>', 'note recorded with the approval')
  .option('--nats <url>', 'send it to the cluster nodes on NATS instead of the local data dir')
  .action(async (intentId: string, o: Common & { by: string; note?: string }) => {
    const out = (await change(o, 'approve', { intentId, by: o.by, ...(o.note ? { note: o.note } : {}) })) as Outcome;
    print(`${intentId}  ${formatOutcome(out)}`);
    process.exitCode = PROPOSE_EXIT[out.status];
  });
common(program.command('deny <intentId>'))
  .description('refuse a pending intent')
  .requiredOption('--reason <text>', 'why')
  .option('--by <who>', 'the refusing human', process.env.USER ? `human:${process.env.USER}` : 'human:operator')
  .option('--nats <url>', 'send it to the cluster nodes on NATS instead of the local data dir')
  .action(async (intentId: string, o: Common & { by: string; reason: string }) => {
    const out = (await change(o, 'deny', { intentId, by: o.by, reason: o.reason })) as Outcome;
    print(`${intentId}  ${formatOutcome(out)}`);
  });

common(program.command('actors').description('actors').command('ls'))
  .description('list actors with their state')
  .option('--kind <kind>', 'only this kind')
  .option('--json', 'JSON output')
  .option('--nats <url>', 'read the cluster over NATS instead of the local data dir')
  .action(async (o: Common & { kind?: string; nats?: string }) => {
    const rows = (await read<ActorInfo[]>(o, 'actors.ls')).filter((r) => !o.kind || r.kind === o.kind);
    if (o.json) printJson(rows.map(({ owner: _o, active: _a, ...r }) => r));
    else print(formatActors(rows));
  });

const actor = program.command('actor').description('one actor');
common(actor.command('show <address>'))
  .description("an actor's state, context and recent journal")
  .option('-n, --limit <n>', 'journal facts to show', (v) => Number(v), 10)
  .option('--json', 'JSON output')
  .option('--nats <url>', 'read the cluster over NATS instead of the local data dir')
  .action(async (address: string, o: Common & { limit: number; nats?: string }) => {
    const a = await read<ActorDetail & { updatedAt?: string; facts: Fact[] }>(o, 'actor.show', { address, limit: o.limit });
    if (o.json) {
      printJson(a);
      return;
    }
    print(`${c.bold(address)}  ${a.state}  ${c.dim(`${a.status} · seq ${a.seq}${a.updatedAt ? ` · updated ${a.updatedAt}` : ''}`)}`);
    print(`context ${JSON.stringify(a.context, null, 2)}`);
    print('recent facts:');
    for (const f of [...a.facts].reverse()) print(formatFact(f));
  });
common(actor.command('stop <address>'))
  .description('stop an actor for good (it keeps its history)')
  .requiredOption('--reason <text>', 'why')
  .option('--nats <url>', 'send it to the cluster nodes on NATS instead of the local data dir')
  .action(async (address: string, o: Common & { reason: string }) => {
    await change(o, 'actor.stop', { address, reason: o.reason });
    print(`${address} stopped`);
  });
common(actor.command('spawn <address>'))
  .description('same as `ice spawn`')
  .option('--input <json>', 'input for the machine, as JSON')
  .action(spawnAction);

const journal = program.command('journal').description('the hash-chained journal');
common(journal.command('tail'))
  .description('the newest facts')
  .option('-n, --limit <n>', 'how many', (v) => Number(v), 20)
  .option('--actor <address>', 'only facts of this actor (its chain)')
  .option('-f, --follow', 'keep printing new facts')
  .option('--json', 'one JSON fact per line')
  .option('--nats <url>', 'read the cluster over NATS instead of the local data dir')
  .action(async (o: Common & { limit: number; actor?: string; follow?: boolean; nats?: string }) => {
    const show = (f: Fact): void => {
      if (o.json) process.stdout.write(JSON.stringify(f) + '\n');
      else print(formatFact(f));
    };
    // Where the follow starts is read before the tail, so nothing committed in between is missed.
    const startPos = !o.nats && o.follow ? await read<number>(o, 'journal.lastPos') : 0;
    const facts = (await read<Fact[]>(o, 'journal.tail', { limit: o.limit, ...(o.actor ? { chain: o.actor } : {}) })).reverse();
    facts.forEach(show);
    if (!o.follow) return;
    if (o.nats) {
      // Every node publishes each committed fact on ice.fact.<chain>.
      const t = await NatsTransport.connect({ servers: o.nats.split(','), name: 'ice-cli-tail', maxReconnectAttempts: -1 });
      const sub = t.subscribe(o.actor ? Subjects.fact(o.actor) : Subjects.factAll, (m) => show(m.data as Fact));
      await untilStopped();
      sub.unsubscribe();
      await t.close();
      return;
    }
    const store = readStore(o);
    try {
      let last = startPos;
      const shown = new Set(facts.map((f) => `${f.actor ?? ''}#${f.seq}`));
      let stop = false;
      process.once('SIGINT', () => {
        stop = true;
      });
      while (!stop) {
        await new Promise((r) => setTimeout(r, 300));
        for (const row of store.factRows(last + 1, 1000)) {
          last = row.pos;
          if ((!o.actor || row.chain === o.actor) && !shown.has(`${row.chain}#${row.seq}`)) show(rowToFact(row));
        }
      }
    } finally {
      await store.close();
    }
  });
common(journal.command('verify'))
  .description('walk every hash chain; exit 1 and name the first broken fact if it was tampered with')
  .option('--json', 'JSON output')
  .option('--nats <url>', 'verify the cluster journal (JetStream) over NATS instead of the local data dir')
  .action(async (o: Common & { nats?: string }) => {
    const t0 = performance.now();
    const r = await read<VerifyResult & { keyChecked?: boolean }>(o, 'journal.verify');
    const ms = performance.now() - t0;
    if (o.json) printJson({ ...r, ms: Math.round(ms) });
    else if (r.ok) {
      print(c.green(`ok: ${r.count} facts in ${r.chains} chains verified in ${ms.toFixed(0)} ms`));
      if (o.nats) print(c.dim('   cluster journal: chains checked link by link (turns are not signed in cluster mode yet)'));
      else if (!r.keyChecked) print(c.yellow('   no authority key in the data dir: checkpoint signatures not checked'));
      else if ((r.attestedPos ?? 0) === r.lastPos)
        print(`   attested: the newest signed checkpoint covers the last fact (${r.checkpoints ?? 0} checkpoints match the chains)`);
      else print(c.yellow(`   attested up to position ${r.attestedPos ?? 0}; later facts are not covered by a signed checkpoint`));
    } else
      print(
        c.red(
          `BROKEN ${r.brokenChain ? `at ${r.brokenChain} #${r.brokenAt ?? '?'}` : `at checkpoint position ${r.brokenPos ?? '?'}`}: ${r.reason} (${r.count} facts verify)`,
        ),
      );
    process.exitCode = r.ok ? 0 : 1;
  });

const machines = program.command('machines').description('the machines of the registered kinds');
common(machines.command('ls'))
  .description('kinds, their states and actions')
  .option('--json', 'JSON output')
  .action(async (o: Common) => {
    const defs = await loadActors(o.actors);
    const rows = defs.map((d) => ({
      kind: d.kind,
      states: Object.keys((d.machine as unknown as { states: Record<string, unknown> }).states),
      actions: Object.keys(d.events),
      runtimeEvents: Object.keys(d.runtimeEvents),
      description: d.description,
    }));
    if (o.json) {
      printJson(rows);
      return;
    }
    for (const r of rows) {
      print(`${c.bold(r.kind)}  ${c.dim(r.description ?? '')}`);
      print(`  states   ${r.states.join(', ')}`);
      print(`  actions  ${r.actions.join(', ')}${r.runtimeEvents.length ? c.dim(`  (runtime only: ${r.runtimeEvents.join(', ')})`) : ''}`);
    }
  });

common(machines.command('export <kind>'))
  .description('write the statechart of a kind as JSON (graph + layout), Mermaid or SVG')
  .addOption(new Option('--format <format>', 'output format').choices(['json', 'mermaid', 'svg']).default('json'))
  .option('--out <file>', 'write to a file instead of stdout')
  .action(async (kind: string, o: Common & { format: 'json' | 'mermaid' | 'svg'; out?: string }) => {
    const def = (await loadActors(o.actors)).find((d) => d.kind === kind);
    if (!def) throw new IceError('E_NOT_FOUND', `no actor kind ${kind}`, 'reject');
    const graph = machineToGraph(def.machine);
    const text =
      o.format === 'mermaid'
        ? graphToMermaid(graph)
        : o.format === 'svg'
          ? await graphToSvg(graph)
          : JSON.stringify({ graph, layout: await layoutGraph(graph) }, null, 2);
    if (o.out) writeFileSync(o.out, text.endsWith('\n') ? text : text + '\n');
    else process.stdout.write(text.endsWith('\n') ? text : text + '\n');
  });

program.addOption(new Option('--no-color', 'no colours').hideHelp());

try {
  await program.parseAsync(process.argv);
} catch (e) {
  const err = ensureError(e);
  process.stderr.write(`${c.red('error')} ${err.message}\n`);
  if (err instanceof ValidationError) {
    for (const i of err.issues)
      process.stderr.write(`  ${i.path || '(value)'}: ${i.message}${i.expected ? ` (expected ${i.expected})` : ''}\n`);
  }
  process.exitCode = 1;
}

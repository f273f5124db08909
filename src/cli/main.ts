#!/usr/bin/env node
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { exampleActors } from '../../actors/index.js';
import { effectRows, timerRows, type EffectRow, type TimerRow } from '../host/timer-rows.js';
import { callAdmin, requestAdmin, runAdminOp, startAdminServer } from '../admin/index.js';
import { AuthorityKey, grantView } from '../authority/index.js';
import { ConfigError, DataDirLockedError, IceError, NotFoundError, ValidationError, ensureError } from '../errors.js';
import { definitionsFromModule, type ActorDefinition } from '../host/index.js';
import { SqliteJournal, rowToFact, verifyStoreInWorkers } from '../journal/index.js';
import {
  IdSchema,
  PrincipalSchema,
  Subjects,
  isAddress,
  parseChildAddress,
  principalToken,
  type Fact,
  type Grant,
  type Outcome,
} from '../protocol/index.js';
import {
  NatsTransport,
  jetStreamVersionWarning,
  natsAuthIssues,
  redactNatsUrls,
  registerNodeService,
  type NatsAuthNames,
  type NatsAuthOptions,
} from '../transport/index.js';
import { createRuntime, type Runtime } from '../runtime.js';
import { DataDirLock, SqliteStore } from '../store/index.js';
import { createLogger, type Logger } from '../util/logger.js';
import { runDemo } from './demo.js';
import { GRANT_COMMANDS_WITH_AS, registerGrantCommands } from './grant-commands.js';
import { authorityServiceInfo, registerAuditCommands, verifyFileCommand } from './journal-audit.js';
import {
  clusterInspectorSource,
  graphToMermaid,
  graphToSvg,
  layoutGraph,
  machineToGraph,
  natsInspectorApprovals,
  startInspector,
  type Inspector,
} from '../inspector/index.js';
import { c, formatEffects, formatFact, formatGrants, formatOutcome, formatTimers } from './format.js';
import { actorAt, actorHistory, formatHistory } from './actor-history.js';
import { allStoredSnapshots, checkActors, formatCheck } from './actors-check.js';
import { storedSnapshotPage, type SnapshotPage } from '../host/migrations.js';
import { explainIntent, formatWhy } from './why.js';
import { actorsLs } from './actors-ls.js';
import { ACTOR_PAGE_MAX, parseActorPageArgs, type ActorPage } from '../host/actor-page.js';
import { storedChildDetail } from './actor-child.js';
import { assertEveryOptionHasARule, checkOptions, type Opts } from './options.js';
import { applyProjectConfig, findProjectConfig, type ProjectConfig } from './config.js';
import type { ActorDetail, ActorInfo } from '../host/index.js';
import type { PendingApprovalView } from '../host/index.js';
import { formatPendingApprovals, inspectorApprovals } from './approvals.js';
import type { VerifyResult } from '../journal/reader.js';
import { describeOrphan } from '../store/jetstream/journal-reader.js';
import { registerPolicyCommands } from './policy-commands.js';
import { policySummary } from '../admin/ops.js';
import { PolicySetRecordSchema } from '../policy/index.js';

/** The options every command with a data dir has (`data` always set: it has a default). */
type Common = Opts<'data'>;

/** Exit codes of `ice propose`, so scripts can branch on the outcome. */
export const PROPOSE_EXIT: Record<Outcome['status'], number> = { executed: 0, pending: 10, denied: 11, rejected: 12, failed: 13 };
/**
 * Exit code of a command refused as given: an unknown or missing option, a value no rule
 * accepts (option, environment variable, project config), or a request the runtime refused
 * as invalid. Fix the command and run it again; other failures exit 1.
 */
export const EXIT_USAGE = 2;

const VERSION = '0.1.0';

/** Set once stdout's reader has gone (EPIPE, e.g. `ice … | head`): nothing more is printed. */
let stdoutGone = false;
const onStdoutGone = new Set<() => void>();
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE') throw e;
  stdoutGone = true;
  for (const f of onStdoutGone) f();
});
const print = (s: string) => {
  if (!stdoutGone) process.stdout.write(s + '\n');
};
const printJson = (v: unknown) => print(JSON.stringify(v, null, 2));

/**
 * How every serving or following command ends: Ctrl-C, SIGTERM, stdout's reader gone, or
 * `stop()` from within. Made before the command prints anything (a script that signals on
 * seeing `ready` must find the handlers in place); after it fires, a second Ctrl-C ends the
 * process at once.
 */
function stopper(): { done: Promise<void>; stop: () => void; readonly stopped: boolean } {
  let stopped = false;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  const stop = () => {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    onStdoutGone.delete(stop);
    stopped = true;
    resolveDone();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  onStdoutGone.add(stop);
  if (stdoutGone) stop();
  return {
    done,
    stop,
    get stopped() {
      return stopped;
    },
  };
}

/** The project config of this command, if one was found (for the banner of serving commands). */
let projectConfig: ProjectConfig | undefined;

async function loadActors(modules: string[] | undefined): Promise<ActorDefinition[]> {
  const byKind = new Map(exampleActors.map((d) => [d.kind, d as ActorDefinition]));
  for (const m of modules ?? []) {
    let mod: Record<string, unknown>;
    try {
      mod = (await import(pathToFileURL(resolve(m)).href)) as Record<string, unknown>;
    } catch (e) {
      throw new ConfigError(`cannot load actor module ${m}: ${ensureError(e).message}`, { cause: e });
    }
    for (const d of definitionsFromModule(mod)) byKind.set(d.kind, d);
  }
  return [...byKind.values()];
}

function common(cmd: Command): Command {
  return cmd
    .addOption(new Option('--data <dir>', 'data directory (else the project config\'s "data")').env('ICE_DATA').default('./.ice'))
    .option(
      '--actors <module...>',
      'extra actor definitions (ES modules exporting `actors` or defineActor results; else the project config\'s "actors")',
    );
}

async function open(o: Common, level = 'warn', opts: { acts?: boolean } = {}): Promise<Runtime> {
  return createRuntime({
    dataDir: o.data,
    actors: await loadActors(o.actors),
    logger: createLogger({ level: process.env.ICE_LOG_LEVEL ?? level }),
    // A one-shot command fires no timers, runs no effects, sends no actor's intents: the node
    // serving the dir does. The demo is a node for as long as it runs (`acts`).
    ...(opts.acts ? {} : { wakeScanMs: 0 }),
  });
}

/** Runs a change here if no one owns the dir, or through the owner's admin endpoint. */
async function change(o: Common, op: string, args: unknown): Promise<unknown> {
  if (o.nats) return adminOverNats({ ...o, nats: o.nats }, op, args);
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

/** The NATS options of a command (see {@link addNatsAuthOptions}). */
type NatsOpts = Pick<Opts, 'nats' | 'creds' | 'nkey' | 'user' | 'password' | 'token' | 'tlsCa' | 'tlsCert' | 'tlsKey' | 'as'>;

/**
 * How this command connects to NATS: the servers of --nats (or NATS_URL) and the
 * authentication and TLS options (or their NATS_* variables), checked by checkNatsAuth.
 * Replies come to `_INBOX.<principal>` when the command acts as a principal, so NATS
 * permissions can give each principal its own replies only.
 */
function natsAuth(o: NatsOpts & { nats: string }, principal?: string): NatsAuthOptions {
  const tls = {
    ...(o.tlsCa !== undefined ? { caFile: o.tlsCa } : {}),
    ...(o.tlsCert !== undefined ? { certFile: o.tlsCert } : {}),
    ...(o.tlsKey !== undefined ? { keyFile: o.tlsKey } : {}),
  };
  return {
    servers: o.nats.split(','),
    ...(o.user !== undefined ? { user: o.user } : {}),
    ...(o.password !== undefined ? { pass: o.password } : {}),
    ...(o.token !== undefined ? { token: o.token } : {}),
    ...(o.creds !== undefined ? { credsFile: o.creds } : {}),
    ...(o.nkey !== undefined ? { nkeyFile: o.nkey } : {}),
    ...(Object.keys(tls).length ? { tls } : {}),
    ...(principal !== undefined ? { inboxPrefix: `_INBOX.${principalToken(principal)}` } : {}),
  };
}

/** Who an operator command acts as over NATS: --as, else ICE_OPERATOR, else --by, else operator:$USER. */
function operatorIdentity(o: NatsOpts): string {
  if (o.as) return o.as;
  const user = `operator:${process.env.USER ?? ''}`;
  return PrincipalSchema.safeParse(user).success ? user : 'operator:operator';
}

/**
 * The connection of a command that does one thing over NATS: a failure says where (URLs
 * without credentials) and what to check, instead of nats.js's bare "timeout".
 */
async function connectOnce(auth: NatsAuthOptions, name: string, extra: { maxReconnectAttempts?: number } = {}): Promise<NatsTransport> {
  try {
    return await NatsTransport.connect({ ...auth, name, connectTimeoutMs: 10_000, ...extra });
  } catch (e) {
    if (e instanceof ValidationError) throw e;
    const why = ensureError(e).message;
    const shown = redactNatsUrls(auth.servers).join(',');
    const refused = /authorization violation|authentication/i.test(why);
    throw new IceError(
      refused ? 'E_UNAUTHORIZED' : 'E_UNREACHABLE',
      refused
        ? `NATS at ${shown} refused this client's credentials (${why}); give the right ones: --user and --password, --token, ` +
            '--nkey <seed file> or --creds <file> (or NATS_USER/NATS_PASSWORD, NATS_TOKEN, NATS_NKEY, NATS_CREDS)'
        : `cannot connect to NATS at ${shown} (${why}); check --nats (or NATS_URL), that a server runs there, and for a TLS ` +
            'server --tls-ca, and --tls-cert with --tls-key if it verifies clients',
      refused ? 'reject' : 'retry',
      { cause: e },
    );
  }
}

/** An operator request sent to the nodes serving `ice.admin.as.<principal>.<op>` on NATS. */
async function adminOverNats(o: NatsOpts & { nats: string }, op: string, args: unknown): Promise<unknown> {
  const as = operatorIdentity(o);
  const t = await connectOnce(natsAuth(o, as), 'ice-cli');
  try {
    return await requestAdmin(t, as, op, args);
  } finally {
    await t.close();
  }
}

async function proposeOverNats(
  o: NatsOpts & { nats: string },
  intent: { proposer: string; target: string },
  timeoutMs: number,
): Promise<Outcome> {
  const t = await connectOnce(natsAuth(o, intent.proposer), 'ice-cli');
  try {
    const reply = await t.request(Subjects.intentAs(intent.proposer, intent.target), intent, { timeoutMs });
    return reply.data as Outcome;
  } finally {
    await t.close();
  }
}

/** Runs `fn` with a read call that reuses one NATS connection (`--nats`) or one read-only store: for commands that read page after page. */
async function withReads<T>(
  o: Common,
  fn: (call: (op: string, args: Record<string, unknown>) => Promise<unknown>) => Promise<T>,
): Promise<T> {
  if (o.nats) {
    const no = { ...o, nats: o.nats };
    const as = operatorIdentity(no);
    const t = await connectOnce(natsAuth(no, as), 'ice-cli');
    try {
      // a page of a cluster's actors lists every key first: seconds at a million (docs/distributed.md)
      return await fn((op, args) => requestAdmin(t, as, op, args, op === 'actors.ls' ? 120_000 : undefined));
    } finally {
      await t.close();
    }
  }
  const store = readStore(o);
  try {
    return await fn((op, args) => Promise.resolve(localRead(store, o, op, args)));
  } finally {
    await store.close();
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
async function read<T>(o: Common, op: string, args: Record<string, unknown> = {}): Promise<T> {
  if (o.nats) return (await adminOverNats({ ...o, nats: o.nats }, op, args)) as T;
  // Timers and effects in memory (an attempt running, a timer set by a turn not yet committed)
  // only the serving process knows: ask it while it serves; the store when nobody does.
  if (LIVE_READS.has(op) && servedNow(o.data)) return (await callAdmin(resolve(o.data), op, args)) as T;
  const store = readStore(o);
  try {
    return (await localRead(store, o, op, args)) as T;
  } finally {
    await store.close();
  }
}

/** Reads the process serving a data dir answers more completely than its store. */
const LIVE_READS = new Set(['timers.ls', 'effects.ls']);

/** Whether a process holds the data dir now (a read-only dir, or one we cannot lock: no). */
function servedNow(dataDir: string): boolean {
  try {
    return DataDirLock.isLocked(dataDir);
  } catch {
    return false;
  }
}

function localRead(store: SqliteStore, o: Common, op: string, a: Record<string, unknown>): unknown {
  const journal = new SqliteJournal(store);
  switch (op) {
    case 'actors.ls': {
      const page = store.actorPage(parseActorPageArgs(a, 'args'));
      const rows = page.rows.map((r): ActorInfo => ({
        address: r.actor,
        kind: r.kind,
        state: r.state,
        status: r.status,
        seq: r.seq,
        owner: '',
        active: false,
      }));
      return { rows, ...(page.next !== undefined ? { next: page.next } : {}) };
    }
    case 'timers.ls': {
      const limit = Number(a.limit ?? 1000);
      return timerRows(store.snapshotsToWake(limit), [], limit);
    }
    case 'effects.ls': {
      const limit = Number(a.limit ?? 1000);
      return effectRows(store.snapshotsToWake(100_000), [], limit);
    }
    case 'actor.show': {
      const address = String(a.address);
      const child = storedChildDetail(store, journal, address, Number(a.limit ?? 10));
      if (child) return child;
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
    case 'actors.snapshots':
      return storedSnapshotPage(journal, { ...(typeof a.after === 'string' ? { after: a.after } : {}), limit: 200, maxBytes: Infinity });
    case 'journal.tail':
      return journal.tail({ limit: Number(a.limit ?? 20), ...(typeof a.chain === 'string' ? { chain: a.chain } : {}) });
    case 'journal.chain':
      return store.chainRows(String(a.chain), Number(a.fromSeq ?? 1), Number(a.limit ?? 1000)).map(rowToFact);
    case 'journal.verify': {
      const key = AuthorityKey.loadPublic(resolve(o.data));
      return verifyStoreInWorkers(store, key ? (cp) => key.signedCheckpoint(cp) : undefined).then((r) => ({ ...r, keyChecked: !!key }));
    }
    case 'journal.intent':
      return journal.factsOfIntent(String(a.intentId));
    case 'grant.ls':
      return store.grants();
    case 'grant.show':
      return grantView(store.grants(), String(a.id), Date.now());
    case 'journal.lastPos':
      return store.lastPos();
    case 'approvals':
      return store.pending();
    case 'policy.ls':
      return store.policySets().map((r) => policySummary(PolicySetRecordSchema.parse(r)));
    case 'policy.show': {
      const all = store.policySets().map((r) => PolicySetRecordSchema.parse(r));
      const version = typeof a.version === 'number' ? a.version : undefined;
      const found = version === undefined ? all.at(-1) : all.find((r) => r.version === version);
      if (!found)
        throw new IceError(
          'E_NOT_FOUND',
          version === undefined ? 'no policy set applied yet' : `no policy set version ${version}`,
          'reject',
        );
      return found;
    }
    default:
      throw new IceError('E_INTERNAL', `no local read ${op}`, 'terminal');
  }
}

/** `--nats <url>`, also from NATS_URL as the NATS tools read it. */
const natsOption = (description: string) => new Option('--nats <url>', description).env('NATS_URL');

/** The options that authenticate to NATS: [flags, environment variable, description]. */
const NATS_AUTH_OPTIONS: Array<[string, string, string]> = [
  ['--creds <file>', 'NATS_CREDS', 'NATS credentials file (user JWT and nkey seed, as nsc writes)'],
  ['--nkey <file>', 'NATS_NKEY', 'file holding the nkey seed (SU…) of a NATS nkey user'],
  ['--user <name>', 'NATS_USER', 'NATS user (with --password)'],
  ['--password <password>', 'NATS_PASSWORD', 'NATS password (prefer NATS_PASSWORD: a command line is visible to other users)'],
  ['--token <token>', 'NATS_TOKEN', 'NATS token (prefer NATS_TOKEN)'],
  ['--tls-ca <file>', 'NATS_CA', 'TLS: CA certificate(s) the NATS server certificate must chain to (PEM)'],
  ['--tls-cert <file>', 'NATS_CERT', 'TLS: client certificate (PEM; with --tls-key)'],
  ['--tls-key <file>', 'NATS_KEY', 'TLS: private key of the client certificate (PEM)'],
];
/** Commands with --nats that serve or propose: they act as themselves, not as an operator. */
const NOT_OPERATOR_COMMANDS = new Set(['dev', 'start', 'inspect', 'propose', ...GRANT_COMMANDS_WITH_AS]);

/**
 * Gives every command with --nats the NATS authentication options, and the operator commands
 * `--as <principal>`: who they act as over NATS (ice.admin.as.<principal>.<op>).
 */
function addNatsAuthOptions(cmd: Command): void {
  if (cmd.options.some((o) => o.attributeName() === 'nats')) {
    for (const [flags, env, description] of NATS_AUTH_OPTIONS) cmd.addOption(new Option(flags, description).env(env));
    if (!NOT_OPERATOR_COMMANDS.has(cmd.name()))
      cmd.addOption(
        new Option(
          '--as <principal>',
          'with --nats: who you are, e.g. operator:alice; requests go to ice.admin.as.<principal>.<op> and the node records it as who acted (default: --by if given, else operator:$USER)',
        ).env('ICE_OPERATOR'),
      );
  }
  for (const sub of cmd.commands) addNatsAuthOptions(sub);
}

const AUTH_ATTRIBUTES = ['creds', 'nkey', 'user', 'password', 'token', 'tlsCa', 'tlsCert', 'tlsKey'] as const;

/**
 * Refuses at once what cannot work: NATS options given on the command line without a NATS
 * server, two ways to authenticate, a client certificate without its key, a file that cannot
 * be read (named). Over NATS, a `--by` left at its default is dropped: the node records the
 * principal the request is sent as.
 */
function checkNatsAuth(cmd: Command): void {
  const opt = (key: string) => cmd.options.find((x) => x.attributeName() === key);
  if (!opt('nats')) return;
  const nameOf = (key: string) => {
    const x = opt(key)!;
    return cmd.getOptionValueSource(key) === 'env' && x.envVar ? x.envVar : x.long!;
  };
  const o = cmd.opts<NatsOpts & { by?: string }>();
  if (!o.nats) {
    const identity = opt('as')?.envVar === 'ICE_OPERATOR' ? ['as'] : [];
    const given = [...AUTH_ATTRIBUTES, ...identity].filter((k) => cmd.getOptionValueSource(k) === 'cli');
    if (given.length)
      throw new ValidationError(`${given.map(nameOf).join(', ')} without a NATS server`, [
        ...given.map((k) => ({
          path: nameOf(k),
          code: 'needs_option',
          message: `${nameOf(k)} only applies to NATS connections, and this command has none`,
          expected: `--nats <url> (or NATS_URL) as well, or no ${nameOf(k)}`,
        })),
      ]);
    return;
  }
  const names: NatsAuthNames = {
    servers: nameOf('nats'),
    credsFile: nameOf('creds'),
    nkeyFile: nameOf('nkey'),
    user: nameOf('user'),
    pass: nameOf('password'),
    token: nameOf('token'),
    caFile: nameOf('tlsCa'),
    certFile: nameOf('tlsCert'),
    keyFile: nameOf('tlsKey'),
  };
  const issues = natsAuthIssues(natsAuth({ ...o, nats: o.nats }), names);
  if (issues.length) throw new ValidationError(`cannot connect to NATS as given: ${issues.map((i) => i.path).join('; ')}`, issues);
  if (opt('by') && opt('as')?.envVar === 'ICE_OPERATOR') {
    const bySource = cmd.getOptionValueSource('by');
    if (bySource === 'default') cmd.setOptionValueWithSource('by', undefined, 'default');
    // `--by human:bob` alone: bob acts, so the request is sent as human:bob
    else if (bySource === 'cli' && o.as === undefined) {
      if (!PrincipalSchema.safeParse(o.by).success)
        throw new ValidationError('--by over NATS names who sends the request', [
          {
            path: '--by',
            code: 'invalid_option',
            message: `got ${JSON.stringify(o.by)}: over NATS the request is sent as --as, else --by`,
            expected: 'a principal "type:name", e.g. human:bob (or --as <principal> as well)',
          },
        ]);
      cmd.setOptionValueWithSource('as', o.by, 'cli');
    }
  }
}

const program = new Command('ice')
  .description('ICE runtime: inference proposes, the runtime decides.')
  .version(VERSION)
  .showHelpAfterError()
  // Usage errors reach the catch at the end (exit EXIT_USAGE) instead of exiting inside commander.
  .exitOverride();

// Before any action: the project config fills in what the command line and the environment
// leave open, then every option value is checked against its rule.
program.hook('preAction', (_program, cmd) => {
  const usesConfig = cmd.options.some((o) => ['data', 'actors'].includes(o.attributeName()));
  projectConfig = usesConfig ? findProjectConfig() : undefined;
  if (projectConfig) applyProjectConfig(cmd, projectConfig);
  checkOptions(cmd, projectConfig?.file);
  checkNatsAuth(cmd);
});

common(program.command('demo'))
  .description('run the scripted demo on the embedded runtime and verify the journal')
  .action(async (o: Common) => {
    const rt = await open(o, 'warn', { acts: true });
    try {
      const r = await runDemo(rt, print);
      process.exitCode = r.verified ? 0 : 1;
    } finally {
      await rt.stop();
    }
  });

type ServeOptions = Common;

/**
 * The first connection of a serving node: each failed attempt is logged (warn) with the URLs,
 * and once `timeoutMs` has passed it gives up with what to do, instead of waiting in silence.
 * Once connected, the node reconnects for as long as it runs.
 */
async function connectLogged(auth: NatsAuthOptions, name: string, logger: Logger, timeoutMs: number): Promise<NatsTransport> {
  const started = Date.now();
  const shown = redactNatsUrls(auth.servers).join(','); // never a password or token in a log line
  logger.info({ nats: shown }, `connecting to NATS at ${shown}`);
  for (let attempt = 1; ; attempt++) {
    try {
      return await NatsTransport.connect({
        ...auth,
        name,
        maxReconnectAttempts: -1,
        connectTimeoutMs: Math.max(500, Math.min(5000, started + timeoutMs - Date.now())),
        onHandlerError: (err, subject) => logger.error({ err, subject }, 'handler failed'),
      });
    } catch (e) {
      // what was given is wrong (an auth file gone or unreadable since the pre-check): waiting will not change it
      if (e instanceof ValidationError) throw e;
      const waited = Date.now() - started;
      const why = ensureError(e).message;
      if (/authorization violation|authentication/i.test(why)) {
        // Waiting will not change the answer.
        throw new IceError(
          'E_UNAUTHORIZED',
          `NATS at ${shown} refused this client's credentials (${why}); give the right ones: ` +
            '--user and --password, --token, --nkey <seed file> or --creds <file> (or NATS_USER/NATS_PASSWORD, ' +
            'NATS_TOKEN, NATS_NKEY, NATS_CREDS), or in the URL: nats://user:password@host:port or nats://token@host:port',
          'reject',
        );
      }
      if (waited >= timeoutMs) {
        throw new IceError(
          'E_UNREACHABLE',
          `no NATS server answered at ${shown} in ${Math.round(waited / 1000)} s (${attempt} attempts; ${why}); ` +
            'start one, check --nats, or wait longer with --connect-timeout <duration> (or ICE_CONNECT_TIMEOUT)',
          'retry',
        );
      }
      const left = Math.ceil((timeoutMs - waited) / 1000);
      logger.warn(
        { nats: shown, attempt, err: why },
        `NATS not reachable at ${shown} (attempt ${attempt}: ${why}); retrying for ${left} s more`,
      );
      await new Promise((r) => setTimeout(r, Math.min(2000, 250 * attempt, timeoutMs - waited)));
    }
  }
}

/** What a serving node started, stopped in reverse order: when it is told to stop, and when it fails to start. */
class Started {
  readonly #closers: Array<() => Promise<unknown>> = [];
  readonly #logger: Logger;
  constructor(logger: Logger) {
    this.#logger = logger;
  }
  add(close: () => Promise<unknown>): void {
    this.#closers.push(close);
  }
  async closeAll(): Promise<void> {
    for (const close of this.#closers.reverse()) {
      await close().catch((e: unknown) => this.#logger.warn({ err: ensureError(e) }, 'stopping'));
    }
  }
}

/** A second node on a data dir exits at once, naming the owner and what to do. */
function servedElsewhere(e: DataDirLockedError): IceError {
  return new IceError(
    'E_DATA_DIR_LOCKED',
    `data dir ${e.dataDir} is owned by another process${e.ownerPid ? ` (pid ${e.ownerPid})` : ''}, a node serving it; ` +
      'stop that node first, or give this one a data dir of its own with --data',
    'terminal',
    { cause: e },
  );
}

/**
 * `ice dev` and `ice start` (one node on a data dir, or a cluster node): serves until SIGINT
 * or SIGTERM. Either it prints `ready`, or it stops what it started and fails: no node is
 * left running after an error.
 */
async function serve(o: ServeOptions, title: string): Promise<void> {
  if (o.cluster && o.adminPort !== undefined) {
    throw new ValidationError('--admin-port has no effect with --cluster', [
      {
        path: '--admin-port',
        code: 'no_effect',
        message: 'a cluster node has no local admin endpoint',
        expected: 'operator commands with --nats <url> (they reach every node over NATS)',
      },
    ]);
  }
  if (!o.cluster && (o.replicas !== undefined || o.leaseTtl !== undefined)) {
    throw new ValidationError('--replicas and --lease-ttl need --cluster', [
      {
        path: o.replicas !== undefined ? '--replicas' : '--lease-ttl',
        code: 'no_effect',
        message: 'only cluster nodes use JetStream and leases',
        expected: '--cluster',
      },
    ]);
  }
  const logger = createLogger({ level: process.env.ICE_LOG_LEVEL ?? 'info' });
  const started = new Started(logger);
  try {
    let transport: NatsTransport | undefined;
    if (o.nats) {
      const t = await connectLogged(natsAuth({ ...o, nats: o.nats }), `ice-${o.node ?? 'node'}`, logger, o.connectTimeout ?? 60_000);
      started.add(() => t.close());
      const warning = jetStreamVersionWarning(t.serverVersion);
      if (warning) logger.warn({ server: t.serverVersion }, warning);
      transport = t;
    }
    const node = o.node ?? (o.cluster ? `node-${process.pid}` : undefined);
    let rt: Runtime;
    try {
      rt = await createRuntime({
        ...(o.cluster
          ? {
              cluster: {
                // the node's own connection is given below: these only name the servers in messages
                servers: redactNatsUrls(o.nats!),
                ...(o.replicas !== undefined ? { replicas: o.replicas } : {}),
                ...(o.leaseTtl !== undefined ? { leaseTtlMs: o.leaseTtl } : {}),
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
        ...(o.serveBrokenJournal ? { serveBrokenJournal: true } : {}),
      });
    } catch (e) {
      throw e instanceof DataDirLockedError ? servedElsewhere(e) : e;
    }
    started.add(() => rt.stop());
    const admin = o.cluster ? undefined : await startAdminServer(rt, o.adminPort !== undefined ? { port: o.adminPort } : {});
    if (admin) {
      started.add(() => admin.close());
      rt.advertiseAdmin(admin.url, admin.token);
    }
    let inspector: Inspector | undefined;
    if (o.inspect !== undefined && o.inspect !== false) {
      const host = o.inspectHost ?? '127.0.0.1';
      const approvals = inspectorApprovals(rt, host);
      try {
        inspector = await startInspector({ runtime: rt, port: o.inspect, host, ...approvals });
      } catch (e) {
        if ((e as { code?: string }).code !== 'EADDRINUSE') throw e;
        logger.warn(`inspector port ${o.inspect} is taken; using a free port`);
        inspector = await startInspector({ runtime: rt, port: 0, host, ...approvals });
      }
      const i = inspector;
      started.add(() => i.close());
    }
    if (transport) {
      const service = await registerNodeService(transport, {
        node: rt.node.replace(/[^A-Za-z0-9_-]/g, '_'),
        version: VERSION,
        status: () => ({ node: rt.node, mode: rt.mode, ...rt.stats() }),
        ...(await authorityServiceInfo(rt)),
      });
      started.add(() => service.stop());
    }
    const stop = stopper();
    if (o.seed) await runDemo(rt, print);
    print(
      `${c.bold(title)} node ${rt.node} ${rt.mode === 'cluster' ? `in a cluster on ${redactNatsUrls(o.nats ?? '').join(',')}` : `serving ${rt.dataDir}`}`,
    );
    print(
      `  transport ${rt.transport.kind}${o.nats ? ` ${redactNatsUrls(o.nats).join(',')} (nats-server ${transport!.serverVersion ?? '?'})` : ' (in process)'}`,
    );
    print(`  config ${projectConfig ? projectConfig.file : c.dim('none (no ice.config.json or package.json "ice" field found)')}`);
    if (admin) print(`  admin endpoint ${admin.url} (token in ${join(rt.dataDir, 'owner.json')})`);
    else print('  operator commands: ice … --nats <url> --as <principal> (ice.admin.as.<principal>.<op> on NATS)');
    if (inspector) print(`  inspector ${c.bold(inspector.operatorUrl ?? inspector.url)}`);
    // one page, not a count of every actor: a store may hold millions (`ice actors ls --all` lists them)
    const firstPage = await rt.listActorsPage({ limit: ACTOR_PAGE_MAX });
    print(`  actors ${firstPage.rows.length}${firstPage.next !== undefined ? '+' : ''} · Ctrl-C to stop`);
    print('ready');
    await stop.done;
  } finally {
    await started.closeAll();
  }
}

const connectTimeoutOption = () =>
  new Option('--connect-timeout <duration>', 'how long to wait for a NATS server at start, e.g. 30s, 10m')
    .env('ICE_CONNECT_TIMEOUT')
    .default('60s');

common(program.command('dev'))
  .description('run an embedded node until Ctrl-C, with a local admin endpoint for CLI changes')
  .option('--admin-port <port>', 'admin endpoint port on 127.0.0.1 (default: any free port)')
  .addOption(natsOption('also serve intents over NATS (comma-separated server URLs)'))
  .addOption(connectTimeoutOption())
  .option('--node <name>', 'node name')
  .option(
    '--require-principal-subjects',
    'accept intents only on ice.as.<principal>.<kind>.<id> and admin requests only on ice.admin.as.<principal>.<op> (pair with NATS permissions per principal)',
  )
  .option('--seed', 'run the scripted demo once at start')
  .option('--inspect <port>', 'inspector port (0 = any free port)', '4848')
  .option('--no-inspect', 'do not serve the inspector')
  .option('--inspect-host <host>', 'inspector bind address (default 127.0.0.1: it shows contexts and the journal)')
  .option(
    '--serve-broken-journal',
    'serve even if the start-up check finds the journal broken (recorded as a journal.broken fact; a broken chain is still never appended to)',
  )
  .action((o: ServeOptions, cmd: Command) => {
    if (!o.nats && cmd.getOptionValueSource('connectTimeout') === 'cli') {
      throw new ValidationError('--connect-timeout has no effect without --nats', [
        {
          path: '--connect-timeout',
          code: 'no_effect',
          message: 'ice dev connects to NATS only with --nats',
          expected: '--nats <url> too, or no --connect-timeout',
        },
      ]);
    }
    return serve(o, 'ice dev');
  });

common(program.command('start'))
  .description('run a node that serves intents over NATS (any language can propose on ice.intent.<kind>.<id>)')
  .addOption(natsOption('NATS server URL(s), comma-separated').makeOptionMandatory())
  .addOption(connectTimeoutOption())
  .option('--node <name>', 'node name (subject-safe)')
  .option('--admin-port <port>', 'admin endpoint port on 127.0.0.1 (not with --cluster: use --nats)')
  .option('--inspect <port>', 'serve the inspector on this port (0 = any free port)')
  .option(
    '--require-principal-subjects',
    'accept intents only on ice.as.<principal>.<kind>.<id> and admin requests only on ice.admin.as.<principal>.<op> (pair with NATS permissions per principal)',
  )
  .option('--inspect-host <host>', 'inspector bind address (default 127.0.0.1)')
  .option('--cluster', 'share actors with the other cluster nodes through JetStream (journal, snapshots, leases)')
  .option('--replicas <n>', 'JetStream replicas for --cluster (1 for one server, 3 for a cluster; default 1)')
  .option('--lease-ttl <duration>', 'actor lease length for --cluster (default 5s)')
  .option('--publish-inspection', "publish this node's XState inspection events on ice.inspect.> (for ice inspect --nats)")
  .option(
    '--serve-broken-journal',
    'serve even if the start-up check finds the journal broken (recorded as a journal.broken fact; a broken chain is still never appended to)',
  )
  .action((o: ServeOptions) => serve(o, o.cluster ? 'ice start --cluster' : 'ice start'));

common(program.command('inspect'))
  .description('serve the inspector for a cluster: journal, snapshots and owners read from JetStream')
  .addOption(natsOption('NATS server URL(s) of the cluster, comma-separated').makeOptionMandatory())
  .addOption(connectTimeoutOption())
  .option('--inspect <port>', 'inspector port (0 = any free port)', '4848')
  .option('--inspect-host <host>', 'bind address (default 127.0.0.1: it shows contexts and the journal)')
  .option('--approve-as <principal>', 'offer approve / deny buttons, sent to the nodes as this principal (loopback bind only)')
  .action(async (o: Opts<'nats' | 'inspect' | 'connectTimeout'>) => {
    const logger = createLogger({ level: process.env.ICE_LOG_LEVEL ?? 'info' });
    const started = new Started(logger);
    try {
      const t = await connectLogged(natsAuth(o), 'ice-inspect', logger, o.connectTimeout);
      started.add(() => t.close());
      const source = await clusterInspectorSource(t, await loadActors(o.actors));
      started.add(() => source.close());
      const approvals = o.approveAs ? natsInspectorApprovals((as, op, args) => requestAdmin(t, as, op, args), o.approveAs) : undefined;
      const inspector = await startInspector({
        runtime: source,
        port: o.inspect || 0,
        host: o.inspectHost ?? '127.0.0.1',
        ...(approvals ? { approvals } : {}),
      });
      started.add(() => inspector.close());
      const stop = stopper();
      print(`${c.bold('ice inspect')} ${redactNatsUrls(o.nats).join(',')} → ${c.bold(inspector.operatorUrl ?? inspector.url)}`);
      print('ready');
      await stop.done;
    } finally {
      await started.closeAll();
    }
  });

common(program.command('propose <target> <action>'))
  .description('propose an intent and print its outcome (exit 0 executed, 10 pending, 11 denied, 12 rejected, 13 failed)')
  .requiredOption('--as <principal>', 'who proposes, e.g. agent:planner')
  .option('--params <json>', 'params as JSON', '{}')
  .option('--id <id>', 'intent id (reuse it to retry idempotently); default: a fresh id')
  .option('--run <runId>', 'the ICE run this intent belongs to')
  .option('--rationale <text>', "the proposer's stated reason")
  .option('--json', 'print the outcome as JSON')
  .addOption(natsOption('propose over NATS to whatever nodes serve there, instead of the local data dir'))
  .option('--timeout <duration>', 'how long to wait for the outcome', '30s')
  .action(async (target: string, action: string, o: Opts<'data' | 'as' | 'params' | 'timeout'>) => {
    const intent = {
      id: o.id ?? `cli-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
      proposer: o.as,
      target,
      action,
      params: o.params,
      ...(o.run ? { runId: o.run } : {}),
      ...(o.rationale ? { rationale: o.rationale } : {}),
    };
    const outcome = o.nats
      ? await proposeOverNats({ ...o, nats: o.nats }, intent, o.timeout)
      : ((await change(o, 'propose', { intent, timeoutMs: o.timeout })) as Outcome);
    if (o.json) printJson(outcome);
    else print(`${intent.id}  ${formatOutcome(outcome)}`);
    process.exitCode = PROPOSE_EXIT[outcome.status];
  });

async function spawnAction(address: string, o: Common): Promise<void> {
  const a = (await change(o, 'spawn', { address, input: o.input, ...(o.ifAbsent ? { ifAbsent: true } : {}) })) as {
    address: string;
    state: string;
    created?: boolean;
  };
  print(a.created === false ? `${a.address} exists, in ${a.state}` : `${a.address} started in ${a.state}`);
}

common(program.command('spawn <address>'))
  .description('create an actor, e.g. `ice spawn deployment/web --input \'{"service":"web"}\'`')
  .option('--input <json>', 'input for the machine, as JSON')
  .option('--if-absent', 'if the actor exists (with the same input), say so and exit 0: safe to run on every start')
  .addOption(natsOption('send it to the cluster nodes on NATS instead of the local data dir'))
  .action(spawnAction);

const grant = program.command('grant').description('issue, delegate, list, show and revoke capability grants');
common(grant.command('issue'))
  .description('grant a principal a scope over kind/id:ACTION')
  .requiredOption('--to <principal>', 'who gets it, e.g. agent:planner (wildcards: *)')
  .requiredOption('--scope <pattern>', 'kind/id:ACTION with * wildcards, e.g. deployment/*:DEPLOY')
  .option('--id <id>', 'the grant id (default: a fresh one); with --ensure, the grant to make sure of')
  .option('--ensure', 'issue it unless a grant with this --id exists with the same terms (then print it); safe on every start')
  .option('--run <runId>', 'only for intents of this run, while it is EXECUTING')
  .addOption(new Option('--ttl <duration>', 'expires after, e.g. 30m, 2h, 7d').conflicts('expires'))
  .option('--expires <iso>', 'expires at (ISO 8601, in the future), e.g. 2030-01-31T12:00:00Z')
  .option('--max-uses <n>', 'number of executions allowed (1 or more)')
  .option('--by <who>', 'who issues it', process.env.USER ? `operator:${process.env.USER}` : 'operator')
  .option('--note <text>', 'why')
  .option('--json', 'print the grant as JSON')
  .addOption(natsOption('send it to the cluster nodes on NATS instead of the local data dir'))
  .action(async (o: Opts<'data' | 'to' | 'scope' | 'by'>) => {
    const g = (await change(o, 'grant.issue', {
      subject: o.to,
      scope: o.scope,
      by: o.by,
      ...(o.id ? { id: o.id } : {}),
      ...(o.ensure ? { ensure: true } : {}),
      ...(o.run ? { runId: o.run } : {}),
      ...(o.ttl !== undefined ? { ttlMs: o.ttl } : {}),
      ...(o.expires ? { expiresAt: o.expires } : {}),
      ...(o.maxUses !== undefined ? { maxUses: o.maxUses } : {}),
      ...(o.note ? { note: o.note } : {}),
    })) as Grant;
    if (o.json) printJson(g);
    else print(`issued ${formatGrants([g])}`);
  });
common(grant.command('ls'))
  .description('list grants')
  .option('--json', 'JSON output')
  .addOption(natsOption('read the cluster over NATS instead of the local data dir'))
  .action(async (o: Common) => {
    const gs = (await read<Grant[]>(o, 'grant.ls')).sort((a, b) => a.issuedAt.localeCompare(b.issuedAt));
    if (o.json) printJson(gs);
    else print(formatGrants(gs));
  });
common(grant.command('revoke <id>'))
  .description('revoke a grant; it stops counting at once')
  .option('--by <who>', 'who revokes it', 'operator')
  .option('--reason <text>', 'why')
  .addOption(natsOption('send it to the cluster nodes on NATS instead of the local data dir'))
  .action(async (id: string, o: Opts<'data' | 'by'>) => {
    const g = (await change(o, 'grant.revoke', { id, by: o.by, ...(o.reason ? { reason: o.reason } : {}) })) as Grant;
    print(`revoked ${g.id} at ${g.revokedAt}`);
  });
registerGrantCommands(grant, { common, natsOption, change, read, print, printJson });

common(program.command('approvals'))
  .description('list intents waiting for approvals: requirement, approvals so far, remaining, deadline')
  .option('--json', 'JSON output')
  .addOption(natsOption('read the cluster over NATS instead of the local data dir'))
  .action(async (o: Common) => {
    const ps = await read<PendingApprovalView[]>(o, 'approvals');
    if (o.json) printJson(ps);
    else print(formatPendingApprovals(ps));
  });
common(program.command('approve <intentId>'))
  .description('approve a pending intent; the authority decides it again with the approval')
  .option('--by <who>', 'the approving human', process.env.USER ? `human:${process.env.USER}` : 'human:operator')
  .option('--note <text>', 'note recorded with the approval')
  .addOption(natsOption('send it to the cluster nodes on NATS instead of the local data dir'))
  .action(async (intentId: string, o: Opts<'data' | 'by'>) => {
    const out = (await change(o, 'approve', { intentId, by: o.by, ...(o.note ? { note: o.note } : {}) })) as Outcome;
    print(`${intentId}  ${formatOutcome(out)}`);
    process.exitCode = PROPOSE_EXIT[out.status];
  });
common(program.command('deny <intentId>'))
  .description('refuse a pending intent')
  .requiredOption('--reason <text>', 'why')
  .option('--by <who>', 'the refusing human', process.env.USER ? `human:${process.env.USER}` : 'human:operator')
  .addOption(natsOption('send it to the cluster nodes on NATS instead of the local data dir'))
  .action(async (intentId: string, o: Opts<'data' | 'by' | 'reason'>) => {
    const out = (await change(o, 'deny', { intentId, by: o.by, reason: o.reason })) as Outcome;
    print(`${intentId}  ${formatOutcome(out)}`);
  });

const actorsCommand = program.command('actors').description('actors');
common(actorsCommand.command('ls'))
  .description('list actors with their state, in address order, a page at a time (from the store: passivated actors too)')
  .option('--kind <kind>', 'only this kind')
  .option('--status <status>', 'only this status: active, done, stopped or failed')
  .option('--state <state>', 'only actors in this state or one nested in it (review matches review.waiting)')
  .option('-n, --limit <n>', 'how many to show (1-100000; asked for in pages of 1000)', '100')
  .option('--after <address>', 'start after this address (the one printed after "next:")')
  .option('--all', 'every actor, page by page (no --limit)')
  .option('--json', 'JSON output (one array; the "next:" hint goes to stderr)')
  .addOption(natsOption('read the cluster over NATS instead of the local data dir'))
  .action(async (o: Opts<'data' | 'limit'> & Common) => {
    await withReads(o, (call) =>
      actorsLs(o, async (args) => (await call('actors.ls', args)) as ActorPage<ActorInfo>, {
        print,
        printErr: (s) => process.stderr.write(`${s}\n`),
      }),
    );
  });

common(actorsCommand.command('check'))
  .description('whether the definitions here (registered and --actors) can restore every stored actor, after migrations; writes nothing')
  .option('--json', 'JSON output')
  .addOption(natsOption('read the cluster over NATS instead of the local data dir'))
  .action(async (o: Common) => {
    const records = await allStoredSnapshots((after) => read<SnapshotPage>(o, 'actors.snapshots', after !== undefined ? { after } : {}));
    const rows = checkActors(records, await loadActors(o.actors));
    if (o.json) printJson(rows);
    else print(formatCheck(rows));
    if (rows.some((r) => r.verdict === 'not_restorable')) process.exitCode = 1;
  });

const actor = program.command('actor').description('one actor');
common(actor.command('show <address>'))
  .description("an actor's state, context and recent journal")
  .option('-n, --limit <n>', 'journal facts to show (1-100000)', '10')
  .option('--json', 'JSON output')
  .addOption(natsOption('read the cluster over NATS instead of the local data dir'))
  .action(async (address: string, o: Opts<'data' | 'limit'>) => {
    const a = await read<ActorDetail & { updatedAt?: string; facts: Fact[] }>(o, 'actor.show', { address, limit: o.limit });
    if (o.json) {
      printJson(a);
      return;
    }
    print(`${c.bold(address)}  ${a.state}  ${c.dim(`${a.status} · seq ${a.seq}${a.updatedAt ? ` · updated ${a.updatedAt}` : ''}`)}`);
    const child = a as { parent?: string; src?: string; children?: string[] };
    if (child.parent !== undefined) print(`child of ${child.parent} (${child.src ?? '?'}), as of its snapshot`);
    const ids = child.children ?? Object.keys((a.snapshot as { children?: object } | undefined)?.children ?? {});
    if (ids.length > 0) print(`children ${ids.map((id) => `${address}/${id}`).join(', ')}`);
    print(`context ${JSON.stringify(a.context, null, 2)}`);
    print(child.parent !== undefined ? `recent facts of ${child.parent}:` : 'recent facts:');
    for (const f of [...a.facts].reverse()) print(formatFact(f));
  });
common(actor.command('stop <address>'))
  .description('stop an actor for good (it keeps its history)')
  .requiredOption('--reason <text>', 'why')
  .addOption(natsOption('send it to the cluster nodes on NATS instead of the local data dir'))
  .action(async (address: string, o: Opts<'data' | 'reason'>) => {
    await change(o, 'actor.stop', { address: actorAddress(address), reason: o.reason });
    print(`${address} stopped`);
  });
common(actor.command('restart <address>'))
  .description('restart a failed actor (its last good state and pending timers), as an operator fact')
  .option('--by <who>', 'who restarts it', process.env.USER ? `operator:${process.env.USER}` : 'operator')
  .option('--reason <text>', 'why')
  .addOption(natsOption('send it to the cluster nodes on NATS instead of the local data dir'))
  .action(async (address: string, o: Opts<'data' | 'by' | 'reason'>) => {
    const info = (await change(o, 'actor.restart', {
      address: actorAddress(address),
      by: o.by,
      ...(o.reason !== undefined ? { reason: o.reason } : {}),
    })) as ActorInfo;
    print(`${address} restarted: ${info.state} ${c.dim(`(${info.status} · seq ${info.seq})`)}`);
  });
common(program.command('timers').description('durable timers').command('ls'))
  .description('pending timers (and restarts of failed actors), earliest first')
  .option('-n, --limit <n>', 'at most this many (1-100000)', '1000')
  .option('--json', 'JSON output')
  .addOption(natsOption('read the cluster over NATS instead of the local data dir'))
  .action(async (o: Opts<'data' | 'limit'>) => {
    const rows = await read<TimerRow[]>(o, 'timers.ls', { limit: o.limit });
    if (o.json) printJson(rows);
    else print(formatTimers(rows, Date.now()));
  });
common(program.command('effects').description('durable effects').command('ls'))
  .description('effects started and not finished: running, or waiting to retry')
  .option('-n, --limit <n>', 'at most this many (1-100000)', '1000')
  .option('--json', 'JSON output')
  .addOption(natsOption('read the cluster over NATS instead of the local data dir'))
  .action(async (o: Opts<'data' | 'limit'>) => {
    const rows = await read<EffectRow[]>(o, 'effects.ls', { limit: o.limit });
    if (o.json) printJson(rows);
    else print(formatEffects(rows, Date.now()));
  });
common(actor.command('spawn <address>'))
  .description('same as `ice spawn`')
  .option('--input <json>', 'input for the machine, as JSON')
  .option('--if-absent', 'if the actor exists (with the same input), say so and exit 0')
  .action(spawnAction);

/** An actor address given as an argument, checked before anything is read. */
function actorAddress(address: string): string {
  const child = parseChildAddress(address);
  if (child)
    throw new ValidationError(
      `${address} is a child of ${child.parent}: this command takes a top-level actor (${child.parent}, whose chain holds the child's history); ice actor show ${address} reads the child`,
      [
        {
          path: '<address>',
          code: 'child_address',
          message: `got ${JSON.stringify(address)}`,
          expected: `the top-level actor, ${child.parent}`,
        },
      ],
    );
  if (!isAddress(address))
    throw new ValidationError(`not an actor address: ${JSON.stringify(address)}`, [
      { path: '<address>', code: 'invalid_address', message: `got ${JSON.stringify(address)}`, expected: 'kind/id, e.g. deployment/web' },
    ]);
  return address;
}

/** One actor's whole chain, oldest first, read a page at a time (locally or over NATS). */
async function wholeChain(o: Common, chain: string, upTo = Number.MAX_SAFE_INTEGER): Promise<Fact[]> {
  const PAGE = 1000;
  const out: Fact[] = [];
  for (;;) {
    const page = await read<Fact[]>(o, 'journal.chain', { chain, fromSeq: out.length + 1, limit: PAGE });
    out.push(...page.filter((f) => f.seq <= upTo));
    if (page.length < PAGE || out.length >= upTo) return out;
  }
}

/** A replay that differs from the journal: said (unless the output is JSON, which carries it) and exit 1. */
function replayVerdict(mismatches: ReadonlyArray<{ seq: number }>, json: boolean | undefined): void {
  if (mismatches.length === 0) return;
  if (!json) print(c.red(`replay differs from the journal at #${mismatches.map((m) => m.seq).join(', #')}`));
  process.exitCode = 1;
}

/** The definition of an address's kind, from the registered and --actors definitions. */
async function definitionOf(o: Common, address: string): Promise<ActorDefinition> {
  const kind = address.slice(0, address.indexOf('/'));
  const def = (await loadActors(o.actors)).find((d) => d.kind === kind);
  if (!def)
    throw new ConfigError(
      `no definition of kind ${kind} to replay ${address} with: pass the module that defines it with --actors <module>`,
    );
  return def;
}

common(actor.command('history <address>'))
  .description("an actor's transitions (with who proposed each) and lifecycle facts, each checked by replaying the chain")
  .option('--json', 'JSON output')
  .addOption(natsOption('read the cluster over NATS instead of the local data dir'))
  .action(async (address: string, o: Common) => {
    const facts = await wholeChain(o, actorAddress(address));
    if (facts.length === 0) throw new NotFoundError(`actor ${address}`);
    // Without the kind's definition the history is still the journal's; only the replay check is left out.
    const def = (await loadActors(o.actors)).find((d) => d.kind === address.slice(0, address.indexOf('/')));
    if (!def && !o.json) print(c.yellow(`no definition of this kind here (--actors <module>): transitions not checked by replay`));
    const h = actorHistory(facts, def);
    if (o.json) printJson(h);
    else print(formatHistory(address, h.rows));
    replayVerdict(h.mismatches, o.json);
  });
common(actor.command('at <address>'))
  .description('what an actor was right after fact --seq of its chain, rebuilt by replaying its journal')
  .requiredOption('--seq <n>', 'the fact of its chain to stop at')
  .option('--json', 'JSON output')
  .addOption(natsOption('read the cluster over NATS instead of the local data dir'))
  .action(async (address: string, o: Opts<'data' | 'seq'>) => {
    const facts = await wholeChain(o, actorAddress(address), o.seq);
    if (facts.length === 0) throw new NotFoundError(`actor ${address}`);
    const at = actorAt(address, facts, o.seq, await definitionOf(o, address));
    if (o.json) printJson(at);
    else {
      print(
        `${c.bold(address)} at #${at.seq} (${at.at}): ${c.bold(at.state)}${at.lastTransition !== undefined ? c.dim(`  last transition #${at.lastTransition}`) : ''}`,
      );
      print(`context ${JSON.stringify(at.context, null, 2)}`);
    }
    replayVerdict(at.mismatches, o.json);
  });

common(program.command('why <intentId>'))
  .description('the causal chain of an intent: proposal → decision (grant, policies) → transition or refusal, with approvals')
  .option('--json', 'JSON output')
  .addOption(natsOption('read the cluster over NATS instead of the local data dir'))
  .action(async (intentId: string, o: Common) => {
    if (!IdSchema.safeParse(intentId).success)
      throw new ValidationError(`not an intent id: ${JSON.stringify(intentId)}`, [
        {
          path: '<intentId>',
          code: 'invalid_id',
          message: `got ${JSON.stringify(intentId)}`,
          expected: '1-128 characters of A-Z a-z 0-9 _ : - starting with a letter or digit',
        },
      ]);
    const facts = await read<Fact[]>(o, 'journal.intent', { intentId });
    if (facts.length === 0) throw new NotFoundError(`intent ${intentId} (no fact names it)`);
    const r = explainIntent(intentId, facts, await read<Grant[]>(o, 'grant.ls'));
    if (o.json) printJson(r);
    else print(formatWhy(r));
    if (r.broken) process.exitCode = 1;
  });

/** Waits `ms`, or less if `until` settles first. */
const pause = (ms: number, until: Promise<void>) => Promise.race([new Promise((r) => setTimeout(r, ms)), until]);

/**
 * One chain oldest first from seq `from`: up to `limit` facts, or with `follow` every fact
 * from there on, then each new one as it commits (locally by polling the store read-only;
 * over NATS from the nodes' ice.fact.<chain> messages, filling any gap from the journal).
 */
async function chainFrom(
  o: Opts<'data' | 'limit'>,
  chain: string,
  from: number,
  show: (f: Fact) => void,
  stop: ReturnType<typeof stopper> | undefined,
): Promise<void> {
  if (!stop) {
    (await read<Fact[]>(o, 'journal.chain', { chain, fromSeq: from, limit: o.limit })).forEach(show);
    return;
  }
  const PAGE = 1000;
  let next = from;
  const showNew = (facts: Fact[]) => {
    for (const f of facts) {
      if (f.seq < next) continue;
      show(f);
      next = f.seq + 1;
    }
  };
  if (!o.nats) {
    const store = readStore(o);
    try {
      while (!stop.stopped) {
        const rows = store.chainRows(chain, next, PAGE);
        showNew(rows.map(rowToFact));
        if (rows.length < PAGE) await pause(300, stop.done);
      }
    } finally {
      await store.close();
    }
    return;
  }
  const as = operatorIdentity(o);
  const t = await connectOnce(natsAuth({ ...o, nats: o.nats }, as), 'ice-cli-tail', { maxReconnectAttempts: -1 });
  let failure: Error | undefined;
  try {
    /** Reads the chain from `next` until it has nothing newer (or reaches `upTo`). */
    const catchUp = async (upTo = Number.MAX_SAFE_INTEGER) => {
      for (;;) {
        const page = (await requestAdmin(t, as, 'journal.chain', { chain, fromSeq: next, limit: PAGE })) as Fact[];
        showNew(page);
        if (page.length < PAGE || next > upTo) return;
      }
    };
    // One step at a time, in order; a failed step ends the follow with its error.
    let queue = Promise.resolve();
    const enqueue = (step: () => Promise<void>) => {
      queue = queue.then(step);
      queue.catch((e: unknown) => {
        failure ??= ensureError(e);
        stop.stop();
      });
    };
    // Subscribed before the first read, so a fact committed while reading arrives live; a
    // live fact past the next expected seq first reads what is missing from the journal.
    const sub = t.subscribe(Subjects.fact(chain), (m) => {
      const f = m.data as Fact;
      enqueue(async () => {
        if (f.seq > next) await catchUp(f.seq - 1);
        showNew([f]);
      });
    });
    await t.flush();
    enqueue(() => catchUp());
    await stop.done;
    sub.unsubscribe();
  } finally {
    await t.close();
  }
  if (failure) throw failure;
}

const journal = program.command('journal').description('the hash-chained journal');
common(journal.command('tail'))
  .description('the newest facts; or with --actor and --from, one chain oldest first from a seq')
  .option('-n, --limit <n>', 'how many (1-100000)', '20')
  .option('--actor <address>', 'only facts of this actor (its chain)')
  .option('--from <seq>', 'with --actor: that chain from this seq on, oldest first (with -f: every fact from there, then new ones)')
  .option('-f, --follow', 'keep printing new facts')
  .option('--json', 'one JSON fact per line')
  .addOption(natsOption('read the cluster over NATS instead of the local data dir'))
  .action(async (o: Opts<'data' | 'limit'>) => {
    const show = (f: Fact): void => print(o.json ? JSON.stringify(f) : formatFact(f));
    const stop = o.follow ? stopper() : undefined;
    if (o.from !== undefined) {
      if (!o.actor) {
        throw new ValidationError('--from needs --actor', [
          {
            path: '--from',
            code: 'needs_option',
            message: `got ${o.from} without --actor`,
            expected: '--actor <address> as well, the chain to read, e.g. --actor deployment/web --from 1',
          },
        ]);
      }
      return chainFrom(o, o.actor, o.from, show, stop);
    }
    // Where the follow starts is read before the tail, so nothing committed in between is missed.
    const startPos = !o.nats && o.follow ? await read<number>(o, 'journal.lastPos') : 0;
    const facts = (await read<Fact[]>(o, 'journal.tail', { limit: o.limit, ...(o.actor ? { chain: o.actor } : {}) })).reverse();
    facts.forEach(show);
    if (!stop) return;
    if (o.nats) {
      // Every node publishes each committed fact on ice.fact.<chain>.
      const t = await connectOnce(natsAuth({ ...o, nats: o.nats }, operatorIdentity(o)), 'ice-cli-tail', { maxReconnectAttempts: -1 });
      try {
        const sub = t.subscribe(o.actor ? Subjects.fact(o.actor) : Subjects.factAll, (m) => show(m.data as Fact));
        await stop.done;
        sub.unsubscribe();
      } finally {
        await t.close();
      }
      return;
    }
    const store = readStore(o);
    try {
      let last = startPos;
      const shown = new Set(facts.map((f) => `${f.actor ?? ''}#${f.seq}`));
      while (!stop.stopped) {
        await pause(300, stop.done);
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
  .option('--file <export.jsonl>', 'check a file written by `ice journal export` instead, offline (with --key)')
  .option(
    '--key <key...>',
    'with --file: the authority public key(s) to trust, each a PEM file, an `ice authority keys --json` file, or a base64url key (a cluster: one per node, or the JSON file listing them)',
  )
  .addOption(natsOption('verify the cluster journal (JetStream) over NATS instead of the local data dir'))
  .action(async (o: Common) => {
    if (o.file !== undefined) return verifyFileCommand(o, print);
    if (o.key !== undefined)
      throw new ValidationError('--key without --file', [
        {
          path: '--key',
          code: 'needs_option',
          message: '--key is the key an export file is checked with',
          expected: '--file <export.jsonl> as well, or no --key',
        },
      ]);
    const t0 = performance.now();
    const r = await read<VerifyResult & { keyChecked?: boolean }>(o, 'journal.verify');
    const ms = performance.now() - t0;
    if (o.json) printJson({ ...r, ms: Math.round(ms) });
    else if (r.ok) {
      print(c.green(`ok: ${r.count} facts in ${r.chains} chains verified in ${ms.toFixed(0)} ms`));
      if (o.nats)
        print(
          (r.attestedPos ?? 0) === r.lastPos
            ? `   attested: every turn carries a node signature that verifies (${r.checkpoints ?? 0} turns)`
            : c.yellow(`   attested up to stream position ${r.attestedPos ?? 0}; later turns carry no node signature`),
        );
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
    for (const orphan of r.orphans ?? [])
      if (!o.json)
        print(
          c.yellow(`   fork: ${orphan.chain} #${orphan.seq} claimed again by stream message ${orphan.pos} (${describeOrphan(orphan)})`),
        );
    process.exitCode = r.ok ? 0 : 1;
  });

registerAuditCommands(program, journal, {
  common,
  natsOption,
  readStore,
  print,
  async adminSession(o) {
    const n = { ...o, nats: o.nats! };
    const as = operatorIdentity(n);
    const t = await connectOnce(natsAuth(n, as), 'ice-cli');
    return { call: (op, args) => requestAdmin(t, as, op, args), close: () => t.close() };
  },
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
  .action(async (kind: string, o: Opts<'data' | 'format'>) => {
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
    else print(text.endsWith('\n') ? text.slice(0, -1) : text);
  });

registerPolicyCommands(program, { common, natsOption, loadActors, change, read, print, printJson });

program.addOption(new Option('--no-color', 'no colours').hideHelp());
addNatsAuthOptions(program);
assertEveryOptionHasARule(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    // commander has printed the help, the version or what is wrong with the command line
    process.exitCode = e.exitCode === 0 ? 0 : EXIT_USAGE;
  } else {
    const err = ensureError(e);
    process.stderr.write(`${c.red('error')} ${err.message}\n`);
    if (err instanceof ValidationError) {
      for (const i of err.issues)
        process.stderr.write(`  ${i.path || '(value)'}: ${i.message}${i.expected ? ` (expected ${i.expected})` : ''}\n`);
    }
    process.exitCode = err instanceof ValidationError ? EXIT_USAGE : 1;
    // Whatever failed closed what it had opened; should anything still hold the process open,
    // an error was printed and nothing is served: do not linger.
    setTimeout(() => process.exit(), 2000).unref();
  }
}

/**
 * Launches real `nats-server` processes for integration tests.
 *
 * Each server gets a fresh temp dir (config file + its own JetStream store dir), listens on
 * 127.0.0.1 only, on free ports picked by binding port 0 first (never 4222). Every child is
 * SIGKILLed and every temp dir removed when the test process exits, even if a test forgot to
 * stop it. Binary: $NATS_SERVER_BIN, else `nats-server` on PATH, else /usr/sbin/nats-server.
 * Config is kept to fields nats-server 2.9 understands (it rejects unknown ones).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

const HOST = '127.0.0.1';
const FORBIDDEN_PORTS = new Set([4222, 6222, 8222]);
const LOG_LIMIT = 64 * 1024;

export interface StartNatsServerOptions {
  /** Enable JetStream with a store dir of its own (default true). */
  jetstream?: boolean;
  /** Binary to run; defaults as described above. */
  bin?: string;
  /** Extra lines appended verbatim to the generated config. */
  extraConfig?: string;
  /** How long to wait for the server to accept connections (default 10 s). */
  startTimeoutMs?: number;
}

export interface NatsServer {
  /** `nats://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** HTTP monitoring port (`/varz`, `/jsz`, `/healthz`). */
  readonly httpPort: number;
  readonly monitorUrl: string;
  /** Pid of the current process (changes on restart); undefined while not running. */
  readonly pid: number | undefined;
  readonly running: boolean;
  readonly serverName: string;
  readonly dir: string;
  readonly storeDir: string;
  readonly configFile: string;
  /** The server's recent stderr/stdout output. */
  log(): string;
  /** Sends a signal (default SIGKILL); for terminating signals waits until the process has exited. Keeps the dir. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Stops the process (SIGTERM, then SIGKILL after 5 s) and removes its temp dir. Idempotent. */
  stop(): Promise<void>;
  /** Stops the process if running, then starts it again with the same ports, config and store dir. */
  restart(): Promise<void>;
}

export interface NatsCluster {
  readonly servers: NatsServer[];
  /** Client URLs of all nodes. */
  readonly urls: string[];
  /**
   * With `proxiedRoutes`: cuts server `i` off from every other server (its routes stall; its
   * clients still reach it) until `heal`. Throws without `proxiedRoutes`.
   */
  partition(i: number): void;
  /** Ends every partition made with `partition` (the stalled routes are reset and re-form). */
  heal(): void;
  /**
   * Resolves once every server is healthy and, for every stream, all servers agree on its
   * leader: after faults, before reading what the cluster holds (a leader deposed by a
   * partition may answer reads until it learns it was).
   */
  settled(timeoutMs?: number): Promise<void>;
  /** What each server holds of each stream (from its monitoring port): to tell diverged replicas apart. */
  streamStates(): Promise<Array<{ server: string; stream: string; leader: string; messages: number; lastSeq: number }>>;
  stopAll(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// process-wide safety net

const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of liveChildren) {
      try {
        if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) process.kill(c.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const d of liveDirs) {
      try {
        rmSync(d, { recursive: true, force: true });
      } catch {
        // best effort
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// helpers

export function resolveNatsServerBin(): string {
  const fromEnv = process.env['NATS_SERVER_BIN'];
  if (fromEnv) return fromEnv;
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, 'nats-server');
    try {
      accessSync(p, fsConstants.X_OK);
      return p;
    } catch {
      // keep looking
    }
  }
  return '/usr/sbin/nats-server';
}

/** A port that was free a moment ago (bound to 127.0.0.1:0 and released). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.unref();
      srv.once('error', reject);
      srv.listen(0, HOST, () => {
        const addr = srv.address();
        const p = typeof addr === 'object' && addr ? addr.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (port > 0 && !FORBIDDEN_PORTS.has(port)) return port;
  }
  throw new Error('could not find a free port');
}

async function freePorts(n: number): Promise<number[]> {
  const out = new Set<number>();
  while (out.size < n) out.add(await freePort());
  return [...out];
}

function tcpProbe(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: HOST, port });
    const done = (ok: boolean) => {
      sock.removeAllListeners();
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function httpJson(url: string, timeoutMs = 1000): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // leave as text
  }
  return { status: res.status, body };
}

/** Polls `fn` until it returns a truthy value; throws with `what` and the last error after `timeoutMs`. */
async function pollUntil<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined | false>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const detail = last instanceof Error ? `: ${last.message}` : last !== undefined ? `: ${JSON.stringify(last)}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(50);
  }
}

const q = (s: string) => JSON.stringify(s);

// ---------------------------------------------------------------------------------------------
// one server

interface ServerSpec {
  bin: string;
  serverName: string;
  port: number;
  httpPort: number;
  jetstream: boolean;
  /**
   * `sealed`: the routes go through proxies of the caller; the server advertises neither its
   * route address (a server that learned it could route around the proxies) nor the client
   * URLs of the others (a client could reconnect around its own proxies).
   */
  cluster?: { name: string; port: number; routes: number[]; sealed?: boolean };
  extraConfig?: string;
  startTimeoutMs: number;
}

class NatsServerProcess implements NatsServer {
  readonly url: string;
  readonly monitorUrl: string;
  readonly dir: string;
  readonly storeDir: string;
  readonly configFile: string;
  #spec: ServerSpec;
  #child: ChildProcess | undefined;
  #exited: Promise<void> | undefined;
  #log = '';
  #removed = false;

  constructor(spec: ServerSpec) {
    installExitHook();
    this.#spec = spec;
    this.url = `nats://${HOST}:${spec.port}`;
    this.monitorUrl = `http://${HOST}:${spec.httpPort}`;
    this.dir = mkdtempSync(join(tmpdir(), 'ice-nats-'));
    liveDirs.add(this.dir);
    this.storeDir = join(this.dir, 'store'); // nats-server puts its files in <store_dir>/jetstream
    this.configFile = join(this.dir, 'nats.conf');
    writeFileSync(this.configFile, this.#config());
  }

  get port(): number {
    return this.#spec.port;
  }
  get httpPort(): number {
    return this.#spec.httpPort;
  }
  get serverName(): string {
    return this.#spec.serverName;
  }
  get pid(): number | undefined {
    return this.running ? this.#child?.pid : undefined;
  }
  get running(): boolean {
    const c = this.#child;
    return !!c && c.exitCode === null && c.signalCode === null;
  }

  log(): string {
    return this.#log;
  }

  #config(): string {
    const s = this.#spec;
    const lines = [`server_name: ${q(s.serverName)}`, `host: ${q(HOST)}`, `port: ${s.port}`, `http: ${q(`${HOST}:${s.httpPort}`)}`];
    if (s.jetstream) {
      lines.push('jetstream {', `  store_dir: ${q(this.storeDir)}`, '  max_memory_store: 268435456', '  max_file_store: 1073741824', '}');
    }
    if (s.cluster) {
      lines.push(
        'cluster {',
        `  name: ${q(s.cluster.name)}`,
        `  listen: ${q(`${HOST}:${s.cluster.port}`)}`,
        // port 1 on loopback refuses at once; discovered routes are not retried (connect_retries 0)
        ...(s.cluster.sealed ? [`  advertise: ${q(`${HOST}:1`)}`, '  no_advertise: true'] : []),
        '  routes: [',
        ...s.cluster.routes.map((p) => `    ${q(`nats-route://${HOST}:${p}`)}`),
        '  ]',
        '}',
      );
    }
    if (s.extraConfig) lines.push(s.extraConfig);
    return `${lines.join('\n')}\n`;
  }

  #append(chunk: Buffer): void {
    this.#log += chunk.toString('utf8');
    if (this.#log.length > LOG_LIMIT) this.#log = this.#log.slice(-LOG_LIMIT);
  }

  /** Spawns the process and waits until it accepts TCP connections (and, with JetStream, reports healthy). */
  async start(): Promise<void> {
    if (this.#removed) throw new Error(`nats-server ${this.serverName} was stopped for good; start a new one`);
    if (this.running) throw new Error(`nats-server ${this.serverName} is already running`);
    const child = spawn(this.#spec.bin, ['-c', this.configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    liveChildren.add(child);
    child.stdout?.on('data', (c: Buffer) => this.#append(c));
    child.stderr?.on('data', (c: Buffer) => this.#append(c));
    let exitInfo: string | undefined;
    this.#exited = new Promise<void>((resolve) => {
      let settled = false;
      const finish = (why: string) => {
        if (settled) return;
        settled = true;
        exitInfo = why;
        liveChildren.delete(child);
        resolve();
      };
      // 'close', not 'exit': its output is read to the end first, so a failure shows the server's log
      child.once('close', (code, signal) => finish(signal ? `signal ${signal}` : `exit code ${code}`));
      child.once('error', (err) => finish(`spawn error: ${err.message}`));
    });
    const exited = this.#exited;
    const fail = (why: string) =>
      new Error(
        `nats-server ${this.serverName} (${this.#spec.bin}, port ${this.port}) failed to start: ${why}\n` +
          `config ${this.configFile}:\n${this.#config()}--- log ---\n${this.#log.slice(-4000)}`,
      );
    try {
      const ready = (async () => {
        const deadline = Date.now() + this.#spec.startTimeoutMs;
        while (exitInfo === undefined) {
          if (await tcpProbe(this.port)) break;
          if (Date.now() > deadline) throw new Error(`not accepting connections after ${this.#spec.startTimeoutMs} ms`);
          await sleep(20);
        }
        if (this.#spec.jetstream && !this.#spec.cluster) {
          // a standalone JetStream server: /healthz is ok once JetStream is up
          while (exitInfo === undefined) {
            const ok = await httpJson(`${this.monitorUrl}/healthz`).then(
              (r) => r.status === 200,
              () => false,
            );
            if (ok) break;
            if (Date.now() > deadline) throw new Error(`/healthz not ok after ${this.#spec.startTimeoutMs} ms`);
            await sleep(50);
          }
        }
      })();
      const died = exited.then(() => {
        throw new Error(`process ended (${exitInfo})`);
      });
      // whichever loses the race must not turn into an unhandled rejection later
      ready.catch(() => {});
      died.catch(() => {});
      await Promise.race([ready, died]);
      // a server that exits right after opening its port (e.g. bad config after listen) still counts as failed
      if (exitInfo !== undefined) throw new Error(`process ended (${exitInfo})`);
    } catch (e) {
      await this.#terminate('SIGKILL');
      throw fail(e instanceof Error ? e.message : String(e));
    }
  }

  async #terminate(signal: NodeJS.Signals, graceMs = 5000): Promise<void> {
    const child = this.#child;
    if (!child || !this.#exited) return;
    if (this.running) {
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
      const timer = setTimeout(() => {
        try {
          child.kill('SIGKILL');
        } catch {
          // gone
        }
      }, graceMs);
      try {
        await this.#exited;
      } finally {
        clearTimeout(timer);
      }
    } else {
      await this.#exited;
    }
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const terminating = ['SIGKILL', 'SIGTERM', 'SIGINT', 'SIGQUIT'].includes(signal);
    if (!terminating) {
      if (this.running) this.#child?.kill(signal);
      return;
    }
    await this.#terminate(signal);
  }

  async restart(): Promise<void> {
    await this.#terminate('SIGTERM');
    await this.start();
  }

  async stop(): Promise<void> {
    if (this.#removed) return;
    try {
      await this.#terminate('SIGTERM');
    } finally {
      this.#removed = true;
      rmSync(this.dir, { recursive: true, force: true });
      liveDirs.delete(this.dir);
    }
  }
}

function looksLikePortClash(e: unknown): boolean {
  return e instanceof Error && /address already in use/i.test(e.message);
}

/** Starts one server on fresh loopback ports; retries with new ports if one was taken meanwhile. */
export async function startNatsServer(opts: StartNatsServerOptions = {}): Promise<NatsServer> {
  const bin = opts.bin ?? resolveNatsServerBin();
  for (let attempt = 1; ; attempt++) {
    const [port, httpPort] = await freePorts(2);
    const spec: ServerSpec = {
      bin,
      serverName: `ice-test-${port}`,
      port: port!,
      httpPort: httpPort!,
      jetstream: opts.jetstream ?? true,
      startTimeoutMs: opts.startTimeoutMs ?? 10_000,
      ...(opts.extraConfig !== undefined ? { extraConfig: opts.extraConfig } : {}),
    };
    const server = new NatsServerProcess(spec);
    try {
      await server.start();
      return server;
    } catch (e) {
      await server.stop().catch(() => {});
      if (attempt < 3 && looksLikePortClash(e)) continue;
      throw e;
    }
  }
}

export interface StartNatsClusterOptions {
  bin?: string;
  /** How long to wait for the cluster and its JetStream meta group to form (default 30 s). */
  formTimeoutMs?: number;
  /**
   * Route every server-to-server link through a TCP proxy of this process, so `partition(i)`
   * can cut one server off from the others (see tcp-proxy.ts for what such a cut is).
   */
  proxiedRoutes?: boolean;
}

interface JszMeta {
  meta_cluster?: {
    leader?: string;
    cluster_size?: number;
    replicas?: { name: string; current?: boolean; offline?: boolean }[];
  };
}

/**
 * Starts `n` JetStream servers routed to each other on loopback and waits until the JetStream
 * meta group has a leader that sees every other node as current, so replicated streams can be
 * placed right away.
 */
export async function startNatsCluster(n = 3, opts: StartNatsClusterOptions = {}): Promise<NatsCluster> {
  if (n < 1) throw new Error('a cluster needs at least one server');
  const bin = opts.bin ?? resolveNatsServerBin();
  const formTimeoutMs = opts.formTimeoutMs ?? 30_000;
  for (let attempt = 1; ; attempt++) {
    // the proxies' ports are picked with the servers', so no proxy takes a port a server was given
    const ports = await freePorts(3 * n + (opts.proxiedRoutes ? n * (n - 1) : 0));
    const clusterPorts = ports.slice(2 * n, 3 * n);
    const proxyPorts = ports.slice(3 * n);
    const clusterName = `ice-test-${ports[0]}`;
    const servers: NatsServerProcess[] = [];
    // routes[i][j]: the port server i dials to reach server j (a proxy's, with proxiedRoutes)
    const proxies: Array<{ from: number; to: number; proxy: TcpProxy }> = [];
    const closeProxies = () => Promise.allSettled(proxies.map((p) => p.proxy.close()));
    try {
      for (let i = 0; i < n; i++) {
        const routes: number[] = [];
        for (let j = 0; j < n; j++) {
          if (j === i) continue;
          if (!opts.proxiedRoutes) routes.push(clusterPorts[j]!);
          else {
            const proxy = await startTcpProxy({ port: clusterPorts[j]! }, { port: proxyPorts.shift()! });
            proxies.push({ from: i, to: j, proxy });
            routes.push(proxy.port);
          }
        }
        servers.push(
          new NatsServerProcess({
            bin,
            serverName: `${clusterName}-n${i + 1}`,
            port: ports[i]!,
            httpPort: ports[n + i]!,
            jetstream: true,
            cluster: { name: clusterName, port: clusterPorts[i]!, routes, sealed: opts.proxiedRoutes === true },
            startTimeoutMs: 10_000,
          }),
        );
      }
      await Promise.all(servers.map((s) => s.start()));
      await waitForMetaLeader(servers, formTimeoutMs);
      const stopAll = async () => {
        await Promise.allSettled(servers.map((s) => s.stop()));
        await closeProxies();
      };
      return {
        servers,
        urls: servers.map((s) => s.url),
        partition(i: number) {
          if (!opts.proxiedRoutes) throw new Error('partition needs a cluster started with proxiedRoutes');
          for (const p of proxies) if (p.from === i || p.to === i) p.proxy.partition();
        },
        heal() {
          for (const p of proxies) p.proxy.heal();
        },
        settled: (timeoutMs = 60_000) => waitForSettledStreams(servers, timeoutMs),
        streamStates: () => streamStatesOf(servers),
        stopAll,
      };
    } catch (e) {
      await Promise.allSettled(servers.map((s) => s.stop()));
      await closeProxies();
      if (attempt < 3 && looksLikePortClash(e)) continue;
      throw e;
    }
  }
}

interface JszStreams {
  account_details?: Array<{
    stream_detail?: Array<{ name: string; cluster?: { leader?: string }; state?: { messages?: number; last_seq?: number } }>;
  }>;
}

async function streamStatesOf(
  servers: NatsServerProcess[],
): Promise<Array<{ server: string; stream: string; leader: string; messages: number; lastSeq: number }>> {
  const out: Array<{ server: string; stream: string; leader: string; messages: number; lastSeq: number }> = [];
  for (const s of servers) {
    const v = (await httpJson(`${s.monitorUrl}/jsz?accounts=true&streams=true`).catch(() => ({ body: {} }))).body as JszStreams;
    for (const a of v.account_details ?? [])
      for (const st of a.stream_detail ?? [])
        out.push({
          server: s.serverName,
          stream: st.name,
          leader: st.cluster?.leader ?? '',
          messages: st.state?.messages ?? 0,
          lastSeq: st.state?.last_seq ?? 0,
        });
  }
  return out;
}

async function waitForSettledStreams(servers: NatsServerProcess[], timeoutMs: number): Promise<void> {
  await pollUntil('every stream settled on every server', timeoutMs, async () => {
    const health = await Promise.all(servers.map((s) => httpJson(`${s.monitorUrl}/healthz`).then((r) => r.status)));
    if (!health.every((h) => h === 200)) throw new Error(`healthz: ${health.join(',')}`);
    const views = await Promise.all(
      servers.map((s) => httpJson(`${s.monitorUrl}/jsz?accounts=true&streams=true`).then((r) => r.body as JszStreams)),
    );
    const seen = new Map<string, Set<string>>();
    for (const v of views)
      for (const a of v.account_details ?? [])
        for (const st of a.stream_detail ?? []) {
          const key = st.cluster?.leader || '?'; // no leader (absent or empty): not settled
          seen.set(st.name, (seen.get(st.name) ?? new Set()).add(key));
        }
    const split = [...seen].filter(([, keys]) => keys.size > 1 || keys.has('?'));
    if (split.length > 0) throw new Error(`not settled: ${split.map(([n, k]) => `${n} led by ${[...k].join(' and ')}`).join('; ')}`);
    return true;
  });
}

async function waitForMetaLeader(servers: NatsServerProcess[], timeoutMs: number): Promise<void> {
  const n = servers.length;
  await pollUntil(`JetStream meta leader with ${n} current peers`, timeoutMs, async () => {
    for (const s of servers) {
      if (!s.running) throw new Error(`${s.serverName} exited:\n${s.log().slice(-2000)}`);
    }
    const infos = await Promise.all(servers.map((s) => httpJson(`${s.monitorUrl}/jsz`).then((r) => r.body as JszMeta)));
    const leaderName = infos[0]?.meta_cluster?.leader;
    if (!leaderName) throw new Error('no meta leader yet');
    if (!infos.every((i) => i.meta_cluster?.leader === leaderName)) throw new Error('nodes disagree on the meta leader');
    // nats-server 2.9's /jsz does not name the answering server: match by index
    const leader = infos[servers.findIndex((s) => s.serverName === leaderName)];
    if (!leader) throw new Error(`leader ${leaderName} is not one of ours`);
    const replicas = leader.meta_cluster?.replicas ?? [];
    const current = replicas.filter((r) => r.current && !r.offline).length;
    if (current < n - 1) throw new Error(`meta leader sees ${current}/${n - 1} current peers`);
    // every node must also report itself healthy (JetStream current with the meta leader)
    const health = await Promise.all(servers.map((s) => httpJson(`${s.monitorUrl}/healthz`).then((r) => r.status)));
    if (!health.every((h) => h === 200)) throw new Error(`healthz: ${health.join(',')}`);
    return true;
  });
}

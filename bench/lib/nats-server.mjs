// A minimal nats-server launcher for benchmarks (the test harness in
// test/helpers/nats-server.ts is TypeScript and not part of the build): a fresh temp dir
// with a config and its own JetStream store, loopback only, free ports (never 4222), ready
// when /healthz answers 200. SIGKILLed and removed on process exit whatever happens.
// Binary: $NATS_SERVER_BIN, else `nats-server` on PATH, else /usr/sbin/nats-server.
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

const HOST = '127.0.0.1';
const live = new Set();
process.on('exit', () => {
  for (const s of live) {
    try {
      s.child.kill('SIGKILL');
    } catch {
      // gone
    }
    rmSync(s.dir, { recursive: true, force: true });
  }
});

export function natsServerBin() {
  if (process.env.NATS_SERVER_BIN) return process.env.NATS_SERVER_BIN;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, 'nats-server'), constants.X_OK);
      return join(dir, 'nats-server');
    } catch {
      // keep looking
    }
  }
  try {
    accessSync('/usr/sbin/nats-server', constants.X_OK);
    return '/usr/sbin/nats-server';
  } catch {
    return undefined;
  }
}

async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, HOST, () => {
        const p = srv.address().port;
        srv.close(() => resolve(p));
      });
    });
    if (![4222, 6222, 8222].includes(port)) return port;
  }
}

/** Starts one JetStream-enabled server; resolves once /healthz is 200. */
export async function startNatsServer({ timeoutMs = 15_000 } = {}) {
  const bin = natsServerBin();
  if (!bin) throw new Error('nats-server not found: install it (apt-get install nats-server) or set NATS_SERVER_BIN');
  const port = await freePort();
  let httpPort = await freePort();
  while (httpPort === port) httpPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'ice-bench-nats-'));
  const conf = join(dir, 'nats.conf');
  writeFileSync(
    conf,
    [
      `server_name: "ice-bench-${port}"`,
      `host: "${HOST}"`,
      `port: ${port}`,
      `http: "${HOST}:${httpPort}"`,
      'jetstream {',
      `  store_dir: ${JSON.stringify(join(dir, 'store'))}`,
      '  max_memory_store: 268435456',
      '  max_file_store: 2147483648',
      '}',
      '',
    ].join('\n'),
  );
  const child = spawn(bin, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  const server = { child, dir };
  live.add(server);
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nats-server exited while starting:\n${log}`);
    const ok = await fetch(`http://${HOST}:${httpPort}/healthz`, { signal: AbortSignal.timeout(500) }).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`nats-server not healthy after ${timeoutMs} ms:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const version = /nats-server[^\n]*?v?(\d+\.\d+\.\d+)/i.exec(log)?.[1];
  return {
    url: `nats://${HOST}:${port}`,
    pid: child.pid,
    version,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
      live.delete(server);
    },
  };
}

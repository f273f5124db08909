import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built `ice` CLI of this package (dist/src/cli/main.js), found from this module. */
export const ICE_BIN = findIceBin();

function findIceBin(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'ice-runtime') {
      return join(dir, 'dist/src/cli/main.js');
    }
    dir = resolve(dir, '..');
  }
  return resolve(dirname(fileURLToPath(import.meta.url)), '../cli/main.js');
}

export interface IceProcess {
  child: ChildProcess;
  pid: number;
  adminUrl: string;
  adminToken: string;
  output(): string;
  /** Calls an admin operation (as the CLI does); throws on an error reply. */
  admin(op: string, args: unknown): Promise<unknown>;
  /** Sends a signal (default SIGKILL) and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface StartIceOptions {
  /** `dev` (default) or `start`. */
  command?: 'dev' | 'start';
  args?: string[];
  env?: Record<string, string>;
  readyTimeoutMs?: number;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/**
 * Starts a real `ice dev` (or `ice start`) process on `dataDir` and waits until it serves.
 * The child is SIGKILLed if this process exits first.
 * @example
 * const node = await startIceProcess(dir);
 * await node.admin('spawn', { address: 'deployment/web' });
 * await node.kill('SIGKILL');
 */
export async function startIceProcess(dataDir: string, opts: StartIceOptions = {}): Promise<IceProcess> {
  const args = [
    ICE_BIN,
    opts.command ?? 'dev',
    '--data',
    dataDir,
    ...((opts.command ?? 'dev') === 'dev' ? ['--inspect', '0'] : []),
    ...(opts.args ?? []),
  ];
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ICE_LOG_LEVEL: process.env.ICE_LOG_LEVEL ?? 'warn', NO_COLOR: '1', ...opts.env },
  });
  live.add(child);
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) =>
    child.once('exit', (code) => {
      live.delete(child);
      r(code);
    }),
  );
  await new Promise<void>((resolveReady, reject) => {
    const timer = setTimeout(() => reject(new Error(`ice did not get ready in time:\n${out}`)), opts.readyTimeoutMs ?? 20_000);
    child.stdout.on('data', () => {
      if (/^ready$/m.test(out)) {
        clearTimeout(timer);
        resolveReady();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`ice exited with ${code} before it was ready:\n${out}`));
    });
  });
  // `ice dev` and `ice start` write owner.json with their admin endpoint; `ice start --cluster` has none.
  const ownerFile = join(dataDir, 'owner.json');
  const owner = existsSync(ownerFile)
    ? (JSON.parse(readFileSync(ownerFile, 'utf8')) as { adminUrl: string; adminToken: string })
    : { adminUrl: '', adminToken: '' };
  return {
    child,
    pid: child.pid!,
    adminUrl: owner.adminUrl,
    adminToken: owner.adminToken,
    output: () => out,
    async admin(op, body) {
      if (!owner.adminUrl) throw new Error('this process has no admin endpoint');
      const res = await fetch(`${owner.adminUrl}/admin/${op}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${owner.adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      const reply = (await res.json()) as { result?: unknown; error?: { message: string } };
      if (reply.error) throw new Error(reply.error.message);
      return reply.result;
    },
    async kill(signal = 'SIGKILL') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      return exited;
    },
  };
}

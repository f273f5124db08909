import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ICE_BIN = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../dist/src/cli/main.js');

export interface IceProcess {
  child: ChildProcess;
  pid: number;
  adminUrl: string;
  adminToken: string;
  output(): string;
  /** Calls an admin operation (same as the CLI does). Throws on an error reply. */
  admin(op: string, args: unknown): Promise<unknown>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** Starts `ice dev --data <dir>` as a real child process and waits until it serves. */
export async function startIceDev(dataDir: string, extraArgs: string[] = []): Promise<IceProcess> {
  const child = spawn(process.execPath, [ICE_BIN, 'dev', '--data', dataDir, '--inspect', '0', ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ICE_LOG_LEVEL: process.env.ICE_LOG_LEVEL ?? 'warn', NO_COLOR: '1' },
  });
  live.add(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => {
    live.delete(child);
    r(code);
  }));
  await new Promise<void>((resolveReady, reject) => {
    const timer = setTimeout(() => reject(new Error(`ice dev did not get ready in 20 s:\n${out}`)), 20_000);
    const check = () => {
      if (/^ready$/m.test(out)) {
        clearTimeout(timer);
        resolveReady();
      }
    };
    child.stdout!.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`ice dev exited with ${code} before it was ready:\n${out}`));
    });
  });
  const owner = JSON.parse(readFileSync(join(dataDir, 'owner.json'), 'utf8')) as { adminUrl: string; adminToken: string };
  return {
    child,
    pid: child.pid!,
    adminUrl: owner.adminUrl,
    adminToken: owner.adminToken,
    output: () => out,
    async admin(op, args) {
      const res = await fetch(`${owner.adminUrl}/admin/${op}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${owner.adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify(args),
      });
      const body = (await res.json()) as { result?: unknown; error?: { message: string } };
      if (body.error) throw new Error(body.error.message);
      return body.result;
    },
    async kill(signal = 'SIGKILL') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      return exited;
    },
  };
}

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { ICE_BIN } from '../../src/testing/index.js';

const run = promisify(execFile);

export interface IceRunOptions {
  /** Working directory (default: this process's). */
  cwd?: string;
  /** Environment on top of this process's and the defaults below; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
}

/**
 * Runs the real `ice` binary; resolves with exit code and output, never throws on exit codes.
 * Defaults: NO_COLOR=1, ICE_LOG_LEVEL=silent. A command still running after 30 s is killed
 * (code null): none of these should block.
 */
export async function ice(args: string[], opts: IceRunOptions = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: '1', ICE_LOG_LEVEL: 'silent', ...opts.env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  try {
    const r = await run(process.execPath, [ICE_BIN, ...args], { env, timeout: 30_000, ...(opts.cwd ? { cwd: opts.cwd } : {}) });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number | string | null; killed?: boolean; stdout: string; stderr: string };
    return { code: err.killed ? null : typeof err.code === 'number' ? err.code : -1, stdout: err.stdout, stderr: err.stderr };
  }
}

/**
 * Starts the real `ice` binary for a command that keeps running (`journal tail -f`, …): its
 * stdout collected as it comes, its exit code once it ends. Same defaults as {@link ice}.
 */
export function spawnIce(args: string[]): { child: ChildProcess; stdout: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [ICE_BIN, ...args], {
    env: { ...process.env, NO_COLOR: '1', ICE_LOG_LEVEL: 'silent' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, stdout: () => out, exited };
}

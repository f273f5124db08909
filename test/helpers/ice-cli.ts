import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ICE_BIN } from '../../src/testing/index.js';

const run = promisify(execFile);

/**
 * Runs the real `ice` binary; resolves with exit code and output, never throws on exit codes.
 * A command still running after 30 s is killed (code null): none of these should block.
 */
export async function ice(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [ICE_BIN, ...args], {
      env: { ...process.env, NO_COLOR: '1', ICE_LOG_LEVEL: 'silent' },
      timeout: 30_000,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number | string | null; killed?: boolean; stdout: string; stderr: string };
    return { code: err.killed ? null : typeof err.code === 'number' ? err.code : -1, stdout: err.stdout, stderr: err.stderr };
  }
}

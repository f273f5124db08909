import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntime } from '../../src/index.js';
import { createLogger } from '../../src/util/logger.js';
import { ICE_BIN } from '../helpers/ice-process.js';
import { ice } from '../helpers/ice-cli.js';
import { tempDir } from '../helpers/runtime.js';

const env = { ...process.env, NO_COLOR: '1', ICE_LOG_LEVEL: 'silent' };

describe('ice journal tail into a pipe whose reader goes away (… | head -n 1)', () => {
  const t = tempDir('ice-cli-pipe-');
  beforeAll(async () => {
    expect((await ice(['demo', '--data', t.dir])).code).toBe(0);
    // More output than a pipe holds, so `ice` is still writing when head has gone.
    const rt = await createRuntime({ dataDir: t.dir, logger: createLogger({ level: 'silent' }) });
    try {
      for (let i = 0; i < 1000; i += 100) {
        await Promise.all(Array.from({ length: 100 }, (_, j) => rt.spawn(`run/pipe-${i + j}`, { goal: 'fill the pipe' })));
      }
    } finally {
      await rt.stop();
    }
  });
  afterAll(() => t.cleanup());

  /** Runs `ice <args> | head -n 1` in bash; resolves with head's line, ice's stderr and ice's exit code. */
  const intoHead = (args: string[]) =>
    new Promise<{ line: string; stderr: string; code: number }>((resolve) => {
      const sh = spawn(
        'bash',
        ['-c', '"$@" | head -n 1; echo "ice exit ${PIPESTATUS[0]}" >&2', 'bash', process.execPath, ICE_BIN, ...args],
        {
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let out = '';
      let err = '';
      sh.stdout.on('data', (d: Buffer) => (out += d.toString()));
      sh.stderr.on('data', (d: Buffer) => (err += d.toString()));
      sh.once('exit', () => {
        const m = /ice exit (\d+)\n$/.exec(err);
        resolve({ line: out, stderr: err.replace(/ice exit \d+\n$/, ''), code: Number(m?.[1] ?? -1) });
      });
    });

  it('exits 0 without a stack trace', async () => {
    const r = await intoHead(['journal', 'tail', '-n', '1000', '--data', t.dir]);
    expect(r.line.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).not.toMatch(/EPIPE|Error|\n\s+at /);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('with -f, it stops following and exits 0', async () => {
    const r = await intoHead(['journal', 'tail', '-f', '-n', '1000', '--data', t.dir]);
    expect(r.line.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});

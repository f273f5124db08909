import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntime } from '../../src/index.js';
import { createLogger } from '../../src/util/logger.js';
import { ICE_BIN } from '../helpers/ice-process.js';
import { ice, spawnIce } from '../helpers/ice-cli.js';
import { tempDir } from '../helpers/runtime.js';

/** Polls `check` until it holds (a condition, not a fixed sleep). */
async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const env = { ...process.env, NO_COLOR: '1', ICE_LOG_LEVEL: 'silent' };
const jsonLines = (out: string) =>
  out
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { type: string; actor: string; seq: number });

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

describe('ice journal tail --actor <address> --from <seq>: one chain, oldest first from a seq', () => {
  const t = tempDir('ice-cli-from-');
  const data = ['--data', t.dir];
  const configure = (id: string) =>
    ice([
      'propose',
      'deployment/web',
      'CONFIGURE',
      '--as',
      'agent:cli',
      '--params',
      '{"version":"1.0.0","replicas":2}',
      '--id',
      id,
      ...data,
    ]);
  let head = 0;
  beforeAll(async () => {
    expect((await ice(['spawn', 'deployment/web', ...data])).code).toBe(0);
    expect((await ice(['grant', 'issue', '--to', 'agent:cli', '--scope', 'deployment/web:*', ...data])).code).toBe(0);
    for (const id of ['c1', 'c2']) expect((await configure(id)).code).toBe(0);
    head = (JSON.parse((await ice(['actor', 'show', 'deployment/web', '--json', ...data])).stdout) as { seq: number }).seq;
    expect(head).toBeGreaterThan(5);
  });
  afterAll(() => t.cleanup());

  it('prints up to -n facts from the seq, oldest first', async () => {
    const r = await ice(['journal', 'tail', '--actor', 'deployment/web', '--from', '3', '-n', '2', '--json', ...data]);
    expect(r.code, r.stderr).toBe(0);
    expect(jsonLines(r.stdout).map((f) => [f.actor, f.seq])).toEqual([
      ['deployment/web', 3],
      ['deployment/web', 4],
    ]);
    const rest = jsonLines((await ice(['journal', 'tail', '--actor', 'deployment/web', '--from', '2', '--json', ...data])).stdout);
    expect(rest.map((f) => f.seq)).toEqual(Array.from({ length: head - 1 }, (_, i) => i + 2));
    const text = await ice(['journal', 'tail', '--actor', 'deployment/web', '--from', String(head), ...data]);
    expect(text.stdout.trim().split('\n')).toHaveLength(1);
    expect(text.stdout).toContain('deployment/web');
  });

  it('refuses --from without --actor, saying what to add', async () => {
    const r = await ice(['journal', 'tail', '--from', '3', ...data]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--from: got 3 without --actor');
    expect(r.stderr).toContain('--actor <address>');
  });

  it('with -f, prints every fact from the seq, then each new one as it commits', async () => {
    const tail = spawnIce(['journal', 'tail', '--actor', 'deployment/web', '--from', '2', '-f', '--json', ...data]);
    try {
      await until('the chain up to its head', () => jsonLines(tail.stdout()).some((f) => f.seq === head));
      expect(jsonLines(tail.stdout()).map((f) => f.seq)).toEqual(Array.from({ length: head - 1 }, (_, i) => i + 2));
      expect((await configure('c3')).code).toBe(0);
      await until('the new facts', () => jsonLines(tail.stdout()).some((f) => f.type === 'transition' && f.seq > head));
      const seqs = jsonLines(tail.stdout()).map((f) => f.seq);
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 2));
      expect(new Set(jsonLines(tail.stdout()).map((f) => f.actor))).toEqual(new Set(['deployment/web']));
    } finally {
      tail.child.kill('SIGINT');
    }
    expect(await tail.exited).toBe(0);
  });
});

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * Smoke test of the benchmark suite: every benchmark runs in its tiny size, through the same
 * entry point as `npm run bench`, as a child process. It must exit 0 and end with one JSON
 * line carrying the required fields. No thresholds: figures on a shared CI machine mean
 * nothing; docs/performance.md has the measured ones.
 */
const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const RUNNER = join(ROOT, 'bench/run.mjs');
const BENCHMARKS = ['embedded-throughput', 'actors-scale', 'actors-act', 'failover', 'journal-verify', 'nats-throughput'] as const;

function runTiny(name: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [RUNNER, name, '--size', 'tiny'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, BENCH_QUIET: '1' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolvePromise({ code, stdout, stderr }));
  });
}

describe('benchmark suite, tiny size', () => {
  it('has a build to measure', () => {
    expect(existsSync(join(ROOT, 'dist/src/index.js')), 'dist/ is missing: run `npm run build` first').toBe(true);
  });

  for (const name of BENCHMARKS) {
    // `npm test` installs nats-server first (scripts/ensure-deps.sh): missing is a failure.
    it(`${name} exits 0 and ends with a JSON result line`, async () => {
      const { code, stdout, stderr } = await runTiny(name);
      expect(code, `${name} failed:\n${stderr.slice(-4000)}\n${stdout.slice(-2000)}`).toBe(0);
      const lines = stdout.trim().split('\n');
      const last = lines[lines.length - 1] ?? '';
      let result: Record<string, unknown>;
      try {
        result = JSON.parse(last) as Record<string, unknown>;
      } catch {
        throw new Error(`${name}: last line is not JSON: ${last}`);
      }
      expect(result['bench']).toBe(name);
      expect(result['size']).toBe('tiny');
      for (const k of ['throughput', 'baseline', 'ratio']) {
        expect(typeof result[k], `${k} = ${String(result[k])}`).toBe('number');
        expect(Number.isFinite(result[k] as number), `${k} = ${String(result[k])}`).toBe(true);
      }
      // latency where it applies, null where it does not — but the keys are always there
      for (const k of ['p50_ms', 'p99_ms']) {
        expect(k in result, `missing ${k}`).toBe(true);
        expect(result[k] === null || typeof result[k] === 'number', `${k} = ${String(result[k])}`).toBe(true);
      }
      expect(typeof result['node']).toBe('string');
      expect(typeof result['cpus']).toBe('number');
      if (name === 'embedded-throughput' || name === 'nats-throughput') {
        expect(typeof result['p50_ms']).toBe('number');
        expect(typeof result['p99_ms']).toBe('number');
      }
      if (name === 'nats-throughput') expect(result['persistence']).toMatch(/^jetstream/);
    }, 120_000);
  }
});

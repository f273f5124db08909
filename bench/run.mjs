#!/usr/bin/env node
// Runs the benchmark suite: every benchmark in a child process of its own, one after the
// other (they would disturb each other on a shared machine otherwise).
//
//   node bench/run.mjs [name...] [--size tiny|full] [--runs n] [--out results.jsonl]
//                      [--profile] [any option of the benchmarks, e.g. --duration 3000]
//
// Names: embedded-throughput, actors-scale, actors-act, failover, journal-verify, nats-throughput
// (default: all). Each benchmark prints its tables and, as its last line, one JSON object
// (bench, throughput, baseline, ratio, p50_ms, p99_ms, node, cpus, …). With --runs n > 1 a
// table of medians follows. --profile runs each benchmark under `node --cpu-prof` and prints
// the hottest functions. The runtime is measured from dist/: build first (`npm run build`).
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { BENCHMARKS, BENCH_DIR, DIST, median, printTable, round } from './lib/common.mjs';

const argv = process.argv.slice(2);
const names = [];
const pass = [];
let runs = 1;
let out;
let profile = false;
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--runs') runs = Number(argv[++i]);
  else if (a.startsWith('--runs=')) runs = Number(a.slice(7));
  else if (a === '--out') out = argv[++i];
  else if (a.startsWith('--out=')) out = a.slice(6);
  else if (a === '--profile') profile = true;
  else if (a === '--help' || a === '-h') {
    process.stdout.write(
      `usage: node bench/run.mjs [${BENCHMARKS.join('|')} ...] [--size tiny|full] [--runs n] [--out file.jsonl] [--profile]\n`,
    );
    process.exit(0);
  } else if (a.startsWith('--')) {
    pass.push(a);
    if (!a.includes('=') && i + 1 < argv.length && !argv[i + 1].startsWith('--')) pass.push(argv[++i]);
  } else names.push(a);
}
if (!Number.isInteger(runs) || runs < 1) fail('--runs must be a positive integer');
for (const n of names) if (!BENCHMARKS.includes(n)) fail(`unknown benchmark "${n}"; known: ${BENCHMARKS.join(', ')}`);
if (!existsSync(join(DIST, 'src/index.js'))) fail('dist/ is missing: run `npm run build` first');
const selected = names.length ? names : BENCHMARKS;

const results = new Map(selected.map((n) => [n, []]));
let failed = 0;
for (let r = 1; r <= runs; r++) {
  for (const name of selected) {
    process.stdout.write(`\n# ${name}${runs > 1 ? ` (run ${r}/${runs})` : ''}\n`);
    let profDir;
    const nodeFlags = [];
    if (profile) {
      profDir = join(BENCH_DIR, '.profiles', `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
      mkdirSync(profDir, { recursive: true });
      nodeFlags.push('--cpu-prof', `--cpu-prof-dir=${profDir}`);
    }
    const { code, last } = await runChild(
      [...nodeFlags, join(BENCH_DIR, `${name}.mjs`), ...pass],
      profile ? { BENCH_CHILD_FLAGS: `--cpu-prof --cpu-prof-dir=${profDir}` } : {},
    );
    let result;
    try {
      result = JSON.parse(last);
    } catch {
      // reported below
    }
    if (code !== 0 || !result) {
      failed++;
      process.stdout.write(`\n!! ${name} failed (exit ${code})\n`);
      continue;
    }
    results.get(name).push(result);
    if (out) appendFileSync(out, JSON.stringify(result) + '\n');
    if (profDir) {
      process.stdout.write(`\nprofiles in ${profDir}\n`);
      await runChild([join(BENCH_DIR, 'lib/profile-summary.mjs'), profDir, '--top', '25']);
    }
  }
}

if (runs > 1) {
  const rows = [];
  for (const [name, rs] of results) {
    if (rs.length === 0) continue;
    const m = (k) => {
      const xs = rs.map((x) => x[k]).filter((x) => typeof x === 'number');
      return xs.length ? round(median(xs), 4) : null;
    };
    rows.push({
      bench: name,
      runs: rs.length,
      throughput: m('throughput'),
      baseline: m('baseline'),
      ratio: m('ratio'),
      p50_ms: m('p50_ms'),
      p99_ms: m('p99_ms'),
    });
  }
  printTable(`medians of ${runs} runs`, rows);
}
process.exit(failed ? 1 : 0);

function runChild(args, extraEnv = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...extraEnv } });
    let tail = '';
    child.stdout.on('data', (d) => {
      process.stdout.write(d);
      tail = (tail + d.toString()).slice(-1_000_000);
    });
    child.on('exit', (code, signal) => {
      const lines = tail.trim().split('\n');
      resolve({ code: code ?? signal, last: lines[lines.length - 1] ?? '' });
    });
  });
}

function fail(msg) {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(2);
}

// Shared helpers of the benchmark suite: arguments, sizes, timing, percentiles, the table
// and the final JSON line. Plain ESM so the suite needs no build step of its own; it imports
// the runtime from dist/ (run `npm run build` first — `npm run bench` does).
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/**
 * The build measured: dist/ (what `npm run build` writes), or BENCH_DIST — e.g. a private
 * copy compiled with `tsc -p tsconfig.json --outDir bench/.dist`, so a rebuild of dist/ by
 * someone else cannot change the code under a running benchmark. Must sit inside the
 * repository (module resolution needs its node_modules).
 */
export const DIST = process.env.BENCH_DIST ? resolve(process.env.BENCH_DIST) : join(ROOT, 'dist');
export const BENCH_DIR = join(ROOT, 'bench');

/** The suite, in the order `npm run bench` runs it. Each is bench/<name>.mjs. */
export const BENCHMARKS = ['embedded-throughput', 'actors-scale', 'actors-act', 'failover', 'journal-verify', 'nats-throughput'];

/** Imports a module of the build output (`dist/<rel>`), with a clear error when it is missing. */
export async function importDist(rel) {
  const p = join(DIST, rel);
  if (!existsSync(p)) {
    throw new Error(`${p} is missing: run \`npm run build\` first (the benchmarks measure the compiled runtime in dist/)`);
  }
  return import(pathToFileURL(p).href);
}

/** `--size tiny|full` (default full), `--key value` and `--flag` options, positional names. */
export function parseArgs(argv = process.argv.slice(2)) {
  const opts = { size: 'full', _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq > 0) opts[a.slice(2, eq)] = a.slice(eq + 1);
      else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) opts[a.slice(2)] = argv[++i];
      else opts[a.slice(2)] = true;
    } else opts._.push(a);
  }
  if (opts.size !== 'tiny' && opts.size !== 'full') throw new Error(`--size must be tiny or full, not ${opts.size}`);
  return opts;
}

/** Picks the figure for the size; `--<name> <n>` on the command line overrides it. */
export function sized(opts, name, tiny, full) {
  if (opts[name] !== undefined && opts[name] !== true) {
    const n = Number(opts[name]);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
    return n;
  }
  return opts.size === 'tiny' ? tiny : full;
}

let gitInfo;
/** Which code is measured: `<DIST>/COMMIT` when the build recorded it, else the repo's HEAD. */
function git() {
  if (gitInfo === undefined) {
    try {
      const recorded = join(DIST, 'COMMIT');
      if (existsSync(recorded)) {
        gitInfo = `${readFileSync(recorded, 'utf8').trim()} (recorded in ${relativeDist()}/COMMIT)`;
        return gitInfo;
      }
      const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
        cwd: ROOT,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim();
      const dirty =
        execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', 'src', 'machines', 'actors'], {
          cwd: ROOT,
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'ignore'],
        }).trim() !== '';
      gitInfo = dirty ? `${head}+dirty` : head;
    } catch {
      gitInfo = null;
    }
  }
  return gitInfo;
}

const load1AtStart = loadavg()[0];

export function env() {
  const c = cpus();
  return {
    node: process.version,
    cpus: c.length,
    cpu_model: c[0]?.model ?? 'unknown',
    mem_gb: Math.round(totalmem() / 2 ** 30),
    platform: `${process.platform}-${process.arch}`,
    // the machine is shared: the 1-minute load average when the benchmark started and ended
    load1: [round(load1AtStart, 2), round(loadavg()[0], 2)],
    commit: git(),
    dist: relativeDist(),
  };
}

function relativeDist() {
  return DIST.startsWith(ROOT) ? DIST.slice(ROOT.length + 1) : DIST;
}

export const now = () => performance.now();
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Percentile of an ascending-sorted array (nearest rank). */
export function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function latencySummary(samples) {
  const s = Float64Array.from(samples).sort();
  return {
    n: s.length,
    p50_ms: round(percentile(s, 50), 3),
    p99_ms: round(percentile(s, 99), 3),
    max_ms: round(s.length ? s[s.length - 1] : null, 3),
  };
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return null;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function round(x, digits = 0) {
  if (x === null || x === undefined || !Number.isFinite(x)) return x ?? null;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** A fresh temp dir; removed by `cleanup()` (also on process exit). */
const liveDirs = new Set();
process.on('exit', () => {
  for (const d of liveDirs) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      // best effort
    }
  }
});
export function tempDir(prefix = 'ice-bench-') {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  liveDirs.add(dir);
  return {
    dir,
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
      liveDirs.delete(dir);
    },
  };
}

/** A logger that keeps the benchmark output clean (warnings and errors still reach stderr). */
export async function benchLogger() {
  const { createLogger } = await importDist('src/index.js');
  return createLogger({ level: process.env.ICE_LOG_LEVEL ?? 'warn', pretty: false });
}

/** Prints rows (objects) as an aligned text table. */
export function printTable(title, rows) {
  const out = [];
  out.push('', `## ${title}`);
  if (rows.length === 0) {
    out.push('(no rows)');
  } else {
    const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
    const cell = (v) => (v === undefined || v === null ? '' : typeof v === 'number' ? fmtNum(v) : String(v));
    const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
    const line = (vals) => vals.map((v, i) => (i === 0 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ');
    out.push(line(cols), widths.map((w) => '-'.repeat(w)).join('  '));
    for (const r of rows) out.push(line(cols.map((c) => cell(r[c]))));
  }
  process.stdout.write(out.join('\n') + '\n');
}

function fmtNum(v) {
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  if (Math.abs(v) >= 100) return Math.round(v).toLocaleString('en-US');
  if (Math.abs(v) >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

export function note(text) {
  process.stdout.write(`${text}\n`);
}

/** Progress on stderr, so stdout stays table + the final JSON line. */
export function progress(text) {
  if (process.env.BENCH_QUIET) return;
  process.stderr.write(`[bench] ${text}\n`);
}

const REQUIRED = ['bench', 'throughput', 'baseline', 'ratio', 'p50_ms', 'p99_ms'];

/**
 * Prints the result as the LAST line of stdout: one JSON object with at least
 * bench, throughput (ops/s), baseline (ops/s), ratio, p50_ms, p99_ms (null where no latency
 * applies), node and cpus. Flushes stdout before returning.
 */
export async function emitResult(result) {
  for (const k of REQUIRED) if (!(k in result)) throw new Error(`result lacks ${k}`);
  const full = { ...result, ...env(), size: result.size ?? 'full', at: new Date().toISOString() };
  await new Promise((r) => process.stdout.write(JSON.stringify(full) + '\n', r));
  return full;
}

/** Runs `main(opts)` and exits: 0 when it resolved, 1 (with the error on stderr) when not. */
export function runMain(main) {
  const opts = parseArgs();
  main(opts).then(
    () => process.exit(0),
    (e) => {
      process.stderr.write(`benchmark failed: ${e?.stack ?? e}\n`);
      process.exit(1);
    },
  );
}

/**
 * Closed-loop load: `concurrency` workers each call `op(i)` back to back until `count`
 * operations were started or `durationMs` elapsed. Returns elapsed ms, completed ops and
 * per-op latencies (ms).
 */
export async function closedLoop({ concurrency, count = Infinity, durationMs = Infinity, op }) {
  let started = 0;
  let done = 0;
  const lat = [];
  const t0 = now();
  const deadline = t0 + durationMs;
  const worker = async (w) => {
    for (;;) {
      if (started >= count || now() >= deadline) return;
      const i = started++;
      const a = now();
      await op(i, w);
      lat.push(now() - a);
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  const elapsedMs = now() - t0;
  return { elapsedMs, done, lat, opsPerSec: (done / elapsedMs) * 1000 };
}

/** Forces a full GC when the process runs with --expose-gc (twice, to also collect weak refs). */
export function gc() {
  if (typeof globalThis.gc !== 'function') throw new Error('run with --expose-gc');
  globalThis.gc();
  globalThis.gc();
}

/**
 * Extra node flags for the child processes a benchmark spawns (e.g. to profile the serving
 * process): BENCH_CHILD_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof".
 */
export function childFlags() {
  return (process.env.BENCH_CHILD_FLAGS ?? '').split(/\s+/).filter(Boolean);
}

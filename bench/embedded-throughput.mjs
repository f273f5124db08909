// embedded-throughput: executed intents/s through the whole embedded path — validate,
// authorize (grant lookup + state check), decide (in-process decisions are vouched for by
// LocalTrust instead of an ed25519 sign/verify per intent), verify the decision, transition,
// journal (3 hash-chained facts), snapshot, outcome, durable group commit (SQLite WAL,
// synchronous=FULL; a signed checkpoint per commit) — at 1 and 64 in flight, plus 64 in
// flight on one hot actor, and 256 in flight.
// Baseline: raw XState transitions/s of the same machine and events, no runtime.
//
//   node bench/embedded-throughput.mjs [--size tiny|full] [--duration ms] [--actors n]
//        [--inflight n] [--variant 1,64,hot,wide] [--skip-baseline] [--skip-verify]
// (--skip-baseline / --skip-verify leave out the raw XState loop and the journal check at the
// end, so that a CPU profile shows the runtime alone.)
// Variants `cedar-1` and `cedar-64`: the same workloads after a Cedar policy set of 60+
// policies is applied (bench/lib/cedar-policies.mjs), against `1` and `64` without one in the
// same run (`--variant 1,64,cedar-1,cedar-64`).
import { createActor } from 'xstate';
import {
  closedLoop,
  emitResult,
  importDist,
  latencySummary,
  note,
  now,
  printTable,
  progress,
  round,
  runMain,
  sized,
  tempDir,
} from './lib/common.mjs';
import { address, configureIntent, grantAll, mustExecute, openRuntime, spawnActors } from './lib/ice.mjs';
import { realisticPolicySet } from './lib/cedar-policies.mjs';

const TARGETS = { throughput_min: 25_000, ratio_min: 0.1, p99_max_ms: 10 };

runMain(async (opts) => {
  const durationMs = sized(opts, 'duration', 700, 5000);
  const warmupMs = sized(opts, 'warmup', 200, 1500);
  const nActors = sized(opts, 'actors', 128, 1024);
  const inflight = sized(opts, 'inflight', 64, 64);
  const only = typeof opts.variant === 'string' ? new Set(opts.variant.split(',')) : undefined;
  const want = (v) => !only || only.has(v);
  const { deploymentMachine } = await importDist('machines/index.js');

  // ---- baseline: the same machine and events in bare XState ----
  // (--skip-baseline: for profiling the runtime alone; the result then has baseline null)
  const skipBaseline = opts['skip-baseline'] === true;
  const baselineRows = [];
  let rawOne = { n: 0, opsPerSec: null };
  let rawMany = { n: 0, opsPerSec: null };
  if (!skipBaseline) {
    progress('baseline: raw XState');
    rawOne = rawXState(deploymentMachine, 1, durationMs);
    baselineRows.push({
      variant: 'raw XState, 1 actor',
      transitions: rawOne.n,
      'ops/s': round(rawOne.opsPerSec),
      'µs/op': round((1000 / rawOne.opsPerSec) * 1000, 2),
    });
    rawMany = rawXState(deploymentMachine, nActors, durationMs);
    baselineRows.push({
      variant: `raw XState, ${nActors} actors round-robin`,
      transitions: rawMany.n,
      'ops/s': round(rawMany.opsPerSec),
      'µs/op': round((1000 / rawMany.opsPerSec) * 1000, 2),
    });
  }
  const baseline = rawOne.opsPerSec;

  // ---- the runtime ----
  const tmp = tempDir();
  const rt = await openRuntime(tmp.dir);
  const rows = [];
  const variants = [];
  let n = 0;
  try {
    await grantAll(rt);
    progress(`spawning ${nActors} actors`);
    await spawnActors(rt, nActors);

    const run = async (name, key, concurrency, pick) => {
      if (!want(key)) return undefined;
      progress(`runtime: ${name}`);
      const op = async (_i, w) => {
        const k = n++;
        mustExecute(await rt.propose(configureIntent(k, pick(w, k))));
      };
      await closedLoop({ concurrency, durationMs: warmupMs, op });
      const s0 = rt.stats();
      const cpu0 = process.cpuUsage();
      const r = await closedLoop({ concurrency, durationMs, op });
      const cpu = process.cpuUsage(cpu0);
      const s1 = rt.stats();
      const flushes = s1.flushes - s0.flushes;
      const lat = latencySummary(r.lat);
      const v = {
        variant: name,
        key,
        inflight: concurrency,
        intents: r.done,
        ops_s: round(r.opsPerSec),
        p50_ms: lat.p50_ms,
        p99_ms: lat.p99_ms,
        max_ms: lat.max_ms,
        commits: flushes,
        intents_per_commit: round(r.done / Math.max(1, flushes), 1),
        // CPU time of the process (every thread) per executed intent: steadier than intents/s on a busy machine
        cpu_us_per_intent: round((cpu.user + cpu.system) / Math.max(1, r.done), 1),
      };
      variants.push(v);
      rows.push({
        variant: name,
        intents: v.intents,
        'intents/s': v.ops_s,
        'p50 ms': v.p50_ms,
        'p99 ms': v.p99_ms,
        'max ms': v.max_ms,
        commits: flushes,
        'intents/commit': v.intents_per_commit,
        'cpu µs/intent': v.cpu_us_per_intent,
      });
      return v;
    };

    // one in flight: round-robin over the actors
    await run('1 in flight', '1', 1, (_w, k) => address(k % nActors));
    // many in flight, spread: worker w only uses actors ≡ w (mod inflight), so no two
    // in-flight intents ever wait for the same actor
    const perWorker = Math.max(1, Math.floor(nActors / inflight));
    const counters = new Array(inflight).fill(0);
    await run(`${inflight} in flight, ${nActors} actors`, '64', inflight, (w) =>
      address((w + inflight * (counters[w]++ % perWorker)) % nActors),
    );
    // many in flight on one hot actor: intents queue on its turn, commits still group
    await run(`${inflight} in flight, 1 hot actor`, 'hot', inflight, () => address(0));
    // more in flight than one group commit holds: shows how much of the 64-in-flight figure
    // is waiting for the previous commit (the store keeps one commit in flight at a time)
    const wide = inflight * 4;
    const perWide = Math.max(1, Math.floor(nActors / wide));
    const wideCounters = new Array(wide).fill(0);
    await run(`${wide} in flight, ${nActors} actors`, 'wide', wide, (w) => address((w + wide * (wideCounters[w]++ % perWide)) % nActors));

    // the same workloads with a Cedar policy set in force (none of its policies denies them)
    if (want('cedar-1') || want('cedar-64')) {
      const applied = await rt.policies.apply(realisticPolicySet(), 'operator:bench');
      progress(`applied a Cedar policy set of ${applied.count} policies`);
      await run(`1 in flight, Cedar set of ${applied.count}`, 'cedar-1', 1, (_w, k) => address(k % nActors));
      const cedarCounters = new Array(inflight).fill(0);
      await run(`${inflight} in flight, ${nActors} actors, Cedar set of ${applied.count}`, 'cedar-64', inflight, (w) =>
        address((w + inflight * (cedarCounters[w]++ % perWorker)) % nActors),
      );
    }

    const verify = opts['skip-verify'] === true ? { ok: true } : await rt.journal.verify();
    if (!verify.ok) throw new Error(`journal does not verify after the run: ${JSON.stringify(verify)}`);
  } finally {
    await rt.stop();
    tmp.cleanup();
  }

  printTable('baseline: raw XState (same machine, same CONFIGURE events, no runtime)', baselineRows);
  printTable('runtime: executed intents, full path, durable (SQLite WAL, synchronous=FULL, group commit)', rows);
  const head = variants.find((v) => v.key === '64') ?? variants[0];
  for (const [without, withSet] of [
    ['1', 'cedar-1'],
    ['64', 'cedar-64'],
  ]) {
    const a = variants.find((v) => v.key === without);
    const b = variants.find((v) => v.key === withSet);
    if (a && b)
      note(
        `Cedar set, ${a.inflight} in flight: ${b.ops_s} vs ${a.ops_s} intents/s without (× ${round(b.ops_s / a.ops_s, 3)}), p99 ${b.p99_ms} vs ${a.p99_ms} ms, CPU ${b.cpu_us_per_intent} vs ${a.cpu_us_per_intent} µs/intent (× ${round(b.cpu_us_per_intent / a.cpu_us_per_intent, 3)})`,
      );
  }
  const ratio = head && baseline ? head.ops_s / baseline : null;
  note(`\nheadline: ${head?.variant}: ${head?.ops_s} intents/s = ${round(ratio, 4)} × raw XState (${round(baseline)} transitions/s)`);
  note(
    `targets: ≥ ${TARGETS.throughput_min} intents/s at 64 in flight, ≥ ${TARGETS.ratio_min} of raw XState, p99 ≤ ${TARGETS.p99_max_ms} ms`,
  );
  await emitResult({
    bench: 'embedded-throughput',
    size: opts.size,
    throughput: head?.ops_s ?? null,
    baseline: round(baseline),
    ratio: round(ratio, 4),
    p50_ms: head?.p50_ms ?? null,
    p99_ms: head?.p99_ms ?? null,
    unit: 'executed intents/s (baseline: raw XState transitions/s)',
    durability: 'sqlite WAL synchronous=FULL, group commit',
    duration_ms: durationMs,
    actors: nActors,
    variants,
    baseline_variants: { one_actor: round(rawOne.opsPerSec), round_robin: round(rawMany.opsPerSec) },
    targets: TARGETS,
    meets: head
      ? {
          throughput: head.ops_s >= TARGETS.throughput_min,
          ratio: ratio >= TARGETS.ratio_min,
          p99: head.p99_ms <= TARGETS.p99_max_ms,
        }
      : null,
  });
});

/** Sends CONFIGURE events with changing params to `count` started actors, round-robin. */
function rawXState(machine, count, durationMs) {
  const actors = Array.from({ length: count }, (_, i) => createActor(machine, { input: { service: `svc-${i}` } }).start());
  let n = 0;
  const send = (k) => actors[k % count].send({ type: 'CONFIGURE', version: `1.${(k >>> 10) % 1000}.${k % 1024}`, replicas: (k % 100) + 1 });
  // warm up the JIT
  for (let k = 0; k < 20_000; k++) send(k);
  const t0 = now();
  const deadline = t0 + durationMs;
  for (;;) {
    for (let j = 0; j < 1000; j++) send(n++);
    if (now() >= deadline) break;
  }
  const elapsed = now() - t0;
  for (const a of actors) a.stop();
  return { n, opsPerSec: (n / elapsed) * 1000 };
}

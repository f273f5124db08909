// actors-scale: memory and restore cost of many actors.
//  1. heap bytes per active idle actor, runtime vs a bare XState actor of the same machine
//     (both: restored from a stored snapshot, then one CONFIGURE), each measured in its own
//     child process with --expose-gc after full GCs; passivate → heap returns; reactivate.
//  2. N stored actors (full 100,000; tiny 1,000): time to open the runtime over them, then to
//     restore/activate all of them — each by its first intent (the only public way to
//     activate), 64 in flight. Baseline: bare XState restore of the same N stored snapshots
//     (read from the same SQLite file, JSON.parse, createActor({ snapshot }).start()).
//
//   node bench/actors-scale.mjs [--size tiny|full] [--actors N] [--heap-actors n]
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createActor } from 'xstate';
import {
  BENCH_DIR,
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
import { address, buildStoredActors, configureIntent, mustExecute, openRuntime } from './lib/ice.mjs';

const TARGETS = { heap_ratio_max: 1.5 };

runMain(async (opts) => {
  const nStored = sized(opts, 'actors', 1000, 100_000);
  const nHeap = sized(opts, 'heap-actors', 1000, 10_000);

  // ---- 1. heap per active idle actor (child processes with --expose-gc) ----
  progress(`heap: bare XState × ${nHeap}`);
  const bare = probe('bare', nHeap);
  progress(`heap: runtime × ${nHeap} (fixture, activate, passivate, reactivate)`);
  const rtHeap = probe('runtime', nHeap);
  const heapRatio = rtHeap.bytes_per_actor / bare.bytes_per_actor;

  // ---- 2. restore/activate N stored actors ----
  const tmp = tempDir();
  let open, activate, steady, baselineRestore, passivateMs, fixtureMs;
  try {
    progress(`fixture: ${nStored} stored actors`);
    fixtureMs = await buildStoredActors(tmp.dir, nStored);

    // baseline: bare XState restore of the same stored snapshots
    progress('baseline: bare XState restore of the stored snapshots');
    const { deploymentMachine } = await importDist('machines/index.js');
    {
      const db = new Database(join(tmp.dir, 'ice.db'), { readonly: true });
      const t0 = now();
      const actors = [];
      for (const row of db.prepare('SELECT body FROM snapshots ORDER BY actor').iterate()) {
        const rec = JSON.parse(row.body);
        const a = createActor(deploymentMachine, { snapshot: rec.snapshot });
        a.start();
        actors.push(a);
      }
      const ms = now() - t0;
      db.close();
      if (actors.length !== nStored) throw new Error(`baseline restored ${actors.length} of ${nStored}`);
      for (const a of actors) a.stop();
      baselineRestore = { ms, perSec: (nStored / ms) * 1000 };
    }

    progress('runtime: open over the stored actors');
    const t0 = now();
    const rt = await openRuntime(tmp.dir);
    open = { ms: now() - t0 };
    try {
      const listed = (await rt.listActors()).length;
      if (listed !== nStored) throw new Error(`runtime sees ${listed} actors, expected ${nStored}`);
      let k = 0;
      const touch = async (count) => {
        let next = 0;
        return closedLoop({
          concurrency: 64,
          count,
          op: async () => {
            const i = next++;
            mustExecute(await rt.propose(configureIntent(k++, address(i))));
          },
        });
      };
      progress(`runtime: activate all ${nStored} by a first intent each (64 in flight)`);
      activate = await touch(nStored);
      if (rt.stats().active !== nStored) throw new Error(`expected ${nStored} active, got ${rt.stats().active}`);
      // the same intents to already active actors, to separate activation from the intent path
      const nSteady = Math.min(nStored, sized(opts, 'steady', 1000, 10_000));
      progress(`runtime: ${nSteady} intents to already active actors (64 in flight)`);
      steady = await touch(nSteady);
      const p0 = now();
      for (let i = 0; i < nStored; i++) await rt.passivate(address(i));
      passivateMs = now() - p0;
      if (rt.stats().active !== 0) throw new Error('actors still active after passivate');
    } finally {
      await rt.stop();
    }
  } finally {
    tmp.cleanup();
  }

  const activateRate = (activate.done / activate.elapsedMs) * 1000;
  const steadyRate = (steady.done / steady.elapsedMs) * 1000;
  const activationUs = 1e6 / activateRate - 1e6 / steadyRate; // extra wall time per actor at saturation
  const lat = latencySummary(activate.lat);
  const steadyLat = latencySummary(steady.lat);

  printTable(`heap per active idle actor (n = ${nHeap}, after full GC)`, [
    { what: 'bare XState actor (baseline)', 'bytes/actor': round(bare.bytes_per_actor), ratio: 1 },
    { what: 'runtime actor, active after its first intent', 'bytes/actor': round(rtHeap.bytes_per_actor), ratio: round(heapRatio, 3) },
    {
      what: 'runtime actor, after a second intent',
      'bytes/actor': round(rtHeap.bytes_per_actor_after_second_intent),
      ratio: round(rtHeap.bytes_per_actor_after_second_intent / bare.bytes_per_actor, 3),
    },
    { what: 'runtime, residue after passivate (vs before activation)', 'bytes/actor': round(rtHeap.passivated_residue_bytes_per_actor) },
    { what: 'runtime, re-activated on use', 'bytes/actor': round(rtHeap.reactivated_bytes_per_actor) },
    { what: 'runtime, residue after a 2nd passivate', 'bytes/actor': round(rtHeap.repassivated_residue_bytes_per_actor) },
  ]);
  printTable(`passivate / reactivate (n = ${nHeap}, 64 in flight)`, [
    {
      step: 'activate by first intent',
      ms: round(rtHeap.activate_first_intent_ms),
      'per actor µs': round((rtHeap.activate_first_intent_ms * 1000) / nHeap, 1),
    },
    {
      step: 'second intent (active)',
      ms: round(rtHeap.steady_intent_ms),
      'per actor µs': round((rtHeap.steady_intent_ms * 1000) / nHeap, 1),
    },
    { step: 'passivate all', ms: round(rtHeap.passivate_all_ms, 1), 'per actor µs': round((rtHeap.passivate_all_ms * 1000) / nHeap, 2) },
    {
      step: 'reactivate by intent',
      ms: round(rtHeap.reactivate_first_intent_ms),
      'per actor µs': round((rtHeap.reactivate_first_intent_ms * 1000) / nHeap, 1),
    },
  ]);
  printTable(`restore ${nStored.toLocaleString('en-US')} stored actors`, [
    {
      step: 'baseline: bare XState restore (read + parse + create + start)',
      ms: round(baselineRestore.ms),
      'actors/s': round(baselineRestore.perSec),
    },
    { step: 'runtime: open (load actor index)', ms: round(open.ms) },
    {
      step: 'runtime: activate all by first intent, 64 in flight',
      ms: round(activate.elapsedMs),
      'actors/s': round(activateRate),
      'p50 ms': lat.p50_ms,
      'p99 ms': lat.p99_ms,
    },
    {
      step: 'runtime: intents to active actors, 64 in flight',
      ms: round(steady.elapsedMs),
      'actors/s': round(steadyRate),
      'p50 ms': steadyLat.p50_ms,
      'p99 ms': steadyLat.p99_ms,
    },
    { step: 'runtime: passivate all', ms: round(passivateMs, 1) },
  ]);
  note(`\nactivation adds ≈ ${round(activationUs, 1)} µs of wall time per actor at saturation (first-intent rate vs active-actor rate)`);
  note(
    `fixture (${nStored} actors written with the runtime's SqliteJournal + SqliteStore) took ${round(fixtureMs)} ms; not part of any figure`,
  );
  note(`target: heap per idle actor ≤ ${TARGETS.heap_ratio_max} × bare XState → ${round(heapRatio, 3)} ×`);

  await emitResult({
    bench: 'actors-scale',
    size: opts.size,
    throughput: round(activateRate),
    baseline: round(baselineRestore.perSec),
    ratio: round(activateRate / baselineRestore.perSec, 4),
    p50_ms: lat.p50_ms,
    p99_ms: lat.p99_ms,
    unit: 'actors restored+activated/s by first intent, 64 in flight (baseline: bare XState restores/s of the same snapshots)',
    stored_actors: nStored,
    open_ms: round(open.ms, 1),
    restore_all_ms: round(open.ms + activate.elapsedMs),
    activate_all_ms: round(activate.elapsedMs),
    steady_intents_per_s: round(steadyRate),
    activation_us_per_actor: round(activationUs, 1),
    baseline_restore_ms: round(baselineRestore.ms),
    passivate_all_ms: round(passivateMs, 1),
    heap_actors: nHeap,
    heap_bytes_per_actor: round(rtHeap.bytes_per_actor),
    heap_baseline_bytes_per_actor: round(bare.bytes_per_actor),
    heap_ratio: round(heapRatio, 3),
    heap_residue_after_passivate_bytes_per_actor: round(rtHeap.passivated_residue_bytes_per_actor),
    heap_reactivated_bytes_per_actor: round(rtHeap.reactivated_bytes_per_actor),
    targets: TARGETS,
    meets: { heap_ratio: heapRatio <= TARGETS.heap_ratio_max },
  });
});

function probe(mode, n) {
  const r = spawnSync(process.execPath, ['--expose-gc', join(BENCH_DIR, 'lib/heap-probe.mjs'), mode, String(n)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 16 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(`heap probe ${mode} exited ${r.status ?? r.signal}`);
  const last = r.stdout.trim().split('\n').pop();
  return JSON.parse(last);
}

// actors-scale: memory and restore cost of many actors.
//  1. heap bytes per active idle actor, runtime vs a bare XState actor of the same machine
//     (both: restored from a stored snapshot, then one CONFIGURE), each measured in its own
//     child process with --expose-gc after full GCs; passivate → heap returns; reactivate.
//  2. N stored actors (full 1,000,000; tiny 1,000), served by a node in its own process
//     (bench/lib/scale-node.mjs, --expose-gc): the first start after the fixture (it verifies
//     every fact written since the last start), then a restart: time from start to the first
//     executed intent and the node's RSS; listing pages over the N (first, middle, by kind,
//     by state, a status none has, every page); then K actors (full 100,000; tiny 500)
//     activated by a first intent each (64 in flight), passivated, re-activated, with heap
//     after full GCs and RSS at each step. Baseline: bare XState restore of the same K
//     stored snapshots (read from the same SQLite file, JSON.parse, createActor({ snapshot
//     }).start()).
//
//   node bench/actors-scale.mjs [--size tiny|full] [--actors N] [--active K] [--heap-actors n]
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createActor } from 'xstate';
import {
  BENCH_DIR,
  childFlags,
  emitResult,
  importDist,
  note,
  now,
  printTable,
  progress,
  round,
  runMain,
  sized,
  tempDir,
} from './lib/common.mjs';
import { measureTimerRestore } from './lib/timer-restore.mjs';
import { address, buildStoredActors } from './lib/ice.mjs';

const TARGETS = { heap_ratio_max: 1.5 };

runMain(async (opts) => {
  const nStored = sized(opts, 'actors', 1000, 1_000_000);
  const nHeap = sized(opts, 'heap-actors', 1000, 10_000);

  // ---- 1. heap per active idle actor (child processes with --expose-gc) ----
  progress(`heap: bare XState × ${nHeap}`);
  const bare = probe('bare', nHeap);
  progress(`heap: runtime × ${nHeap} (fixture, activate, passivate, reactivate)`);
  const rtHeap = probe('runtime', nHeap);
  const heapRatio = rtHeap.bytes_per_actor / bare.bytes_per_actor;

  // ---- 2. N stored actors, K of them activated, passivated, re-activated ----
  const nActive = Math.min(nStored - 1, sized(opts, 'active', 500, 100_000));
  const tmp = tempDir();
  let fixtureMs, firstStart, node, baselineRestore;
  try {
    progress(`fixture: ${nStored.toLocaleString('en-US')} stored actors`);
    fixtureMs = await buildStoredActors(tmp.dir, nStored);

    progress(`baseline: bare XState restore of ${nActive} stored snapshots`);
    const { deploymentMachine } = await importDist('machines/index.js');
    {
      const db = new Database(join(tmp.dir, 'ice.db'), { readonly: true });
      const get = db.prepare('SELECT body FROM snapshots WHERE actor = ?');
      const t0 = now();
      const actors = [];
      for (let i = 1; i <= nActive; i++) {
        const rec = JSON.parse(get.get(address(i)).body);
        const a = createActor(deploymentMachine, { snapshot: rec.snapshot });
        a.start();
        actors.push(a);
      }
      const ms = now() - t0;
      db.close();
      for (const a of actors) a.stop();
      baselineRestore = { ms, perSec: (nActive / ms) * 1000 };
    }

    progress('node: first start over the stored actors (verifies the facts the fixture wrote)');
    firstStart = serveChild('start', tmp.dir, nStored);
    progress(`node: restart, listing pages, ${nActive} actors activated, passivated, re-activated`);
    node = serveChild('serve', tmp.dir, nStored, nActive);
  } finally {
    tmp.cleanup();
  }

  const activateRate = node.activate.perSec;
  const reactivateRate = node.reactivate.perSec;
  const perActor = (bytes) => bytes / nActive;
  const heapActive = perActor(node.heap_active - node.heap_before);
  const heapResidue = perActor(node.heap_passivated - node.heap_before);
  const heapReactivated = perActor(node.heap_reactivated - node.heap_passivated);
  const heapResidue2 = perActor(node.heap_passivated_again - node.heap_before);
  const heapRatioAtScale = heapActive / bare.bytes_per_actor;
  const mb = (b) => round(b / 1048576, 1);

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
  printTable(`a node over ${nStored.toLocaleString('en-US')} stored actors (its own process)`, [
    { step: 'first start after the fixture: open (verifies its facts)', ms: round(firstStart.open_ms), 'RSS MB': '' },
    {
      step: 'first start: start → first executed intent',
      ms: round(firstStart.start_to_first_intent_ms),
      'RSS MB': mb(firstStart.rss_after_first_intent),
    },
    { step: 'restart: open', ms: round(node.open_ms), 'RSS MB': '' },
    { step: 'restart: start → first executed intent', ms: round(node.start_to_first_intent_ms), 'RSS MB': mb(node.rss_after_first_intent) },
    { step: 'list: first page of 100', ms: round(node.list_first_page.ms, 2), 'RSS MB': '' },
    { step: 'list: a page of 100 from the middle (--after)', ms: round(node.list_middle_page.ms, 2), 'RSS MB': '' },
    { step: 'list: a page of 100 of a kind', ms: round(node.list_kind_page.ms, 2), 'RSS MB': '' },
    { step: 'list: a page of 100 in a state', ms: round(node.list_state_page.ms, 2), 'RSS MB': '' },
    { step: 'list: a status no actor has (empty answer)', ms: round(node.list_status_none.ms, 2), 'RSS MB': '' },
    { step: `list: every actor, ${node.list_all.pages} pages of 1000`, ms: round(node.list_all.ms), 'RSS MB': '' },
    { step: 'stop', ms: round(node.stop_ms), 'RSS MB': '' },
  ]);
  printTable(`${nActive.toLocaleString('en-US')} of them activated, passivated, re-activated (heap after full GC)`, [
    {
      step: 'baseline: bare XState restore (read + parse + create + start)',
      ms: round(baselineRestore.ms),
      'actors/s': round(baselineRestore.perSec),
      'heap MB': '',
      'RSS MB': '',
    },
    { step: 'before (1 active)', ms: '', 'actors/s': '', 'heap MB': mb(node.heap_before), 'RSS MB': mb(node.rss_before) },
    {
      step: 'activate each by a first intent, 64 in flight',
      ms: round(node.activate.ms),
      'actors/s': round(activateRate),
      'heap MB': mb(node.heap_active),
      'RSS MB': mb(node.rss_active),
    },
    {
      step: 'passivate them',
      ms: round(node.passivate_ms),
      'actors/s': round((nActive / node.passivate_ms) * 1000),
      'heap MB': mb(node.heap_passivated),
      'RSS MB': mb(node.rss_passivated),
    },
    {
      step: 're-activate each by an intent',
      ms: round(node.reactivate.ms),
      'actors/s': round(reactivateRate),
      'heap MB': mb(node.heap_reactivated),
      'RSS MB': mb(node.rss_reactivated),
    },
    {
      step: 'passivate them again',
      ms: round(node.passivate_again_ms),
      'actors/s': '',
      'heap MB': mb(node.heap_passivated_again),
      'RSS MB': '',
    },
  ]);
  note(
    `\nheap per active actor at this scale: ${round(heapActive)} bytes (${round(heapRatioAtScale, 3)} × bare XState); ` +
      `residue after passivating: ${round(heapResidue)} bytes/actor, after a second cycle ${round(heapResidue2)}; re-activated ${round(heapReactivated)}`,
  );
  note(`activation by first intent: ${round(activateRate / baselineRestore.perSec, 4)} × the bare XState restore rate`);
  note(
    `fixture (${nStored} actors written with the runtime's SqliteJournal + SqliteStore) took ${round(fixtureMs)} ms; not part of any figure`,
  );
  note(`target: heap per idle actor ≤ ${TARGETS.heap_ratio_max} × bare XState → ${round(heapRatio, 3)} ×`);

  // ---- durable timers: N pending after a SIGKILL of the serving process ----
  const nTimers = sized(opts, 'timers', 200, 10_000);
  const timerDelay = sized(opts, 'timer-delay', 3000, 30_000);
  progress(`timers: ${nTimers} pending (after ${timerDelay} ms), SIGKILL, restart`);
  const timersTmp = tempDir();
  let timers;
  try {
    timers = await measureTimerRestore(timersTmp.dir, nTimers, timerDelay);
  } finally {
    timersTmp.cleanup();
  }
  printTable(`${nTimers} durable timers restored after a SIGKILL (due → fired)`, [
    { what: 'runtime: restored, fired as facts', p50_ms: timers.late.p50_ms, p99_ms: timers.late.p99_ms, max_ms: timers.late.max_ms },
    {
      what: 'baseline: bare XState after, one process',
      p50_ms: timers.baselineLate.p50_ms,
      p99_ms: timers.baselineLate.p99_ms,
      max_ms: timers.baselineLate.max_ms,
    },
  ]);
  note(
    `downtime ${timers.downtimeMs} ms (none was due during it) · open ${timers.openMs} ms · every timer fired once, never early · RSS ${timers.rssMiB} MiB`,
  );

  await emitResult({
    bench: 'actors-scale',
    size: opts.size,
    throughput: round(activateRate),
    baseline: round(baselineRestore.perSec),
    ratio: round(activateRate / baselineRestore.perSec, 4),
    p50_ms: node.activate.p50_ms,
    p99_ms: node.activate.p99_ms,
    unit: 'stored actors activated/s by first intent, 64 in flight (baseline: bare XState restores/s of the same snapshots)',
    stored_actors: nStored,
    timers_restored: nTimers,
    timers_late_p50_ms: timers.late.p50_ms,
    timers_late_p99_ms: timers.late.p99_ms,
    timers_baseline_late_p50_ms: timers.baselineLate.p50_ms,
    timers_baseline_late_p99_ms: timers.baselineLate.p99_ms,
    active_actors: nActive,
    first_start_open_ms: round(firstStart.open_ms),
    first_start_to_first_intent_ms: round(firstStart.start_to_first_intent_ms),
    open_ms: round(node.open_ms, 1),
    start_to_first_intent_ms: round(node.start_to_first_intent_ms, 1),
    rss_after_first_intent_mb: mb(node.rss_after_first_intent),
    rss_active_mb: mb(node.rss_active),
    rss_passivated_mb: mb(node.rss_passivated),
    list_first_page_ms: round(node.list_first_page.ms, 2),
    list_middle_page_ms: round(node.list_middle_page.ms, 2),
    list_kind_page_ms: round(node.list_kind_page.ms, 2),
    list_state_page_ms: round(node.list_state_page.ms, 2),
    list_status_none_ms: round(node.list_status_none.ms, 2),
    list_all_ms: round(node.list_all.ms),
    activate_ms: round(node.activate.ms),
    reactivate_ms: round(node.reactivate.ms),
    reactivate_per_s: round(reactivateRate),
    passivate_ms: round(node.passivate_ms, 1),
    heap_before_mb: mb(node.heap_before),
    heap_active_mb: mb(node.heap_active),
    heap_passivated_mb: mb(node.heap_passivated),
    heap_reactivated_mb: mb(node.heap_reactivated),
    heap_active_bytes_per_actor: round(heapActive),
    heap_active_ratio: round(heapRatioAtScale, 3),
    heap_residue_bytes_per_actor: round(heapResidue),
    baseline_restore_ms: round(baselineRestore.ms),
    fixture_ms: round(fixtureMs),
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

/** Runs the serving node (bench/lib/scale-node.mjs) in its own process; its JSON line. */
function serveChild(mode, dir, stored, k = 0) {
  const r = spawnSync(
    process.execPath,
    [...childFlags(), '--expose-gc', join(BENCH_DIR, 'lib/scale-node.mjs'), mode, dir, String(stored), String(k)],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 16 * 1024 * 1024 },
  );
  if (r.status !== 0) throw new Error(`scale node (${mode}) exited ${r.status ?? r.signal}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

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

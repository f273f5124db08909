// nats-throughput: the runtime served over NATS against raw NATS measured in the same run.
// The bench starts its own nats-servers (JetStream on, file storage, loopback, free ports):
// first one server, then a 3-server cluster. Every measurement runs in three kinds of
// process — the nats-server(s), a serving child, and this process as the load generator —
// all on the same cores.
//
// One server (skipped with --cluster-only):
//   - raw request/reply at 1 and 64 in flight: a nats.js responder in a child process answers
//     `bench.echo` with a reply of an outcome's size; the requests carry a real intent;
//   - raw JetStream publish + ack (R1, file) at 1 and 64 in flight;
//   - the runtime, one node on SQLite: a child running createRuntime({ transport: NatsTransport });
//   - the runtime in cluster mode on this one server (R1), 64 in flight (for comparison).
// 3-server cluster (startNatsCluster(3)), the headline:
//   - raw request/reply at 64 in flight (requester and responder on server 1, as the load
//     generator and the node below): the baseline of the ratio;
//   - raw JetStream publish + ack on an R3 stream at 1 and 64 in flight, messages of a turn's
//     size: the floor of one round trip per intent;
//   - the same JetStream operations as one cluster intent, without the runtime, as a ladder:
//     the turn's publish with msgID and expected last subject sequence; + the KV get of the
//     outcome before it; + — not awaited, in order per actor — the outcome create and the
//     snapshot compare-and-set after the ack;
//   - the runtime in cluster mode: a child running createRuntime({ cluster: { servers,
//     replicas: 3 }, node }) connected to server 1, at 1 and 64 in flight.
// For each variant: throughput, p50/p99, and CPU per operation of each process (from
// /proc/<pid>/stat) plus what the rest of the machine used meanwhile. For the cluster-mode
// variants at 64 in flight, the JetStream operations per executed intent, counted from the
// servers' monitoring endpoints (stream last sequences, `$JS.API` request totals in /jsz, the
// node connection's message counts in /connz) before and after.
//
//   node bench/nats-throughput.mjs [--size tiny|full] [--duration ms] [--warmup ms]
//        [--actors n] [--inflight n] [--cluster-only] [--only cl64,c_rr64,…]
// (--only / --cluster-only: a subset, e.g. to profile the cluster node alone; keys as in the
// result's `variants`.)
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import {
  BENCH_DIR,
  childFlags,
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
  sleep,
  tempDir,
} from './lib/common.mjs';
import { address, configureIntent } from './lib/ice.mjs';

const TARGETS = { ratio_min: 0.5, p99_max_ms: 20 };
const REPLY_BYTES = 330; // about the size of an executed outcome
// Sizes of what a cluster intent writes, as measured from the streams (printed each run):
// the turn message (3 facts with the intent and decision, snapshot, outcome, attestation),
// the outcome record, the snapshot record.
// (payload bytes; the stored sizes printed add the subject, headers and record overhead, ~100-160 B)
const TURN_BYTES = 2400;
const OUTCOME_BYTES = 330;
const SNAPSHOT_BYTES = 430;
const NODE = 'bench';

runMain(async (opts) => {
  const durationMs = sized(opts, 'duration', 600, 5000);
  const warmupMs = sized(opts, 'warmup', 200, 1000);
  const nActors = sized(opts, 'actors', 128, 1024);
  const inflight = sized(opts, 'inflight', 64, 64);
  // --only rr64,cl64,… runs only those variants (keys as in `variants` of the result);
  // --cluster-only leaves out the one-server part. Both for profiling; the full run is the figure.
  const only = typeof opts.only === 'string' ? new Set(opts.only.split(',')) : undefined;
  const SINGLE = ['rr1', 'rr64', 'js1', 'js64', 'rt1', 'rt64', 'r1_cl64'];
  const want = (k) => (!only || only.has(k)) && !(opts['cluster-only'] === true && SINGLE.includes(k));

  // The testing kit's launchers (ice-runtime/testing), from the build under measurement.
  const { startNatsServer, startNatsCluster } = await importDist('src/testing/index.js');
  const rows = [];
  const cpuRows = [];
  const variants = {};
  const opsPerIntent = {};
  const nodeStore = {};
  const children = new Set();
  let serverVersion = 'unknown';
  // proposals to actors: each worker owns nActors/inflight actors and takes them in turn
  const perWorker = Math.max(1, Math.floor(nActors / inflight));
  const targetOf = (counters) => (_i, w) => address((w + inflight * (counters[w]++ % perWorker)) % nActors);

  /** Closed loop with warm-up; records latency and the CPU each process spent. */
  const measure = async (label, key, concurrency, op, procs) => {
    progress(label);
    await closedLoop({ concurrency, durationMs: warmupMs, op });
    const c0 = cpuSample(procs);
    const retries0 = procs?.counter?.retries ?? 0;
    const byCode0 = { ...procs?.counter?.byCode };
    const r = await closedLoop({ concurrency, durationMs, op });
    const cpu = cpuDiff(c0, cpuSample(procs), r.done);
    const retried = procs?.counter ? procs.counter.retries - retries0 : undefined;
    const retriedBy = procs?.counter
      ? Object.fromEntries(Object.entries(procs.counter.byCode ?? {}).map(([k, x]) => [k, x - (byCode0[k] ?? 0)]))
      : undefined;
    const lat = latencySummary(r.lat);
    const v = {
      variant: label,
      inflight: concurrency,
      ops: r.done,
      ops_s: round(r.opsPerSec),
      p50_ms: lat.p50_ms,
      p99_ms: lat.p99_ms,
      max_ms: lat.max_ms,
      ...(retried !== undefined ? { retried, retried_by_code: retriedBy } : {}),
      cpu,
    };
    variants[key] = v;
    rows.push({
      variant: label,
      ops: v.ops,
      'ops/s': v.ops_s,
      'p50 ms': v.p50_ms,
      'p99 ms': v.p99_ms,
      'max ms': v.max_ms,
      retried: retried ?? '',
    });
    cpuRows.push({
      variant: label,
      'load gen µs/op': cpu.bench_us_per_op,
      'serving child µs/op': cpu.child_us_per_op,
      'nats-server(s) µs/op': cpu.servers_us_per_op,
      'other procs µs/op': cpu.other_us_per_op,
      'machine busy %': cpu.machine_busy_pct,
    });
    return v;
  };

  const requester = (nc, nActorsForIntent) => {
    let k = 0;
    return async () => {
      const m = await nc.request('bench.echo', JSON.stringify(configureIntent(k++, address(k % nActorsForIntent))), { timeout: 10_000 });
      JSON.parse(m.string());
    };
  };
  // Every outcome must be `executed`. A cluster node answers `failed` with E_OWNERSHIP or
  // E_NOT_OWNER ("retry with the same id") when it is not sure of an actor's lease; the bench
  // retries those as a client would (same id, at once), counts them, and the latency includes
  // them. Anything else fails the benchmark.
  const RETRYABLE = new Set(['E_OWNERSHIP', 'E_NOT_OWNER']);
  const proposer = (nc, base, counter) => {
    let n = 0;
    counter.retries ??= 0;
    return async (target) => {
      const intent = JSON.stringify(configureIntent(base + n++, target));
      for (let attempt = 1; ; attempt++) {
        const m = await nc.request(`ice.intent.${target.replace('/', '.')}`, intent, { timeout: 30_000 });
        const out = JSON.parse(m.string());
        if (out.status === 'executed') break;
        if (out.status !== 'failed' || !RETRYABLE.has(out.error?.code) || attempt >= 20) {
          throw new Error(`intent not executed (attempt ${attempt}): ${m.string()}`);
        }
        counter.retries++;
        counter.byCode ??= {};
        counter.byCode[out.error.code] = (counter.byCode[out.error.code] ?? 0) + 1;
      }
      counter.executed++;
    };
  };
  const startHost = async (name, args) => {
    const c = await startChild(name, args);
    children.add(c);
    return c;
  };
  const stopChild = async (c) => {
    const r = await c.stop();
    children.delete(c);
    return r;
  };

  let single;
  let cluster;
  let nc;
  let hostStats;
  const spawnTimes = {};
  const sizes = {};
  const leaders = {};
  try {
    // =========================== one server ===========================
    if (SINGLE.some(want)) {
      progress('starting nats-server');
      single = await startNatsServer();
      const servers = () => [single.pid];
      nc = await connect({ servers: single.url, name: 'bench-load' });
      serverVersion = nc.info?.version ?? 'unknown';

      if (want('rr1') || want('rr64')) {
        const responder = await startHost('nats-responder', [join(BENCH_DIR, 'lib/nats-responder.mjs'), single.url, String(REPLY_BYTES)]);
        const echo = requester(nc, nActors);
        const procs = { servers, child: responder.pid };
        if (want('rr1')) await measure('1 server: raw NATS request/reply, 1 in flight', 'rr1', 1, echo, procs);
        if (want('rr64')) await measure(`1 server: raw NATS request/reply, ${inflight} in flight`, 'rr64', inflight, echo, procs);
        await stopChild(responder);
      }

      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: 'BENCH', subjects: ['bench.js.>'], storage: 'file', num_replicas: 1 });
      const js = jetstream(nc);
      const turnLike = payload(TURN_BYTES);
      let j = 0;
      const pub = async () => {
        await js.publish(`bench.js.${j++ % 64}`, turnLike);
      };
      if (want('js1')) await measure('1 server: raw JetStream publish+ack (R1), 1 in flight', 'js1', 1, pub, { servers });
      if (want('js64')) {
        await measure(`1 server: raw JetStream publish+ack (R1), ${inflight} in flight`, 'js64', inflight, pub, { servers });
      }
      await jsm.streams.delete('BENCH');

      // the runtime, one node on SQLite
      if (want('rt1') || want('rt64')) {
        const tmp = tempDir();
        try {
          progress(`runtime host (SQLite): spawning ${nActors} actors`);
          const host = await startHost('nats-host', [join(BENCH_DIR, 'lib/nats-host.mjs'), single.url, tmp.dir, String(nActors)]);
          const counter = { executed: 0 };
          const propose = proposer(nc, 0, counter);
          const procs = { servers, child: host.pid, counter };
          if (want('rt1')) {
            await measure('1 server: runtime, one node on SQLite, 1 in flight', 'rt1', 1, (i) => propose(address(i % nActors)), procs);
          }
          const counters = new Array(inflight).fill(0);
          const target = targetOf(counters);
          if (want('rt64'))
            await measure(
              `1 server: runtime, one node on SQLite, ${inflight} in flight, ${nActors} actors`,
              'rt64',
              inflight,
              (i, w) => propose(target(i, w)),
              procs,
            );
          hostStats = await stopChild(host);
        } finally {
          tmp.cleanup();
        }
      }

      // cluster mode on the one server (R1)
      if (want('r1_cl64')) {
        progress(`cluster node, R1 on one server: spawning ${nActors} actors`);
        const host = await startHost('cluster-host', [join(BENCH_DIR, 'lib/cluster-host.mjs'), single.url, String(nActors), '1', NODE]);
        spawnTimes.r1 = host.info;
        const counter = { executed: 0 };
        const propose = proposer(nc, 1_000_000, counter);
        const counters = new Array(inflight).fill(0);
        const target = targetOf(counters);
        const monitors = [single.monitorUrl];
        host.signal('SIGUSR2'); // the node's store timings: from here
        const before = await jsCounters(monitors);
        const n0 = counter.executed;
        await measure(
          `1 server: runtime, cluster mode R1, ${inflight} in flight, ${nActors} actors`,
          'r1_cl64',
          inflight,
          (i, w) => propose(target(i, w)),
          { servers, child: host.pid, counter },
        );
        const after = await settledCounters(monitors);
        const intents = counter.executed - n0;
        opsPerIntent.r1 = opsBreakdown(before, after, intents);
        const { store } = (await stopChild(host)) ?? {};
        if (store) {
          nodeStore.r1 = {
            ...store,
            outcome_calls_per_intent: round(store.outcome.calls / intents, 3),
            commit_calls_per_intent: round(store.commit.calls / intents, 3),
          };
        }
      }
      await nc.close();
      nc = undefined;
      await single.stop();
      single = undefined;
    }

    // =========================== 3-server cluster ===========================
    const CLUSTER = ['c_rr64', 'c_js1', 'c_js64', 'c_fence64', 'c_reads64', 'c_emu64', 'cl1', 'cl64'];
    if (CLUSTER.some(want)) {
      progress('starting a 3-server nats cluster');
      cluster = await startNatsCluster(3);
      const url0 = cluster.urls[0];
      const monitors = cluster.servers.map((s) => s.monitorUrl);
      const servers = () => cluster.servers.map((s) => s.pid);
      nc = await connect({ servers: url0, name: 'bench-load' });
      serverVersion = nc.info?.version ?? serverVersion;

      // baseline of the ratio: raw request/reply, same topology as proposer → node
      if (want('c_rr64')) {
        const responder = await startHost('nats-responder', [join(BENCH_DIR, 'lib/nats-responder.mjs'), url0, String(REPLY_BYTES)]);
        await measure(`3 servers: raw NATS request/reply, ${inflight} in flight`, 'c_rr64', inflight, requester(nc, nActors), {
          servers,
          child: responder.pid,
        });
        await stopChild(responder);
      }

      // raw JetStream on R3: publish+ack, and the operations of one cluster intent
      const jsm = await jetstreamManager(nc);
      const js = jetstream(nc);
      if (want('c_js1') || want('c_js64')) {
        await jsm.streams.add({ name: 'BENCH3', subjects: ['bench.r3.>'], storage: 'file', num_replicas: 3 });
        await untilAnswered(() => js.publish('bench.r3.ready', 'x'));
        leaders.raw_stream = await leaderOf(monitors, 'BENCH3');
        const turnLike = payload(TURN_BYTES);
        let j = 0;
        const pub = async () => {
          await js.publish(`bench.r3.${j++ % 64}`, turnLike);
        };
        if (want('c_js1')) await measure('3 servers: raw JetStream publish+ack (R3), 1 in flight', 'c_js1', 1, pub, { servers });
        if (want('c_js64')) {
          await measure(`3 servers: raw JetStream publish+ack (R3), ${inflight} in flight`, 'c_js64', inflight, pub, { servers });
        }
        await jsm.streams.delete('BENCH3');
      }
      if (want('c_fence64') || want('c_reads64') || want('c_emu64')) {
        await jsm.streams.add({
          name: 'BENCHJ',
          subjects: ['bench.j.>'],
          storage: 'file',
          num_replicas: 3,
          duplicate_window: 120_000_000_000,
        });
        const kvm = new Kvm(js);
        const outKv = await kvm.create('BENCH_OUT', { history: 1, replicas: 3, allow_direct: false });
        const snapKv = await kvm.create('BENCH_SNAP', { history: 1, replicas: 3, allow_direct: false });
        await untilAnswered(() => js.publish('bench.j.ready', 'x'));
        await untilAnswered(() => outKv.get('ready'));
        await untilAnswered(() => snapKv.get('ready'));
        leaders.emulation = {
          stream: await leaderOf(monitors, 'BENCHJ'),
          outcomes: await leaderOf(monitors, 'KV_BENCH_OUT'),
          snapshots: await leaderOf(monitors, 'KV_BENCH_SNAP'),
        };
        const turnLike = payload(TURN_BYTES);
        const outLike = payload(OUTCOME_BYTES);
        const snapLike = payload(SNAPSHOT_BYTES);
        const lastSeq = new Map();
        const snapRev = new Map();
        const derived = new Map();
        const open = new Set();
        let k = 0;
        const counters = new Array(inflight).fill(0);
        const target = targetOf(counters);
        // a ladder: the fenced publish alone, + the outcome lookup, + the two derived writes
        const intentOps =
          ({ reads, writes }) =>
          async (i, w) => {
            const actor = target(i, w).replace('/', '.');
            const id = `e${k++}`;
            if (reads) await outKv.get(id); // inside the actor's turn: a repeat?
            const subject = `bench.j.${actor}`;
            const expected = lastSeq.get(actor) ?? 0;
            // the message id names the position, as the store's does
            const ack = await js.publish(subject, turnLike, { msgID: `${subject}@${expected}`, expect: { lastSubjectSequence: expected } });
            lastSeq.set(actor, ack.seq);
            if (!writes) return;
            // derived, after the ack, not awaited by the reply; in order per actor
            const p = (derived.get(actor) ?? Promise.resolve()).then(async () => {
              await outKv.create(id, outLike);
              const rev = snapRev.get(actor);
              snapRev.set(actor, rev === undefined ? await snapKv.create(actor, snapLike) : await snapKv.update(actor, snapLike, rev));
            });
            derived.set(actor, p);
            open.add(p);
            void p.finally(() => open.delete(p));
          };
        if (want('c_fence64')) {
          await measure(
            `3 servers: raw JetStream, fenced publish (msgID + expected last subject seq, R3), ${inflight} in flight`,
            'c_fence64',
            inflight,
            intentOps({ reads: false, writes: false }),
            { servers },
          );
        }
        if (want('c_reads64')) {
          await measure(
            `3 servers: raw JetStream, KV get + fenced publish (R3), ${inflight} in flight`,
            'c_reads64',
            inflight,
            intentOps({ reads: true, writes: false }),
            { servers },
          );
        }
        if (want('c_emu64')) {
          await measure(
            `3 servers: raw JetStream, one cluster intent's ops (KV get, fenced publish, then 2 KV writes; R3), ${inflight} in flight`,
            'c_emu64',
            inflight,
            intentOps({ reads: true, writes: true }),
            { servers },
          );
        }
        await Promise.all([...open]);
        await jsm.streams.delete('BENCHJ');
        await outKv.destroy().catch(() => {});
        await snapKv.destroy().catch(() => {});
      }

      // the runtime in cluster mode, R3
      if (want('cl1') || want('cl64')) {
        progress(`cluster node, R3 on 3 servers: spawning ${nActors} actors`);
        const host = await startHost('cluster-host', [join(BENCH_DIR, 'lib/cluster-host.mjs'), url0, String(nActors), '3', NODE]);
        spawnTimes.r3 = host.info;
        leaders.runtime = {
          journal: await leaderOf(monitors, 'ICE_JOURNAL'),
          outcomes: await leaderOf(monitors, 'KV_ICE_OUTCOMES'),
          snapshots: await leaderOf(monitors, 'KV_ICE_SNAPSHOTS'),
          leases: await leaderOf(monitors, 'KV_ICE_LEASES'),
          node_connected_to: cluster.servers[0].serverName,
        };
        const counter = { executed: 0 };
        const propose = proposer(nc, 2_000_000, counter);
        const procs = { servers, child: host.pid, counter };
        if (want('cl1')) {
          await measure('3 servers: runtime, cluster mode R3, 1 in flight', 'cl1', 1, (i) => propose(address(i % nActors)), procs);
        }
        const counters = new Array(inflight).fill(0);
        const target = targetOf(counters);
        host.signal('SIGUSR2'); // the node's store timings: from here
        const before = await jsCounters(monitors);
        const n0 = counter.executed;
        if (want('cl64'))
          await measure(
            `3 servers: runtime, cluster mode R3, ${inflight} in flight, ${nActors} actors`,
            'cl64',
            inflight,
            (i, w) => propose(target(i, w)),
            procs,
          );
        const after = await settledCounters(monitors);
        const intents = counter.executed - n0;
        if (want('cl64')) opsPerIntent.r3 = opsBreakdown(before, after, intents);
        const js0 = after.streams.ICE_JOURNAL;
        sizes.turn_bytes = js0 && js0.messages ? round(js0.bytes / js0.messages) : null;
        const o = after.streams.KV_ICE_OUTCOMES;
        sizes.outcome_bytes = o && o.messages ? round(o.bytes / o.messages) : null;
        const s = after.streams.KV_ICE_SNAPSHOTS;
        sizes.snapshot_bytes = s && s.messages ? round(s.bytes / s.messages) : null;
        const { store } = (await stopChild(host)) ?? {};
        if (store && want('cl64')) {
          nodeStore.r3 = {
            ...store,
            outcome_calls_per_intent: round(store.outcome.calls / intents, 3),
            commit_calls_per_intent: round(store.commit.calls / intents, 3),
          };
        }
      }
    }

    // =========================== report ===========================
    const ncpu = cpus().length;
    printTable(`NATS (nats-server ${serverVersion}, loopback; servers, serving process and load generator share ${ncpu} cores)`, rows);
    printTable(
      'CPU per operation in each process during the measured window (µs of CPU per completed op; "other" = the rest of the machine)',
      cpuRows,
    );
    const opsRows = [];
    for (const [k, o] of Object.entries(opsPerIntent)) {
      opsRows.push({
        'cluster mode': k === 'r3' ? 'R3, 3 servers' : 'R1, 1 server',
        intents: o.intents,
        'journal publishes': o.journal,
        'outcome writes': o.outcomes,
        'snapshot writes': o.snapshots,
        'pending writes': o.pending,
        'JS API requests (reads)': o.api_requests,
        'JS ops total': o.total,
        'lease writes/s': o.lease_writes_per_s,
        'retried (measured window)': variants[k === 'r3' ? 'cl64' : 'r1_cl64']?.retried,
        'node msgs out': o.node_msgs_out,
        'node msgs in': o.node_msgs_in,
      });
    }
    printTable(`JetStream operations per executed intent at ${inflight} in flight (counted on the servers)`, opsRows);
    note(
      '\ncolumns: writes = stream messages (last sequence Δ) per intent; JS API requests = $JS.API requests (/jsz api.total Δ, ' +
        'KV gets and message gets); node msgs out/in = messages the node published / received (/connz); lease writes are renewals, ' +
        'per second, independent of intents',
    );
    note(
      `sizes (measured): turn message ${sizes.turn_bytes} B stored, outcome record ${sizes.outcome_bytes} B, snapshot record ${sizes.snapshot_bytes} B; ` +
        `raw JetStream variants publish payloads of ${TURN_BYTES} B (outcome ${OUTCOME_BYTES} B, snapshot ${SNAPSHOT_BYTES} B)`,
    );
    for (const [k, t] of Object.entries(nodeStore)) {
      note(
        `inside the node (${k.toUpperCase()}, ${inflight} in flight): store.outcome() ${t.outcome_calls_per_intent} calls/intent, ` +
          `p50 ${t.outcome.p50_ms} ms, p99 ${t.outcome.p99_ms} ms, mean ${t.outcome.mean_ms} ms; store.commit() ${t.commit_calls_per_intent} calls/intent, ` +
          `p50 ${t.commit.p50_ms} ms, p99 ${t.commit.p99_ms} ms, mean ${t.commit.mean_ms} ms`,
      );
    }
    note(`leaders: ${JSON.stringify(leaders)}`);
    if (spawnTimes.r3) note(`cluster node R3: open ${spawnTimes.r3.open_ms} ms, ${nActors} spawns ${spawnTimes.r3.spawn_ms} ms`);

    const opsOf = (k) => variants[k]?.ops_s;
    const ratioOf = (a, b, digits = 4) => (opsOf(a) && opsOf(b) ? round(opsOf(a) / opsOf(b), digits) : null);
    const head = variants.cl64 ?? {};
    if (variants.rr64) {
      note(
        `1 server: runtime on SQLite ${ratioOf('rt64', 'rr64', 3)} × raw request/reply; cluster mode R1 ${ratioOf('r1_cl64', 'rr64', 3)} ×`,
      );
    }
    if (hostStats?.stats) note(`SQLite node: ${hostStats.stats.flushes} group commits, largest ${hostStats.stats.maxBatch} turns`);
    note(
      `3 servers: cluster mode R3 ${ratioOf('cl64', 'c_rr64')} × raw request/reply, ${ratioOf('cl64', 'c_js64', 3)} × raw JetStream publish+ack R3, ` +
        `${ratioOf('cl64', 'c_emu64', 3)} × the same JetStream ops without the runtime`,
    );
    const ratio = ratioOf('cl64', 'c_rr64');
    note(
      `target: cluster mode R3 ≥ ${TARGETS.ratio_min} × raw request/reply at ${inflight} in flight → ${ratio} ×; ` +
        `p99 ≤ ${TARGETS.p99_max_ms} ms → ${head.p99_ms} ms`,
    );
    await emitResult({
      bench: 'nats-throughput',
      size: opts.size,
      throughput: head.ops_s ?? null,
      baseline: opsOf('c_rr64') ?? null,
      ratio,
      p50_ms: head.p50_ms ?? null,
      p99_ms: head.p99_ms ?? null,
      unit:
        `executed intents/s in cluster mode (3 nats-servers, stream and buckets R3) at ${inflight} in flight ` +
        `(baseline: raw NATS request/reply/s at ${inflight} in flight on the same cluster, responder in another process)`,
      persistence: 'jetstream (cluster mode, R3, 3 servers)',
      ratio_vs_raw_jetstream: ratioOf('cl64', 'c_js64'),
      ratio_vs_jetstream_ops: ratioOf('cl64', 'c_emu64'),
      sqlite_node_ratio: ratioOf('rt64', 'rr64'),
      r1_cluster_ratio: ratioOf('r1_cl64', 'rr64'),
      ops_per_intent: opsPerIntent,
      node_store_calls: nodeStore,
      sizes,
      leaders,
      spawn: spawnTimes,
      nats_server: serverVersion,
      actors: nActors,
      duration_ms: durationMs,
      variants,
      targets: TARGETS,
      meets: { ratio: ratio !== null && ratio >= TARGETS.ratio_min, p99: head.p99_ms !== undefined && head.p99_ms <= TARGETS.p99_max_ms },
    });
  } finally {
    await nc?.close().catch(() => {});
    for (const c of children) await c.stop().catch(() => {});
    await single?.stop();
    await cluster?.stopAll();
  }
});

// ---------------------------------------------------------------------------------------------
// helpers

function payload(bytes) {
  return JSON.stringify({ pad: 'x'.repeat(Math.max(0, bytes - 10)) });
}

/** Retries `fn` while a new stream or bucket elects its leader. */
async function untilAnswered(fn, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await sleep(100);
    }
  }
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU time (user + system) of a process in ms, from /proc/<pid>/stat. */
function procCpuMs(pid) {
  if (pid === undefined) return 0;
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
  } catch {
    return 0;
  }
}

/** Busy and total jiffies of the whole machine (all cores). */
function machineJiffies() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  const idle = f[3] + f[4];
  return { busy: total - idle, total };
}

function cpuSample({ servers, child } = {}) {
  const u = process.cpuUsage();
  return {
    bench: (u.user + u.system) / 1000,
    child: procCpuMs(child),
    servers: (servers?.() ?? []).reduce((a, pid) => a + procCpuMs(pid), 0),
    machine: machineJiffies(),
  };
}

function cpuDiff(a, b, ops) {
  const per = (ms) => (ops > 0 ? round((ms * 1000) / ops) : null);
  const bench = b.bench - a.bench;
  const child = b.child - a.child;
  const servers = b.servers - a.servers;
  const busyMs = ((b.machine.busy - a.machine.busy) * 1000) / CLK_TCK;
  const totalJ = b.machine.total - a.machine.total;
  return {
    bench_us_per_op: per(bench),
    child_us_per_op: child > 0 ? per(child) : null,
    servers_us_per_op: per(servers),
    other_us_per_op: per(Math.max(0, busyMs - bench - child - servers)),
    machine_busy_pct: totalJ > 0 ? round((100 * (b.machine.busy - a.machine.busy)) / totalJ, 1) : null,
  };
}

async function httpJson(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return res.json();
}

/** Stream last sequences, $JS.API totals (summed over servers) and the node connection's counters. */
async function jsCounters(monitors) {
  const jsz = await Promise.all(monitors.map((m) => httpJson(`${m}/jsz?accounts=true&streams=true`)));
  const streams = {};
  for (const j of jsz) {
    for (const a of j.account_details ?? []) {
      for (const s of a.stream_detail ?? []) {
        const cur = streams[s.name];
        if (!cur || s.state.last_seq > cur.last_seq) {
          streams[s.name] = { last_seq: s.state.last_seq, messages: s.state.messages, bytes: s.state.bytes };
        }
      }
    }
  }
  const api = jsz.reduce((n, j) => n + (j.api?.total ?? 0), 0);
  let conn;
  for (const m of monitors) {
    const cz = await httpJson(`${m}/connz?limit=4096`);
    for (const c of cz.connections ?? []) {
      if (c.name === `ice-node-${NODE}`) conn = { in_msgs: c.in_msgs, out_msgs: c.out_msgs };
    }
  }
  return { t: now(), api, streams, conn };
}

/** Counters once the derived writes have settled (outcome and snapshot streams stop moving). */
async function settledCounters(monitors) {
  let prev = await jsCounters(monitors);
  for (let i = 0; i < 50; i++) {
    await sleep(200);
    const cur = await jsCounters(monitors);
    const same = ['KV_ICE_OUTCOMES', 'KV_ICE_SNAPSHOTS', 'ICE_JOURNAL'].every(
      (s) => cur.streams[s]?.last_seq === prev.streams[s]?.last_seq,
    );
    if (same) return { ...cur, t: prev.t }; // the lease window ends where the writes did
    prev = cur;
  }
  return prev;
}

function opsBreakdown(a, b, intents) {
  const d = (name) => (b.streams[name]?.last_seq ?? 0) - (a.streams[name]?.last_seq ?? 0);
  const per = (x) => (intents > 0 ? round(x / intents, 3) : null);
  const journal = d('ICE_JOURNAL');
  const outcomes = d('KV_ICE_OUTCOMES');
  const snapshots = d('KV_ICE_SNAPSHOTS');
  const pending = d('KV_ICE_PENDING');
  const api = b.api - a.api;
  const leases = d('KV_ICE_LEASES');
  const seconds = (b.t - a.t) / 1000;
  return {
    intents,
    journal: per(journal),
    outcomes: per(outcomes),
    snapshots: per(snapshots),
    pending: per(pending),
    api_requests: per(api),
    total: per(journal + outcomes + snapshots + pending + api),
    lease_writes_per_s: round(leases / seconds),
    lease_writes_per_intent: per(leases),
    node_msgs_out: b.conn && a.conn ? per(b.conn.in_msgs - a.conn.in_msgs) : null,
    node_msgs_in: b.conn && a.conn ? per(b.conn.out_msgs - a.conn.out_msgs) : null,
    window_s: round(seconds, 2),
  };
}

async function leaderOf(monitors, stream) {
  for (const m of monitors) {
    const j = await httpJson(`${m}/jsz?accounts=true&streams=true`).catch(() => undefined);
    for (const a of j?.account_details ?? []) {
      for (const s of a.stream_detail ?? []) if (s.name === stream && s.cluster?.leader) return s.cluster.leader;
    }
  }
  return null;
}

/** Spawns a child that prints "ready"; `stop()` sends SIGTERM and returns its last JSON line. */
async function startChild(name, args) {
  const child = spawn(process.execPath, [...childFlags(), ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ICE_LOG_LEVEL: 'warn' },
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const exited = new Promise((r) => child.once('exit', r));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} not ready in 120 s:\n${out}`)), 120_000);
    const check = () => {
      if (/^ready$/m.test(out)) {
        clearTimeout(timer);
        child.stdout.off('data', check);
        resolve();
      }
    };
    child.stdout.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code}) before it was ready:\n${out}`));
    });
  });
  // a JSON line printed before "ready" (cluster-host: open and spawn times)
  let info;
  for (const line of out.split('\n')) {
    if (line.startsWith('{')) {
      try {
        info = JSON.parse(line);
      } catch {
        // not ours
      }
    }
  }
  let stopped;
  return {
    pid: child.pid,
    info,
    signal(sig) {
      if (child.exitCode === null && child.signalCode === null) child.kill(sig);
    },
    stop() {
      stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
          await exited;
          clearTimeout(t);
        }
        const last = out.trim().split('\n').pop();
        try {
          return JSON.parse(last);
        } catch {
          return undefined;
        }
      })();
      return stopped;
    },
  };
}

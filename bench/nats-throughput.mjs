// nats-throughput: the runtime served over NATS against raw NATS on the same server.
// The bench starts its own nats-server (JetStream on, loopback, free ports). Three processes
// in every measurement: nats-server, a serving child, and this process as the load generator.
//   - baseline: raw request/reply — a nats.js responder in a child process answers
//     `bench.echo` with a reply of an outcome's size; the requests carry a real intent.
//   - baseline: raw JetStream publish + ack (file storage) from this process.
//   - runtime, one node: a child running createRuntime({ transport: NatsTransport }) with
//     SQLite persistence; this process proposes CONFIGURE intents on
//     ice.intent.deployment.<id> and checks each outcome is executed.
//   - runtime, cluster mode (the headline): a child running createRuntime({ cluster: { servers,
//     replicas: 1 }, node }) — journal, snapshots, outcomes and leases in JetStream; the same
//     intents.
// Each at 1 and 64 in flight.
//
//   node bench/nats-throughput.mjs [--size tiny|full] [--duration ms] [--actors n] [--inflight n]
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import {
  BENCH_DIR,
  childFlags,
  closedLoop,
  emitResult,
  importDist,
  latencySummary,
  note,
  printTable,
  progress,
  round,
  runMain,
  sized,
  tempDir,
} from './lib/common.mjs';
import { address, configureIntent } from './lib/ice.mjs';

const TARGETS = { ratio_min: 0.5 };
const REPLY_BYTES = 330; // about the size of an executed outcome

runMain(async (opts) => {
  const durationMs = sized(opts, 'duration', 600, 5000);
  const warmupMs = sized(opts, 'warmup', 200, 1000);
  const nActors = sized(opts, 'actors', 128, 1024);
  const inflight = sized(opts, 'inflight', 64, 64);

  progress('starting nats-server');
  // The testing kit's launcher (ice-runtime/testing), from the build under measurement.
  const { startNatsServer } = await importDist('src/testing/index.js');
  const server = await startNatsServer();
  const children = [];
  const rows = [];
  const variants = {};
  let nc;
  try {
    nc = await connect({ servers: server.url, name: 'bench-load' });
    const serverVersion = nc.info?.version ?? 'unknown';

    const measure = async (label, key, concurrency, op) => {
      progress(label);
      await closedLoop({ concurrency, durationMs: warmupMs, op });
      const r = await closedLoop({ concurrency, durationMs, op });
      const lat = latencySummary(r.lat);
      const v = {
        variant: label,
        inflight: concurrency,
        ops: r.done,
        ops_s: round(r.opsPerSec),
        p50_ms: lat.p50_ms,
        p99_ms: lat.p99_ms,
        max_ms: lat.max_ms,
      };
      variants[key] = v;
      rows.push({ variant: label, ops: v.ops, 'ops/s': v.ops_s, 'p50 ms': v.p50_ms, 'p99 ms': v.p99_ms, 'max ms': v.max_ms });
      return v;
    };

    // ---- baseline 1: raw request/reply, responder in another process ----
    const responder = await startChild('nats-responder', [join(BENCH_DIR, 'lib/nats-responder.mjs'), server.url, String(REPLY_BYTES)]);
    children.push(responder);
    let k = 0;
    const echo = async () => {
      const m = await nc.request('bench.echo', JSON.stringify(configureIntent(k++, address(k % nActors))), { timeout: 10_000 });
      JSON.parse(m.string());
    };
    await measure('raw NATS request/reply, 1 in flight', 'rr1', 1, echo);
    await measure(`raw NATS request/reply, ${inflight} in flight`, 'rr64', inflight, echo);
    await responder.stop();

    // ---- baseline 2: raw JetStream publish + ack ----
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'BENCH', subjects: ['bench.js.>'], storage: 'file' });
    const js = jetstream(nc);
    const factLike = JSON.stringify({ pad: 'x'.repeat(480) });
    let j = 0;
    const pub = async () => {
      await js.publish(`bench.js.${j++ % 64}`, factLike);
    };
    await measure('raw JetStream publish+ack (file), 1 in flight', 'js1', 1, pub);
    await measure(`raw JetStream publish+ack (file), ${inflight} in flight`, 'js64', inflight, pub);
    await jsm.streams.delete('BENCH');

    // ---- the runtime over NATS ----
    const tmp = tempDir();
    let hostStats;
    try {
      progress(`runtime host: spawning ${nActors} actors`);
      const host = await startChild('nats-host', [join(BENCH_DIR, 'lib/nats-host.mjs'), server.url, tmp.dir, String(nActors)]);
      children.push(host);
      let n = 0;
      const propose = async (target) => {
        const intent = configureIntent(n++, target);
        const m = await nc.request(`ice.intent.${target.replace('/', '.')}`, JSON.stringify(intent), { timeout: 30_000 });
        const out = JSON.parse(m.string());
        if (out.status !== 'executed') throw new Error(`intent not executed: ${m.string()}`);
      };
      await measure('runtime over NATS, 1 in flight', 'rt1', 1, () => propose(address(n % nActors)));
      const perWorker = Math.max(1, Math.floor(nActors / inflight));
      const counters = new Array(inflight).fill(0);
      await measure(`runtime over NATS, ${inflight} in flight, ${nActors} actors`, 'rt64', inflight, (_i, w) =>
        propose(address((w + inflight * (counters[w]++ % perWorker)) % nActors)),
      );
      hostStats = await host.stop();
    } finally {
      tmp.cleanup();
    }

    // ---- the runtime in cluster mode: every acknowledged intent durable in JetStream ----
    {
      progress(`cluster node: spawning ${nActors} actors`);
      const host = await startChild('cluster-host', [join(BENCH_DIR, 'lib/cluster-host.mjs'), server.url, String(nActors)]);
      children.push(host);
      let n = 0;
      const propose = async (target) => {
        const intent = configureIntent(1_000_000 + n++, target);
        const m = await nc.request(`ice.intent.${target.replace('/', '.')}`, JSON.stringify(intent), { timeout: 30_000 });
        const out = JSON.parse(m.string());
        if (out.status !== 'executed') throw new Error(`intent not executed: ${m.string()}`);
      };
      await measure('runtime cluster mode (JetStream), 1 in flight', 'cl1', 1, () => propose(address(n % nActors)));
      const perWorker = Math.max(1, Math.floor(nActors / inflight));
      const counters = new Array(inflight).fill(0);
      await measure(`runtime cluster mode (JetStream), ${inflight} in flight, ${nActors} actors`, 'cl64', inflight, (_i, w) =>
        propose(address((w + inflight * (counters[w]++ % perWorker)) % nActors)),
      );
      await host.stop();
    }

    printTable(
      `NATS (nats-server ${serverVersion}, loopback; server, serving process and load generator share ${(await import('node:os')).cpus().length} cores)`,
      rows,
    );
    // Headline: cluster mode, where every acknowledged intent is durable in JetStream.
    const head = variants.cl64;
    const base = variants.rr64;
    const ratio = head.ops_s / base.ops_s;
    const stats = hostStats?.stats;
    note(
      `\nruntime over NATS, one node: persistence sqlite (WAL, synchronous=FULL, group commit): ${round(variants.rt64.ops_s / base.ops_s, 3)} × raw request/reply`,
    );
    note(`cluster mode: each turn is one JetStream message (its facts, snapshot and outcome), acknowledged before its reply`);
    if (stats) note(`host: ${stats.flushes} group commits, largest ${stats.maxBatch} turns`);
    note(
      `per intent the runtime makes 1 NATS round trip (proposer → intake; the authority is co-located and asked directly) and publishes 3 facts`,
    );
    note(`target: runtime ≥ ${TARGETS.ratio_min} × raw request/reply at ${inflight} in flight → ${round(ratio, 3)} ×`);
    await emitResult({
      bench: 'nats-throughput',
      size: opts.size,
      throughput: head.ops_s,
      baseline: base.ops_s,
      ratio: round(ratio, 4),
      p50_ms: head.p50_ms,
      p99_ms: head.p99_ms,
      unit: `executed intents/s in cluster mode (JetStream) at ${inflight} in flight (baseline: raw NATS request/reply/s at ${inflight} in flight, responder in another process)`,
      persistence: 'jetstream (cluster mode, R1)',
      sqlite_node_ratio: round(variants.rt64.ops_s / base.ops_s, 4),
      nats_server: serverVersion,
      actors: nActors,
      duration_ms: durationMs,
      variants,
      targets: TARGETS,
      meets: { ratio: ratio >= TARGETS.ratio_min },
    });
  } finally {
    await nc?.close().catch(() => {});
    for (const c of children) await c.stop().catch(() => {});
    await server.stop();
  }
});

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
    const timer = setTimeout(() => reject(new Error(`${name} not ready in 60 s:\n${out}`)), 60_000);
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
  let stopped;
  return {
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

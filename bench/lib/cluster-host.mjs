// Child process of nats-throughput: an ICE cluster node (what `ice start --cluster` runs:
// createRuntime({ cluster })): journal, snapshots, outcomes and leases in JetStream, with
// <replicas> replicas (3 on the bench's 3-server cluster, 1 on its single server). Spawns
// <actors> deployment actors and grants the bench proposer, prints "ready", serves intents
// until SIGTERM, then prints a JSON line and exits.
//   node bench/lib/cluster-host.mjs <natsUrl[,natsUrl...]> <actors> [replicas] [node]
import { importDist, benchLogger } from './common.mjs';
import { address, keepAlive } from './ice.mjs';

const [urls, actorsArg, replicasArg = '1', node = 'bench'] = process.argv.slice(2);
const { createRuntime } = await importDist('src/index.js');
const t0 = performance.now();
// Experiments only: BENCH_NATS_CONNECT_OPTIONS='{"noAsyncTraces":true}' gives the node a
// connection of its own with these nats.js options (otherwise createRuntime connects as
// `ice start --cluster` does).
const extra = process.env.BENCH_NATS_CONNECT_OPTIONS ? JSON.parse(process.env.BENCH_NATS_CONNECT_OPTIONS) : undefined;
let transport;
if (extra) {
  const { NatsTransport } = await importDist('src/transport/index.js');
  transport = await NatsTransport.connect({
    servers: urls.split(','),
    name: `ice-node-${node}`,
    maxReconnectAttempts: -1,
    reconnectTimeWaitMs: 250,
    connectOptions: extra,
  });
}
const rt = await createRuntime({
  cluster: { servers: urls.split(','), replicas: Number(replicasArg) },
  ...(transport ? { transport } : {}),
  node,
  passivateAfterMs: 0,
  logger: await benchLogger(),
});
await rt.grants.issue({ subject: 'agent:bench', scope: 'deployment/*:*', by: 'bench' });
const opened = performance.now();
const n = Number(actorsArg);
let next = 0;
await Promise.all(
  Array.from({ length: 32 }, async () => {
    while (next < n) {
      const i = next++;
      await rt.spawn(address(i), { service: `svc-${i}` });
    }
  }),
);
await rt.store.drain();
const spawned = performance.now();

// How long the store's calls on the intent path take, seen from the node: outcome lookups
// (a KV get each unless answered from memory) and commits (the turn's publish and ack, incl.
// waiting behind the chain's previous commit). Wrapped on the instance the Host and the
// Intake call; costs ~1 µs a call. SIGUSR2 starts a new window (the bench sends it before
// the measured variant); the figures are printed with the stats on SIGTERM.
const timed = {};
const reset = () => {
  for (const k of Object.keys(timed)) timed[k] = [];
};
for (const name of ['outcome', 'commit']) {
  const orig = rt.store[name].bind(rt.store);
  timed[name] = [];
  rt.store[name] = (...args) => {
    const t = performance.now();
    const p = orig(...args);
    void p.then(
      () => timed[name].push(performance.now() - t),
      () => {},
    );
    return p;
  };
}
process.on('SIGUSR2', reset);
const summary = () => {
  const out = {};
  for (const [k, xs] of Object.entries(timed)) {
    const s = Float64Array.from(xs).sort();
    const at = (p) => (s.length ? Math.round(s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] * 1000) / 1000 : null);
    out[k] = {
      calls: s.length,
      mean_ms: s.length ? Math.round((s.reduce((a, b) => a + b, 0) / s.length) * 1000) / 1000 : null,
      p50_ms: at(50),
      p99_ms: at(99),
    };
  }
  return out;
};
process.stdout.write(`${JSON.stringify({ open_ms: Math.round(opened - t0), spawn_ms: Math.round(spawned - opened) })}\n`);
process.stdout.write('ready\n');
process.once('SIGTERM', async () => {
  const stats = rt.stats();
  const store = summary();
  await keepAlive(rt.stop());
  process.stdout.write(JSON.stringify({ stats, store }) + '\n');
  process.exit(0);
});

// Child process of nats-throughput: an ICE cluster node (what `ice start --cluster` runs:
// createRuntime({ cluster })): journal, snapshots, outcomes and leases in JetStream (R1 on the
// bench's one server). Spawns <actors> deployment actors and grants the bench proposer,
// prints "ready", serves intents until SIGTERM, then prints a JSON line and exits.
//   node bench/lib/cluster-host.mjs <natsUrl> <actors>
import { importDist, benchLogger } from './common.mjs';
import { address, keepAlive } from './ice.mjs';

const [url, actorsArg] = process.argv.slice(2);
const { createRuntime } = await importDist('src/index.js');
const rt = await createRuntime({
  cluster: { servers: url, replicas: 1 },
  node: 'bench',
  passivateAfterMs: 0,
  logger: await benchLogger(),
});
await rt.grants.issue({ subject: 'agent:bench', scope: 'deployment/*:*', by: 'bench' });
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
process.stdout.write('ready\n');
process.once('SIGTERM', async () => {
  const stats = rt.stats();
  await keepAlive(rt.stop());
  process.stdout.write(JSON.stringify({ stats }) + '\n');
  process.exit(0);
});

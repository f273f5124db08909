// Child process of nats-throughput: an ICE cluster node (`ice start --cluster`): journal,
// snapshots, outcomes and leases in JetStream (R1 on the bench's one server). Spawns <actors>
// deployment actors and grants the bench proposer, prints "ready", serves intents until
// SIGTERM, then prints a JSON line and exits.
//   node bench/lib/cluster-host.mjs <natsUrl> <actors>
import { importDist } from './common.mjs';
import { address } from './ice.mjs';

const [url, actorsArg] = process.argv.slice(2);
const { startClusterNode } = await importDist('src/cluster/index.js');
const node = await startClusterNode({ servers: url, node: 'bench', replicas: 1, passivateAfterMs: 0 });
await node.grants.issue({ subject: 'agent:bench', scope: 'deployment/*:*', by: 'bench' });
const n = Number(actorsArg);
let next = 0;
await Promise.all(
  Array.from({ length: 32 }, async () => {
    while (next < n) {
      const i = next++;
      await node.spawn(address(i), { service: `svc-${i}` });
    }
  }),
);
process.stdout.write('ready\n');
process.once('SIGTERM', async () => {
  const leases = node.leases.held().length;
  await node.stop();
  process.stdout.write(JSON.stringify({ leases }) + '\n');
  process.exit(0);
});

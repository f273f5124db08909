// Child process of nats-throughput: an ICE runtime whose transport is NATS
// (createRuntime({ transport: await NatsTransport.connect({ servers }) })), persisting to
// SQLite in <dataDir> (one node; cluster-host.mjs is the JetStream one). Spawns <actors> deployment
// actors and grants the bench proposer, prints "ready", and serves intents on
// ice.intent.<kind>.<id> until SIGTERM; then prints its stats as JSON and exits.
//   node bench/lib/nats-host.mjs <natsUrl> <dataDir> <actors>
import { importDist } from './common.mjs';
import { grantAll, openRuntime, spawnActors } from './ice.mjs';

const [url, dataDir, actorsArg] = process.argv.slice(2);
const { NatsTransport } = await importDist('src/transport/index.js');
const transport = await NatsTransport.connect({
  servers: url,
  name: 'bench-ice-host',
  onHandlerError: (err, subject) => process.stderr.write(`handler error on ${subject}: ${err.message}\n`),
});
const rt = await openRuntime(dataDir, { transport });
await grantAll(rt);
await spawnActors(rt, Number(actorsArg));
await transport.flush();
process.stdout.write('ready\n');
process.once('SIGTERM', async () => {
  const stats = rt.stats();
  await rt.stop();
  await transport.close();
  process.stdout.write(JSON.stringify({ stats, serverVersion: transport.serverVersion }) + '\n');
  process.exit(0);
});

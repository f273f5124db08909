// Child process of nats-throughput (baseline): a raw nats.js responder. Answers every
// request on `bench.echo` (queue group `bench`) with a fixed reply of an outcome's size.
// Prints "ready" once subscribed; exits on SIGTERM after draining.
//   node bench/lib/nats-responder.mjs <natsUrl> <replyBytes>
import { connect } from '@nats-io/transport-node';

const [url, replyBytesArg] = process.argv.slice(2);
const reply = JSON.stringify({ v: 1, status: 'executed', pad: 'x'.repeat(Math.max(0, Number(replyBytesArg) - 40)) });
const nc = await connect({ servers: url, name: 'bench-responder' });
let n = 0;
nc.subscribe('bench.echo', {
  queue: 'bench',
  callback: (err, m) => {
    if (err) return;
    // decode like a real service would, then answer
    JSON.parse(m.string());
    n++;
    m.respond(reply);
  },
});
await nc.flush();
process.stdout.write('ready\n');
process.once('SIGTERM', async () => {
  await nc.drain();
  process.stdout.write(JSON.stringify({ answered: n }) + '\n');
  process.exit(0);
});

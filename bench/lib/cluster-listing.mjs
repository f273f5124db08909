// What a page of the actor listing costs in cluster mode (docs/distributed.md, "Listing
// actors"): N snapshot records in ICE_SNAPSHOTS on one nats-server of its own, then pages
// through the runtime's JetStreamStore. Not part of the suite (the records are written
// straight into the bucket, without journal messages: only the listing is measured).
//
//   node bench/lib/cluster-listing.mjs [N=100000] [quick: skip the page that reads every value]
import { connect } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { importDist, now, round } from './common.mjs';

const n = Number(process.argv[2] ?? 100_000);
const { startNatsServer } = await importDist('src/testing/index.js');
const { JetStreamStore } = await importDist('src/store/jetstream/index.js');
const srv = await startNatsServer();
const nc = await connect({ servers: srv.url });
try {
  const store = await JetStreamStore.open(nc);
  const kv = await new Kvm(nc).open('ICE_SNAPSHOTS');
  const at = new Date().toISOString();
  const t0 = now();
  for (let i = 0; i < n; i += 1000) {
    await Promise.all(
      Array.from({ length: Math.min(1000, n - i) }, (_, j) => {
        const actor = `deployment/d${i + j}`;
        const rec = {
          v: 1,
          actor,
          kind: 'deployment',
          seq: 1,
          status: 'active',
          state: 'draft',
          snapshot: {},
          updatedAt: at,
          hash: 'h',
          streamSeq: 1,
        };
        return kv.put(`deployment.d${i + j}`, JSON.stringify(rec));
      }),
    );
  }
  const writeMs = now() - t0;
  console.log(JSON.stringify({ n, write_ms: round(writeMs) }));
  const time = async (what, q) => {
    const a = now();
    const page = await store.actorsPage({ limit: 100, ...q });
    const r = { what, ms: round(now() - a, 1), rows: page.rows.length };
    console.log(JSON.stringify(r));
    return r;
  };
  const out = [];
  out.push(await time('first page of 100 (lists every key)', {}));
  out.push(await time('a page continuing it (reuses the listing)', { after: 'deployment/d5' }));
  out.push(await time('first page of a kind', { kind: 'deployment' }));
  out.push(await time('first page in a state every actor is in', { state: 'draft' }));
  if (process.argv[3] !== 'quick') out.push(await time('a status no actor has (reads every value)', { status: 'failed' }));
  {
    const a = now();
    let pages = 0;
    for (let after; ; pages++) {
      const page = await store.actorsPage({ limit: 1000, ...(after ? { after } : {}) });
      if (!(after = page.next)) break;
    }
    out.push({ what: `every actor, pages of 1000 (${pages + 1} pages)`, ms: round(now() - a), rows: n });
  }
  console.log(JSON.stringify({ n, write_ms: round(writeMs), pages: out }, null, 1));
  await store.close();
} finally {
  await nc.close();
  await srv.stop();
}

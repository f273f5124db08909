// Probe: does nats-server lose, duplicate or diverge fenced appends of an R3 stream when one
// server is cut off from the other two (routes partitioned, its clients still connected)?
//
//   npm run build && node scripts/probe-partition.mjs [--writers 6] [--rounds 8] [--cut 5000] [--gap 3000]
//     [--target cycle|leader|follower|none] [--json FILE]
//
// One writer per subject, each on its own connection straight to one server (writer w → server
// w % 3), appending sequentially the way the journal does: expect.lastSubjectSequence = the
// seq of its last acknowledged message, msgID `<subject>@<expected>`; a publish without an
// answer is repeated unchanged (same msgID) until it is answered. With one writer per subject
// nothing can claim a position twice unless the server stores something twice. Round r cuts
// server r % 3 off for --cut ms (--target leader: the
// stream leader's server; follower: a server that is not the leader; none: no cut, the control), heals, waits --gap ms. Afterwards every replica is read on its
// own (direct gets on a connection to that server: a queue group answers locally) and compared
// with what the writers were told.
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { startNatsCluster } from '../dist/src/testing/index.js';

const { values } = parseArgs({
  options: {
    writers: { type: 'string', default: '6' },
    rounds: { type: 'string', default: '8' },
    cut: { type: 'string', default: '5000' },
    gap: { type: 'string', default: '3000' },
    target: { type: 'string', default: 'cycle' },
    json: { type: 'string' },
  },
});
const WRITERS = Number(values.writers);
const ROUNDS = Number(values.rounds);
const CUT = Number(values.cut);
const GAP = Number(values.gap);
const STREAM = 'PROBE';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const log = (...a) => console.log(`[${String(Date.now() - t0).padStart(6)} ms]`, ...a);

const cluster = await startNatsCluster(3, { proxiedRoutes: true });
const conns = [];
try {
  const admin = await connect({ servers: cluster.urls });
  conns.push(admin);
  const jsm = await jetstreamManager(admin);
  await jsm.streams.add({ name: STREAM, subjects: ['p.>'], num_replicas: 3, duplicate_window: 600e9, allow_direct: true });

  const acked = []; // { subject, n, seq, writer, duplicate }
  const anomalies = [];
  let stop = false;
  const writer = async (w) => {
    const nc = await connect({ servers: cluster.urls[w % 3], maxReconnectAttempts: -1, reconnectTimeWait: 200 });
    conns.push(nc);
    const js = jetstream(nc, { timeout: 2000 });
    const wm = await jetstreamManager(nc, { timeout: 2000 });
    const subject = `p.w${w}`;
    let pos = 0;
    let n = 1;
    while (!stop) {
      const body = JSON.stringify({ w, n });
      const msgID = `${subject}@${pos}`;
      let ack;
      for (let attempt = 0; !ack; attempt++) {
        try {
          ack = await js.publish(subject, body, { msgID, expect: { lastSubjectSequence: pos }, timeout: 2000 });
        } catch (e) {
          const code = e?.api_error?.err_code ?? e?.code;
          if (code === 10071) {
            const next = await wm.streams.getMessage(STREAM, { seq: pos + 1, next_by_subj: subject }).catch(() => null);
            const got = next ? next.json() : undefined;
            if (got?.n === n) {
              ack = { seq: next.seq, duplicate: true, viaRead: true };
              break;
            }
            anomalies.push({
              at: Date.now() - t0,
              subject,
              n,
              pos,
              what: 'wrong last sequence and the next message is not ours',
              next: got,
              nextSeq: next?.seq,
            });
            const last = await wm.streams.getMessage(STREAM, { last_by_subj: subject }).catch(() => null);
            pos = last?.seq ?? pos;
            n = (last?.json().n ?? n - 1) + 1;
            break;
          }
          if (stop) return;
          await sleep(100); // no answer: repeat the same publish (same msgID), as the store does
        }
      }
      if (!ack) continue;
      if (ack.duplicate && !ack.viaRead) {
        const there = await wm.streams.getMessage(STREAM, { seq: pos + 1, next_by_subj: subject }).catch(() => null);
        if (there?.json().n !== n)
          anomalies.push({
            at: Date.now() - t0,
            subject,
            n,
            pos,
            what: 'duplicate ack, the message there is not ours',
            there: there?.json(),
            thereSeq: there?.seq,
            ackSeq: ack.seq,
          });
      }
      acked.push({ subject, n, seq: ack.seq, writer: w, duplicate: !!ack.duplicate, at: Date.now() - t0 });
      pos = ack.seq;
      n++;
    }
  };
  const running = Array.from({ length: WRITERS }, (_, w) => writer(w));
  await sleep(2000);
  for (let r = 0; r < ROUNDS; r++) {
    let leader;
    for (let k = 0; k < 20 && !leader; k++) {
      leader = (await jsm.streams.info(STREAM).catch(() => null))?.cluster?.leader;
      if (!leader) await sleep(500);
    }
    const li = cluster.servers.findIndex((s) => s.serverName === leader);
    const i = values.target === 'leader' ? li : values.target === 'follower' ? (li + 1 + (r % 2)) % 3 : r % 3;
    if (values.target === 'none') {
      log(`round ${r}: no cut (control; leader ${leader}, acked so far ${acked.length})`);
      await sleep(CUT + GAP);
      continue;
    }
    log(`round ${r}: cut server ${i} (${cluster.servers[i].serverName}) off; stream leader ${leader} (acked so far ${acked.length})`);
    cluster.partition(i);
    await sleep(CUT);
    cluster.heal();
    log(`round ${r}: healed (acked so far ${acked.length})`);
    await sleep(GAP);
  }
  stop = true;
  await Promise.race([Promise.allSettled(running), sleep(10_000)]);
  log(`writers stopped: ${acked.length} acked, ${anomalies.length} anomalies`);
  await cluster.settled(60_000).catch((e) => log(`not settled: ${e.message}`));
  await sleep(2000);
  const states = await cluster.streamStates();
  for (const s of states.filter((x) => x.stream === STREAM))
    log(`${s.server} (leader ${s.leader}): ${s.messages} messages, last seq ${s.lastSeq}`);

  // each replica on its own: made the stream leader in turn (leader stepdowns until it is), then
  // read whole through STREAM.MSG.GET, which only the leader answers, from its own store
  // (direct gets are answered by any replica, so they mix replicas)
  const replicas = [];
  for (let i = 0; i < 3; i++) {
    const name = cluster.servers[i].serverName;
    let leader;
    for (let k = 0; k < 30; k++) {
      leader = (await jsm.streams.info(STREAM).catch(() => null))?.cluster?.leader;
      if (leader === name) break;
      if (leader) await admin.request(`$JS.API.STREAM.LEADER.STEPDOWN.${STREAM}`, '', { timeout: 5000 }).catch(() => {});
      await sleep(1500);
    }
    if (leader !== name) {
      log(`${name} did not become the stream leader; its replica is not read`);
      continue;
    }
    const last = (await jsm.streams.info(STREAM)).state.last_seq;
    const msgs = new Map();
    for (let seq = 1; seq <= last; seq++) {
      const g = await jsm.streams.getMessage(STREAM, { seq }).catch(() => null);
      if (g) msgs.set(seq, { subject: g.subject, ...g.json() });
    }
    const now = (await jsm.streams.info(STREAM)).cluster?.leader;
    if (now !== name) log(`the leader changed while ${name} was read (now ${now}): its reading may mix replicas`);
    log(`${name} read as the stream leader: ${msgs.size} messages, last seq ${last}`);
    replicas.push({ server: name, msgs });
  }
  // per replica: per subject, the n's in stream order
  const report = { acked: acked.length, anomalies, states, replicas: [] };
  for (const r of replicas) {
    const perSubject = new Map();
    for (const [seq, m] of [...r.msgs].sort((a, b) => a[0] - b[0])) {
      const l = perSubject.get(m.subject) ?? [];
      l.push({ seq, n: m.n });
      perSubject.set(m.subject, l);
    }
    const dups = [];
    const gaps = [];
    for (const [subject, l] of perSubject) {
      for (let k = 1; k < l.length; k++) {
        if (l[k].n <= l[k - 1].n) dups.push({ subject, first: l.find((x) => x.n === l[k].n)?.seq, again: l[k].seq, n: l[k].n });
        else if (l[k].n !== l[k - 1].n + 1) gaps.push({ subject, after: l[k - 1], next: l[k] });
      }
    }
    const keys = new Set([...r.msgs.values()].map((m) => `${m.subject}:${m.n}`));
    const missing = acked.filter((a) => !keys.has(`${a.subject}:${a.n}`));
    const lost = acked.filter((a) => {
      const m = r.msgs.get(a.seq);
      return !m || m.subject !== a.subject || m.n !== a.n;
    });
    report.replicas.push({
      server: r.server,
      messages: r.msgs.size,
      dups,
      gaps,
      ackedNotAtItsSeq: lost.length,
      ackedMissing: missing.length,
      missingExamples: missing.slice(0, 5),
      lostExamples: lost.slice(0, 5).map((a) => ({ ...a, there: r.msgs.get(a.seq) })),
    });
  }
  // replicas compared seq by seq
  const differ = [];
  const maxSeq = Math.max(...replicas.map((r) => Math.max(0, ...r.msgs.keys())));
  for (let seq = 1; seq <= maxSeq; seq++) {
    const v = replicas.map((r) => JSON.stringify(r.msgs.get(seq) ?? null));
    if (new Set(v).size > 1) differ.push({ seq, values: v });
  }
  report.replicasDifferAt = differ.length;
  // the messages in stream order, seqs aside: a replica that lacks or repeats one is shifted
  const order = replicas.map((r) => [...r.msgs].sort((a, b) => a[0] - b[0]).map(([seq, m]) => ({ seq, key: `${m.subject}:${m.n}` })));
  for (let a = 1; a < order.length; a++) {
    const x = order[0];
    const y = order[a];
    let k = 0;
    while (k < x.length && k < y.length && x[k].key === y[k].key) k++;
    const ySet = new Set(y.map((e) => e.key));
    const xSet = new Set(x.map((e) => e.key));
    const onlyX = x.filter((e) => !ySet.has(e.key));
    const onlyY = y.filter((e) => !xSet.has(e.key));
    const line = `${replicas[0].server} vs ${replicas[a].server}: same messages in the same order up to seq ${k}; only in the first ${JSON.stringify(onlyX.slice(0, 5))} (${onlyX.length}), only in the second ${JSON.stringify(onlyY.slice(0, 5))} (${onlyY.length}); at the first difference ${JSON.stringify(x.slice(k, k + 3))} vs ${JSON.stringify(y.slice(k, k + 3))}`;
    log(line);
    (report.orderComparisons ??= []).push(line);
  }
  report.firstDifferences = differ.slice(0, 8);
  for (const r of report.replicas)
    log(
      `${r.server}: ${r.messages} messages; stored twice ${r.dups.length}, gaps ${r.gaps.length}, acked message not at its seq ${r.ackedNotAtItsSeq}, acked message not there at all ${r.ackedMissing}`,
      JSON.stringify({ dups: r.dups.slice(0, 4), gaps: r.gaps.slice(0, 4), lost: r.lostExamples, missing: r.missingExamples }),
    );
  log(`replicas differ at ${differ.length} seqs`, JSON.stringify(differ.slice(0, 4)));
  log(`anomalies seen by writers: ${anomalies.length}`, JSON.stringify(anomalies.slice(0, 6)));
  if (values.json) {
    report.logs = cluster.servers.map((s) => ({
      server: s.serverName,
      log: s
        .log()
        .split('\n')
        .filter((l) => /leader|Catchup|catchup|truncat|Resetting|mismatch|WRN|ERR|lost/i.test(l))
        .slice(-400),
    }));
    writeFileSync(values.json, JSON.stringify(report, null, 2));
  }
} finally {
  for (const nc of conns) await nc.close().catch(() => {});
  await cluster.stopAll();
}

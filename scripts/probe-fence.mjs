#!/usr/bin/env node
// Probe: when does nats-server enforce `Nats-Expected-Last-Subject-Sequence` (js.publish
// `expect.lastSubjectSequence`, KV `update(key, value, revision)`) and when does it not?
//
//   node scripts/probe-fence.mjs [--runs N] [--mode r1|r3|all] [--fault-runs M] [--only a,b] [--json FILE]
//
//   --runs N        trials per fast experiment (default 300)
//   --fault-runs M  trials per stepdown experiment (default runs/15, 6..20); kill/catch-up ones get M/2
//                   (each costs a 4-9 s election)
//   --only a,b      run only experiments whose name starts with one of these (e.g. r3.race,r3.kv)
//   --json FILE     also write the raw counters
//   --max-minutes   hard stop (default 40). Default settings take ~12 min on 2 vCPU.
//
// Starts its own nats-servers (one standalone for r1, a 3-node cluster for r3) on free loopback
// ports in temp dirs through the project's test launcher (dist/src/testing/nats-server.js; run
// `npm run build` first), runs every experiment, prints a table, and kills the servers at the end.
// It never connects to 127.0.0.1:4222.
//
// A trial: a fresh subject gets one seed message (stream seq E); writers X and Y then append to
// it, both expecting last subject sequence E. "both" = both appends are stored (checked by
// reading the subject back after the trial, not trusted from the acks). Each writer that got a
// positive ack immediately reads the first message on the subject after E
// (`jsm.streams.getMessage(stream, { next_by_subj: subject, seq: E + 1 })`, answered by the stream
// leader) and decides "I won" iff that message has its ack's seq; the same read through direct
// get (any replica may answer) is recorded too. Fault rows add stepdowns, leader SIGKILLs and a
// follower catching up; `r3.restart.*` rows SIGKILL and restart every server after writing and
// check whether the restarted replicas store old log entries a second time. See docs/nats-fencing.md.
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, JetStreamApiError } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';

const launcherUrl = new URL('../dist/src/testing/nats-server.js', import.meta.url);
let launcher;
try {
  launcher = await import(launcherUrl.href);
} catch (e) {
  console.error(`cannot load ${launcherUrl.pathname} (${e.message}); run \`npm run build\` in /work/main first`);
  process.exit(2);
}
const { startNatsServer, startNatsCluster } = launcher;

// ---------------------------------------------------------------------------------------------
// arguments

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const RUNS = Math.max(1, Number(opt('runs', '300')));
const FAULT_RUNS = Math.max(1, Number(opt('fault-runs', String(Math.min(20, Math.max(6, Math.round(RUNS / 15)))))));
const MODE = opt('mode', 'all');
const ONLY = opt('only', '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const JSON_OUT = opt('json', '');
if (!['r1', 'r3', 'all'].includes(MODE)) {
  console.error('--mode must be r1, r3 or all');
  process.exit(2);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const WRONG_LAST = 10071;

// hard stop: the probe must end by itself even if a server wedges
const HARD_LIMIT_MS = Number(opt('max-minutes', '40')) * 60_000;
const hardTimer = setTimeout(() => {
  console.error(`probe-fence: hard time limit reached, aborting`);
  void cleanup().finally(() => process.exit(3));
}, HARD_LIMIT_MS);
hardTimer.unref();

// ---------------------------------------------------------------------------------------------
// environment: servers, one connection per server

const env = { servers: [], conns: [], js: [], jsm: [], cluster: undefined, single: undefined };
const results = [];

async function cleanup() {
  for (const nc of env.conns) await nc?.close().catch(() => {});
  env.conns = [];
  if (env.cluster) await env.cluster.stopAll().catch(() => {});
  if (env.single) await env.single.stop().catch(() => {});
  env.cluster = env.single = undefined;
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    void cleanup().finally(() => process.exit(130));
  });
}

/** Two connections per server: index i and i + n both enter the cluster at server i. */
async function openConns(servers, perServer = 2) {
  env.servers = servers;
  env.conns = [];
  env.connServer = [];
  for (let k = 0; k < perServer; k++) {
    for (const [si, s] of servers.entries()) {
      // pinned to one server: this writer's requests enter the cluster there
      const nc = await connect({
        servers: s.url,
        noRandomize: true,
        ignoreClusterUpdates: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 50,
        name: `probe-${s.serverName}-${k}`,
      });
      env.conns.push(nc);
      env.connServer.push(si);
    }
  }
  env.js = env.conns.map((nc) => jetstream(nc, { timeout: 5000 }));
  env.jsm = await Promise.all(env.conns.map((nc) => jetstreamManager(nc, { timeout: 3000 })));
}

/** A jsm whose server is up (the first one that answers). */
async function anyJsm(fn) {
  let last;
  for (let round = 0; round < 100; round++) {
    for (let i = 0; i < env.jsm.length; i++) {
      if (!env.servers[env.connServer[i]].running) continue;
      try {
        return await fn(env.jsm[i], i);
      } catch (e) {
        last = e;
      }
    }
    await sleep(100);
  }
  throw last ?? new Error('no server answered');
}

const serverIndex = (name) => env.servers.findIndex((s) => s.serverName === name);

/** Waits until the stream has a leader and (for R3) every replica is current; returns the leader index. */
async function waitStable(stream, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const si = await anyJsm((jsm) => jsm.streams.info(stream));
      const c = si.cluster;
      if (!c) return 0;
      const reps = c.replicas ?? [];
      const want = (si.config.num_replicas ?? 1) - 1;
      if (c.leader && reps.length === want && reps.every((r) => r.current && !r.offline)) return serverIndex(c.leader);
    } catch {
      // keep polling
    }
    if (Date.now() > deadline) throw new Error(`stream ${stream} not stable after ${timeoutMs} ms`);
    await sleep(50);
  }
}

async function stepdown(stream, viaIdx) {
  const nc = env.conns[viaIdx];
  return nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${stream}`, '', { timeout: 3000 }).then(
    (m) => m.json(),
    (e) => ({ error: e.message }),
  );
}

// ---------------------------------------------------------------------------------------------
// publishing and reading

function errInfo(e) {
  if (e instanceof JetStreamApiError) return { code: e.code, msg: e.message };
  return { code: 0, msg: e?.message ?? String(e) };
}

/** One publish attempt; never throws. */
async function pubOnce(i, subject, payload, o) {
  const opts = { timeout: o.timeoutMs ?? 5000 };
  if (o.expectKind === 'stream') opts.expect = { lastSequence: o.expected };
  else if (o.expected > 0 || o.expectZero) opts.expect = { lastSubjectSequence: o.expected };
  if (o.msgID) opts.msgID = o.msgID;
  try {
    const pa = await env.js[i].publish(subject, payload, opts);
    return { ok: true, seq: pa.seq, duplicate: pa.duplicate };
  } catch (e) {
    return { ok: false, ...errInfo(e) };
  }
}

/**
 * Retries transient failures (timeouts, no responders while the stream has no leader) until an
 * ack or a definite refusal. The short pause makes a retrying writer hit a new leader as soon
 * as it starts answering, the moment its state is most likely to lag.
 */
async function pubDefinite(i, subject, mkPayload, o, deadlineMs = 40_000) {
  const deadline = Date.now() + deadlineMs;
  let attempts = 0;
  for (;;) {
    attempts++;
    const r = await pubOnce(i, subject, mkPayload(attempts), { ...o, timeoutMs: 1000 });
    if (r.ok || r.code === WRONG_LAST || Date.now() > deadline) return { ...r, attempts };
    await sleep(2);
  }
}

/** The first message on `subject` with seq >= `from`, via the stream leader (STREAM.MSG.GET) or direct get. */
async function firstFrom(i, stream, subject, from, direct) {
  const q = { next_by_subj: subject, seq: from };
  const m = direct ? await env.jsm[i].direct.getMessage(stream, q) : await env.jsm[i].streams.getMessage(stream, q);
  return m ? { seq: m.seq, data: m.string(), expHdr: m.header?.get('Nats-Expected-Last-Subject-Sequence') ?? '' } : null;
}

/**
 * Read-back as the protocol would do it: retry a missing answer for up to ~1 s. `notFound` counts
 * answers "no message" (a server that had not applied the writer's own acked message yet: a
 * stale read); `errors` counts timeouts / no responders (no leader at that moment).
 */
async function readBack(i, stream, subject, from, direct) {
  let retries = 0;
  let notFound = 0;
  let errors = 0;
  for (;;) {
    try {
      const m = await firstFrom(i, stream, subject, from, direct);
      if (m) return { m, retries, notFound, errors };
      notFound++;
    } catch {
      errors++;
    }
    if (retries >= 40) return { m: null, retries, notFound, errors };
    retries++;
    await sleep(25);
  }
}

/** Everything stored on the subject after `after` (ground truth, read from the leader once stable). */
async function enumerate(stream, subject, after) {
  return anyJsm(async (jsm) => {
    const out = [];
    let from = after + 1;
    for (;;) {
      const m = await jsm.streams.getMessage(stream, { next_by_subj: subject, seq: from });
      if (!m) return out;
      out.push({ seq: m.seq, data: m.string() });
      from = m.seq + 1;
    }
  });
}

// ---------------------------------------------------------------------------------------------
// one experiment

function newStats(name, desc) {
  return {
    name,
    desc,
    trials: 0,
    both: 0, // both writers' appends stored
    one: 0,
    none: 0,
    selfDup: 0, // one writer stored twice (a retry after a lost ack)
    dupAck: 0, // acks with duplicate: true (msgID)
    ackBoth: 0, // both writers got a positive, non-duplicate ack
    winnerDropped: 0, // history limit removed the first append (KV history 1)
    rb: { reads: 0, correct: 0, wrong: 0, unknown: 0, retried: 0, staleNotFound: 0, exactlyOneWinner: 0, twoWinners: 0, noWinner: 0 },
    rbDirect: { reads: 0, correct: 0, wrong: 0, unknown: 0, retried: 0, staleNotFound: 0 },
    rbAfterFault: { reads: 0, sawOwn: 0, sawOther: 0, unknown: 0, retried: 0, staleNotFound: 0 },
    storedExpHdr: undefined,
    bothAt: [], // first few trials with both stored, for the log
    errors: {},
    ms: 0,
  };
}

/**
 * spec:
 *  stream, subjPrefix, writers: [i, j] connection indices (or functions of the leader index),
 *  spacingMs, msgId: 'none'|'unique'|'position', kv: { bucket, handles } for KV update,
 *  expectKind: 'subject'|'stream', zero: true (E = 0, no seed), sequential: X acked before Y,
 *  fault: undefined|'stepdown-before'|'stepdown-between'|'stepdown-after-ack'|'kill-leader-after-ack'|'kill-follower-restart'
 *  direct: also read back through direct get
 */
async function runExperiment(name, desc, spec, runs) {
  if (ONLY.length && !ONLY.some((o) => name.startsWith(o))) return;
  const st = newStats(name, desc);
  const t0 = Date.now();
  let leader = await waitStable(spec.stream);
  process.stdout.write(`${name}: `);
  for (let t = 0; t < runs; t++) {
    const subject = spec.kv ? `$KV.${spec.kv.bucket}.${spec.subjPrefix}${t}` : `${spec.subjPrefix}.${t}`;
    const [wx, wy] = spec.writers(leader);
    // seed
    let E = 0;
    if (!spec.zero) {
      const s = await pubDefinite(wx, subject, () => JSON.stringify({ w: 'seed' }), { expected: 0, expectKind: 'none' });
      if (!s.ok) throw new Error(`${name}: seed publish failed: ${s.msg}`);
      E = s.seq;
    }
    const msgIdFor = (w) => (spec.msgId === 'unique' ? `${w}-${name}-${t}` : spec.msgId === 'position' ? `${subject}@${E}` : undefined);
    const mk = (w) => (a) => JSON.stringify({ w, t, a });
    const po = (w) => ({ expected: E, expectKind: spec.expectKind ?? 'subject', expectZero: !!spec.zero, msgID: msgIdFor(w) });
    const write = (i, w) => {
      if (spec.kv && spec.msgId === 'none') {
        // the KV API itself: update(key, value, revision)
        const kv = spec.kv.handles[i];
        const key = subject.slice(`$KV.${spec.kv.bucket}.`.length);
        return kv.update(key, mk(w)(1), E).then(
          (seq) => ({ ok: true, seq, duplicate: false, attempts: 1 }),
          (e) => ({ ok: false, ...errInfo(e), attempts: 1 }),
        );
      }
      return spec.fault ? pubDefinite(i, subject, mk(w), po(w)) : pubOnce(i, subject, mk(w)(1), po(w));
    };

    // readback after own ack, the way a writer would do it
    const withReadBack = (i, p) =>
      p.then(async (r) => {
        if (!r.ok || r.duplicate) return { r };
        // both reads at once, right after the ack (the direct get is answered by any replica)
        const [rb, rbd] = await Promise.all([
          readBack(i, spec.stream, subject, E + 1, false),
          spec.direct ? readBack(i, spec.stream, subject, E + 1, true) : undefined,
        ]);
        return { r, rb, rbd };
      });

    let px, py;
    const f = spec.fault;
    if (f === 'stepdown-before') {
      void stepdown(spec.stream, wx);
      await sleep(spec.faultDelayMs ?? 0);
    }
    if (spec.sequential) {
      const rx = await withReadBack(wx, write(wx, 'X'));
      px = Promise.resolve(rx);
      if (f === 'stepdown-after-ack') await stepdown(spec.stream, wy);
      if (f === 'kill-leader-after-ack') await env.servers[leader].kill('SIGKILL');
      py = withReadBack(wy, write(wy, 'Y'));
      // X's writer reads again right after the leader change (served by whichever leader answers first)
      if (rx.r.ok && !rx.r.duplicate) {
        const again = await readBack(wx, spec.stream, subject, E + 1, false);
        const a = st.rbAfterFault;
        a.reads++;
        if (again.retries > 0) a.retried++;
        if (again.notFound > 0) a.staleNotFound++;
        if (!again.m) a.unknown++;
        else if (again.m.seq === rx.r.seq) a.sawOwn++;
        else a.sawOther++;
      }
    } else {
      px = withReadBack(wx, write(wx, 'X'));
      if (f === 'stepdown-between') void stepdown(spec.stream, wy);
      if (spec.spacingMs > 0) await sleep(spec.spacingMs);
      py = withReadBack(wy, write(wy, 'Y'));
    }
    const [ox, oy] = await Promise.all([px, py]);
    if (f === 'kill-leader-after-ack') await env.servers[leader].restart();

    // ground truth
    if (f) leader = await waitStable(spec.stream, 60_000);
    const stored = await enumerate(spec.stream, subject, E);
    const writersStored = stored.map((m) => JSON.parse(m.data).w);
    const distinct = new Set(writersStored);
    st.trials++;
    if (distinct.size >= 2) st.both++;
    else if (distinct.size === 1) st.one++;
    else st.none++;
    if (writersStored.length > distinct.size) st.selfDup++;
    if (distinct.size >= 2 && st.bothAt.length < 5)
      st.bothAt.push({ t, E, stored: stored.map((m) => `${JSON.parse(m.data).w}@${m.seq}`).join(' ') });
    for (const o of [ox, oy]) {
      if (o.r.ok && o.r.duplicate) st.dupAck++;
      if (!o.r.ok) st.errors[o.r.code || o.r.msg] = (st.errors[o.r.code || o.r.msg] ?? 0) + 1;
    }
    if (ox.r.ok && !ox.r.duplicate && oy.r.ok && !oy.r.duplicate) st.ackBoth++;

    // the append that is first after E in the log; with KV history 1 it may have been removed
    const acked = [ox, oy].filter((o) => o.r.ok && !o.r.duplicate);
    const firstAcked = acked.length ? Math.min(...acked.map((o) => o.r.seq)) : undefined;
    if (firstAcked !== undefined && stored.length && stored[0].seq !== firstAcked) st.winnerDropped++;
    // "won" must be true for exactly the first append in the log (the one the seq check admitted)
    let winners = 0;
    for (const o of acked) {
      const truth = o.r.seq === firstAcked;
      for (const [rb, acc] of [
        [o.rb, st.rb],
        [o.rbd, st.rbDirect],
      ]) {
        if (!rb) continue;
        acc.reads++;
        if (rb.retries > 0) acc.retried++;
        if (rb.notFound > 0) acc.staleNotFound++;
        if (!rb.m) {
          acc.unknown++;
          continue;
        }
        const won = rb.m.seq === o.r.seq;
        if (won === truth) acc.correct++;
        else acc.wrong++;
        if (acc === st.rb && won) winners++;
        if (acc === st.rb && st.storedExpHdr === undefined) st.storedExpHdr = rb.m.expHdr;
      }
    }
    if (acked.length >= 2) {
      if (winners === 1) st.rb.exactlyOneWinner++;
      else if (winners > 1) st.rb.twoWinners++;
      else st.rb.noWinner++;
    }
    if (t % 50 === 49) process.stdout.write('.');
  }
  st.ms = Date.now() - t0;
  const pct = (n) => `${((100 * n) / Math.max(1, st.trials)).toFixed(1)}%`;
  const rbs = (r) =>
    `correct=${r.correct}/${r.reads} wrong=${r.wrong} noAnswer=${r.unknown} staleNotFound=${r.staleNotFound} retried=${r.retried}`;
  console.log(
    ` BOTH ACKED=${st.ackBoth}/${st.trials} (${pct(st.ackBoth)}) both stored=${st.both} one=${st.one} none=${st.none}` +
      (st.selfDup ? ` selfDup=${st.selfDup}` : '') +
      (st.dupAck ? ` dupAck=${st.dupAck}` : '') +
      (st.winnerDropped ? ` firstAckedGone=${st.winnerDropped}` : '') +
      `\n    read-back (leader): ${rbs(st.rb)}` +
      (st.ackBoth
        ? ` | when both acked: oneWinner=${st.rb.exactlyOneWinner} twoWinners=${st.rb.twoWinners} noWinner=${st.rb.noWinner}`
        : '') +
      (spec.direct ? `\n    read-back (direct get): ${rbs(st.rbDirect)}` : '') +
      (st.rbAfterFault.reads ? `\n    X re-read right after the fault: ${JSON.stringify(st.rbAfterFault)}` : '') +
      (Object.keys(st.errors).length ? `\n    refusals/errors: ${JSON.stringify(st.errors)}` : '') +
      ` (${(st.ms / 1000).toFixed(1)} s)`,
  );
  for (const b of st.bothAt.slice(0, 2)) console.log(`    e.g. trial ${b.t}: E=${b.E} stored ${b.stored}`);
  results.push(st);
}

/** Every replica holds the same stream state (checked through each server's /jsz). */
async function replicaStates(stream) {
  const out = [];
  for (const s of env.servers) {
    try {
      const r = await fetch(`${s.monitorUrl}/jsz?accounts=true&streams=true`, { signal: AbortSignal.timeout(2000) });
      const j = await r.json();
      const acc = (j.account_details ?? []).flatMap((a) => a.stream_detail ?? []);
      const sd = acc.find((x) => x.name === stream);
      out.push(sd ? `${sd.state.messages}/${sd.state.last_seq}` : 'absent');
    } catch {
      out.push('?');
    }
  }
  return out;
}

async function addStream(cfg) {
  await anyJsm((jsm) => jsm.streams.add({ allow_direct: true, duplicate_window: 120_000_000_000, ...cfg }));
  await waitStable(cfg.name);
}

// ---------------------------------------------------------------------------------------------
// r1: one standalone server

async function runR1() {
  env.single = await startNatsServer();
  await openConns([env.single]); // connections 0 and 1 both go to the one server
  console.log(`\n== r1: standalone nats-server ${env.single.url}, R1 stream, two connections`);
  await addStream({ name: 'F1', subjects: ['f1.>'], num_replicas: 1 });
  const two = () => [0, 1];
  await runExperiment(
    'r1.race',
    'R1 standalone, 2 conns, same E, 0 ms',
    { stream: 'F1', subjPrefix: 'f1.race', writers: two, spacingMs: 0, direct: true },
    RUNS,
  );
  await runExperiment(
    'r1.race.msgid-unique',
    'R1, unique msgIDs',
    { stream: 'F1', subjPrefix: 'f1.mu', writers: two, spacingMs: 0, msgId: 'unique' },
    RUNS,
  );
  const kvm = new Kvm(env.conns[0]);
  await kvm.create('P1', { history: 5, replicas: 1, allow_direct: false });
  const handles = await Promise.all(env.conns.map((nc) => new Kvm(nc).open('P1')));
  await runExperiment(
    'r1.kv',
    'R1 KV update, 2 conns',
    { stream: 'KV_P1', subjPrefix: 'k', kv: { bucket: 'P1', handles }, writers: two, spacingMs: 0 },
    RUNS,
  );
  await cleanup();
}

// ---------------------------------------------------------------------------------------------
// r3: a 3-server cluster

async function runR3() {
  env.cluster = await startNatsCluster(3);
  await openConns(env.cluster.servers);
  console.log(`\n== r3: 3-server cluster ${env.cluster.urls.join(' ')}, one connection per server`);
  await addStream({ name: 'F3', subjects: ['f3.>'], num_replicas: 3 });
  await addStream({ name: 'W3', subjects: ['w3.>'], num_replicas: 3 });
  await addStream({ name: 'C1', subjects: ['c1.>'], num_replicas: 1 });
  const others = (l) => [0, 1, 2].filter((i) => i !== l);
  const LF = (l) => [l, others(l)[0]];
  const FL = (l) => [others(l)[0], l];
  const FF = (l) => others(l);
  const LL = (l) => [l, l + 3]; // two connections to the leader's server
  const F1F1 = (l) => [others(l)[0], others(l)[0] + 3];
  const s = (o) => ({ stream: 'F3', direct: true, spacingMs: 0, ...o });

  // 1/2: the plain race
  await runExperiment(
    'r3.r1stream',
    'R1 stream inside the cluster, writers on 2 servers',
    { stream: 'C1', subjPrefix: 'c1.r', writers: (l) => [l, (l + 1) % 3], spacingMs: 0 },
    RUNS,
  );
  for (const d of [0, 1, 2, 5, 20])
    await runExperiment(
      `r3.race.LF.${d}ms`,
      `R3, leader conn then follower conn, ${d} ms apart`,
      s({ subjPrefix: `f3.lf${d}`, writers: LF, spacingMs: d }),
      RUNS,
    );
  for (const d of [0, 1, 2, 5])
    await runExperiment(
      `r3.race.FL.${d}ms`,
      `R3, follower conn then leader conn, ${d} ms apart`,
      s({ subjPrefix: `f3.fl${d}`, writers: FL, spacingMs: d }),
      RUNS,
    );
  await runExperiment('r3.race.FF.0ms', 'R3, two followers', s({ subjPrefix: 'f3.ff', writers: FF }), RUNS);
  // control: E = 0 (create) is re-checked when applied
  await runExperiment('r3.zero.LF', 'R3, expected 0 (create)', s({ subjPrefix: 'f3.z', writers: LF, zero: true }), RUNS);
  // control: stream-wide Nats-Expected-Last-Sequence (single-subject stream)
  await runExperiment(
    'r3.streamseq.LF',
    'R3, expect.lastSequence (stream-wide)',
    { stream: 'W3', subjPrefix: 'w3.x', writers: LF, spacingMs: 0, expectKind: 'stream' },
    Math.min(RUNS, 200),
  );

  // 7: everything through one server
  await runExperiment('r3.same.leader2conns', 'R3, two conns both on the leader server', s({ subjPrefix: 'f3.ll', writers: LL }), RUNS);
  await runExperiment(
    'r3.same.follower2conns',
    'R3, two conns both on one follower server',
    s({ subjPrefix: 'f3.f1f1', writers: F1F1 }),
    RUNS,
  );
  await runExperiment(
    'r3.same.oneconn',
    'R3, one conn, two pipelined publishes',
    s({ subjPrefix: 'f3.oc', writers: (l) => [others(l)[0], others(l)[0]] }),
    RUNS,
  );

  // 5: message ids
  await runExperiment('r3.msgid.unique', 'R3, each writer its own msgID', s({ subjPrefix: 'f3.mu', writers: LF, msgId: 'unique' }), RUNS);
  await runExperiment(
    'r3.msgid.position',
    'R3, msgID = subject@E (same for both)',
    s({ subjPrefix: 'f3.mp', writers: LF, msgId: 'position' }),
    RUNS,
  );
  await runExperiment(
    'r3.msgid.position.FF',
    'R3, msgID = subject@E, two followers',
    s({ subjPrefix: 'f3.mpf', writers: FF, msgId: 'position' }),
    RUNS,
  );

  // 4: KV CAS
  const kvm = new Kvm(env.conns[0]);
  await kvm.create('P5', { history: 5, replicas: 3, allow_direct: false });
  await kvm.create('P1', { history: 1, replicas: 3, allow_direct: false });
  const h5 = await Promise.all(env.conns.map((nc) => new Kvm(nc).open('P5')));
  const h1 = await Promise.all(env.conns.map((nc) => new Kvm(nc).open('P1')));
  await waitStable('KV_P5');
  await waitStable('KV_P1');
  await runExperiment(
    'r3.kv.h5',
    'R3 KV history 5, update(k, v, rev) from leader+follower conns',
    { stream: 'KV_P5', subjPrefix: 'k', kv: { bucket: 'P5', handles: h5 }, writers: LF, spacingMs: 0 },
    RUNS,
  );
  await runExperiment(
    'r3.kv.h1',
    'R3 KV history 1, update(k, v, rev)',
    { stream: 'KV_P1', subjPrefix: 'k', kv: { bucket: 'P1', handles: h1 }, writers: LF, spacingMs: 0 },
    RUNS,
  );
  await runExperiment(
    'r3.kv.h1.msgid',
    'R3 KV history 1, raw publish to $KV.P1.<key> with expect + msgID key@rev',
    { stream: 'KV_P1', subjPrefix: 'm', kv: { bucket: 'P1', handles: h1 }, writers: LF, spacingMs: 0, msgId: 'position' },
    RUNS,
  );

  // 3: leader changes and restarts
  const fr = FAULT_RUNS;
  const frKill = Math.max(3, Math.ceil(FAULT_RUNS / 2)); // each costs a ~5 s election
  await runExperiment(
    'r3.fault.stepdown-before',
    'stepdown sent, then X and Y at once',
    s({ subjPrefix: 'f3.sb', writers: LF, fault: 'stepdown-before' }),
    fr,
  );
  await runExperiment(
    'r3.fault.stepdown-between',
    'X, stepdown, Y 1 ms later',
    s({ subjPrefix: 'f3.sw', writers: LF, fault: 'stepdown-between', spacingMs: 1 }),
    fr,
  );
  await runExperiment(
    'r3.fault.seq.stepdown',
    'X acked, stepdown, then Y (sequential)',
    s({ subjPrefix: 'f3.ss', writers: FF, fault: 'stepdown-after-ack', sequential: true }),
    fr,
  );
  await runExperiment(
    'r3.fault.seq.stepdown.msgid',
    'same, msgID = subject@E',
    s({ subjPrefix: 'f3.ssm', writers: FF, fault: 'stepdown-after-ack', sequential: true, msgId: 'position' }),
    fr,
  );
  await runExperiment(
    'r3.fault.seq.kill-leader',
    'X acked, SIGKILL leader, then Y (sequential)',
    s({ subjPrefix: 'f3.kl', writers: FF, fault: 'kill-leader-after-ack', sequential: true }),
    frKill,
  );
  await runExperiment(
    'r3.fault.seq.kill-leader.msgid',
    'same, msgID = subject@E',
    s({ subjPrefix: 'f3.klm', writers: FF, fault: 'kill-leader-after-ack', sequential: true, msgId: 'position' }),
    frKill,
  );
  await catchupExperiment(frKill);

  // SIGKILL restarts replay the Raft log tail: are refused or old entries applied again?
  await replayExperiment('r3.restart.clean', 'single writer, no refusals, dedup window 120 s', { window: 120, idle: 0, race: false });
  await replayExperiment('r3.restart.dups-in-window', 'racing writers, position msgIDs (refusals), restarts inside the dedup window', {
    window: 120,
    idle: 0,
    race: true,
  });
  await replayExperiment('r3.restart.dups-window-expired', 'same, dedup window 5 s and 8 s idle before the restarts', {
    window: 5,
    idle: 8,
    race: true,
  });
  await replayExperiment('r3.restart.kv-create-conflicts', 'KV history 1: racing kv.create (refusals), then 3 kv.update rounds', {
    kv: true,
    race: true,
  });
  await replayExperiment('r3.restart.kv-msgid-conflicts', 'same, but raw publishes with msgID <key>@<rev>', {
    kv: true,
    race: true,
    msgid: true,
  });
  await replayExperiment('r3.restart.kv-clean', 'KV history 1: kv.create without conflicts, then 3 kv.update rounds', {
    kv: true,
    race: false,
  });

  for (const name of ['F3', 'W3', 'KV_P5', 'KV_P1']) {
    await waitStable(name, 60_000).catch(() => {});
    // replicas may still be applying: poll up to 20 s for them to agree
    let states = await replicaStates(name);
    for (let k = 0; k < 40 && new Set(states).size > 1; k++) {
      await sleep(500);
      states = await replicaStates(name);
    }
    console.log(
      `replica states ${name} (messages/last_seq per server): ${states.join('  ')}${new Set(states).size === 1 ? '' : '  <-- DIFFER'}`,
    );
    results.push({ name: `replicas.${name}`, states });
  }
  await cleanup();
}

/**
 * Writes chains (3 appends per subject, each with expect + position msgID; with `race` a second
 * writer contends for every position, so the leader refuses entries at apply time), optionally
 * idles, then SIGKILLs and restarts each server in turn. Reports whether replicas still agree and
 * whether the last message of any subject changed (a replayed log entry stored again).
 */
async function replayExperiment(name, desc, o) {
  if (ONLY.length && !ONLY.some((x) => name.startsWith(x))) return;
  const t0 = Date.now();
  process.stdout.write(`${name}: `);
  const id = `RP${results.filter((r) => r.name.startsWith('r3.restart')).length}`;
  let stream = id;
  const truth = new Map(); // subject -> "seq:data" of its last message
  let refused = 0;
  let lastOf;
  if (o.kv) {
    const bucket = id;
    stream = `KV_${bucket}`;
    const kvs = [
      await new Kvm(env.conns[0]).create(bucket, { history: 1, replicas: 3, allow_direct: false }),
      await new Kvm(env.conns[1]).open(bucket),
    ];
    await waitStable(stream);
    // o.msgid: raw publishes to $KV.<bucket>.<key> with expect + msgID <key>@<rev> instead of create/update
    const put = (i, k, v, rev) =>
      o.msgid
        ? env.js[i].publish(`$KV.${bucket}.${k}`, v, { expect: { lastSubjectSequence: rev }, msgID: `${k}@${rev}` }).then((a) => {
            if (a.duplicate) throw new Error('duplicate');
            return a.seq;
          })
        : rev === 0
          ? kvs[i].create(k, v)
          : kvs[i].update(k, v, rev);
    for (let k = 0; k < 20; k++) {
      const r = await Promise.allSettled(o.race ? [put(0, `k${k}`, 'v0', 0), put(1, `k${k}`, 'v0', 0)] : [put(0, `k${k}`, 'v0', 0)]);
      refused += r.filter((x) => x.status === 'rejected').length;
    }
    for (let round = 1; round <= 3; round++) {
      for (let k = 0; k < 20; k++) {
        const e = await kvs[0].get(`k${k}`);
        await put(0, `k${k}`, `v${round}`, e.revision);
      }
    }
    lastOf = async (subj) => {
      const m = await anyJsm((jsm) => jsm.streams.getMessage(stream, { last_by_subj: subj }));
      return m ? `${m.seq}:${m.string()}` : 'none';
    };
    for (let k = 0; k < 20; k++) truth.set(`$KV.${bucket}.k${k}`, await lastOf(`$KV.${bucket}.k${k}`));
  } else {
    await addStream({ name: stream, subjects: [`${id.toLowerCase()}.>`], num_replicas: 3, duplicate_window: o.window * 1e9 });
    const leader = await waitStable(stream);
    const [a, b] = [leader, [0, 1, 2].find((i) => i !== leader)];
    for (let t = 0; t < 30; t++) {
      const subj = `${id.toLowerCase()}.${t}`;
      let E = 0;
      for (let turn = 0; turn < 3; turn++) {
        const opts = { expect: { lastSubjectSequence: E }, msgID: `${subj}@${E}` };
        const r = await Promise.all([
          pubOnce(a, subj, `X${turn}`, { expected: E, expectZero: true, msgID: opts.msgID }),
          o.race ? pubOnce(b, subj, `Y${turn}`, { expected: E, expectZero: true, msgID: opts.msgID }) : undefined,
        ]);
        refused += r.filter((x) => x && (!x.ok || x.duplicate)).length;
        E = r.find((x) => x && x.ok && !x.duplicate).seq;
      }
    }
    lastOf = async (subj) => {
      const m = await anyJsm((jsm) => jsm.streams.getMessage(stream, { last_by_subj: subj }));
      return m ? `${m.seq}:${m.string()}` : 'none';
    };
    for (let t = 0; t < 30; t++) truth.set(`${id.toLowerCase()}.${t}`, await lastOf(`${id.toLowerCase()}.${t}`));
  }
  const before = await replicaStates(stream);
  if (o.idle) await sleep(o.idle * 1000);
  for (let k = 0; k < 3; k++) {
    await env.servers[k].kill('SIGKILL');
    await sleep(3000);
    await env.servers[k].restart();
    await waitStable(stream, 60_000);
    process.stdout.write('.');
  }
  let after = await replicaStates(stream);
  for (let k = 0; k < 20 && new Set(after).size > 1; k++) {
    await sleep(500);
    after = await replicaStates(stream);
  }
  let changed = 0;
  let example = '';
  for (const [subj, was] of truth) {
    const now = await lastOf(subj);
    if (now !== was) {
      changed++;
      if (!example) example = `${subj}: ${was} -> ${now}`;
    }
  }
  const st = {
    name,
    desc,
    refused,
    before,
    after,
    replicasAgree: new Set(after).size === 1,
    subjects: truth.size,
    lastMessageChanged: changed,
    example,
    ms: Date.now() - t0,
  };
  console.log(
    ` refusals while writing=${refused}; messages/last_seq per server before ${before.join(' ')} -> after 3 SIGKILL restarts ${after.join(' ')}` +
      `${st.replicasAgree ? '' : ' (REPLICAS DIFFER)'}; subjects whose last message changed: ${changed}/${truth.size}${example ? ` e.g. ${example}` : ''} (${(st.ms / 1000).toFixed(1)} s)`,
  );
  results.push(st);
}

/** A follower is SIGKILLed, misses a backlog, restarts; while it catches up the leader steps down and X, Y race. */
async function catchupExperiment(runs) {
  const name = 'r3.fault.catchup';
  if (ONLY.length && !ONLY.some((o) => name.startsWith(o))) return;
  const st = {
    name,
    desc: 'follower SIGKILLed, 3000-msg backlog, restarted; stepdown + X,Y sequential and concurrent during its catch-up',
    trials: 0,
    bothSeq: 0,
    bothConc: 0,
    leaderWasRestarted: 0,
    ms: 0,
  };
  const t0 = Date.now();
  process.stdout.write(`${name}: `);
  for (let t = 0; t < runs; t++) {
    const leader = await waitStable('F3', 60_000);
    const victim = [0, 1, 2].filter((i) => i !== leader)[t % 2];
    const writer = leader; // a connection that stays up
    const subjS = `f3.cu.s.${t}`;
    const subjC = `f3.cu.c.${t}`;
    const seedS = await pubDefinite(writer, subjS, () => '{"w":"seed"}', { expected: 0 });
    const seedC = await pubDefinite(writer, subjC, () => '{"w":"seed"}', { expected: 0 });
    await env.servers[victim].kill('SIGKILL');
    const backlog = [];
    for (let k = 0; k < 3000; k++) backlog.push(env.js[writer].publish(`f3.backlog.${t}`, 'x'));
    await Promise.allSettled(backlog);
    await env.servers[victim].restart();
    // do not wait for it to be current: race while it catches up
    await sleep(Math.floor(Math.random() * 300));
    void stepdown('F3', writer);
    const mk = (w) => (a) => JSON.stringify({ w, a });
    const others = [0, 1, 2].filter((i) => i !== victim);
    // sequential: X acked, then Y (through the restarted node) with the same expectation
    await pubDefinite(others[0], subjS, mk('X'), { expected: seedS.seq });
    await pubDefinite(victim, subjS, mk('Y'), { expected: seedS.seq });
    // concurrent
    await Promise.all([
      pubDefinite(others[1], subjC, mk('X'), { expected: seedC.seq }),
      pubDefinite(victim, subjC, mk('Y'), { expected: seedC.seq }),
    ]);
    const nl = await waitStable('F3', 60_000);
    if (nl === victim) st.leaderWasRestarted++;
    const ws = new Set((await enumerate('F3', subjS, seedS.seq)).map((m) => JSON.parse(m.data).w));
    const wc = new Set((await enumerate('F3', subjC, seedC.seq)).map((m) => JSON.parse(m.data).w));
    st.trials++;
    if (ws.size >= 2) st.bothSeq++;
    if (wc.size >= 2) st.bothConc++;
    process.stdout.write('.');
  }
  st.ms = Date.now() - t0;
  console.log(
    ` sequential both=${st.bothSeq}/${st.trials} concurrent both=${st.bothConc}/${st.trials} (restarted node became leader ${st.leaderWasRestarted}x) (${(st.ms / 1000).toFixed(1)} s)`,
  );
  results.push(st);
}

// ---------------------------------------------------------------------------------------------

try {
  console.log(`probe-fence: runs=${RUNS} fault-runs=${FAULT_RUNS} mode=${MODE}`);
  if (MODE === 'r1' || MODE === 'all') await runR1();
  if (MODE === 'r3' || MODE === 'all') await runR3();
  if (JSON_OUT) {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(JSON_OUT, JSON.stringify(results, null, 2));
    console.log(`results written to ${JSON_OUT}`);
  }
} catch (e) {
  console.error(e);
  process.exitCode = 1;
} finally {
  await cleanup();
  clearTimeout(hardTimer);
}

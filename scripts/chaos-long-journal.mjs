#!/usr/bin/env node
// The long-journal case of `npm run chaos`: `npm run chaos -- --long-journal [--facts 1000000]
// [--restarts 5] [--workers 32] [--window 5s]`.
//
// Grows one node's journal past --facts, then, --restarts times: drives intents while
// `ice journal verify` runs against the live data dir, SIGKILLs the node at a random moment,
// restarts it and measures acknowledgements per second in the first --window after `ready`
// against the --window just before the kill. Fails (exit 1) when any restart is more than 2x
// slower than before it, or when the invariants (every acknowledged intent exactly once,
// chains intact, snapshots equal replay) do not hold at the end. Prints the log's size at
// each kill and how long each start took (it checks the journal and empties the log first).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const { startIceProcess, checkInvariants, ICE_BIN } = await import('../dist/src/testing/index.js');
const { SqliteStore } = await import('../dist/src/store/index.js');
const { parseDuration } = await import('../dist/src/cli/format.js');

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const targetFacts = Number(opt('facts', '1000000'));
const restarts = Number(opt('restarts', '5'));
const nWorkers = Number(opt('workers', '32'));
const windowMs = parseDuration(opt('window', '5s'));
const nActors = 64;
for (const [name, v] of Object.entries({ facts: targetFacts, restarts, workers: nWorkers })) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer`);
}

const dir = mkdtempSync(join(tmpdir(), 'ice-long-'));
const actors = Array.from({ length: nActors }, (_, i) => `deployment/long-${i}`);
const acked = new Map();
const retried = new Set();
let n = 0;
const mb = (b) => `${(b / 1024 / 1024).toFixed(1)} MiB`;
const walSize = () => {
  try {
    return statSync(join(dir, 'ice.db-wal')).size;
  } catch {
    return 0;
  }
};
const intent = (id, i, target) => ({
  id,
  proposer: 'agent:long',
  target,
  action: 'CONFIGURE',
  params: { version: `1.${Math.floor(i / 1000)}.${i % 1000}`, replicas: 1 + (i % 90) },
});

/** Drives intents at a node until `until()`; records acknowledgement times. */
async function drive(node, sent, until, ackTimes) {
  await Promise.all(
    Array.from({ length: nWorkers }, async () => {
      while (!until()) {
        const i = ++n;
        const id = `long-${i}`;
        const target = actors[i % nActors];
        sent.set(id, { i, target });
        try {
          acked.set(id, await node.admin('propose', { intent: intent(id, i, target) }));
          ackTimes.push(performance.now());
        } catch {
          return;
        }
      }
    }),
  );
}

const rate = (times, from, to) => times.filter((t) => t >= from && t < to).length / ((to - from) / 1000);
const lastPos = async (node) => ((await node.admin('journal.tail', { limit: 1 })) ?? [])[0];

/** `ice journal verify` on the live dir, in a process of its own, over and over until stopped. */
function verifyLoop() {
  let stop = false;
  let runs = 0;
  const failures = [];
  const done = (async () => {
    while (!stop) {
      const err = await new Promise((resolve) =>
        execFile(process.execPath, [ICE_BIN, 'journal', 'verify', '--data', dir], (e, _out, stderr) =>
          resolve(e ? `ice journal verify exited ${e.code ?? e.signal}: ${stderr.trim()}` : undefined),
        ),
      );
      if (err) failures.push(err);
      runs++;
    }
  })();
  return {
    async stop() {
      stop = true;
      await done;
      // a verify that found the journal broken (or crashed) fails the run
      if (failures.length > 0) throw new Error(`${failures.length} of ${runs} verifies failed:\n${failures.join('\n')}`);
      return runs;
    },
  };
}

const failures = [];
try {
  let node = await startIceProcess(dir);
  for (const a of actors) await node.admin('spawn', { address: a, input: { service: a } });
  await node.admin('grant.issue', { subject: 'agent:long', scope: 'deployment/*:CONFIGURE' });
  const t0 = Date.now();
  process.stdout.write(`growing the journal in ${dir} to ${targetFacts} facts…\n`);
  let facts = 0;
  const fillTimes = [];
  const fill = drive(node, new Map(), () => facts >= targetFacts, fillTimes);
  while (facts < targetFacts) {
    await new Promise((r) => setTimeout(r, 2000));
    const store = new SqliteStore(dir, { readonly: true });
    facts = store.lastPos();
    await store.close();
    const now = performance.now();
    process.stdout.write(`  ~${facts} facts, ${rate(fillTimes, now - 2000, now).toFixed(0)} acks/s, log ${mb(walSize())}\n`);
  }
  await fill;
  process.stdout.write(`grown in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);

  for (let r = 1; r <= restarts; r++) {
    const sent = new Map();
    const times = [];
    const verifier = verifyLoop();
    let killed = false;
    const killAt = performance.now() + windowMs + Math.random() * windowMs;
    const driving = drive(node, sent, () => killed, times);
    while (performance.now() < killAt) await new Promise((res) => setTimeout(res, 50));
    const before = rate(times, killAt - windowMs, killAt);
    const walAtKill = walSize();
    killed = true;
    await node.kill('SIGKILL');
    await driving;
    const verifies = await verifier.stop();
    const startedAt = performance.now();
    node = await startIceProcess(dir, { readyTimeoutMs: 600_000 });
    const startMs = performance.now() - startedAt;
    // Whatever was in flight at the kill is retried with the same ids first.
    for (const id of [...sent.keys()].filter((k) => !acked.has(k))) {
      const { i, target } = sent.get(id);
      acked.set(id, await node.admin('propose', { intent: intent(id, i, target) }));
      retried.add(id);
    }
    const after = [];
    const from = performance.now();
    await drive(node, new Map(), () => performance.now() - from >= windowMs, after);
    const afterRate = rate(after, from, from + windowMs);
    const ratio = afterRate / before;
    process.stdout.write(
      `restart ${r}: log ${mb(walAtKill)} at the kill (${verifies} verifies ran meanwhile), start ${startMs.toFixed(0)} ms, ` +
        `${before.toFixed(0)} acks/s before → ${afterRate.toFixed(0)} after (${ratio.toFixed(2)}x), log now ${mb(walSize())}\n`,
    );
    if (ratio < 0.5) failures.push(`restart ${r}: ${afterRate.toFixed(0)} acks/s after vs ${before.toFixed(0)} before`);
  }
  const pos = await lastPos(node);
  await node.kill('SIGTERM');
  process.stdout.write(`checking invariants over ${acked.size} acknowledged intents…\n`);
  const report = await checkInvariants({ dataDir: dir, acknowledged: acked, retried });
  process.stdout.write(
    `${report.facts} facts checked (newest: ${pos?.actor ?? '?'} #${pos?.seq ?? '?'}): ${report.ok ? 'ok' : 'VIOLATIONS'}\n`,
  );
  for (const v of report.violations) failures.push(v);
} finally {
  if (failures.length) {
    for (const f of failures) process.stdout.write(`  - ${f}\n`);
    process.stdout.write(`FAILED; data dir kept for inspection: ${dir}\n`);
    process.exitCode = 1;
  } else {
    process.stdout.write('long journal: ok\n');
    rmSync(dir, { recursive: true, force: true });
  }
}

#!/usr/bin/env node
// Long chaos run: `npm run chaos -- --duration 10m [--actors 32] [--workers 16]`.
// `npm run chaos -- --long-journal …` runs the long-journal case instead (chaos-long-journal.mjs).
// Cycles until the duration is spent: start a real `ice dev`, drive intents at it from
// several workers, SIGKILL it at a random moment, restart it, retry what was in flight with
// the same ids, stop it, and check the invariants (chain, exactly-once for everything
// acknowledged, snapshots equal replay). Exits 1 at the first violation.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

if (process.argv.includes('--long-journal')) {
  await import('./chaos-long-journal.mjs');
  process.exit();
}
const { startIceProcess, checkInvariants } = await import('../dist/src/testing/index.js');

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const parseDuration = (s) => {
  const m = /^(\d+)(ms|s|m|h)?$/.exec(s);
  if (!m) throw new Error(`bad duration ${s} (e.g. 30s, 10m)`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's'];
};
const durationMs = parseDuration(opt('duration', '60s'));
const nActors = Number(opt('actors', '32'));
const nWorkers = Number(opt('workers', '16'));
const dir = mkdtempSync(join(tmpdir(), 'ice-soak-'));
const actors = Array.from({ length: nActors }, (_, i) => `deployment/soak-${i}`);
const acked = new Map();
const retried = new Set();
let n = 0;
const t0 = Date.now();
let cycle = 0;

const intent = (id, i, target) => ({
  id,
  proposer: 'agent:soak',
  target,
  action: 'CONFIGURE',
  params: { version: `1.${Math.floor(i / 1000)}.${i % 1000}`, replicas: 1 + (i % 90) },
});

try {
  while (Date.now() - t0 < durationMs) {
    cycle++;
    const node = await startIceProcess(dir);
    if (cycle === 1) {
      for (const a of actors) await node.admin('spawn', { address: a, input: { service: a } });
      await node.admin('grant.issue', { subject: 'agent:soak', scope: 'deployment/*:CONFIGURE' });
    }
    const sent = new Map();
    let killed = false;
    const killAfter = 100 + Math.floor(Math.random() * 900);
    setTimeout(() => {
      killed = true;
      void node.kill('SIGKILL');
    }, killAfter);
    await Promise.all(
      Array.from({ length: nWorkers }, async () => {
        while (!killed) {
          const i = ++n;
          const id = `soak-${i}`;
          const target = actors[i % nActors];
          sent.set(id, { i, target });
          try {
            acked.set(id, await node.admin('propose', { intent: intent(id, i, target) }));
          } catch {
            return;
          }
        }
      }),
    );
    await node.kill('SIGKILL');
    const again = await startIceProcess(dir);
    const inFlight = [...sent.keys()].filter((id) => !acked.has(id));
    for (const id of inFlight) {
      const { i, target } = sent.get(id);
      acked.set(id, await again.admin('propose', { intent: intent(id, i, target) }));
      retried.add(id);
    }
    await again.kill('SIGTERM');
    const report = await checkInvariants({ dataDir: dir, acknowledged: acked, retried });
    process.stdout.write(
      `cycle ${cycle}: killed after ${killAfter} ms, ${sent.size} sent, ${inFlight.length} in flight retried; ` +
        `${report.acknowledged} acknowledged, ${report.facts} facts checked: ${report.ok ? 'ok' : 'VIOLATIONS'}\n`,
    );
    if (!report.ok) {
      for (const v of report.violations) process.stdout.write(`  - ${v}\n`);
      process.exitCode = 1;
      break;
    }
  }
  process.stdout.write(`${cycle} cycles in ${((Date.now() - t0) / 1000).toFixed(0)} s, ${acked.size} intents acknowledged, no violation\n`);
} finally {
  if (process.exitCode !== 1) rmSync(dir, { recursive: true, force: true });
  else process.stdout.write(`data dir kept for inspection: ${dir}\n`);
}

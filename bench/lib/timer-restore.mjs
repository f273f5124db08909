// Durable timers restored after a SIGKILL: a process arms N actors' `after` timers and is
// SIGKILLed; a new process opens the same data dir and fires them. Reported: the delay
// between each timer's due time and its firing fact (p50/p99), the downtime, the time to
// open, and the same delay for N bare XState actors with the same `after` in one process
// (the baseline: how late setTimeout itself is with N timers due together).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createActor, createMachine } from 'xstate';
import { BENCH_DIR, childFlags, latencySummary, now, sleep } from './common.mjs';
import { reminderMachineConfig } from './reminder-actor.mjs';

function child(args) {
  const p = spawn(process.execPath, [...childFlags(), join(BENCH_DIR, 'lib/timer-child.mjs'), ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const waitFor = (re) =>
    new Promise((resolve, reject) => {
      const look = () => {
        const m = out.match(re);
        if (m) {
          p.stdout.off('data', onData);
          resolve(m);
        }
      };
      const onData = (d) => {
        out += d.toString();
        look();
      };
      p.stdout.on('data', onData);
      p.once('exit', (code) => reject(new Error(`timer child exited (${code}) before ${re}: ${out}`)));
      look();
    });
  return { p, waitFor, kill: () => new Promise((r) => (p.exitCode !== null ? r() : (p.once('exit', r), p.kill('SIGKILL')))) };
}

/** @returns {{ n, delayMs, downtimeMs, openMs, fireAllMs, rssMiB, late: object, baselineLate: object }} */
export async function measureTimerRestore(dataDir, n, delayMs) {
  const arm = child(['arm', dataDir, String(n), String(delayMs)]);
  await arm.waitFor(/^armed$/m);
  await arm.kill();
  const killedAt = Date.now();
  const serve = child(['serve', dataDir, String(n), String(delayMs)]);
  const [, openMs] = await serve.waitFor(/^opened (\d+)$/m);
  const downtimeMs = Date.now() - killedAt;
  const [, , fireAllMs, rss] = await serve.waitFor(/^fired (\d+) (\d+) (\d+)$/m);
  await serve.kill();
  const db = new Database(join(dataDir, 'ice.db'), { readonly: true });
  const late = [];
  let early = 0;
  for (const row of db.prepare("SELECT body FROM facts WHERE type = 'transition' AND chain LIKE 'reminder/%'").iterate()) {
    const f = JSON.parse(row.body);
    if (!f.data.timer) continue;
    const d = Date.parse(f.at) - f.data.timer.dueAt;
    if (d < 0) early++;
    late.push(d);
  }
  db.close();
  if (late.length !== n) throw new Error(`expected ${n} timer firings in the journal, found ${late.length}`);
  if (early > 0) throw new Error(`${early} timers fired before they were due`);
  return {
    n,
    delayMs,
    downtimeMs,
    openMs: Number(openMs),
    fireAllMs: Number(fireAllMs),
    rssMiB: Number(rss),
    late: latencySummary(late),
    baselineLate: await bareXStateLateness(n, delayMs),
  };
}

/** N bare XState actors with the same `after`, started together: how late each fires. */
async function bareXStateLateness(n, delayMs) {
  const machine = createMachine(reminderMachineConfig(delayMs));
  const late = [];
  let pending = n;
  let done;
  const all = new Promise((r) => (done = r));
  for (let i = 0; i < n; i++) {
    const a = createActor(machine);
    let due;
    a.subscribe((s) => {
      if (s.value === 'rung') {
        late.push(now() - due);
        a.stop();
        if (--pending === 0) done();
      }
    });
    a.start();
    due = now() + delayMs;
    a.send({ type: 'ARM' });
  }
  await Promise.race([all, sleep(delayMs + 120_000)]);
  return latencySummary(late);
}

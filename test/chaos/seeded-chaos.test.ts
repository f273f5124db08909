import { describe, expect, it } from 'vitest';
import { MODE_FAULTS, formatSchedule, runChaos, type FaultKind, type ScheduledFault } from '../../src/testing/index.js';
import { MODES } from '../helpers/runtime.js';

/**
 * The seeded fault harness (src/testing/chaos.ts), short, in each mode: real `ice start`
 * processes (one on SQLite, or three on an R3 JetStream cluster) under traffic from three
 * proposers (every id retried with the same bytes until it resolves, a grant revoked and
 * reissued, large credits approved by a human), every fault kind of the mode once, one core
 * kept busy by a spinning process. Long runs: `npm run chaos -- --mode <mode> --duration 30m --seed N`.
 */
describe.each(MODES)('seeded chaos (%s, real processes, CPU load)', (mode) => {
  it('every kind of fault once: nothing acknowledged lost or executed twice, no fork, no stale owner, no bricked actor', async () => {
    const seed = Number(process.env.ICE_CHAOS_SEED ?? Date.now() % 1_000_000);
    // Every kind but two. A SIGKILL of all three servers at once: nats-server 2.9.10 itself can
    // lose acknowledged writes then (docs/distributed.md); quorum loss (two of three) is here.
    // And a server cut off from the other two (partition-server): when it leads the stream,
    // nats-server 2.9.10's replicas diverge (docs/nats-fencing.md, "Partitions", measured
    // without the runtime), which would make this test fail now and then on the server's
    // account. The long runs include both.
    const kinds = MODE_FAULTS[mode].filter((k: FaultKind) => k !== 'nats-kill-all' && k !== 'partition-server');
    const gap = mode === 'cluster' ? 4500 : 3000;
    const schedule: ScheduledFault[] = kinds.map((kind, i) => ({ atMs: 3000 + i * gap, kind, target: (seed + i) % 3 }));
    const report = await runChaos({
      mode,
      seed,
      durationMs: 3000 + kinds.length * gap,
      schedule,
      actors: 8,
      inFlight: 16,
      leaseMs: 1500,
      cpuLoad: true,
      log: (l) => console.log(`[chaos ${mode}] ${l}`),
    });
    console.log(
      `[chaos ${mode}] seed ${seed}: ${report.acknowledged} acknowledged (${JSON.stringify(report.outcomes)}), ` +
        `${report.approved} approved, ${report.grantsRevoked} grant revocations, ${report.invariants.executed} executions checked in ${report.invariants.chains} chains`,
    );
    if (report.violations.length > 0) console.log(report.evidence.join('\n'));
    expect(report.violations, `replay with ICE_CHAOS_SEED=${seed}, schedule ${formatSchedule(schedule)}`).toEqual([]);
    for (const k of kinds) expect(report.faults[k], k).toBe(1);
    expect(report.outcomes.executed).toBeGreaterThan(0);
    expect(report.outcomes.denied).toBeGreaterThan(0); // the revoked grant and wrong states
    expect(report.grantsRevoked).toBeGreaterThan(0);
    expect(report.invariants.acknowledged).toBe(report.acknowledged);
    expect(report.invariants.executed).toBeGreaterThanOrEqual(report.outcomes.executed ?? 0);
  }, 300_000);
});

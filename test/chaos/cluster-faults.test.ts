import { describe, expect, it } from 'vitest';
import { FAULT_KINDS, runClusterChaos, type ScheduledFault } from '../../src/testing/index.js';

/**
 * The cluster fault harness (src/testing/cluster-chaos.ts), short: three `ice start --cluster`
 * processes on a 3-server R3 cluster under load (every id retried with the same bytes until
 * it resolves), one fault of every kind, with one core kept busy by a spinning process. Long
 * runs: `npm run chaos:cluster -- --duration 30m --seed N`.
 */
describe('cluster under faults (real processes, R3, CPU load)', () => {
  it('every kind of fault once (but all three servers at once): nothing acknowledged lost or executed twice, no fork, no bricked actor', async () => {
    const seed = Number(process.env.ICE_CHAOS_SEED ?? Date.now() % 1_000_000);
    // Every kind but a SIGKILL of all three servers at once: nats-server 2.9.10 itself can lose
    // acknowledged writes then (measured once in 86 such faults, docs/distributed.md), which
    // would make this test fail on the server's account. The long runs (npm run chaos:cluster)
    // include it; quorum loss (two of three servers) is here.
    const kinds = FAULT_KINDS.filter((k) => k !== 'nats-kill-all');
    const schedule: ScheduledFault[] = kinds.map((kind, i) => ({ atMs: 3000 + i * 4500, kind, target: (seed + i) % 3 }));
    const report = await runClusterChaos({
      seed,
      durationMs: 3000 + kinds.length * 4500,
      schedule,
      actors: 8,
      inFlight: 16,
      leaseMs: 1500,
      cpuLoad: true,
      log: (l) => console.log(`[chaos] ${l}`),
    });
    console.log(
      `[chaos] seed ${seed}: ${report.acknowledged} acknowledged, ${report.invariants.executed} executions checked in ${report.invariants.chains} chains`,
    );
    if (report.violations.length > 0) console.log(report.evidence.join('\n'));
    expect(report.violations, `replay with ICE_CHAOS_SEED=${seed}`).toEqual([]);
    for (const k of kinds) expect(report.faults[k], k).toBe(1);
    expect(report.acknowledged).toBeGreaterThan(0);
    expect(report.invariants.executed).toBeGreaterThanOrEqual(report.executed);
  }, 240_000);
});

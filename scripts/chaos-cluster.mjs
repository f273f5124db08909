#!/usr/bin/env node
// Seeded fault run against `ice start --cluster` processes on a 3-server JetStream cluster.
//   npm run chaos:cluster -- --duration 10m --seed 42 [--nodes 3] [--actors 16] [--in-flight 24] [--lease 2s] [--cpu-load]
// Prints the schedule first, every fault as it is injected, and a JSON summary last; exits 1 on any violation.
import { runClusterChaos } from '../dist/src/testing/index.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const flag = (name) => args.includes(`--${name}`);
const duration = (s) => {
  const m = /^(\d+)(ms|s|m|h)$/.exec(String(s));
  if (!m) {
    console.error(`bad duration ${s}: use 30s, 10m, 1h`);
    process.exit(2);
  }
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2]];
};
const int = (name, dflt) => {
  const v = Number(opt(name, dflt));
  if (!Number.isInteger(v) || v < 0) {
    console.error(`--${name} must be a non-negative integer`);
    process.exit(2);
  }
  return v;
};
const seed = int('seed', Math.floor(Math.random() * 1e9));
const report = await runClusterChaos({
  seed,
  durationMs: duration(opt('duration', '2m')),
  nodes: int('nodes', 3),
  actors: int('actors', 16),
  inFlight: int('in-flight', 24),
  leaseMs: duration(opt('lease', '2s')),
  cpuLoad: flag('cpu-load'),
  log: (l) => console.log(`[chaos] ${l}`),
});
const { invariants, schedule: _s, evidence: _e, ...rest } = report;
console.log(
  JSON.stringify(
    { ...rest, facts: invariants.facts, chains: invariants.chains, checkedExecuted: invariants.executed, orphans: invariants.orphans },
    null,
    2,
  ),
);
if (report.violations.length > 0) {
  console.error(`VIOLATIONS (${report.violations.length}); replay with --seed ${seed}:\n${report.violations.slice(0, 50).join('\n')}`);
  console.error(`evidence:\n${report.evidence.join('\n')}`);
  process.exit(1);
}

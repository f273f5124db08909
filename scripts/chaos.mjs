#!/usr/bin/env node
// Seeded fault runs against real `ice start` processes (src/testing/chaos.ts):
//   npm run chaos -- --mode embedded|cluster --duration 10m --seed 42
//     [--nodes 3] [--actors 12] [--proposers 3] [--in-flight 16] [--lease 2s]
//     [--faults node-kill,partition-node,…] [--fault-gap 2s,6s] [--schedule "2000:node-kill#0 6100:actor-crash#7"] [--cpu-load]
//   npm run chaos -- --long-journal …   the long-journal case (scripts/chaos-long-journal.mjs)
// Prints the schedule first, every fault as it is injected, and a JSON summary last; exits 1
// on any violation (with the seed and schedule to replay it), 2 on a wrong option.
import { parseArgs } from 'node:util';

if (process.argv.includes('--long-journal')) {
  await import('./chaos-long-journal.mjs');
  process.exit();
}
const { runChaos, MODE_FAULTS, formatSchedule } = await import('../dist/src/testing/index.js');

const refuse = (msg) => {
  console.error(`chaos: ${msg}`);
  process.exit(2);
};
let values;
try {
  ({ values } = parseArgs({
    options: {
      mode: { type: 'string', default: 'embedded' },
      duration: { type: 'string', default: '2m' },
      seed: { type: 'string' },
      nodes: { type: 'string' },
      actors: { type: 'string', default: '12' },
      proposers: { type: 'string', default: '3' },
      'in-flight': { type: 'string', default: '16' },
      lease: { type: 'string', default: '2s' },
      faults: { type: 'string' },
      'fault-gap': { type: 'string', default: '2s,6s' },
      schedule: { type: 'string' },
      'cpu-load': { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  }));
} catch (e) {
  refuse(
    `${e.message} (options: --mode --duration --seed --nodes --actors --proposers --in-flight --lease --faults --fault-gap --schedule --cpu-load)`,
  );
}
const duration = (name, text = values[name]) => {
  const m = /^(\d+)(ms|s|m|h)$/.exec(text);
  if (!m) refuse(`--${name} ${text}: expected a duration like 30s, 10m, 1h`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2]];
};
const int = (name, min = 0) => {
  const v = Number(values[name]);
  if (!Number.isInteger(v) || v < min) refuse(`--${name} ${values[name]}: expected an integer ≥ ${min}`);
  return v;
};
const mode = values.mode;
if (mode !== 'embedded' && mode !== 'cluster') refuse(`--mode ${mode}: expected embedded or cluster`);
if (mode === 'embedded' && values.nodes !== undefined && values.nodes !== '1')
  refuse('--nodes: embedded mode runs one node (its data dir has one writer); use --mode cluster for more');
const faults = values.faults?.split(',');
for (const k of faults ?? [])
  if (!MODE_FAULTS[mode].includes(k)) refuse(`--faults: ${k} is not a fault of ${mode} mode (${MODE_FAULTS[mode].join(', ')})`);
const schedule = values.schedule
  ?.split(/\s+/)
  .filter(Boolean)
  .map((s) => {
    const m = /^(\d+):([a-z-]+)#(\d+)$/.exec(s);
    if (!m || !MODE_FAULTS[mode].includes(m[2])) refuse(`--schedule: ${s} is not atMs:kind#target with a fault of ${mode} mode`);
    return { atMs: Number(m[1]), kind: m[2], target: Number(m[3]) };
  });
const gap = values['fault-gap'].split(',');
if (gap.length !== 2) refuse(`--fault-gap ${values['fault-gap']}: expected min,max like 2s,6s`);
const faultGapMs = gap.map((g) => duration('fault-gap', g));
if (faultGapMs[0] <= 0 || faultGapMs[1] < faultGapMs[0]) refuse(`--fault-gap ${values['fault-gap']}: expected 0 < min ≤ max`);
const seed = values.seed !== undefined ? int('seed') : Math.floor(Math.random() * 1e9);

const report = await runChaos({
  mode,
  seed,
  durationMs: duration('duration'),
  ...(values.nodes !== undefined ? { nodes: int('nodes', 1) } : {}),
  actors: int('actors', 1),
  proposers: int('proposers', 1),
  inFlight: int('in-flight', 1),
  leaseMs: duration('lease'),
  faultGapMs,
  ...(faults ? { faults } : {}),
  ...(schedule ? { schedule } : {}),
  cpuLoad: values['cpu-load'],
  log: (l) => console.log(`[chaos] ${l}`),
});
const { invariants, schedule: ran, evidence, ...rest } = report;
console.log(
  JSON.stringify(
    {
      ...rest,
      intentsChecked: invariants.acknowledged,
      facts: invariants.facts,
      chains: invariants.chains,
      executionsInJournal: invariants.executed,
      orphans: invariants.orphans,
      violations: report.violations.length,
    },
    null,
    2,
  ),
);
if (report.violations.length > 0) {
  console.error(`VIOLATIONS (${report.violations.length}):\n${report.violations.slice(0, 50).join('\n')}`);
  console.error(`evidence:\n${evidence.join('\n')}`);
  console.error(`replay: npm run chaos -- --mode ${mode} --seed ${seed} --duration ${values.duration} --schedule "${formatSchedule(ran)}"`);
  process.exit(1);
}

// Reproduces an intermittent V8 fatal error seen on Node 20.20.2 while the runtime asks Cedar
// (`Fatal error … unreachable code` in Deoptimizer::DoComputeBuiltinContinuation, the process
// dies with SIGTRAP, exit 133): runs the policy evaluation loop in N child processes and
// counts how many died. Needs `npm run build`. The runtime turns off the V8 optimization
// behind it on Node 20 (src/policy/v8-wasm-inlining.ts); `--inlining` turns it back on in
// the children, after the runtime's modules loaded, to show the crash.
//
//   node scripts/repro-cedar-deopt-crash.mjs [--inlining] [runs=10] [iterations=40000]
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const inlining = args.includes('--inlining');
const [runs = 10, iterations = 40_000] = args.filter((a) => a !== '--inlining').map(Number);
const root = fileURLToPath(new URL('..', import.meta.url));
const child = `
import { compilePolicySet } from '${root}dist/src/policy/index.js';
import { exampleActors } from '${root}dist/actors/index.js';
import { realisticPolicySet } from '${root}bench/lib/cedar-policies.mjs';
${inlining ? "(await import('node:v8')).setFlagsFromString('--turbo-inline-js-wasm-calls');" : ''}
const set = compilePolicySet(realisticPolicySet(), exampleActors, 1);
for (let i = 0; i < ${iterations}; i++)
  set.evaluate({ principal: 'agent:bench', target: 'deployment/d1', action: 'CONFIGURE',
    params: { version: '1.2.' + i, replicas: (i % 100) + 1 }, state: 'draft',
    actorContext: { service: 'svc-1', replicas: 1, reviewers: [], requiredApprovals: 1, attempts: 0 }, now: Date.now() });
`;
let died = 0;
for (let r = 1; r <= runs; r++) {
  const p = spawnSync(process.execPath, ['--input-type=module', '-e', child], { encoding: 'utf8' });
  const fatal = /Fatal error[\s\S]*?(unreachable code)?[\s\S]*?Deoptimizer::\w+/.exec(p.stderr ?? '');
  if (p.status !== 0) died++;
  process.stdout.write(
    `run ${r}: ${p.status === 0 ? 'ok' : `died (status ${p.status}, signal ${p.signal})${fatal ? ' in the V8 deoptimizer' : ''}`}\n`,
  );
}
process.stdout.write(
  `${died} of ${runs} runs died (node ${process.version}, JS→Wasm inlining ${inlining ? 'on' : 'as the runtime sets it'})\n`,
);
process.exitCode = died > 0 ? 1 : 0;

// Summarizes V8 CPU profiles (.cpuprofile from `node --cpu-prof`): top functions by self
// time, and self time grouped by package / source file.
//   node bench/lib/profile-summary.mjs <file.cpuprofile | dir> [--top 30]
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ROOT, parseArgs } from './common.mjs';

const opts = parseArgs();
const top = Number(opts.top ?? 30);
const files = opts._.flatMap((p) =>
  statSync(p).isDirectory()
    ? readdirSync(p)
        .filter((f) => f.endsWith('.cpuprofile'))
        .map((f) => join(p, f))
    : [p],
);
if (files.length === 0) {
  process.stderr.write('usage: profile-summary.mjs <file.cpuprofile | dir> [--top n]\n');
  process.exit(2);
}

for (const file of files) summarize(file);

function where(url) {
  if (!url) return '(native/vm)';
  let u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = u.slice(nm + '/node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (u.startsWith('node:')) return u;
  if (u.startsWith(ROOT)) return relative(ROOT, u);
  return u;
}

function summarize(file) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map(); // node id → µs
  const dts = prof.timeDeltas;
  for (let i = 0; i < prof.samples.length; i++) {
    const id = prof.samples[i];
    self.set(id, (self.get(id) ?? 0) + (dts[i] ?? 0));
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const fn = new Map();
  const file_ = new Map();
  for (const [id, us] of self) {
    const n = byId.get(id);
    const cf = n.callFrame;
    const loc = where(cf.url);
    const name = cf.functionName || '(anonymous)';
    const key = `${name}  ${loc}${cf.url ? `:${cf.lineNumber + 1}` : ''}`;
    fn.set(key, (fn.get(key) ?? 0) + us);
    file_.set(loc, (file_.get(loc) ?? 0) + us);
  }
  // inclusive ("total") time per function: every sample counts once for each distinct
  // function on its stack
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const incl = new Map();
  for (const [id, us] of self) {
    const seen = new Set();
    for (let p = id; p !== undefined; p = parent.get(p)) {
      const cf = byId.get(p).callFrame;
      if (!cf.url || !cf.url.includes(ROOT) || cf.url.includes('/node_modules/')) continue; // our code only
      const key = `${cf.functionName || '(anonymous)'}  ${where(cf.url)}:${cf.lineNumber + 1}`;
      if (seen.has(key)) continue;
      seen.add(key);
      incl.set(key, (incl.get(key) ?? 0) + us);
    }
  }
  const pct = (us) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
  const out = [`\n# ${file}`, `total sampled ${(total / 1000).toFixed(0)} ms`, '', `## top ${top} functions by self time`];
  for (const [k, us] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, top))
    out.push(`${pct(us)}  ${(us / 1000).toFixed(0).padStart(6)} ms  ${k}`);
  out.push('', `## top ${top} functions of this repository by total (inclusive) time`);
  for (const [k, us] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, top))
    out.push(`${pct(us)}  ${(us / 1000).toFixed(0).padStart(6)} ms  ${k}`);
  out.push('', '## self time by package / file');
  for (const [k, us] of [...file_].sort((a, b) => b[1] - a[1]).slice(0, top))
    out.push(`${pct(us)}  ${(us / 1000).toFixed(0).padStart(6)} ms  ${k}`);
  process.stdout.write(out.join('\n') + '\n');
}

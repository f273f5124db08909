// The serving node of actors-scale, in its own process (run with --expose-gc) so that its RSS
// and heap are its own. Prints one JSON line.
//
//   node --expose-gc scale-node.mjs start <dataDir> <stored>
//     open the runtime over the stored actors, execute one intent (actor 0), stop: the
//     first start after the fixture verifies every fact written since the last start.
//   node --expose-gc scale-node.mjs serve <dataDir> <stored> <k>
//     the same start (now a restart), then listing pages, then k actors: activate each by
//     its first intent (64 in flight), passivate them, re-activate them; heap after full GCs
//     and RSS at each step.
import { address, configureIntent, mustExecute, openRuntime } from './ice.mjs';
import { closedLoop, gc, latencySummary, now } from './common.mjs';

const [mode, dataDir, storedArg, kArg] = process.argv.slice(2);
const stored = Number(storedArg);
const k = Number(kArg ?? 0);
if (!['start', 'serve'].includes(mode) || !dataDir || !(stored > 0)) {
  process.stderr.write('usage: scale-node.mjs start|serve <dataDir> <stored> [k]\n');
  process.exit(2);
}

const heap = () => {
  gc();
  return process.memoryUsage().heapUsed;
};
const rss = () => process.memoryUsage().rss;
let n = 0;

const t0 = now();
const rt = await openRuntime(dataDir);
const openMs = now() - t0;
mustExecute(await rt.propose(configureIntent(n++, address(0))));
const firstIntentMs = now() - t0;
const out = { mode, stored, open_ms: openMs, start_to_first_intent_ms: firstIntentMs, rss_after_first_intent: rss() };

try {
  if (mode === 'serve') {
    // ---- listing: pages from the store (no snapshot bodies), 1 active actor ----
    const time = async (args) => {
      const a = now();
      const page = await rt.listActorsPage(args);
      return { ms: now() - a, rows: page.rows.length, next: page.next };
    };
    out.list_first_page = await time({ limit: 100 });
    out.list_middle_page = await time({ limit: 100, after: address(Math.floor(stored / 2)) });
    out.list_kind_page = await time({ limit: 100, kind: 'deployment', after: address(Math.floor(stored / 3)) });
    out.list_state_page = await time({ limit: 100, state: 'draft' });
    out.list_status_none = await time({ limit: 100, status: 'failed' }); // no actor has it: the whole answer is "none"
    {
      const a = now();
      let pages = 0;
      let rows = 0;
      for (let after; ;) {
        const page = await rt.listActorsPage({ limit: 1000, ...(after ? { after } : {}) });
        pages++;
        rows += page.rows.length;
        if (!(after = page.next)) break;
      }
      if (rows !== stored) throw new Error(`listing by pages found ${rows} actors, expected ${stored}`);
      out.list_all = { ms: now() - a, pages, rows };
    }

    // ---- k actors: activate, passivate, re-activate ----
    const touch = async () => {
      let next = 1; // actor 0 is active since the first intent
      const r = await closedLoop({
        concurrency: 64,
        count: k,
        op: async () => {
          const i = next++;
          mustExecute(await rt.propose(configureIntent(n++, address(i))));
        },
      });
      return { ms: r.elapsedMs, perSec: (r.done / r.elapsedMs) * 1000, ...latencySummary(r.lat) };
    };
    const passivate = async () => {
      const a = now();
      let ok = 0;
      for (let i = 1; i <= k; i++) if (await rt.passivate(address(i))) ok++;
      if (ok !== k) throw new Error(`passivated ${ok} of ${k}`);
      return now() - a;
    };
    out.k = k;
    out.heap_before = heap();
    out.rss_before = rss();
    out.activate = await touch();
    if (rt.stats().active !== k + 1) throw new Error(`expected ${k + 1} active, got ${rt.stats().active}`);
    out.heap_active = heap();
    out.rss_active = rss();
    out.passivate_ms = await passivate();
    if (rt.stats().active !== 1) throw new Error(`expected 1 active after passivating, got ${rt.stats().active}`);
    out.heap_passivated = heap();
    out.rss_passivated = rss();
    out.reactivate = await touch();
    out.heap_reactivated = heap();
    out.rss_reactivated = rss();
    out.passivate_again_ms = await passivate();
    out.heap_passivated_again = heap();
  }
} finally {
  const a = now();
  await rt.stop();
  out.stop_ms = now() - a;
}
process.stdout.write(JSON.stringify(out) + '\n');
process.exit(0);

// Child process of actors-scale, run with --expose-gc so heap figures are after full GCs.
//   node --expose-gc bench/lib/heap-probe.mjs bare <n>
//   node --expose-gc bench/lib/heap-probe.mjs runtime <n>
// Prints one JSON line with the figures.
//
// Both sides hold the same thing: n actors of the deployment machine, restored from a
// stored snapshot and then given one CONFIGURE event.
import { closedLoop, gc, importDist, now, tempDir } from './common.mjs';
import { address, buildStoredActors, configureIntent, mustExecute, openRuntime } from './ice.mjs';

const [mode, nArg] = process.argv.slice(2);
const n = Number(nArg);
if (!['bare', 'runtime'].includes(mode) || !(n > 0)) {
  process.stderr.write('usage: heap-probe.mjs bare|runtime <n>\n');
  process.exit(2);
}

/** Actors used (and dropped) before measuring, so one-time costs are not counted per actor. */
const WARM = 1000;

const heap = () => {
  gc();
  return process.memoryUsage().heapUsed;
};

async function bare() {
  const { createActor } = await import('xstate');
  const { deploymentMachine } = await importDist('machines/index.js');
  // a stored snapshot per actor, as the runtime would read it (JSON text)
  const texts = Array.from({ length: n }, (_, i) => {
    const a = createActor(deploymentMachine, { input: { service: `svc-${i}` } }).start();
    const t = JSON.stringify(a.getPersistedSnapshot());
    a.stop();
    return t;
  });
  // warm-up: pay one-time costs (JIT code, inline caches) before measuring
  const restoreOne = (i) => {
    const a = createActor(deploymentMachine, { snapshot: JSON.parse(texts[i % n]) });
    a.start();
    a.send({ type: 'CONFIGURE', version: `1.0.${i % 1024}`, replicas: (i % 100) + 1 });
    return a;
  };
  for (let i = 0; i < WARM; i++) restoreOne(i).stop();
  const h0 = heap();
  const t0 = now();
  const actors = new Array(n);
  for (let i = 0; i < n; i++) actors[i] = restoreOne(i);
  const restoreMs = now() - t0;
  const h1 = heap();
  for (const a of actors) a.stop();
  actors.length = 0;
  const h2 = heap();
  return {
    mode,
    n,
    bytes_per_actor: (h1 - h0) / n,
    restore_us_per_actor: (restoreMs * 1000) / n,
    after_stop_bytes_per_actor: (h2 - h0) / n,
  };
}

async function runtime() {
  const tmp = tempDir();
  try {
    // actors [0, n) are measured; [n, n + WARM) only warm the runtime up
    await buildStoredActors(tmp.dir, n + WARM);
    const rt = await openRuntime(tmp.dir);
    try {
      let k = 0;
      const touchAll = async (from = 0, count = n) => {
        let next = from;
        const r = await closedLoop({
          concurrency: 64,
          count,
          op: async () => {
            const i = next++;
            mustExecute(await rt.propose(configureIntent(k++, address(i))));
          },
        });
        return r.elapsedMs;
      };
      const passivateAll = async (from = 0, count = n) => {
        const t0 = now();
        let ok = 0;
        for (let i = from; i < from + count; i++) if (await rt.passivate(address(i))) ok++;
        if (ok !== count) throw new Error(`passivated ${ok} of ${count}`);
        return now() - t0;
      };
      await touchAll(n, WARM);
      await touchAll(n, WARM);
      await passivateAll(n, WARM);
      const h0 = heap(); // n stored, none active
      if (rt.stats().active !== 0) throw new Error('actors active before the first intent');
      const activateMs = await touchAll(); // first intent of each: activate + execute
      const h1 = heap(); // n active, idle
      if (rt.stats().active !== n) throw new Error(`expected ${n} active, got ${rt.stats().active}`);
      const steadyMs = await touchAll(); // second intent of each: already active
      const h1b = heap();
      const passivateMs = await passivateAll();
      const h2 = heap(); // passivated
      const reactivateMs = await touchAll(); // activate again on use
      const h3 = heap();
      await passivateAll();
      const h4 = heap();
      return {
        mode,
        n,
        bytes_per_actor: (h1 - h0) / n,
        bytes_per_actor_after_second_intent: (h1b - h0) / n,
        passivated_residue_bytes_per_actor: (h2 - h0) / n,
        reactivated_bytes_per_actor: (h3 - h2) / n,
        repassivated_residue_bytes_per_actor: (h4 - h0) / n,
        heap_before_activation_bytes: h0,
        warmup_actors: WARM,
        activate_first_intent_ms: activateMs,
        steady_intent_ms: steadyMs,
        passivate_all_ms: passivateMs,
        reactivate_first_intent_ms: reactivateMs,
      };
    } finally {
      await rt.stop();
    }
  } finally {
    tmp.cleanup();
  }
}

const result = mode === 'bare' ? await bare() : await runtime();
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(0);

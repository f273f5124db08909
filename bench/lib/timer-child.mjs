// A serving process for the timer-restore measurement (bench/lib/timer-restore.mjs):
//   node timer-child.mjs arm <dataDir> <n> <delayMs>    spawns n reminders and arms each (an
//        `after` of delayMs), prints "armed", then waits to be killed
//   node timer-child.mjs serve <dataDir> <n> <delayMs>  opens the runtime on that dir (the timers
//        fire on their own), prints "opened <ms>", then "fired <n> <ms> <rssMiB>" once all fired
import { importDist } from './common.mjs';
import { reminderActor } from './reminder-actor.mjs';

const [mode, dataDir, nText, delayText] = process.argv.slice(2);
const n = Number(nText);
const delayMs = Number(delayText);
const { createRuntime } = await importDist('src/index.js');
const { createLogger } = await importDist('src/util/logger.js');
const logger = createLogger({ level: 'silent' });
const actors = [await reminderActor(delayMs)];
const forever = () => setInterval(() => {}, 1 << 30);

if (mode === 'arm') {
  const rt = await createRuntime({ dataDir, logger, node: 'bench', actors });
  await rt.grants.issue({ subject: 'agent:bench', scope: 'reminder/*:ARM', by: 'bench' });
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < n) {
        const i = next++;
        await rt.spawn(`reminder/r${i}`);
        const out = await rt.propose({ id: `arm-${i}`, proposer: 'agent:bench', target: `reminder/r${i}`, action: 'ARM', params: {} });
        if (out.status !== 'executed') throw new Error(`ARM ${i}: ${JSON.stringify(out)}`);
      }
    }),
  );
  process.stdout.write('armed\n');
  forever();
} else if (mode === 'serve') {
  forever(); // the runtime's timers do not hold the event loop open by themselves
  const t0 = performance.now();
  let fired = 0;
  let resolveAll;
  const all = new Promise((r) => (resolveAll = r));
  const rt = await createRuntime({ dataDir, logger, node: 'bench', actors, passivateAfterMs: 0 });
  rt.onFact((f) => {
    if (f.type === 'transition' && f.data.timer && ++fired >= n) resolveAll();
  });
  process.stdout.write(`opened ${Math.round(performance.now() - t0)}\n`);
  await all;
  process.stdout.write(`fired ${fired} ${Math.round(performance.now() - t0)} ${Math.round(process.memoryUsage().rss / 1048576)}\n`);
  forever();
} else {
  throw new Error(`unknown mode ${mode}`);
}

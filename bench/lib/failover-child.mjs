// Child process of the failover benchmark. Starts cold, serves ONE intent from the stored
// state in <dataDir>, prints one JSON line with its own timings, then waits to be killed
// (SIGKILL, like a crashed node; the next child takes over the dir).
//
//   node bench/lib/failover-child.mjs runtime  <dataDir> <target> <intentId>
//   node bench/lib/failover-child.mjs baseline <dataDir> <target> <intentId>
//
// runtime:  createRuntime over the dir (lock, store, actor index, authority key), then
//           runtime.propose(CONFIGURE) → executed and durable.
// baseline: the floor without the runtime: open the same SQLite file, read the target's
//           snapshot, restore a bare XState actor, send the same event, and write one row
//           durably (WAL, synchronous=FULL) to a scratch database in the same dir.
const tStart = performance.now(); // ms since this process's time origin (≈ process start)
const [mode, dataDir, target, intentId] = process.argv.slice(2);

const { join } = await import('node:path');
const params = { version: '9.9.9', replicas: 7 };
let tImported, tOpened, tServed;

if (mode === 'runtime') {
  const { importDist } = await import('./common.mjs');
  const { createRuntime, createLogger } = await importDist('src/index.js');
  tImported = performance.now();
  const rt = await createRuntime({ dataDir, node: 'bench-failover', logger: createLogger({ level: 'warn', pretty: false }) });
  tOpened = performance.now();
  const out = await rt.propose({ id: intentId, proposer: 'agent:bench', target, action: 'CONFIGURE', params });
  tServed = performance.now();
  if (out.status !== 'executed') {
    process.stderr.write(`first intent not executed: ${JSON.stringify(out)}\n`);
    process.exit(1);
  }
} else if (mode === 'baseline') {
  const { importDist } = await import('./common.mjs');
  const { default: Database } = await import('better-sqlite3');
  const { createActor } = await import('xstate');
  const { deploymentMachine } = await importDist('machines/index.js');
  tImported = performance.now();
  const db = new Database(join(dataDir, 'ice.db'), { readonly: true });
  const scratch = new Database(join(dataDir, 'baseline-scratch.db'));
  scratch.pragma('journal_mode = WAL');
  scratch.pragma('synchronous = FULL');
  scratch.exec('CREATE TABLE IF NOT EXISTS t (id TEXT PRIMARY KEY, body TEXT NOT NULL)');
  tOpened = performance.now();
  const row = db.prepare('SELECT body FROM snapshots WHERE actor = ?').get(target);
  if (!row) {
    process.stderr.write(`no snapshot for ${target}\n`);
    process.exit(1);
  }
  const rec = JSON.parse(row.body);
  const actor = createActor(deploymentMachine, { snapshot: rec.snapshot }).start();
  actor.send({ type: 'CONFIGURE', ...params });
  scratch.prepare('INSERT OR REPLACE INTO t(id, body) VALUES (?, ?)').run(intentId, JSON.stringify(actor.getPersistedSnapshot()));
  tServed = performance.now();
} else {
  process.stderr.write('usage: failover-child.mjs runtime|baseline <dataDir> <target> <intentId>\n');
  process.exit(2);
}

process.stdout.write(JSON.stringify({ mode, start_ms: tStart, imported_ms: tImported, opened_ms: tOpened, served_ms: tServed }) + '\n');
// stay alive until the parent kills us
setInterval(() => {}, 1 << 30);

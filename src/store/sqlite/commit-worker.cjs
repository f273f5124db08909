'use strict';
// The store's single writer. Runs in a worker thread so the fsync of a group commit does not
// block the event loop: while one batch is being made durable, the main thread already
// validates, decides and transitions the next. See sqlite-store.ts for the invariants.
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);

const db = new Database(workerData.path);
db.pragma('busy_timeout = 5000');
db.pragma('journal_mode = WAL');
db.pragma('synchronous = FULL');
// No checkpoint inside a commit: checkpoint-worker.cjs does them beside the writer (and this
// writer finishes one between commits when the log is long, below). When the log starts
// over, it is cut back to this size.
db.pragma('wal_autocheckpoint = 0');
db.pragma(`journal_size_limit = ${workerData.walRestartBytes}`);

const s = {
  fact: db.prepare('INSERT INTO facts(chain, seq, type, actor, intent_id, at, body, prev, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)'),
  snapshot: db.prepare(
    'INSERT INTO snapshots(actor, kind, seq, status, state, body) VALUES (?, ?, ?, ?, ?, ?) ' +
      'ON CONFLICT(actor) DO UPDATE SET seq = excluded.seq, status = excluded.status, state = excluded.state, body = excluded.body',
  ),
  // The first outcome of an intent stays, except that a final one replaces a pending one.
  outcome: db.prepare(
    'INSERT INTO outcomes(intent_id, digest, body) VALUES (?, ?, ?) ON CONFLICT(intent_id) DO UPDATE SET ' +
      "digest = excluded.digest, body = excluded.body WHERE json_extract(outcomes.body, '$.status') = 'pending'",
  ),
  wakeupPut: db.prepare('INSERT OR REPLACE INTO wakeups(actor, at) VALUES (?, ?)'),
  wakeupDelete: db.prepare('DELETE FROM wakeups WHERE actor = ?'),
  grant: db.prepare('INSERT OR REPLACE INTO grants(id, body) VALUES (?, ?)'),
  pendingPut: db.prepare('INSERT OR REPLACE INTO pending(intent_id, actor, body, created_at) VALUES (?, ?, ?, ?)'),
  pendingDelete: db.prepare('DELETE FROM pending WHERE intent_id = ?'),
  checkpoint: db.prepare('INSERT OR REPLACE INTO checkpoints(pos, heads, prev, hash, key_id, sig, at) VALUES (?, ?, ?, ?, ?, ?, ?)'),
  lastPos: db.prepare('SELECT max(pos) AS pos FROM facts'),
};

/** Rows arrive as arrays in column order (cheap to clone across threads). */
const write = db.transaction((b) => {
  for (const r of b.facts) s.fact.run(r);
  for (const r of b.snapshots) {
    s.snapshot.run(r[0], r[1], r[2], r[3], r[4], r[5]);
    // when the actor next needs waking (a timer, a restart): indexed, so nobody scans snapshots
    if (r[6] !== null) s.wakeupPut.run(r[0], r[6]);
    else s.wakeupDelete.run(r[0]);
  }
  for (const r of b.outcomes) s.outcome.run(r);
  for (const r of b.grants) s.grant.run(r);
  for (const r of b.pendingPut) s.pendingPut.run(r);
  for (const id of b.pendingDelete) s.pendingDelete.run(id);
  if (b.checkpoint) {
    // The checkpoint covers the facts just inserted: its position is theirs.
    const cp = b.checkpoint.slice();
    cp[0] = s.lastPos.get().pos;
    s.checkpoint.run(cp);
  }
});

// The log starts over only when a commit finds all of it copied into the main file. Under
// sustained commits the background checkpointer never gets there (this writer adds frames
// while it copies), so past `walRestartBytes` this writer copies the few frames left itself,
// between two commits (after acknowledging the one before): its next commit then starts the
// log over, and journal_size_limit cuts the file back. One short pause per walRestartBytes of
// log; the background checkpointer has copied the rest.
const { statSync } = require('node:fs');
const walPath = workerData.path + '-wal';
let sinceLook = 0;
const restartIfLong = () => {
  if (++sinceLook < 16) return;
  sinceLook = 0;
  let size = 0;
  try {
    size = statSync(walPath).size;
  } catch {
    return;
  }
  if (size > workerData.walRestartBytes) db.pragma('wal_checkpoint(PASSIVE)');
};

parentPort.on('message', (m) => {
  if (m.type === 'close') {
    db.close();
    parentPort.postMessage({ type: 'closed' });
    return;
  }
  try {
    write(m.batch);
    parentPort.postMessage({ type: 'done', id: m.id });
  } catch (e) {
    parentPort.postMessage({ type: 'done', id: m.id, error: { message: String(e && e.message), code: e && e.code } });
    return;
  }
  try {
    restartIfLong();
  } catch {
    // a checkpoint that fails changes nothing durable; the background one goes on
  }
});

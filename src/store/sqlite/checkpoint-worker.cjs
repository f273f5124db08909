'use strict';
// Copies the write-ahead log into the main file in the background, on its own connection and
// thread, so that no commit waits on copying the log (the writer has automatic checkpoints
// off). PASSIVE never waits for readers or the writer: it copies what it can. But under
// sustained commits the writer always finds frames not yet copied, and the log only starts
// over when a commit finds all of it copied: so once the log passes `restartBytes`, a RESTART
// checkpoint copies the few frames left and holds the next commit for that moment (one short
// wait per `restartBytes` of log, not one per commit); that commit starts the log over and
// cuts the file back to the writer's journal_size_limit. See sqlite-store.ts.
const { parentPort, workerData } = require('node:worker_threads');
const { statSync } = require('node:fs');
const Database = require(workerData.driver);

const db = new Database(workerData.path, { fileMustExist: true });
// How long a RESTART may wait for the writer's transaction and for readers to move on.
db.pragma('busy_timeout = 1000');
const wal = workerData.path + '-wal';
const size = () => {
  try {
    return statSync(wal).size;
  } catch {
    return 0;
  }
};

let last = '';
const tick = () => {
  if (size() === 0) return;
  try {
    let [r] = db.pragma('wal_checkpoint(PASSIVE)');
    // Copied without holding anyone up first; the RESTART then holds the next commit only for
    // the frames added meanwhile and one sync.
    if (size() > workerData.restartBytes) [r] = db.pragma('wal_checkpoint(RESTART)');
    const seen = `${r.log}/${r.checkpointed}`;
    if (seen === last) return; // nothing new since the last look
    last = seen;
    parentPort.postMessage({ type: 'checkpoint', frames: r.log, checkpointed: r.checkpointed, walBytes: size() });
  } catch (e) {
    parentPort.postMessage({ type: 'error', message: String(e && e.message), code: e && e.code });
  }
};
const timer = setInterval(tick, workerData.everyMs);

parentPort.on('message', (m) => {
  if (m.type === 'kick') tick();
  if (m.type === 'close') {
    clearInterval(timer);
    db.close();
    parentPort.postMessage({ type: 'closed' });
  }
});

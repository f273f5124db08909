'use strict';
// Copies the write-ahead log into the main file in the background, on its own connection and
// thread, so that no commit waits on copying the log (the writer has automatic checkpoints
// off). PASSIVE never waits for readers or the writer: it copies what it can. Under sustained
// commits it never catches up with the writer; the writer then finishes the copy itself
// between two commits once the log is long (commit-worker.cjs). See sqlite-store.ts.
const { parentPort, workerData } = require('node:worker_threads');
const { statSync } = require('node:fs');
const Database = require(workerData.driver);

const db = new Database(workerData.path, { fileMustExist: true });
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
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
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
  if (m.type === 'close') {
    clearInterval(timer);
    db.close();
    parentPort.postMessage({ type: 'closed' });
  }
});

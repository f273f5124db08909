'use strict';
// A verify worker: checks ranges of positions with its own read-only connection and answers
// with a summary per range (verify-checks.cjs), so that reading and hashing a long journal
// use more than one core. The main thread stitches the summaries in order (verify-store.ts).
// Each range is one short statement: nothing here holds a read transaction between ranges.
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const { summarizeRange } = require('./verify-checks.cjs');

const db = new Database(workerData.path, { readonly: true, fileMustExist: true });
db.pragma('busy_timeout = 5000');
const facts = db.prepare(workerData.sql.facts).raw();
const checkpoints = workerData.withCheckpoints ? db.prepare(workerData.sql.checkpoints).raw() : undefined;
const factHash = db.prepare(workerData.sql.factHash).raw();

parentPort.on('message', (m) => {
  if (m.type === 'close') {
    db.close();
    parentPort.postMessage({ type: 'closed' });
    return;
  }
  try {
    const lookup = (chain, seq) => {
      const row = factHash.get(chain, seq);
      return row !== undefined && row[1] <= m.upTo ? row[0] : undefined;
    };
    const cps = checkpoints ? checkpoints.all(m.from, m.to) : [];
    const summary = summarizeRange(facts.all(m.from, m.to), cps, lookup);
    parentPort.postMessage({ type: 'summary', id: m.id, summary });
  } catch (e) {
    parentPort.postMessage({ type: 'summary', id: m.id, error: { message: String(e && e.message), code: e && e.code } });
  }
});

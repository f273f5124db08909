// journal-verify: facts verified/s by runtime.journal.verify() over a journal of N facts
// (full 500,000; tiny 5,000), against raw sha256 over the same bytes: every prev + body read
// from the SQLite file into memory first (concatenated, one string per fact, as verify hashes
// it), then hashed in a loop on one thread with the same one-shot `crypto.hash` verify uses.
//
// The journal: a few hundred real intents through the runtime (spawn, grant, CONFIGURE →
// intent.proposed, decision, transition facts), then those facts' contents appended again,
// each to its own actor's chain, through the runtime's own store port (SqliteJournal) until
// there are N — so sizes and shapes are real and the hash chains are the runtime's.
// journal.verify() is verifyStoreInWorkers: ranges of positions read and checked by worker
// threads (one per core, up to 4) and stitched in order: every chain link by link, the index
// columns, the checkpoint chain, the heads each checkpoint names, and the newest checkpoint's
// signature. The baseline runs on one thread; the ratio compares the two as they are.
//
//   node bench/journal-verify.mjs [--size tiny|full] [--facts N] [--repeat n]
import { createHash, hash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  closedLoop,
  emitResult,
  importDist,
  median,
  note,
  now,
  printTable,
  progress,
  round,
  runMain,
  sized,
  tempDir,
} from './lib/common.mjs';
import { address, configureIntent, grantAll, keepAlive, mustExecute, openJournal, openRuntime, spawnActors } from './lib/ice.mjs';

const TARGETS = { ratio_min: 0.5 };

runMain(async (opts) => {
  const nFacts = sized(opts, 'facts', 5000, 500_000);
  const repeat = sized(opts, 'repeat', 2, 3);
  // intents per group commit while the journal was written: one signed checkpoint each
  const perCommit = sized(opts, 'per-commit', 64, 64);
  const tmp = tempDir();
  try {
    progress(`building a journal of ${nFacts} facts`);
    const buildMs = await buildJournal(tmp.dir, nFacts, perCommit);

    // ---- baseline: raw sha256 over the same bytes, already in memory ----
    progress('baseline: read prev + body, then raw sha256');
    const db = new Database(join(tmp.dir, 'ice.db'), { readonly: true });
    const t0 = now();
    const texts = db.prepare('SELECT prev || body FROM facts ORDER BY pos').pluck().all();
    const readMs = now() - t0;
    db.close();
    if (texts.length !== nFacts) throw new Error(`journal has ${texts.length} facts, expected ${nFacts}`);
    let bytes = 0;
    for (const text of texts) bytes += Buffer.byteLength(text);
    const hashRuns = [];
    const createHashRuns = [];
    let sink = 0;
    for (let r = 0; r < repeat; r++) {
      const h0 = now();
      for (const text of texts) sink ^= hash('sha256', text, 'hex').charCodeAt(0);
      hashRuns.push(now() - h0);
      const c0 = now();
      for (const text of texts) sink ^= createHash('sha256').update(text).digest('hex').charCodeAt(0);
      createHashRuns.push(now() - c0);
    }
    if (sink === -1) note('');
    texts.length = 0;
    const hashMs = median(hashRuns);
    const createHashMs = median(createHashRuns);

    // ---- the runtime ----
    progress('runtime: journal.verify()');
    const rt = await openRuntime(tmp.dir);
    const verifyRuns = [];
    let checkpoints;
    try {
      for (let r = 0; r < repeat; r++) {
        const v0 = now();
        const res = await rt.journal.verify();
        verifyRuns.push(now() - v0);
        if (!res.ok || res.count !== nFacts) throw new Error(`verify failed: ${JSON.stringify(res)}`);
        checkpoints = res.checkpoints;
      }
    } finally {
      await rt.stop();
    }
    const verifyMs = median(verifyRuns);

    const verifyRate = (nFacts / verifyMs) * 1000;
    const hashRate = (nFacts / hashMs) * 1000;
    const ratio = verifyRate / hashRate;
    // against the earlier baseline (createHash per fact), for comparison with earlier figures
    const ratioCreateHash = verifyMs > 0 ? createHashMs / verifyMs : 0;
    // verifyStoreInWorkers' defaults: one worker per core up to 4, from 50,000 facts on
    const threads = nFacts >= 50_000 ? Math.min(4, availableParallelism()) : 0;
    printTable(
      `verify a journal of ${nFacts.toLocaleString('en-US')} facts (${round(bytes / nFacts)} bytes hashed per fact, median of ${repeat})`,
      [
        {
          step: 'baseline: raw sha256(prev + body), bytes in memory, crypto.hash, 1 thread',
          ms: round(hashMs, 1),
          'facts/s': round(hashRate),
          'MB/s': round(bytes / 1e6 / (hashMs / 1000), 1),
        },
        {
          step: `runtime.journal.verify() (read from SQLite + hash + checks + checkpoints; ${threads ? `${threads} worker threads` : '1 thread'})`,
          ms: round(verifyMs, 1),
          'facts/s': round(verifyRate),
          'MB/s': round(bytes / 1e6 / (verifyMs / 1000), 1),
          ratio: round(ratio, 3),
        },
        {
          step: 'for reference: the same sha256 with createHash().update().digest(), 1 thread',
          ms: round(createHashMs, 1),
          'facts/s': round((nFacts / createHashMs) * 1000),
          ratio: `(verify ${round(ratioCreateHash, 3)} × this)`,
        },
        {
          step: 'for reference: reading all prev + body from SQLite into one array, once',
          ms: round(readMs, 1),
          'facts/s': round((nFacts / readMs) * 1000),
        },
      ],
    );
    note(
      `\njournal: ${nFacts} facts, ${checkpoints ?? 'no'} signed checkpoints checked (one per group commit of ${perCommit} intents = ${perCommit * 3} facts); built in ${round(buildMs)} ms (not part of any figure)`,
    );
    note(
      `target: verify ≥ ${TARGETS.ratio_min} × raw sha256 → ${round(ratio, 3)} × (${round(ratioCreateHash, 3)} × the createHash baseline)`,
    );
    await emitResult({
      bench: 'journal-verify',
      size: opts.size,
      throughput: round(verifyRate),
      baseline: round(hashRate),
      ratio: round(ratio, 4),
      ratio_createhash: round(ratioCreateHash, 4),
      p50_ms: null,
      p99_ms: null,
      unit: 'facts verified/s (baseline: raw sha256(prev + body)/s over the same bytes, in memory, crypto.hash, 1 thread)',
      facts: nFacts,
      bytes_per_fact: round(bytes / nFacts),
      checkpoints: checkpoints ?? null,
      facts_per_checkpoint: perCommit * 3,
      verify_ms: round(verifyMs, 1),
      verify_threads: threads,
      hash_ms: round(hashMs, 1),
      createhash_ms: round(createHashMs, 1),
      read_rows_ms: round(readMs, 1),
      runs: {
        verify_ms: verifyRuns.map((x) => round(x, 1)),
        hash_ms: hashRuns.map((x) => round(x, 1)),
        createhash_ms: createHashRuns.map((x) => round(x, 1)),
      },
      targets: TARGETS,
      meets: { ratio: ratio >= TARGETS.ratio_min },
    });
  } finally {
    tmp.cleanup();
  }
});

async function buildJournal(dir, nFacts, perCommit) {
  const t0 = now();
  // 1. real facts through the runtime
  const rt = await openRuntime(dir);
  let sample;
  try {
    await grantAll(rt);
    const nActors = 16;
    await spawnActors(rt, nActors);
    let k = 0;
    const intents = Math.min(300, Math.max(10, Math.floor(nFacts / 3) - nActors));
    await closedLoop({
      concurrency: 16,
      count: intents,
      op: async () => {
        const i = k++;
        mustExecute(await rt.propose(configureIntent(i, address(i % nActors))));
      },
    });
    // the actors' facts (not the runtime chain's grant fact), in write order
    sample = (await rt.journal.tail({ limit: 10_000 })).reverse().filter((f) => f.actor !== rt.runtimeChain);
  } finally {
    await rt.stop();
  }
  // 2. the same contents again, each fact appended to its own actor's chain through the
  //    runtime's store port (a checkpoint signed per group commit, as the runtime does),
  //    `perCommit` intents' worth of facts handed over at a time
  const { chainFact } = await importDist('src/index.js');
  const { journal, store, close } = await openJournal(dir);
  try {
    const heads = new Map();
    let count = store.factCount();
    let i = 0;
    const factsPerCommit = perCommit * 3;
    while (count < nFacts) {
      const commits = [];
      const at = new Date().toISOString();
      for (let j = 0; j < factsPerCommit && count < nFacts; j++) {
        const f = sample[i++ % sample.length];
        const after = heads.get(f.actor) ?? store.chainHead(f.actor);
        const cursor = { ...after };
        // causes keep their distance back along the chain (the decision just before, …)
        const { fact, body } = chainFact(
          cursor,
          {
            type: f.type,
            origin: f.origin,
            actor: f.actor,
            ...(f.intentId ? { intentId: f.intentId } : {}),
            causes: f.causes.map((c) => after.seq + 1 - (f.seq - c)),
            data: f.data,
          },
          at,
        );
        heads.set(f.actor, cursor);
        commits.push(journal.commit({ chain: f.actor, after, facts: [fact], bodies: [body] }));
        count++;
      }
      await keepAlive(Promise.all(commits));
      if (nFacts >= 100_000 && count % 100_000 < factsPerCommit) progress(`journal: ${count}/${nFacts} facts`);
    }
  } finally {
    await close();
  }
  return now() - t0;
}

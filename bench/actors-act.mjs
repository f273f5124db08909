// actors-act: actors that act, embedded, each beside the plain intent path measured in the same
// run (an outside proposer's intent to an actor, awaited, 1 in flight).
//  1. ping-pong: two actors propose to each other in turn (each hop: the emitting turn, the
//     intent decided and executed on the peer, its outcome applied back as a turn of the
//     sender); hops/s.
//  2. fan-out: one actor proposes to 100 actors in one turn; intents/s until all 100 outcomes
//     are applied back to it, repeated.
//  3. effects: an actor whose state starts an effect that returns at once and, on its result,
//     starts the next (each round trip: the starting turn, the run, the result's turn);
//     effect round trips/s.
//
//   node bench/actors-act.mjs [--size tiny|full] [--hops n] [--fans n] [--effects n]
import { closedLoop, emitResult, importDist, note, now, printTable, progress, round, runMain, sized, tempDir } from './lib/common.mjs';
import { openRuntime } from './lib/ice.mjs';

runMain(async (opts) => {
  const hops = sized(opts, 'hops', 200, 5000);
  const fans = sized(opts, 'fans', 2, 20);
  const nEffects = sized(opts, 'effects', 200, 5000);
  const plainCount = sized(opts, 'plain', 300, 5000);
  const { setup, assign } = await import('xstate');
  const { z } = await import('zod');
  const { defineActor, proposeIntent, startEffect } = await importDist('src/index.js');

  const sink = defineActor({
    kind: 'sink',
    machine: setup({}).createMachine({
      id: 'sink',
      initial: 'on',
      context: { n: 0 },
      states: { on: { on: { HIT: { actions: assign({ n: ({ context }) => context.n + 1 }) } } } },
    }),
    events: { HIT: z.strictObject({}) },
  });
  // a ball: BALL n → propose BALL n+1 to the peer, until max
  const pinger = defineActor({
    kind: 'pinger',
    input: z.strictObject({ peer: z.string(), max: z.number() }),
    machine: setup({}).createMachine({
      id: 'pinger',
      initial: 'on',
      context: ({ input }) => ({ peer: input.peer, max: input.max, last: 0 }),
      states: {
        on: {
          on: {
            BALL: [
              {
                guard: ({ context, event }) => event.n < context.max,
                actions: [
                  assign({ last: ({ event }) => event.n }),
                  proposeIntent(({ context, event }) => ({ target: context.peer, action: 'BALL', params: { n: event.n + 1 } })),
                ],
              },
              { actions: assign({ last: ({ event }) => event.n }) },
            ],
          },
        },
      },
    }),
    events: { BALL: z.strictObject({ n: z.number() }) },
  });
  const fanner = defineActor({
    kind: 'fanner',
    machine: setup({}).createMachine({
      id: 'fanner',
      initial: 'idle',
      context: { answered: 0, round: 0 },
      states: {
        idle: {
          on: {
            FAN: {
              target: 'waiting',
              actions: [
                assign({ answered: 0, round: ({ context }) => context.round + 1 }),
                ...Array.from({ length: 100 }, (_, i) => proposeIntent({ target: `sink/s${i}`, action: 'HIT', params: {} })),
              ],
            },
          },
        },
        waiting: {
          on: {
            'ice.outcome.*': [
              { guard: ({ context }) => context.answered + 1 >= 100, target: 'idle', actions: assign({ answered: 100 }) },
              { actions: assign({ answered: ({ context }) => context.answered + 1 }) },
            ],
          },
        },
      },
    }),
    events: { FAN: z.strictObject({}) },
  });
  const looper = defineActor({
    kind: 'looper',
    input: z.strictObject({ max: z.number() }),
    machine: setup({}).createMachine({
      id: 'looper',
      initial: 'idle',
      context: ({ input }) => ({ max: input.max, done: 0 }),
      states: {
        idle: { on: { GO: 'working' } },
        working: {
          entry: startEffect('tick', {}),
          on: {
            'ice.effect.done.tick': [
              {
                guard: ({ context }) => context.done + 1 >= context.max,
                target: 'finished',
                actions: assign({ done: ({ context }) => context.done + 1 }),
              },
              { target: 'working', reenter: true, actions: assign({ done: ({ context }) => context.done + 1 }) },
            ],
          },
        },
        finished: {},
      },
    }),
    events: { GO: z.strictObject({}) },
    effects: { tick: { run: async () => ({ ok: true }) } },
  });

  const tmp = tempDir();
  const rt = await openRuntime(tmp.dir, { actors: [sink, pinger, fanner, looper], passivateAfterMs: 0 });
  try {
    await rt.grants.issue({ subject: 'agent:bench', scope: '*', by: 'bench' });
    await rt.grants.issue({ subject: 'actor:*', scope: '*', by: 'bench' });
    for (let i = 0; i < 100; i++) await rt.spawn(`sink/s${i}`);
    const until = async (what, fn) => {
      const deadline = Date.now() + 600_000;
      while (!(await fn())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 2));
      }
    };

    // baseline: the plain intent path, 1 in flight
    progress(`baseline: ${plainCount} plain intents, 1 in flight`);
    let k = 0;
    const plain = await closedLoop({
      concurrency: 1,
      count: plainCount,
      op: async () => {
        const o = await rt.propose({ id: `plain-${k++}`, proposer: 'agent:bench', target: `sink/s${k % 100}`, action: 'HIT', params: {} });
        if (o.status !== 'executed') throw new Error(JSON.stringify(o));
      },
    });

    progress(`ping-pong: ${hops} hops`);
    await rt.spawn('pinger/a', { peer: 'pinger/b', max: hops });
    await rt.spawn('pinger/b', { peer: 'pinger/a', max: hops });
    const t0 = now();
    await rt.propose({ id: 'serve', proposer: 'agent:bench', target: 'pinger/a', action: 'BALL', params: { n: 1 } });
    const lastOf = (a) => rt.hosting(a)?.context.last ?? 0;
    await until('the last hop', () => Math.max(lastOf('pinger/a'), lastOf('pinger/b')) >= hops);
    const pingMs = now() - t0;

    progress(`fan-out: ${fans} × 100`);
    await rt.spawn('fanner/f');
    const t1 = now();
    for (let r = 0; r < fans; r++) {
      await rt.propose({ id: `fan-${r}`, proposer: 'agent:bench', target: 'fanner/f', action: 'FAN', params: {} });
      await until('all 100 answers', () => rt.hosting('fanner/f')?.state === 'idle');
    }
    const fanMs = now() - t1;

    progress(`effects: ${nEffects} round trips`);
    await rt.spawn('looper/l', { max: nEffects });
    const t2 = now();
    await rt.propose({ id: 'go', proposer: 'agent:bench', target: 'looper/l', action: 'GO', params: {} });
    await until('the last effect', () => rt.hosting('looper/l')?.state === 'finished');
    const effMs = now() - t2;

    const plainPerS = plain.opsPerSec;
    const rows = [
      { path: 'plain intent, 1 in flight (baseline)', n: plain.done, 'per s': round(plainPerS), ratio: 1 },
      {
        path: 'actor → actor ping-pong (hops)',
        n: hops - 1,
        'per s': round(((hops - 1) / pingMs) * 1000),
        ratio: round((((hops - 1) / pingMs) * 1000) / plainPerS, 3),
      },
      {
        path: 'fan-out 1 → 100 (intents)',
        n: fans * 100,
        'per s': round(((fans * 100) / fanMs) * 1000),
        ratio: round((((fans * 100) / fanMs) * 1000) / plainPerS, 3),
      },
      {
        path: 'effect round trips',
        n: nEffects,
        'per s': round((nEffects / effMs) * 1000),
        ratio: round(((nEffects / effMs) * 1000) / plainPerS, 3),
      },
    ];
    printTable('actors that act (embedded, one process)', rows);
    note(
      'each hop or fan-out intent is decided by the authority and executed like an outside intent, and its outcome is a turn of the proposer',
    );
    await emitResult({
      bench: 'actors-act',
      size: opts.size,
      throughput: rows[1]['per s'],
      baseline: round(plainPerS),
      ratio: rows[1].ratio,
      p50_ms: null,
      p99_ms: null,
      unit: 'actor-to-actor ping-pong hops/s (baseline: plain intents/s, 1 in flight, same run)',
      fanout_intents_per_s: rows[2]['per s'],
      fanout_ratio: rows[2].ratio,
      effect_round_trips_per_s: rows[3]['per s'],
      effect_ratio: rows[3].ratio,
    });
  } finally {
    await rt.stop();
    tmp.cleanup();
  }
});

/**
 * Behavioural contract every Transport must meet (see src/transport/transport.ts).
 * `a` and `b` are two clients on the same bus (they may be one instance). Negative checks
 * ("X was not delivered") never sleep-and-hope: they publish a sentinel from the same
 * publisher afterwards and rely on per-publisher ordering, which NATS guarantees.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClosedError, NoRespondersError, TimeoutError } from '../../src/errors.js';
import type { Msg, Transport } from '../../src/transport/transport.js';

export interface TransportPair {
  a: Transport;
  b: Transport;
  cleanup: () => Promise<void>;
  /** Optional: errors the implementation reported through its onHandlerError hook. */
  handlerErrors?: Error[];
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function waitUntil(what: string, cond: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

interface Collector {
  msgs: Msg[];
  subjects(): string[];
  data(): unknown[];
  handler: (m: Msg) => void;
  waitFor(n: number, timeoutMs?: number): Promise<void>;
}

function collector(): Collector {
  const msgs: Msg[] = [];
  return {
    msgs,
    subjects: () => msgs.map((m) => m.subject),
    data: () => msgs.map((m) => m.data),
    handler: (m) => {
      msgs.push(m);
    },
    waitFor: (n, timeoutMs = 2000) => waitUntil(`${n} message(s), have ${msgs.length}`, () => msgs.length >= n, timeoutMs),
  };
}

export function transportContract(name: string, make: () => Promise<TransportPair>): void {
  describe(`Transport contract: ${name}`, () => {
    let pair: TransportPair;
    let a: Transport;
    let b: Transport;
    /** A subject prefix unique to the test, so tests never see each other's traffic. */
    let p: string;

    beforeEach(async () => {
      pair = await make();
      a = pair.a;
      b = pair.b;
      p = `ct${randomUUID().replaceAll('-', '').slice(0, 12)}`;
    });

    afterEach(async () => {
      await pair.cleanup();
    });

    /** Makes sure b's subscriptions are known to the bus before a publishes. */
    const ready = async () => {
      await b.flush();
      await a.flush();
    };

    it('delivers on an exact subject, with JSON payloads intact and in order', async () => {
      const c = collector();
      const other = collector();
      b.subscribe(`${p}.exact`, c.handler);
      b.subscribe(`${p}.exact.more`, other.handler);
      await ready();
      const values = [{ n: 1, s: 'é ✓', nested: { arr: [1, 'two', null, true] } }, [1, 2, 3], 'text', 42, 0, false, null];
      a.publish(`${p}.exactly`, 'no');
      a.publish(`${p}`, 'no');
      for (const v of values) a.publish(`${p}.exact`, v);
      await c.waitFor(values.length);
      expect(c.subjects()).toEqual(values.map(() => `${p}.exact`));
      expect(c.data()).toEqual(values);
      expect(other.msgs).toHaveLength(0);
      // a plain publish has no reply subject, so respond() reports false
      expect(c.msgs[0]!.reply).toBeUndefined();
      expect(c.msgs[0]!.respond('x')).toBe(false);
    });

    it('delivers headers with a publish', async () => {
      const c = collector();
      b.subscribe(`${p}.h`, c.handler);
      await ready();
      a.publish(`${p}.h`, { ok: 1 }, { headers: { 'Ice-Trace': 't-1', 'ice-lower': 'v' } });
      a.publish(`${p}.h`, { ok: 2 });
      await c.waitFor(2);
      expect(c.msgs[0]!.headers).toEqual({ 'Ice-Trace': 't-1', 'ice-lower': 'v' });
      expect(c.msgs[1]!.headers ?? {}).toEqual({});
    });

    it('`*` matches exactly one token', async () => {
      const c = collector();
      const mid = collector();
      b.subscribe(`${p}.*`, c.handler);
      b.subscribe(`${p}.*.z`, mid.handler);
      await ready();
      a.publish(`${p}`, 1); // zero tokens after the prefix: no
      a.publish(`${p}.a.b`, 2); // two tokens: no
      a.publish(`${p}.y.q`, 3); // no for the middle wildcard
      a.publish(`${p}.y.z`, 4); // yes for the middle wildcard
      a.publish(`${p}.a`, 5); // one token: yes (sentinel for `c`)
      await c.waitFor(1);
      await mid.waitFor(1);
      expect(c.subjects()).toEqual([`${p}.a`]);
      expect(mid.subjects()).toEqual([`${p}.y.z`]);
      expect(mid.data()).toEqual([4]);
    });

    it('`>` matches one or more trailing tokens, never zero', async () => {
      const c = collector();
      b.subscribe(`${p}.>`, c.handler);
      await ready();
      a.publish(`${p}`, 0);
      a.publish(`${p}.a`, 1);
      a.publish(`${p}.a.b.c`, 2);
      a.publish(`${p}x.a`, 3); // different first token
      a.publish(`${p}.z`, 4); // sentinel
      await c.waitFor(3);
      expect(c.subjects()).toEqual([`${p}.a`, `${p}.a.b.c`, `${p}.z`]);
    });

    it('queue groups: each message to exactly one member; plain subscriptions get all', async () => {
      const subject = `${p}.work`;
      const g = [collector(), collector(), collector()];
      const other = collector(); // a second, single-member group
      const plain = collector();
      b.subscribe(subject, g[0]!.handler, { queue: 'workers' });
      b.subscribe(subject, g[1]!.handler, { queue: 'workers' });
      a.subscribe(subject, g[2]!.handler, { queue: 'workers' });
      b.subscribe(subject, other.handler, { queue: 'auditors' });
      b.subscribe(subject, plain.handler);
      await ready();
      const N = 60;
      for (let i = 0; i < N; i++) a.publish(subject, i);
      await plain.waitFor(N);
      await other.waitFor(N);
      const groupTotal = () => g.reduce((n, c) => n + c.msgs.length, 0);
      await waitUntil('group to get all messages', () => groupTotal() >= N);
      // give duplicates (which must not exist) a chance to show up
      await ready();
      await sleep(50);
      expect(plain.data()).toEqual([...Array(N).keys()]);
      expect(other.data()).toEqual([...Array(N).keys()]);
      const seen = g.flatMap((c) => c.data() as number[]).sort((x, y) => x - y);
      expect(seen).toEqual([...Array(N).keys()]);
    });

    it('queue group members on different (overlapping) subjects form one group', async () => {
      // NATS groups queue subscribers by queue name across every matching subscription.
      const g1 = collector();
      const g2 = collector();
      b.subscribe(`${p}.q.*`, g1.handler, { queue: 'shared' });
      b.subscribe(`${p}.q.a`, g2.handler, { queue: 'shared' });
      await ready();
      const N = 20;
      for (let i = 0; i < N; i++) a.publish(`${p}.q.a`, i);
      await waitUntil('all messages', () => g1.msgs.length + g2.msgs.length >= N);
      await ready();
      await sleep(50);
      expect(g1.msgs.length + g2.msgs.length).toBe(N);
    });

    it('request/reply round trip with headers both ways', async () => {
      const seen: Msg[] = [];
      b.subscribe(`${p}.svc`, (m) => {
        seen.push(m);
        const ok = m.respond({ echo: m.data, trace: m.headers?.['Ice-Trace'] }, { 'Ice-Reply': 'yes' });
        if (!ok) throw new Error('respond returned false');
      });
      await ready();
      const reply = await a.request(`${p}.svc`, { q: 'hello' }, { timeoutMs: 2000, headers: { 'Ice-Trace': 'abc' } });
      expect(reply.data).toEqual({ echo: { q: 'hello' }, trace: 'abc' });
      expect(reply.headers?.['Ice-Reply']).toBe('yes');
      expect(seen).toHaveLength(1);
      expect(typeof seen[0]!.reply).toBe('string');
      // several concurrent requests each get their own answer
      const replies = await Promise.all([1, 2, 3, 4, 5].map((n) => a.request(`${p}.svc`, n, { timeoutMs: 2000 })));
      expect(replies.map((r) => (r.data as { echo: unknown }).echo)).toEqual([1, 2, 3, 4, 5]);
    });

    it('request goes to one member of a queue group', async () => {
      let calls = 0;
      const responder = (m: Msg) => {
        calls++;
        m.respond('pong');
      };
      b.subscribe(`${p}.qsvc`, responder, { queue: 'svc' });
      b.subscribe(`${p}.qsvc`, responder, { queue: 'svc' });
      await ready();
      const r = await a.request(`${p}.qsvc`, 'ping', { timeoutMs: 2000 });
      expect(r.data).toBe('pong');
      await ready();
      await sleep(20);
      expect(calls).toBe(1);
    });

    it('request rejects with NoRespondersError when nobody listens', async () => {
      // A timeout longer than the test's own: only a fast no-responders answer can pass.
      const err = await a.request(`${p}.nobody`, 1, { timeoutMs: 600_000 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(NoRespondersError);
      expect((err as NoRespondersError).subject).toBe(`${p}.nobody`);
    });

    it('request rejects with TimeoutError when the subscriber never replies', async () => {
      const got = collector();
      b.subscribe(`${p}.silent`, got.handler);
      await ready();
      const t0 = Date.now();
      const err = await a.request(`${p}.silent`, 1, { timeoutMs: 200 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      const elapsed = Date.now() - t0;
      expect(err).toBeInstanceOf(TimeoutError);
      expect((err as TimeoutError).timeoutMs).toBe(200);
      expect(elapsed).toBeGreaterThanOrEqual(180);
      expect(got.msgs).toHaveLength(1);
    });

    it('a late reply after a timeout is ignored and later requests still work', async () => {
      let n = 0;
      b.subscribe(`${p}.slow`, async (m) => {
        const mine = ++n;
        if (mine === 1) await sleep(150);
        m.respond(mine);
      });
      await ready();
      await expect(a.request(`${p}.slow`, null, { timeoutMs: 50 })).rejects.toBeInstanceOf(TimeoutError);
      const r = await a.request(`${p}.slow`, null, { timeoutMs: 2000 });
      expect(r.data).toBe(2);
      await sleep(200); // the late reply to request 1 arrives now and must go nowhere
    });

    it('unsubscribe stops delivery (and is idempotent)', async () => {
      const gone = collector();
      const kept = collector();
      const sub = b.subscribe(`${p}.u`, gone.handler);
      b.subscribe(`${p}.u`, kept.handler);
      expect(sub.subject).toBe(`${p}.u`);
      await ready();
      a.publish(`${p}.u`, 1);
      await gone.waitFor(1);
      sub.unsubscribe();
      sub.unsubscribe();
      await ready();
      a.publish(`${p}.u`, 2);
      await kept.waitFor(2);
      await b.flush();
      expect(gone.data()).toEqual([1]);
      expect(kept.data()).toEqual([1, 2]);
    });

    it('unsubscribing inside a handler stops further deliveries', async () => {
      const got: unknown[] = [];
      const kept = collector();
      const sub = b.subscribe(`${p}.once`, (m) => {
        got.push(m.data);
        sub.unsubscribe();
      });
      b.subscribe(`${p}.once`, kept.handler);
      await ready();
      for (let i = 0; i < 5; i++) a.publish(`${p}.once`, i);
      await kept.waitFor(5);
      expect(got).toEqual([0]);
    });

    it('invalid subjects throw (publish/subscribe) or reject (request)', async () => {
      const noop = () => {};
      for (const s of ['', 'a..b', '.a', 'a.', 'a b', 'a.*', 'a.>', '>', '*', 'a\tb']) {
        expect(() => a.publish(s, 1), `publish ${JSON.stringify(s)}`).toThrow(TypeError);
        await expect(a.request(s, 1, { timeoutMs: 100 }), `request ${JSON.stringify(s)}`).rejects.toThrow(TypeError);
      }
      for (const s of ['', 'a..b', '.a', 'a.', 'a b', 'a.>.b', '>.a', 'a.b*', 'a.>x']) {
        expect(() => b.subscribe(s, noop), `subscribe ${JSON.stringify(s)}`).toThrow(TypeError);
      }
      // wildcards themselves are fine in subscriptions
      for (const s of [`${p}.*`, `${p}.>`, `${p}.*.x.>`]) b.subscribe(s, noop).unsubscribe();
      expect(() => a.publish(`${p}.ok`, 1, { reply: 'bad reply' })).toThrow(TypeError);
    });

    it('a handler that throws or rejects does not break later deliveries', async () => {
      const got: unknown[] = [];
      b.subscribe(`${p}.boom`, (m) => {
        got.push(m.data);
        if (m.data === 1) throw new Error('sync boom');
        if (m.data === 2) return Promise.reject(new Error('async boom'));
        if (m.data === 3) throw 'a string, not an Error'; // eslint-disable-line no-throw-literal
        return undefined;
      });
      const other = collector();
      b.subscribe(`${p}.boom`, other.handler);
      await ready();
      for (const n of [1, 2, 3, 4]) a.publish(`${p}.boom`, n);
      await other.waitFor(4);
      await waitUntil('all 4 to the throwing handler', () => got.length >= 4);
      expect(got).toEqual([1, 2, 3, 4]);
      expect(other.data()).toEqual([1, 2, 3, 4]);
      // and the bus keeps working for requests too
      b.subscribe(`${p}.after`, (m) => {
        m.respond('alive');
      });
      await ready();
      expect((await a.request(`${p}.after`, null, { timeoutMs: 2000 })).data).toBe('alive');
      if (pair.handlerErrors) {
        await waitUntil('handler errors reported', () => pair.handlerErrors!.length >= 3);
        expect(pair.handlerErrors.map((e) => e.message)).toEqual(
          expect.arrayContaining(['sync boom', 'async boom', 'a string, not an Error']),
        );
        expect(pair.handlerErrors.every((e) => e instanceof Error)).toBe(true);
      }
    });

    it('publish is asynchronous: no handler runs inside publish', async () => {
      let called = 0;
      a.subscribe(`${p}.async`, () => {
        called++;
      });
      b.subscribe(`${p}.async`, () => {
        called++;
      });
      await ready();
      a.publish(`${p}.async`, 1);
      b.publish(`${p}.async`, 2);
      expect(called).toBe(0);
      await waitUntil('deliveries', () => called >= 4);
    });

    it('close fails pending requests and further use with ClosedError', async () => {
      const got = collector();
      b.subscribe(`${p}.pending`, got.handler);
      const aGot = collector();
      a.subscribe(`${p}.toa`, aGot.handler);
      await ready();
      const pending = a.request(`${p}.pending`, 1, { timeoutMs: 5000 });
      const outcome = pending.then(
        () => 'resolved',
        (e: unknown) => e,
      );
      await got.waitFor(1); // the request is in flight
      await a.close();
      const err = await outcome;
      expect(err).toBeInstanceOf(ClosedError);
      expect(() => a.publish(`${p}.x`, 1)).toThrow(ClosedError);
      expect(() => a.subscribe(`${p}.x`, () => {})).toThrow(ClosedError);
      await expect(a.request(`${p}.pending`, 1, { timeoutMs: 100 })).rejects.toBeInstanceOf(ClosedError);
      await a.close(); // idempotent
      if (a !== b) {
        // a's subscriptions are gone; b still works
        const bGot = collector();
        b.subscribe(`${p}.toa`, bGot.handler);
        await b.flush();
        b.publish(`${p}.toa`, 'after close');
        await bGot.waitFor(1);
        expect(aGot.msgs).toHaveLength(0);
      }
    });

    it('a responder replying after the requester closed does not throw', async () => {
      let responded: boolean | undefined;
      let late: Msg | undefined;
      b.subscribe(`${p}.late`, (m) => {
        late = m;
      });
      await ready();
      const r = a.request(`${p}.late`, 1, { timeoutMs: 5000 }).catch((e: unknown) => e);
      await waitUntil('request to arrive', () => late !== undefined);
      await a.close();
      expect(await r).toBeInstanceOf(ClosedError);
      expect(() => {
        responded = late!.respond('too late');
      }).not.toThrow();
      // embedded (a === b) reports false because the bus is closed; NATS can still send it
      expect(typeof responded).toBe('boolean');
    });
  });
}

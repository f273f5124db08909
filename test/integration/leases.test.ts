import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/index.js';
import { LeaseManager } from '../../src/store/jetstream/index.js';
import { NatsTransport } from '../../src/transport/index.js';
import { startNatsServer, type NatsServer } from '../../src/testing/index.js';

describe('JetStream leases (one nats-server)', () => {
  let server: NatsServer;
  let t: NatsTransport;
  beforeAll(async () => {
    server = await startNatsServer({ jetstream: true });
    t = await NatsTransport.connect({ servers: server.url });
  });
  afterAll(async () => {
    await t?.close();
    await server?.stop();
  });

  it('gives a lease to one node, hands it over after expiry, and tells the stale holder', async () => {
    const clock = new ManualClock();
    const lost: Array<[string, string | undefined]> = [];
    const a = await LeaseManager.open(t.connection, { node: 'a', ttlMs: 1000, clock, onLost: (k, h) => lost.push([k, h]) });
    const b = await LeaseManager.open(t.connection, { node: 'b', ttlMs: 1000, clock });
    try {
      expect(await a.acquire('deployment.web')).toBe(true);
      expect(await b.acquire('deployment.web')).toBe(false);
      expect(await a.acquire('deployment.web')).toBe(true); // re-acquiring one's own lease renews it
      await a.close(); // a stops renewing: paused, partitioned or dead
      clock.advance(999);
      expect(await b.acquire('deployment.web')).toBe(false);
      clock.advance(2);
      expect(await b.acquire('deployment.web')).toBe(true);
      expect((await b.holder('deployment.web'))!.node).toBe('b');
      // a wakes up and renews: the CAS on its old revision fails, it learns it lost the lease
      await a.renewAll();
      expect(a.holds('deployment.web')).toBe(false);
      expect(lost).toEqual([['deployment.web', 'b']]);
      // release by a stale holder never deletes the successor's record
      await a.release('deployment.web');
      expect((await b.holder('deployment.web'))!.node).toBe('b');
      await b.release('deployment.web');
      expect(await b.holder('deployment.web')).toBeUndefined();
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('two nodes racing for a free lease: exactly one wins', async () => {
    const clock = new ManualClock();
    const nodes = await Promise.all(['n1', 'n2', 'n3', 'n4'].map((node) => LeaseManager.open(t.connection, { node, ttlMs: 5000, clock })));
    try {
      const wins = await Promise.all(nodes.map((n) => n.acquire('run.race')));
      expect(wins.filter(Boolean)).toHaveLength(1);
    } finally {
      for (const n of nodes) await n.close();
    }
  });
});

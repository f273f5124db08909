import { existsSync } from 'node:fs';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection, type Status } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { NatsTransport } from '../../src/transport/nats-transport.js';
import { startNatsCluster, startNatsServer } from '../helpers/nats-server.js';
import { waitUntil } from '../helpers/transport-contract.js';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Records the connection's status events (disconnect, reconnect, ...). */
function watchStatus(nc: NatsConnection): Status['type'][] {
  const seen: Status['type'][] = [];
  void (async () => {
    for await (const s of nc.status()) seen.push(s.type);
  })();
  return seen;
}

describe('nats-server launcher', () => {
  it('single server: SIGKILL, restart on the same port and store dir, client reconnects', async () => {
    const server = await startNatsServer({ jetstream: true });
    let t: NatsTransport | undefined;
    try {
      expect(server.port).not.toBe(4222);
      expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
      const firstPid = server.pid!;
      expect(isAlive(firstPid)).toBe(true);

      t = await NatsTransport.connect({
        servers: server.url,
        name: 'harness',
        maxReconnectAttempts: -1,
        reconnectTimeWaitMs: 100,
      });
      const nc = t.connection;
      const statuses = watchStatus(nc);
      t.subscribe('harness.echo', (m) => {
        m.respond(m.data);
      });
      expect((await t.request('harness.echo', 'before', { timeoutMs: 2000 })).data).toBe('before');

      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: 'HARNESS', subjects: ['harness.js.>'] });
      const js = jetstream(nc);
      await js.publish('harness.js.a', JSON.stringify({ n: 1 }));

      await server.kill('SIGKILL');
      expect(server.running).toBe(false);
      expect(isAlive(firstPid)).toBe(false);
      await waitUntil('client to notice the disconnect', () => statuses.includes('disconnect'), 5000);

      await server.restart();
      expect(server.pid).not.toBe(firstPid);
      expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
      await waitUntil('client to reconnect', () => statuses.includes('reconnect'), 10_000);

      // the subscription was re-established on reconnect
      expect((await t.request('harness.echo', 'after', { timeoutMs: 2000 })).data).toBe('after');
      // the store dir survived the crash: the stream is still there
      const info = await jsm.streams.info('HARNESS');
      expect(info.config.subjects).toEqual(['harness.js.>']);

      // a graceful restart keeps the stored messages
      await js.publish('harness.js.b', JSON.stringify({ n: 2 }));
      await server.restart();
      await waitUntil('client to reconnect again', () => statuses.filter((s) => s === 'reconnect').length >= 2, 10_000);
      const after = await jsm.streams.info('HARNESS');
      expect(after.state.messages).toBeGreaterThanOrEqual(1);
      expect(after.state.last_seq).toBe(2);
    } finally {
      await t?.close();
      await server.stop();
    }
    expect(server.running).toBe(false);
    expect(existsSync(server.dir)).toBe(false);
  }, 30_000);

  it('fails fast with the server log when the config is rejected', async () => {
    const err = await startNatsServer({ extraConfig: 'sync_interval: "1s"' }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(Error);
    expect(err!.message).toMatch(/failed to start/);
    expect(err!.message).toMatch(/sync_interval/);
  });

  it('fails with a clear error when the binary does not exist', async () => {
    await expect(startNatsServer({ bin: '/nonexistent/nats-server' })).rejects.toThrow(/failed to start.*ENOENT/s);
  });

  it('3-node cluster: forms, and accepts an R3 stream', async () => {
    const cluster = await startNatsCluster(3);
    let nc: NatsConnection | undefined;
    try {
      expect(cluster.servers).toHaveLength(3);
      expect(new Set(cluster.servers.map((s) => s.serverName)).size).toBe(3);
      expect(new Set(cluster.servers.map((s) => s.storeDir)).size).toBe(3);
      nc = await connect({ servers: cluster.urls });
      const jsm = await jetstreamManager(nc);
      const si = await jsm.streams.add({ name: 'R3', subjects: ['r3.>'], num_replicas: 3 });
      expect(si.config.num_replicas).toBe(3);
      const js = jetstream(nc);
      const ack = await js.publish('r3.x', JSON.stringify({ hello: 'cluster' }));
      expect(ack.stream).toBe('R3');
      expect(ack.seq).toBe(1);
      const info = await jsm.streams.info('R3');
      expect(info.cluster?.leader).toBeTruthy();
      expect(info.cluster?.replicas ?? []).toHaveLength(2);
      expect(info.state.messages).toBe(1);
    } finally {
      await nc?.close();
      await cluster.stopAll();
    }
    for (const s of cluster.servers) {
      expect(s.running).toBe(false);
      expect(existsSync(s.dir)).toBe(false);
    }
  }, 40_000);
});

import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClosedError } from '../../src/errors.js';
import { NatsTransport } from '../../src/transport/nats-transport.js';
import type { Msg } from '../../src/transport/transport.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { transportContract, waitUntil } from '../helpers/transport-contract.js';

let server: NatsServer;

beforeAll(async () => {
  server = await startNatsServer({ jetstream: false });
}, 20_000);

afterAll(async () => {
  await server?.stop();
});

transportContract('nats', async () => {
  const handlerErrors: Error[] = [];
  const onHandlerError = (e: Error) => handlerErrors.push(e);
  const a = await NatsTransport.connect({ servers: server.url, name: 'contract-a', onHandlerError });
  const b = await NatsTransport.connect({ servers: server.url, name: 'contract-b', onHandlerError });
  return {
    a,
    b,
    handlerErrors,
    cleanup: async () => {
      await Promise.all([a.close(), b.close()]);
    },
  };
});

describe('NatsTransport specifics', () => {
  it('reports the server version and exposes the connection', async () => {
    const t = await NatsTransport.connect({ servers: [server.url], name: 'version' });
    try {
      expect(t.kind).toBe('nats');
      expect(t.serverVersion).toMatch(/^\d+\.\d+\.\d+/);
      expect(t.connection.isClosed()).toBe(false);
    } finally {
      await t.close();
    }
    expect(t.connection.isClosed()).toBe(true);
    expect(t.isClosed).toBe(true);
  });

  it('decodes empty bodies as undefined and non-JSON bodies as the raw text', async () => {
    const t = await NatsTransport.connect({ servers: server.url });
    const raw = await connect({ servers: server.url });
    try {
      const got: Msg[] = [];
      t.subscribe('spec.raw', (m) => {
        got.push(m);
      });
      await t.flush();
      raw.publish('spec.raw', 'not json {');
      raw.publish('spec.raw');
      raw.publish('spec.raw', '{"ok":true}');
      await waitUntil('3 messages', () => got.length >= 3);
      t.publish('spec.raw', undefined); // another connection: only ordered after the wait above
      await waitUntil('4 messages', () => got.length >= 4);
      expect(got.map((m) => m.data)).toEqual(['not json {', undefined, { ok: true }, undefined]);
    } finally {
      await raw.close();
      await t.close();
    }
  });

  it('sends plain UTF-8 JSON on the wire', async () => {
    const t = await NatsTransport.connect({ servers: server.url });
    const raw = await connect({ servers: server.url });
    try {
      const sub = raw.subscribe('spec.wire', { max: 1 });
      await raw.flush();
      t.publish('spec.wire', { ü: [1, 'x'] }, { headers: { 'Ice-Kind': 'fact' } });
      for await (const m of sub) {
        expect(m.string()).toBe('{"ü":[1,"x"]}');
        expect(m.headers?.get('Ice-Kind')).toBe('fact');
      }
    } finally {
      await raw.close();
      await t.close();
    }
  });

  it('wrapping a caller-owned connection leaves it open on close', async () => {
    const nc: NatsConnection = await connect({ servers: server.url });
    try {
      const t = NatsTransport.fromConnection(nc);
      let got = 0;
      t.subscribe('spec.owned', () => {
        got++;
      });
      await t.flush();
      const pending = t.request('spec.owned', 1, { timeoutMs: 5000 }).catch((e: unknown) => e);
      await waitUntil('request delivered', () => got === 1);
      await t.close();
      expect(await pending).toBeInstanceOf(ClosedError);
      expect(nc.isClosed()).toBe(false);
      // the transport's subscription is gone although the connection lives on
      nc.publish('spec.owned');
      await nc.flush();
      await new Promise((r) => setTimeout(r, 50));
      expect(got).toBe(1);
    } finally {
      await nc.close();
    }
  });

  it('marks itself closed when the connection is closed underneath', async () => {
    const nc = await connect({ servers: server.url });
    const t = NatsTransport.fromConnection(nc);
    await nc.close();
    await waitUntil('closed', () => t.isClosed);
    expect(() => t.publish('spec.x', 1)).toThrow(ClosedError);
  });
});

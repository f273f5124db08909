import { createServer, connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { FAULT_KINDS, MODE_FAULTS, faultSchedule, formatSchedule, startTcpProxy, type TcpProxy } from '../../src/testing/index.js';

describe('fault schedules', () => {
  it('the same seed gives the same schedule; another seed another one', () => {
    const a = faultSchedule({ mode: 'cluster', seed: 42, durationMs: 600_000 });
    expect(faultSchedule({ mode: 'cluster', seed: 42, durationMs: 600_000 })).toEqual(a);
    expect(formatSchedule(faultSchedule({ mode: 'cluster', seed: 43, durationMs: 600_000 }))).not.toBe(formatSchedule(a));
    // ten minutes draw every kind of the mode
    expect(new Set(a.map((f) => f.kind))).toEqual(new Set(FAULT_KINDS));
  });

  it('embedded schedules only hold faults one node and one server can take', () => {
    const s = faultSchedule({ mode: 'embedded', seed: 7, durationMs: 600_000 });
    expect(new Set(s.map((f) => f.kind))).toEqual(new Set(MODE_FAULTS.embedded));
    expect(s.every((f) => !f.kind.startsWith('node') || f.target === 0)).toBe(true);
    expect(() => faultSchedule({ mode: 'embedded', seed: 7, durationMs: 10_000, faults: ['partition-server'] })).toThrow(/embedded mode/);
  });
});

describe('TCP proxy (partitions and slow links)', () => {
  const closers: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
  });

  /** An echo server behind a proxy, and a client connected through it. */
  async function link(): Promise<{ proxy: TcpProxy; client: Socket; received: () => string }> {
    const echo = createServer((s) => s.on('error', () => {}).pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
    closers.push(() => new Promise((r) => echo.close(r)));
    const proxy = await startTcpProxy({ port: (echo.address() as { port: number }).port });
    closers.push(() => proxy.close());
    const client = connect(proxy.port, '127.0.0.1');
    closers.push(() => client.destroy());
    await new Promise((r) => client.once('connect', r));
    let got = '';
    client.on('data', (d: Buffer) => (got += d.toString()));
    client.on('error', () => {});
    return { proxy, client, received: () => got };
  }
  const until = async (what: string, f: () => boolean) => {
    for (let i = 0; i < 200 && !f(); i++) await new Promise((r) => setTimeout(r, 10));
    if (!f()) throw new Error(`timed out waiting for ${what}`);
  };

  it('forwards, stalls while partitioned (nothing arrives, the connection stays open), resets the connection at the heal', async () => {
    const { proxy, client, received } = await link();
    client.write('a');
    await until('the echo', () => received() === 'a');
    proxy.partition();
    client.write('b');
    await new Promise((r) => setTimeout(r, 200));
    expect(received()).toBe('a');
    expect(client.destroyed).toBe(false);
    const closed = new Promise((r) => client.once('close', r));
    proxy.heal();
    await closed; // the connection that lived through the partition is reset
    expect(received()).toBe('a');
    // a new connection after the heal is forwarded again
    const again = connect(proxy.port, '127.0.0.1');
    closers.push(() => again.destroy());
    let got = '';
    again.on('data', (d: Buffer) => (got += d.toString()));
    again.write('c');
    await until('the echo after the heal', () => got === 'c');
  });

  it('delays every chunk in order while slowed', async () => {
    const { proxy, client, received } = await link();
    proxy.delay(150);
    const t0 = performance.now();
    client.write('1');
    client.write('2');
    await until('both chunks', () => received() === '12');
    // two one-way hops held 150 ms each: the echo cannot come back sooner than 300 ms
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
    proxy.delay(0);
    client.write('3');
    await until('the third chunk', () => received() === '123');
  });
});

import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP link between two processes that a test controls: it forwards bytes from a loopback
 * port to a target, and can be cut, healed or slowed while the processes keep running.
 *
 * - `partition()`: the link stops carrying bytes both ways. Connections stay open, as they
 *   would across a switch that drops every packet: each side only notices through its own
 *   timeouts (a request times out, a ping goes unanswered). New connections are accepted and
 *   then hang the same way.
 * - `heal()`: connections that lived through the partition are reset (as after a router that
 *   lost its state: nothing sent during the partition arrives), new ones are forwarded again.
 * - `delay(ms)`: every chunk is held `ms` before it is forwarded, in order (a slow network;
 *   0 ends it).
 *
 * What it cannot show: packet loss or reordering inside a live connection (TCP hides both from
 * the processes anyway), or an asymmetric partition (one direction only).
 */
export interface TcpProxy {
  /** The port to connect to instead of the target's. */
  readonly port: number;
  readonly target: { host: string; port: number };
  readonly partitioned: boolean;
  partition(): void;
  heal(): void;
  delay(ms: number): void;
  /** Connections currently open through the link. */
  readonly connections: number;
  close(): Promise<void>;
}

interface Link {
  client: Socket;
  upstream: Socket;
  /** Set when the link was open (or opened) during a partition: reset at the heal. */
  stalled: boolean;
}

/** Starts a proxy on 127.0.0.1 (port 0: a free one) forwarding to `target`. */
export async function startTcpProxy(target: { host?: string; port: number }, opts: { port?: number } = {}): Promise<TcpProxy> {
  const to = { host: target.host ?? '127.0.0.1', port: target.port };
  const links = new Set<Link>();
  let partitioned = false;
  let delayMs = 0;

  const pipe = (from: Socket, into: Socket, link: Link) => {
    // In-order delivery with an optional hold per chunk; nothing is forwarded while cut.
    let chain = Promise.resolve();
    from.on('data', (chunk: Buffer) => {
      if (partitioned || link.stalled) return;
      const hold = delayMs;
      if (hold === 0) {
        into.write(chunk);
        return;
      }
      chain = chain.then(
        () =>
          new Promise<void>((r) =>
            setTimeout(() => {
              if (!partitioned && !link.stalled && !into.destroyed) into.write(chunk);
              r();
            }, hold),
          ),
      );
    });
  };

  const server: Server = createServer((client) => {
    const upstream = connect(to.port, to.host);
    const link: Link = { client, upstream, stalled: partitioned };
    links.add(link);
    const drop = () => {
      links.delete(link);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    pipe(client, upstream, link);
    pipe(upstream, client, link);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;

  return {
    port,
    target: to,
    get partitioned() {
      return partitioned;
    },
    get connections() {
      return links.size;
    },
    partition() {
      partitioned = true;
      for (const l of links) l.stalled = true;
    },
    heal() {
      partitioned = false;
      for (const l of [...links]) {
        if (!l.stalled) continue;
        l.client.resetAndDestroy();
        l.upstream.resetAndDestroy();
        links.delete(l);
      }
    },
    delay(ms: number) {
      delayMs = Math.max(0, ms);
    },
    async close() {
      for (const l of links) {
        l.client.destroy();
        l.upstream.destroy();
      }
      links.clear();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

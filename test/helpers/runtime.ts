import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRuntime, type Runtime, type RuntimeOptions } from '../../src/index.js';
import type { ClusterOptions } from '../../src/cluster/index.js';
import type { SnapshotRecord } from '../../src/protocol/index.js';
import { SqliteStore } from '../../src/store/index.js';
import { JetStreamStore } from '../../src/store/jetstream/index.js';
import { NatsTransport } from '../../src/transport/index.js';
import { startNatsServer, type NatsServer } from '../../src/testing/index.js';

export type Mode = 'embedded' | 'cluster';

/**
 * The modes the behavioural suites run in: `ICE_TEST_MODES` (comma-separated), default both.
 * `ICE_TEST_MODES=embedded npx vitest run …` skips every cluster variant.
 */
export const MODES: Mode[] = parseModes(process.env['ICE_TEST_MODES']);

function parseModes(env: string | undefined): Mode[] {
  const wanted = (env ?? 'embedded,cluster')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const m of wanted) {
    if (m !== 'embedded' && m !== 'cluster') throw new Error(`ICE_TEST_MODES: unknown mode ${JSON.stringify(m)} (embedded, cluster)`);
  }
  return [...new Set(wanted)] as Mode[];
}

/** A fresh data dir under the OS temp dir; removed by `cleanup()`. */
export function tempDir(prefix = 'ice-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface TempRuntimeOptions extends Omit<RuntimeOptions, 'cluster'> {
  /** Default `embedded`. */
  mode?: Mode;
  /** Cluster mode: options of the node besides `servers` (which is the helper's server). */
  cluster?: Partial<ClusterOptions>;
}

export interface TempRuntime {
  rt: Runtime;
  mode: Mode;
  /** The data dir (embedded) or the nats-server's temp dir (cluster). */
  dir: string;
  /** The nats-server of a cluster runtime (its own, started for it). */
  server: NatsServer | undefined;
  /**
   * Another node of the same cluster (same server, same JetStream): `node` names it. Stopped
   * by `close()`. Cluster mode only.
   */
  node(node: string, extra?: Omit<TempRuntimeOptions, 'mode'>): Promise<Runtime>;
  /**
   * Stops `rt` and starts it again on the same data: the same data dir (embedded), or a node
   * with the same name on the same server (cluster). `rt` is the new runtime afterwards.
   */
  restart(extra?: Omit<TempRuntimeOptions, 'mode'>): Promise<Runtime>;
  /**
   * An actor's newest snapshot as the store holds it, read outside the runtime: over a
   * read-only SQLite connection (embedded), or over a NATS connection of its own from the
   * JetStream stream (cluster).
   */
  storedSnapshot(actor: string): Promise<SnapshotRecord | undefined>;
  /** Stops every runtime, the server, and removes the dirs. */
  close(): Promise<void>;
}

/**
 * A runtime on fresh storage; `close()` stops it and deletes everything.
 *
 * - `embedded`: `createRuntime({ dataDir })` on a temp dir.
 * - `cluster`: a nats-server of its own (JetStream, its store dir under its temp dir), and
 *   `createRuntime({ cluster: { servers }, node: 'n1' })`. One server per runtime keeps tests
 *   apart completely (grants, pending approvals and outcomes live in shared JetStream buckets);
 *   measured on 2 cores: ~30 ms to start the server, ~15 ms for the node, ~10 ms to stop both.
 */
export async function tempRuntime(opts: TempRuntimeOptions = {}): Promise<TempRuntime> {
  const { mode = 'embedded', cluster, ...base } = opts;
  const others: Runtime[] = [];
  let reader: { store: JetStreamStore; transport: NatsTransport } | undefined;
  if (mode === 'embedded') {
    const t = tempDir();
    let current: Runtime;
    try {
      if (cluster) throw new Error('tempRuntime: cluster options in embedded mode');
      current = await createRuntime({ dataDir: t.dir, ...base });
    } catch (e) {
      t.cleanup();
      throw e;
    }
    const h: TempRuntime = {
      rt: current,
      mode,
      dir: t.dir,
      server: undefined,
      node: () => Promise.reject(new Error('tempRuntime: more nodes only in cluster mode')),
      async restart(extra = {}) {
        await h.rt.stop();
        const { cluster: _c, ...more } = extra;
        h.rt = await createRuntime({ dataDir: t.dir, ...base, ...more });
        return h.rt;
      },
      async storedSnapshot(actor) {
        const ro = new SqliteStore(t.dir, { readonly: true });
        try {
          return ro.snapshot(actor);
        } finally {
          await ro.close();
        }
      },
      async close() {
        await h.rt.stop();
        t.cleanup();
      },
    };
    return h;
  }

  const server = await startNatsServer();
  const start = (node: string, extra: Omit<TempRuntimeOptions, 'mode'> = {}) =>
    createRuntime({ ...base, ...extra, cluster: { ...cluster, ...extra.cluster, servers: server.url }, node });
  let first: Runtime;
  try {
    first = await start(base.node ?? 'n1');
  } catch (e) {
    await server.stop();
    throw e;
  }
  const h: TempRuntime = {
    rt: first,
    mode,
    dir: server.dir,
    server,
    async node(node, extra = {}) {
      const rt = await start(node, extra);
      others.push(rt);
      return rt;
    },
    async restart(extra = {}) {
      await h.rt.stop();
      h.rt = await start(h.rt.node, extra);
      return h.rt;
    },
    async storedSnapshot(actor) {
      if (!reader) {
        const transport = await NatsTransport.connect({ servers: server.url, name: 'ice-test-reader' });
        reader = { transport, store: await JetStreamStore.open(transport.connection) };
      }
      return reader.store.latestSnapshot(actor);
    },
    async close() {
      for (const rt of [...others].reverse()) await rt.stop().catch(() => {});
      await h.rt.stop();
      if (reader) {
        await reader.store.close().catch(() => {});
        await reader.transport.close().catch(() => {});
      }
      await server.stop();
    },
  };
  return h;
}

let n = 0;
/** A unique intent id for this test process. */
export function iid(prefix = 'i'): string {
  return `${prefix}-${process.pid}-${++n}`;
}

/**
 * Polls `fn` until it returns something truthy (a condition, never a fixed sleep); throws
 * naming `what` after `timeoutMs`.
 */
export async function until<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 10_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`,
      );
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

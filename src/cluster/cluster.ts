import { ConfigError, ConflictError, ensureError } from '../errors.js';
import { AuthorityKey, type AuthorityPublicKey, type GrantBook } from '../authority/index.js';
import { LeaseManager } from '../store/jetstream/lease.js';
import { JetStreamStore } from '../store/jetstream/jetstream-store.js';
import { JetStreamJournalReader, keyResolver, KEYS_BUCKET } from '../store/jetstream/journal-reader.js';
import { WatchedBucket } from '../store/jetstream/kv-stores.js';
import { LeaseOwnership } from '../ownership/lease-ownership.js';
import { NatsTransport } from '../transport/nats-transport.js';
import { redactNatsUrls } from '../transport/nats-url.js';
import type { NatsAuthOptions } from '../transport/nats-auth.js';
import type { Transport } from '../transport/transport.js';
import type { JournalReader, StartCheck } from '../journal/reader.js';
import { checkClusterAtStart } from './start-check.js';
import type { OwnershipPort, StorePort } from '../host/ports.js';
import type { Clock } from '../util/clock.js';
import type { IdGen } from '../util/ids.js';
import type { Logger } from '../util/logger.js';
import { ClusterGrants } from './cluster-grants.js';
import { ClusterPolicyStorage } from './cluster-policies.js';

/**
 * What is really cluster-specific, and nothing else: connecting to NATS, the JetStream store
 * and the lease ownership the one Host runs on, the grants every node watches, and the
 * forwards a node serves on `ice.node.<node>.…` (wired in runtime.ts). Validation, authority, execution and
 * recording are the Host's and the Intake's, the same as on one node.
 */
export interface ClusterOptions {
  /** NATS server URL(s). */
  servers: string | string[];
  /**
   * How the node authenticates when it connects itself (no transport given): user/password,
   * token, nkey seed file, creds file, TLS (see nats-auth.ts). Credentials in `servers` count too.
   */
  auth?: Omit<NatsAuthOptions, 'servers'>;
  /** JetStream replicas of the stream and buckets this node creates (default 1). */
  replicas?: number;
  /** Lease length (default 5000 ms). */
  leaseTtlMs?: number;
  /** Lease renewal period (default ttl/3). Tests set it huge to simulate a paused node. */
  leaseRenewEveryMs?: number;
  /** Timeout of a forward to the owner node (default 5000 ms). */
  forwardTimeoutMs?: number;
  /** The node's authority key file (created if missing); default a key generated for this process. */
  keyFile?: string;
  /**
   * How long start-up keeps retrying while JetStream is not available yet (a cluster that is
   * electing leaders after a restart answers "jetstream is not enabled" for ~10 s on
   * nats-server 2.9). Each retry is logged with the servers and the error. Default 60 s.
   */
  startTimeoutMs?: number;
}

export interface ClusterParts {
  key: AuthorityKey;
  /** Every node key published in ICE_KEYS, this node's first. */
  publishedKeys(): Promise<AuthorityPublicKey[]>;
  store: StorePort;
  transport: Transport;
  ownership: OwnershipPort;
  grants: GrantBook;
  /** The policy set versions every node watches (KV bucket ICE_POLICIES). */
  policies: ClusterPolicyStorage;
  reader: JournalReader;
  /** The journal check before serving (see start-check.ts). */
  checkAtStart(): Promise<StartCheck>;
  close(opts: { release: boolean }): Promise<void>;
}

export async function startCluster(
  opts: ClusterOptions,
  ctx: { node: string; clock: Clock; ids: IdGen; logger: Logger; transport?: Transport },
): Promise<ClusterParts> {
  if (ctx.transport && !(ctx.transport instanceof NatsTransport)) {
    throw new ConfigError('cluster mode needs a NATS transport (or none: it connects to cluster.servers itself)');
  }
  const replicas = opts.replicas ?? 1;
  const shownServers = redactNatsUrls(opts.servers).join(','); // never a password in a message
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) {
    throw new ConfigError(`replicas ${String(opts.replicas)}: expected an integer from 1 to 5`);
  }
  const transport =
    ctx.transport ??
    (await NatsTransport.connect({
      ...opts.auth,
      servers: opts.servers,
      name: `ice-node-${ctx.node}`,
      // A node outlives server restarts: it reconnects for as long as it runs.
      maxReconnectAttempts: -1,
      reconnectTimeWaitMs: 250,
      onHandlerError: (err, subject) => ctx.logger.error({ err, subject }, 'handler failed'),
    }));
  const closers: Array<() => Promise<void>> = [];
  if (!ctx.transport) closers.push(() => transport.close());
  const closeAll = async () => {
    for (const c of closers.reverse()) await c().catch(() => {});
  };
  try {
    const nc = transport.connection;
    const startTimeoutMs = opts.startTimeoutMs ?? 60_000;
    const started = Date.now();
    const retrying = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await fn();
        } catch (e) {
          const err = ensureError(e);
          if (Date.now() - started >= startTimeoutMs) {
            throw new ConfigError(
              `${what} on ${shownServers} failed for ${startTimeoutMs} ms (${err.message}); ` +
                'check that the servers run with JetStream enabled, or raise the start timeout',
              { cause: err },
            );
          }
          ctx.logger.warn({ servers: shownServers, attempt, err: err.message }, `${what} failed; retrying`);
          await new Promise((r) => setTimeout(r, Math.min(2000, 250 * attempt)));
        }
      }
    };
    const store = await retrying('opening the JetStream journal', () => JetStreamStore.open(nc, { replicas, logger: ctx.logger }));
    closers.push(() => store.close());
    const holder: { ownership?: LeaseOwnership } = {};
    const leases = await retrying('opening the lease bucket', () =>
      LeaseManager.open(nc, {
        node: ctx.node,
        clock: ctx.clock,
        replicas,
        ...(opts.leaseTtlMs !== undefined ? { ttlMs: opts.leaseTtlMs } : {}),
        ...(opts.leaseRenewEveryMs !== undefined ? { renewEveryMs: opts.leaseRenewEveryMs } : {}),
        onLost: (key, h) => holder.ownership?.lost(key, h),
      }),
    );
    const ownership = new LeaseOwnership(leases, ctx.clock);
    holder.ownership = ownership;
    let release = true;
    closers.push(() => ownership.close({ release }));
    const grants = await retrying('opening the grant bucket', () =>
      ClusterGrants.open(nc, { clock: ctx.clock, ids: ctx.ids, logger: ctx.logger, replicas }),
    );
    closers.push(() => grants.close());
    const policies = await retrying('opening the policy bucket', () => ClusterPolicyStorage.open(nc, { logger: ctx.logger, replicas }));
    closers.push(() => policies.close());
    const key = opts.keyFile ? AuthorityKey.loadOrCreate(opts.keyFile) : AuthorityKey.generate();
    // Every node's public key, so anyone can check the turns it signed (ICE_KEYS, by key id).
    const keys = await retrying('opening the key bucket', () => WatchedBucket.open(nc, KEYS_BUCKET, { history: 1, replicas }));
    await keys
      .create(key.keyId, { keyId: key.keyId, node: ctx.node, publicKeyPem: key.publicKeyPem, at: new Date(ctx.clock.now()).toISOString() })
      .catch((e: unknown) => {
        if (!(e instanceof ConflictError)) throw e; // the same key published before: fine
      });
    const resolveKey = keyResolver(keys);
    const reader = new JetStreamJournalReader(nc, store, { keys: resolveKey });
    return {
      checkAtStart: () => checkClusterAtStart(reader, keys, resolveKey, key, ctx.node),
      key,
      /** Every node key published in ICE_KEYS (this node's first), as `ice authority keys` lists them. */
      async publishedKeys() {
        const out = [key.publicInfo(ctx.node)];
        for (const id of await keys.keys()) {
          if (id === key.keyId) continue;
          const e = await keys.get(id);
          const v = e?.value as { publicKeyPem?: unknown; node?: unknown } | undefined;
          if (typeof v?.publicKeyPem !== 'string') continue;
          const k = AuthorityKey.fromPublicPem(v.publicKeyPem);
          if (k.keyId === id) out.push(k.publicInfo(typeof v.node === 'string' ? v.node : undefined));
        }
        return out;
      },
      store,
      transport,
      ownership,
      grants,
      policies,
      reader,
      async close(o) {
        release = o.release;
        await closeAll();
      },
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

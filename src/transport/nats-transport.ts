import {
  ClosedConnectionError as NatsClosedConnectionError,
  DrainingConnectionError as NatsDrainingConnectionError,
  NoRespondersError as NatsNoRespondersError,
  PermissionViolationError as NatsPermissionViolationError,
  RequestError as NatsRequestError,
  TimeoutError as NatsTimeoutError,
  connect,
  headers as natsHeaders,
  type MsgHdrs,
  type Msg as NatsMsg,
  type NatsConnection,
  type NodeConnectionOptions,
  type Subscription as NatsSubscription,
} from '@nats-io/transport-node';
import { ClosedError, NoRespondersError, PermissionDeniedError, TimeoutError, ensureError } from '../errors.js';
import { natsConnectOptions, type NatsAuthOptions } from './nats-auth.js';
import {
  isValidPublishSubject,
  isValidSubscribeSubject,
  type Headers,
  type Msg,
  type MsgHandler,
  type PublishOptions,
  type RequestOptions,
  type SubscribeOptions,
  type Subscription,
  type Transport,
} from './transport.js';

export interface NatsTransportOptions {
  /** Called when a handler throws or rejects, or a subscription reports an error; never crashes the bus. */
  onHandlerError?: (err: Error, subject: string) => void;
  /**
   * Whether `close()` drains and closes the underlying connection. Defaults to true for
   * `NatsTransport.connect`, false for a transport wrapped around a caller's connection
   * (then `close()` only unsubscribes this transport's subscriptions and fails its pending requests).
   */
  ownsConnection?: boolean;
  /** Upper bound for the graceful drain in `close()`; after it the connection is closed hard. Default 5000. */
  drainTimeoutMs?: number;
}

/**
 * Servers and authentication ({@link NatsAuthOptions}: user/password, token, nkey seed file,
 * creds file, TLS, inbox prefix; credentials in the URLs count too) plus connection behaviour.
 */
export interface NatsTransportConnectOptions extends Omit<NatsTransportOptions, 'ownsConnection'>, NatsAuthOptions {
  /** Client name shown in the server's connection list. */
  name?: string;
  /** Reconnect after losing the server (default true, as in nats.js). */
  reconnect?: boolean;
  /** -1 retries forever; nats.js default is 10. */
  maxReconnectAttempts?: number;
  /** Pause between reconnect attempts to the same server (nats.js default 2000). */
  reconnectTimeWaitMs?: number;
  /** Keep retrying the initial connect (subject to maxReconnectAttempts) instead of failing at once. */
  waitOnFirstConnect?: boolean;
  /** Timeout of the initial connect (nats.js default 20000). */
  connectTimeoutMs?: number;
  /** Further nats.js options; they win over the fields above. */
  connectOptions?: Partial<NodeConnectionOptions>;
}

interface Pending {
  reject: (e: Error) => void;
}

/**
 * Transport over a NATS server (see transport.ts for the semantics).
 *
 * Wire format: payloads are UTF-8 JSON; `undefined` (or a value JSON cannot encode, such as
 * a function) is sent as an empty body, and an empty body arrives as `data: undefined`.
 * A non-empty body that is not valid JSON (published by some other client) arrives with
 * `data` set to the raw body text (a string), so nothing is silently dropped; handlers that
 * care must validate `data` anyway.
 * Headers: each of our `Record<string, string>` entries becomes one NATS header (key case is
 * kept; nats.js trims surrounding whitespace from values and rejects CR/LF). A received header
 * with several values is joined with `, `.
 */
export class NatsTransport implements Transport {
  readonly kind = 'nats';
  readonly #nc: NatsConnection;
  readonly #ownsConnection: boolean;
  readonly #drainTimeoutMs: number;
  readonly #onHandlerError: (err: Error, subject: string) => void;
  readonly #subs = new Set<NatsSubscription>();
  readonly #pending = new Set<Pending>();
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(nc: NatsConnection, opts: NatsTransportOptions = {}) {
    this.#nc = nc;
    this.#ownsConnection = opts.ownsConnection ?? false;
    this.#drainTimeoutMs = opts.drainTimeoutMs ?? 5000;
    this.#onHandlerError = opts.onHandlerError ?? (() => {});
    // The connection can close under us (reconnects exhausted, or its owner closed it).
    void nc.closed().then(() => this.#markClosed());
  }

  /** Connects to NATS; the transport owns the connection and closes it on `close()`. */
  static async connect(opts: NatsTransportConnectOptions): Promise<NatsTransport> {
    // No async stack traces: nats.js would capture two per request (20 % of a busy node's
    // CPU, measured); errors still name the subject and the operation.
    // Authentication and TLS in one place (nats-auth.ts): credentials in the URLs
    // (`nats://user:pass@host`, `nats://token@host`), user/password, token, nkey, creds, TLS.
    const co: NodeConnectionOptions = { ...natsConnectOptions(opts), noAsyncTraces: true };
    if (opts.name !== undefined) co.name = opts.name;
    if (opts.reconnect !== undefined) co.reconnect = opts.reconnect;
    if (opts.maxReconnectAttempts !== undefined) co.maxReconnectAttempts = opts.maxReconnectAttempts;
    if (opts.reconnectTimeWaitMs !== undefined) co.reconnectTimeWait = opts.reconnectTimeWaitMs;
    if (opts.waitOnFirstConnect !== undefined) co.waitOnFirstConnect = opts.waitOnFirstConnect;
    if (opts.connectTimeoutMs !== undefined) co.timeout = opts.connectTimeoutMs;
    Object.assign(co, opts.connectOptions);
    const nc = await connect(co);
    const topts: NatsTransportOptions = { ownsConnection: true };
    if (opts.onHandlerError) topts.onHandlerError = opts.onHandlerError;
    if (opts.drainTimeoutMs !== undefined) topts.drainTimeoutMs = opts.drainTimeoutMs;
    return new NatsTransport(nc, topts);
  }

  /** Wraps a connection the caller keeps owning (unless `ownsConnection: true`). */
  static fromConnection(nc: NatsConnection, opts: NatsTransportOptions = {}): NatsTransport {
    return new NatsTransport(nc, opts);
  }

  /** The underlying nats.js connection, e.g. for JetStream. */
  get connection(): NatsConnection {
    return this.#nc;
  }

  /** Version of the server this client is connected to, e.g. `2.9.10`. */
  get serverVersion(): string | undefined {
    return this.#nc.info?.version;
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  publish(subject: string, data: unknown, opts: PublishOptions = {}): void {
    this.#checkOpen();
    if (!isValidPublishSubject(subject)) throw new TypeError(`invalid publish subject: ${JSON.stringify(subject)}`);
    if (opts.reply !== undefined && !isValidPublishSubject(opts.reply)) {
      throw new TypeError(`invalid reply subject: ${JSON.stringify(opts.reply)}`);
    }
    const payload = encode(data);
    const hdrs = toNatsHeaders(opts.headers);
    try {
      this.#nc.publish(subject, payload, {
        ...(opts.reply !== undefined ? { reply: opts.reply } : {}),
        ...(hdrs ? { headers: hdrs } : {}),
      });
    } catch (e) {
      throw this.#mapClosed(e);
    }
  }

  subscribe(subject: string, handler: MsgHandler, opts: SubscribeOptions = {}): Subscription {
    this.#checkOpen();
    if (!isValidSubscribeSubject(subject)) throw new TypeError(`invalid subscribe subject: ${JSON.stringify(subject)}`);
    if (opts.queue !== undefined && !/^[^\s]+$/.test(opts.queue)) {
      throw new TypeError(`invalid queue group: ${JSON.stringify(opts.queue)}`);
    }
    let active = true;
    let sub: NatsSubscription;
    try {
      sub = this.#nc.subscribe(subject, {
        ...(opts.queue !== undefined ? { queue: opts.queue } : {}),
        callback: (err, m) => {
          if (err) {
            // e.g. a permissions violation: the subscription is dead, tell whoever listens.
            this.#subs.delete(sub);
            this.#onHandlerError(ensureError(err), subject);
            return;
          }
          if (active && !this.#closed) this.#dispatch(handler, m, subject);
        },
      });
    } catch (e) {
      throw this.#mapClosed(e);
    }
    this.#subs.add(sub);
    return {
      subject,
      unsubscribe: () => {
        if (!active) return;
        active = false;
        this.#subs.delete(sub);
        try {
          sub.unsubscribe();
        } catch {
          // connection already closed: nothing left to unsubscribe
        }
      },
    };
  }

  request(subject: string, data: unknown, opts: RequestOptions): Promise<Msg> {
    if (this.#closed || this.#nc.isClosed()) return Promise.reject(new ClosedError('transport'));
    if (!isValidPublishSubject(subject)) {
      return Promise.reject(new TypeError(`invalid request subject: ${JSON.stringify(subject)}`));
    }
    let payload: string | Uint8Array;
    let hdrs: MsgHdrs | undefined;
    try {
      payload = encode(data);
      hdrs = toNatsHeaders(opts.headers);
    } catch (e) {
      return Promise.reject(ensureError(e));
    }
    // nats.js treats a timeout of 0 as "use the default (1 s)"; keep ours literal.
    const timeout = Math.max(1, Math.floor(opts.timeoutMs));
    return new Promise<Msg>((resolve, reject) => {
      const entry: Pending = { reject };
      this.#pending.add(entry);
      let p: Promise<NatsMsg>;
      try {
        p = this.#nc.request(subject, payload, { timeout, ...(hdrs ? { headers: hdrs } : {}) });
      } catch (e) {
        this.#pending.delete(entry);
        reject(this.#mapRequestError(e, subject, opts.timeoutMs));
        return;
      }
      p.then(
        (m) => {
          if (!this.#pending.delete(entry)) return; // already failed by close()
          resolve(this.#wrap(m));
        },
        (e: unknown) => {
          if (!this.#pending.delete(entry)) return;
          reject(this.#mapRequestError(e, subject, opts.timeoutMs));
        },
      );
    });
  }

  async flush(): Promise<void> {
    this.#checkOpen();
    try {
      await this.#nc.flush();
    } catch (e) {
      throw this.#mapClosed(e);
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#markClosed();
    const nc = this.#nc;
    if (!this.#ownsConnection) {
      for (const sub of this.#subs) {
        try {
          sub.unsubscribe();
        } catch {
          // already closed
        }
      }
      this.#subs.clear();
      // best effort: get the UNSUBs out, but never hang on a disconnected connection
      if (!nc.isClosed() && !nc.isDraining()) await this.#bounded(nc.flush());
      return;
    }
    this.#subs.clear();
    if (nc.isClosed()) return;
    const drained = nc.isDraining() ? nc.closed().then(() => {}) : nc.drain();
    const ok = await this.#bounded(drained);
    // drain failed or took too long (e.g. no server to flush to): close hard
    if (!ok && !nc.isClosed()) await nc.close().catch(() => {});
  }

  /** True when `p` settles successfully within the drain timeout. */
  async #bounded(p: Promise<unknown>): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((r) => {
      timer = setTimeout(() => r(false), this.#drainTimeoutMs);
    });
    try {
      return await Promise.race([
        p.then(
          () => true,
          () => false,
        ),
        timedOut,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  #markClosed(): void {
    if (this.#closed) return;
    this.#closed = true;
    const pending = [...this.#pending];
    this.#pending.clear();
    for (const p of pending) p.reject(new ClosedError('transport'));
  }

  #checkOpen(): void {
    if (this.#closed || this.#nc.isClosed()) throw new ClosedError('transport');
  }

  #mapClosed(e: unknown): Error {
    if (e instanceof NatsClosedConnectionError || e instanceof NatsDrainingConnectionError || this.#closed || this.#nc.isClosed()) {
      return new ClosedError('transport');
    }
    return ensureError(e);
  }

  #mapRequestError(e: unknown, subject: string, timeoutMs: number): Error {
    if (e instanceof NatsTimeoutError) return new TimeoutError(subject, timeoutMs);
    if (e instanceof NatsNoRespondersError) return new NoRespondersError(subject);
    if (e instanceof NatsRequestError) {
      if (e.isNoResponders()) return new NoRespondersError(subject);
      if (e.cause instanceof NatsTimeoutError) return new TimeoutError(subject, timeoutMs);
      // nats.js v3 rejects the request whose subject the server's -ERR names with a
      // RequestError caused by a PermissionViolationError (operation "publish"), at once.
      if (e.cause instanceof NatsPermissionViolationError && e.cause.operation === 'publish') {
        return new PermissionDeniedError(subject, e.cause.message, { cause: e });
      }
      // the connection closed with the request in flight ("connection closed")
      if (this.#closed || this.#nc.isClosed()) return new ClosedError('transport');
    }
    return this.#mapClosed(e);
  }

  #wrap(m: NatsMsg): Msg {
    const reply = m.reply !== undefined && m.reply !== '' ? m.reply : undefined;
    return {
      subject: m.subject,
      data: decode(m),
      headers: fromNatsHeaders(m.headers),
      reply,
      respond: (d: unknown, h?: Headers): boolean => {
        if (!reply || this.#closed || this.#nc.isClosed()) return false;
        const payload = encode(d);
        const hdrs = toNatsHeaders(h);
        try {
          this.#nc.publish(reply, payload, hdrs ? { headers: hdrs } : undefined);
          return true;
        } catch (e) {
          if (e instanceof NatsClosedConnectionError || e instanceof NatsDrainingConnectionError) return false;
          throw e;
        }
      },
    };
  }

  #dispatch(handler: MsgHandler, m: NatsMsg, subject: string): void {
    let msg: Msg;
    try {
      msg = this.#wrap(m);
    } catch (e) {
      this.#onHandlerError(ensureError(e), subject);
      return;
    }
    try {
      const r = handler(msg);
      if (r && typeof r.catch === 'function') {
        r.catch((e: unknown) => this.#onHandlerError(ensureError(e), msg.subject));
      }
    } catch (e) {
      this.#onHandlerError(ensureError(e), msg.subject);
    }
  }
}

const EMPTY = new Uint8Array(0);

function encode(data: unknown): string | Uint8Array {
  if (data === undefined) return EMPTY;
  const s = JSON.stringify(data) as string | undefined;
  return s === undefined ? EMPTY : s;
}

/** JSON body → value; empty body → undefined; anything else → the raw text. */
function decode(m: NatsMsg): unknown {
  if (m.data.length === 0) return undefined;
  const text = m.string();
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function toNatsHeaders(h: Headers | undefined): MsgHdrs | undefined {
  if (!h) return undefined;
  const keys = Object.keys(h);
  if (keys.length === 0) return undefined;
  const hdrs = natsHeaders();
  for (const k of keys) hdrs.set(k, h[k]!);
  return hdrs;
}

function fromNatsHeaders(h: MsgHdrs | undefined): Headers | undefined {
  if (!h) return undefined;
  const out: Headers = {};
  let any = false;
  for (const [k, vs] of h) {
    out[k] = vs.join(', ');
    any = true;
  }
  return any ? out : undefined;
}

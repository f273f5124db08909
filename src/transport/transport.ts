/**
 * The message bus between proposers, the authority and hosts. Semantics are NATS's, so the
 * embedded bus and the NATS bus are interchangeable:
 * - subjects are `.`-separated tokens; in subscriptions `*` matches one token and `>` one or
 *   more trailing tokens;
 * - a subscription with a `queue` name shares messages with the other members of that queue
 *   group (each message goes to one member), while plain subscriptions each get every message;
 * - `request` publishes with a private reply subject and resolves with the first reply, or
 *   rejects with `NoRespondersError` when nobody is subscribed, `TimeoutError` when nobody
 *   answers in time;
 * - delivery is asynchronous: `publish` returns before any handler runs.
 * Payloads are JSON values; the NATS transport encodes them as UTF-8 JSON.
 */

export type Headers = Record<string, string>;

export interface Msg {
  readonly subject: string;
  readonly data: unknown;
  readonly headers?: Headers | undefined;
  readonly reply?: string | undefined;
  /** Replies to the requester; false when the message had no reply subject. */
  respond(data: unknown, headers?: Headers): boolean;
}

export type MsgHandler = (msg: Msg) => void | Promise<void>;

export interface SubscribeOptions {
  queue?: string;
}

export interface RequestOptions {
  timeoutMs: number;
  headers?: Headers;
}

export interface PublishOptions {
  reply?: string;
  headers?: Headers;
}

export interface Subscription {
  readonly subject: string;
  unsubscribe(): void;
}

export interface Transport {
  /** Human-readable name of the implementation, for logs (`embedded`, `nats`). */
  readonly kind: string;
  publish(subject: string, data: unknown, opts?: PublishOptions): void;
  subscribe(subject: string, handler: MsgHandler, opts?: SubscribeOptions): Subscription;
  request(subject: string, data: unknown, opts: RequestOptions): Promise<Msg>;
  /** Resolves when everything published so far has been handed on. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

const TOKEN_RE = /^[^\s.*>]+$/;
const PUBLISH_RE = /^[^\s.*>]+(?:\.[^\s.*>]+)*$/;

/** A subject to publish on: non-empty tokens, no wildcards, no whitespace. */
export function isValidPublishSubject(subject: string): boolean {
  return PUBLISH_RE.test(subject);
}

/** A subject to subscribe to: like a publish subject, but `*` tokens and a final `>` are allowed. */
export function isValidSubscribeSubject(subject: string): boolean {
  if (subject.length === 0) return false;
  const tokens = subject.split('.');
  return tokens.every((t, i) => t === '*' || (t === '>' && i === tokens.length - 1) || TOKEN_RE.test(t));
}

/**
 * True when `subject` (concrete) matches `pattern` (may contain `*` and `>`). Walks both
 * strings token by token without splitting them (it runs for every message and wildcard).
 */
export function subjectMatches(pattern: string, subject: string): boolean {
  if (pattern === subject) return true;
  const pn = pattern.length;
  const sn = subject.length;
  // pi, si: start of the current token; past the end (n + 1) once there are no more tokens.
  let pi = 0;
  let si = 0;
  while (pi <= pn) {
    let pe = pattern.indexOf('.', pi);
    if (pe < 0) pe = pn;
    const plen = pe - pi;
    if (plen === 1 && pattern.charCodeAt(pi) === 62 /* > */) return si <= sn;
    if (si > sn) return false;
    let se = subject.indexOf('.', si);
    if (se < 0) se = sn;
    if (!(plen === 1 && pattern.charCodeAt(pi) === 42) /* * */) {
      if (se - si !== plen || !subject.startsWith(pattern.slice(pi, pe), si)) return false;
    }
    pi = pe + 1;
    si = se + 1;
  }
  return si > sn;
}

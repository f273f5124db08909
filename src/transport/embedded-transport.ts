import { randomUUID } from 'node:crypto';
import { ClosedError, NoRespondersError, TimeoutError, ensureError } from '../errors.js';
import {
  isValidPublishSubject,
  isValidSubscribeSubject,
  subjectMatches,
  type Headers,
  type Msg,
  type MsgHandler,
  type PublishOptions,
  type RequestOptions,
  type SubscribeOptions,
  type Subscription,
  type Transport,
} from './transport.js';

interface Candidates {
  plain: Sub[];
  groups: Array<[string, Sub[]]>;
}

interface Sub {
  id: number;
  subject: string;
  literal: boolean;
  queue: string | undefined;
  handler: MsgHandler;
  closed: boolean;
}

export interface EmbeddedTransportOptions {
  /** Called when a handler throws or rejects; the bus itself never crashes on it. */
  onHandlerError?: (err: Error, subject: string) => void;
}

/**
 * In-process bus with NATS semantics (see transport.ts). Payloads are passed by reference:
 * senders must not mutate a payload after publishing it.
 */
export class EmbeddedTransport implements Transport {
  readonly kind = 'embedded';
  #subs = new Map<number, Sub>();
  #literal = new Map<string, Set<Sub>>();
  #wildcard = new Set<Sub>();
  #nextId = 1;
  #rr = new Map<string, number>();
  #cache = new Map<string, Candidates>();
  #closed = false;
  #inboxPrefix = `_INBOX.${randomUUID().replaceAll('-', '')}`;
  #inboxSeq = 0;
  #pending = new Map<string, { resolve: (m: Msg) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  #inboxSub: Subscription | undefined;
  readonly #onHandlerError: (err: Error, subject: string) => void;

  constructor(opts: EmbeddedTransportOptions = {}) {
    this.#onHandlerError = opts.onHandlerError ?? (() => {});
  }

  publish(subject: string, data: unknown, opts: PublishOptions = {}): void {
    if (this.#closed) throw new ClosedError('transport');
    if (!isValidPublishSubject(subject)) throw new TypeError(`invalid publish subject: ${JSON.stringify(subject)}`);
    if (opts.reply !== undefined && !isValidPublishSubject(opts.reply)) {
      throw new TypeError(`invalid reply subject: ${JSON.stringify(opts.reply)}`);
    }
    this.#deliver(subject, data, opts.reply, opts.headers);
  }

  subscribe(subject: string, handler: MsgHandler, opts: SubscribeOptions = {}): Subscription {
    if (this.#closed) throw new ClosedError('transport');
    if (!isValidSubscribeSubject(subject)) throw new TypeError(`invalid subscribe subject: ${JSON.stringify(subject)}`);
    const sub: Sub = {
      id: this.#nextId++,
      subject,
      literal: !subject.includes('*') && !subject.includes('>'),
      queue: opts.queue,
      handler,
      closed: false,
    };
    this.#subs.set(sub.id, sub);
    this.#cache.clear();
    if (sub.literal) {
      let set = this.#literal.get(subject);
      if (!set) this.#literal.set(subject, (set = new Set()));
      set.add(sub);
    } else {
      this.#wildcard.add(sub);
    }
    return {
      subject,
      unsubscribe: () => this.#remove(sub),
    };
  }

  request(subject: string, data: unknown, opts: RequestOptions): Promise<Msg> {
    if (this.#closed) return Promise.reject(new ClosedError('transport'));
    if (!isValidPublishSubject(subject)) {
      return Promise.reject(new TypeError(`invalid request subject: ${JSON.stringify(subject)}`));
    }
    if (!this.#inboxSub) {
      this.#inboxSub = this.subscribe(`${this.#inboxPrefix}.*`, (m) => this.#onReply(m));
    }
    const reply = `${this.#inboxPrefix}.${++this.#inboxSeq}`;
    return new Promise<Msg>((resolve, reject) => {
      const targets = this.#match(subject);
      if (targets.length === 0) {
        reject(new NoRespondersError(subject));
        return;
      }
      const timer = setTimeout(() => {
        this.#pending.delete(reply);
        reject(new TimeoutError(subject, opts.timeoutMs));
      }, opts.timeoutMs);
      this.#pending.set(reply, { resolve, reject, timer });
      this.#dispatch(targets, subject, data, reply, opts.headers);
    });
  }

  async flush(): Promise<void> {
    await new Promise<void>((r) => setImmediate(r));
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    for (const [, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(new ClosedError('transport'));
    }
    this.#pending.clear();
    for (const sub of this.#subs.values()) sub.closed = true;
    this.#subs.clear();
    this.#literal.clear();
    this.#wildcard.clear();
    this.#cache.clear();
    return Promise.resolve();
  }

  #onReply(m: Msg): void {
    const p = this.#pending.get(m.subject);
    if (!p) return;
    this.#pending.delete(m.subject);
    clearTimeout(p.timer);
    p.resolve(m);
  }

  #remove(sub: Sub): void {
    if (sub.closed) return;
    sub.closed = true;
    this.#cache.clear();
    this.#subs.delete(sub.id);
    if (sub.literal) {
      const set = this.#literal.get(sub.subject);
      set?.delete(sub);
      if (set && set.size === 0) this.#literal.delete(sub.subject);
    } else {
      this.#wildcard.delete(sub);
    }
  }

  /**
   * Subscribers that get a message on `subject`: every plain one, one per queue group. As in
   * NATS, a queue group is identified by its name alone, so members subscribed with different
   * (overlapping) patterns still share each message.
   */
  #match(subject: string): Sub[] {
    const c = this.#candidates(subject);
    if (c.groups.length === 0) return c.plain;
    const out = c.plain.slice();
    for (const [key, members] of c.groups) {
      const n = this.#rr.get(key) ?? 0;
      this.#rr.set(key, n + 1);
      out.push(members[n % members.length]!);
    }
    return out;
  }

  /**
   * Plain subscribers and queue groups interested in `subject`, cached per subject until the
   * next (un)subscribe. Inbox subjects are unique per request and never cached.
   */
  #candidates(subject: string): Candidates {
    const cached = this.#cache.get(subject);
    if (cached) return cached;
    const plain: Sub[] = [];
    let groups: Map<string, Sub[]> | undefined;
    const consider = (s: Sub) => {
      if (s.queue === undefined) {
        plain.push(s);
        return;
      }
      groups ??= new Map();
      const g = groups.get(s.queue);
      if (g) g.push(s);
      else groups.set(s.queue, [s]);
    };
    const lit = this.#literal.get(subject);
    if (lit) for (const s of lit) consider(s);
    for (const s of this.#wildcard) if (subjectMatches(s.subject, subject)) consider(s);
    const c: Candidates = { plain, groups: groups ? [...groups] : [] };
    if (!subject.startsWith('_INBOX.')) {
      if (this.#cache.size >= 10_000) this.#cache.clear();
      this.#cache.set(subject, c);
    }
    return c;
  }

  #deliver(subject: string, data: unknown, reply: string | undefined, headers: Headers | undefined): void {
    const targets = this.#match(subject);
    if (targets.length > 0) this.#dispatch(targets, subject, data, reply, headers);
  }

  #dispatch(targets: Sub[], subject: string, data: unknown, reply: string | undefined, headers: Headers | undefined): void {
    const msg: Msg = {
      subject,
      data,
      headers,
      reply,
      respond: (d: unknown, h?: Headers) => {
        if (!reply || this.#closed) return false;
        this.#deliver(reply, d, undefined, h);
        return true;
      },
    };
    queueMicrotask(() => {
      for (const sub of targets) {
        if (sub.closed) continue;
        try {
          const r = sub.handler(msg);
          if (r && typeof r.catch === 'function') {
            r.catch((e: unknown) => this.#onHandlerError(ensureError(e), subject));
          }
        } catch (e) {
          this.#onHandlerError(ensureError(e), subject);
        }
      }
    });
  }
}

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { createActor, type AnyActorRef, type InspectionEvent } from 'xstate';
import { WebSocket, WebSocketServer } from 'ws';
import { sendRecorded, watchChildren, withoutEffects } from '../host/index.js';
import type { ActorDefinition, ActorDetail, ActorInfo, InspectRecord } from '../host/index.js';
import { isRuntimeChain } from '../host/ports.js';
import type { JournalReader, VerifyResult } from '../journal/reader.js';
import { isAddress, type Fact } from '../protocol/index.js';
import { graphToMermaid, machineToGraph, stateValueToIds } from './machine-graph.js';
import type { MachineGraph, StateNodeInfo } from './machine-graph.js';
import { layoutGraph } from './layout.js';
import type { GraphLayout } from './layout.js';
import { renderSvg } from './svg.js';
import { APP_CSS, APP_JS, INDEX_HTML, STATELY_BRIDGE_HTML } from './page/assets.js';
import { isStatelyMessage, statelyActorRegistration, toJsonSafe, toStatelyMessage } from './stately.js';
import type { StatelyMessage } from './stately.js';
import type { WireInspectRecord } from './wire.js';
import { approvalsApi, type InspectorApprovals } from './approvals-api.js';
import { ConfigError } from '../errors.js';

/**
 * An inspection record the inspector takes: a live one from a runtime in this process (an
 * XState `InspectionEvent`), or one received from a node over the wire (src/inspector/wire.ts).
 */
export type InspectorRecord = InspectRecord | WireInspectRecord;

/**
 * What the inspector reads: a runtime in this process (`Runtime` fits), or a cluster's
 * JetStream state (`clusterInspectorSource`). It never proposes, spawns or signals.
 *
 * Facts are per chain: a fact is identified by `(fact.actor, fact.seq)` (its chain and its
 * position there), and `causes` name seqs of the same chain.
 */
export interface InspectorRuntime {
  definitions(): ActorDefinition[];
  listActors(): Promise<ActorInfo[]>;
  actor(address: string): Promise<ActorDetail | undefined>;
  readonly journal: JournalReader;
  /** Facts after they are durable. */
  onFact(listener: (f: Fact) => void): () => void;
  onInspect(listener: (r: InspectorRecord) => void): () => void;
  /** Prometheus text for `/metrics` (a runtime's; absent for a cluster source). */
  metrics?(): Promise<string>;
  /** Durable effects started and not finished (a runtime's; from the journal otherwise). */
  effects?(opts?: {
    limit?: number;
  }): Promise<Array<{ actor: string; id: string; name: string; attempts: number; running: boolean; lastError?: string }>>;
}

export interface InspectorOptions {
  runtime: InspectorRuntime;
  /** Default 4848; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1. The inspector shows actor contexts and the journal: keep it local. */
  host?: string;
  /**
   * Browser origins allowed to open the WebSockets, besides this server's own and any
   * `localhost` / `127.0.0.1` / `[::1]` origin. Clients without an Origin header (Node) are allowed.
   */
  allowedOrigins?: string[];
  /** How long to wait after the last fact before re-verifying the journal. Default 250 ms. */
  verifyDebounceMs?: number;
  /** The Stately inspector UI the bridge page embeds (only loaded if you open /stately). */
  statelyUrl?: string;
  /**
   * Pending intents with approve / deny buttons (src/inspector/approvals-api.ts). Only on a
   * loopback bind; POSTs need the token in `Inspector.operatorUrl`. Without it the page lists
   * nothing to approve and the inspector stays read-only.
   */
  approvals?: InspectorApprovals;
}

export interface Inspector {
  url: string;
  port: number;
  /** WebSocket URL speaking @statelyai/inspect's protocol. */
  statelyUrl: string;
  /** With `approvals`: the page's address carrying the token its approve / deny buttons send. */
  operatorUrl?: string;
  close(): Promise<void>;
}

interface MachineView {
  kind: string;
  graph: MachineGraph;
  layout: GraphLayout;
  svg: string;
  mermaid: string;
  events: string[];
  runtimeEvents: string[];
  description?: string;
}

/** An actor as the page sees it: the runtime's info plus the ids of its active state nodes. */
export interface ActorView {
  address: string;
  kind: string;
  id: string;
  state: string;
  status: string;
  /** Position of the actor's newest fact in its chain. */
  seq: number;
  owner: string;
  active?: boolean;
  stateIds: string[];
}

/** The key of a fact: its chain and its position there, `deployment/web#3`. */
export const factKey = (f: Pick<Fact, 'actor' | 'seq'>): string => `${f.actor ?? ''}#${f.seq}`;

const RUNTIME_CHAIN_RE = /^_runtime\/[A-Za-z0-9_-]{1,64}$/;
/** An actor address or a runtime chain. */
export const isChainName = (chain: string): boolean => isAddress(chain) || RUNTIME_CHAIN_RE.test(chain);

/** Newest first across chains: by time (`at`), then by arrival (the order `tail` gave). */
function byTimeDesc(facts: Fact[]): Fact[] {
  return facts
    .map((f, i) => ({ f, i }))
    .sort((a, b) => (a.f.at < b.f.at ? 1 : a.f.at > b.f.at ? -1 : a.i - b.i))
    .map((x) => x.f);
}

/** Resolves the runtime's state string (`a`, `a.b`, parallel parts joined by `,`) to node ids. */
export function stateStringToIds(graph: MachineGraph, state: string): string[] {
  const out = new Set<string>([graph.root.id]);
  let context: StateNodeInfo[] = [graph.root];
  for (const part of state.split(',')) {
    const keys = part.split('.').filter(Boolean);
    if (keys.length === 0) continue;
    // Resolve relative to the deepest already-active node that has the first key as a child.
    let start: StateNodeInfo | undefined;
    for (let i = context.length - 1; i >= 0 && !start; i--) {
      if (context[i]!.children.some((c) => c.key === keys[0])) start = context[i];
    }
    if (!start) continue;
    const chain: StateNodeInfo[] = [];
    let node: StateNodeInfo | undefined = start;
    for (const k of keys) {
      node = node?.children.find((c) => c.key === k);
      if (!node) break;
      chain.push(node);
      out.add(node.id);
    }
    const startIdx = context.indexOf(start);
    context = [...context.slice(0, startIdx + 1), ...chain];
  }
  return [...out];
}

function splitAddr(address: string): { kind: string; id: string } {
  const i = address.indexOf('/');
  return i < 0 ? { kind: address, id: '' } : { kind: address.slice(0, i), id: address.slice(i + 1) };
}

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' };

export async function startInspector(opts: InspectorOptions): Promise<Inspector> {
  const rt = opts.runtime;
  const host = opts.host ?? '127.0.0.1';
  const verifyDebounceMs = opts.verifyDebounceMs ?? 250;
  const machines = new Map<string, Promise<MachineView>>();
  const graphs = new Map<string, MachineGraph>();
  let closed = false;

  const definition = (kind: string) => rt.definitions().find((d) => d.kind === kind);
  const graphOf = (kind: string): MachineGraph | undefined => {
    let g = graphs.get(kind);
    if (!g) {
      const def = definition(kind);
      if (!def) return undefined;
      g = machineToGraph(def.machine);
      graphs.set(kind, g);
    }
    return g;
  };
  const machineView = (kind: string): Promise<MachineView> | undefined => {
    let p = machines.get(kind);
    if (!p) {
      const def = definition(kind);
      const graph = graphOf(kind);
      if (!def || !graph) return undefined;
      p = layoutGraph(graph).then((layout) => {
        const mv: MachineView = {
          kind,
          graph,
          layout,
          svg: renderSvg(layout, { graph }),
          mermaid: graphToMermaid(graph),
          events: Object.keys(def.events),
          runtimeEvents: Object.keys(def.runtimeEvents ?? {}),
        };
        if (def.description) mv.description = def.description;
        return mv;
      });
      p.catch(() => machines.delete(kind));
      machines.set(kind, p);
    }
    return p;
  };
  const idsFor = (kind: string, state: string, snapshot?: unknown): string[] => {
    const g = graphOf(kind);
    if (!g) return [];
    const value = (snapshot as { value?: unknown } | undefined)?.value;
    if (value !== undefined && value !== null) return stateValueToIds(g, value);
    return stateStringToIds(g, state);
  };
  const view = (a: ActorInfo, snapshot?: unknown): ActorView => {
    const { id } = splitAddr(a.address);
    const v: ActorView = {
      address: a.address,
      kind: a.kind,
      id,
      state: a.state,
      status: a.status,
      seq: a.seq,
      owner: a.owner,
      stateIds: idsFor(a.kind, a.state, snapshot),
    };
    if (typeof a.active === 'boolean') v.active = a.active;
    return v;
  };

  // --- history: the actor's facts with the state (and context) after each one -------------
  const history = async (address: string, limit: number): Promise<unknown> => {
    const detail = await rt.actor(address);
    if (!detail) return undefined;
    const facts = (await rt.journal.tail({ chain: address, limit: 10_000 })).reverse(); // oldest first
    const def = definition(detail.kind);
    let replay: AnyActorRef | undefined;
    let state = '';
    const positions: Array<Record<string, unknown>> = [];
    for (const f of facts) {
      const data = f.data;
      let context: unknown;
      let replayState: string | undefined;
      if (f.type === 'actor.started') {
        state = typeof data.state === 'string' ? data.state : state;
        if (def) {
          try {
            replay?.stop();
            // effects run nothing and children deliver nothing here: what they did is in the facts
            const a = createActor(withoutEffects(def.machine), { input: data.input ?? undefined });
            const relay = watchChildren(a, undefined, () => {});
            a.subscribe({ error: () => {} });
            relay.gate(() => a.start());
            replay = a;
          } catch {
            replay = undefined;
          }
        }
      } else if (f.type === 'transition') {
        if (typeof data.to === 'string') state = data.to;
        if (replay) {
          try {
            sendRecorded(replay, data);
          } catch {
            replay = undefined;
          }
        }
      } else if (f.type === 'actor.restored' && typeof data.state === 'string') {
        state = data.state;
      } else if (f.type === 'actor.stopped' && typeof data.state === 'string') {
        state = data.state;
      }
      if (replay) {
        const snap = replay.getSnapshot() as { value?: unknown; context?: unknown };
        context = toJsonSafe(snap.context);
        replayState = snap.value !== undefined ? JSON.stringify(snap.value) : undefined;
      }
      const pos: Record<string, unknown> = {
        chain: address,
        seq: f.seq,
        at: f.at,
        type: f.type,
        state,
        stateIds: idsFor(detail.kind, state),
        fact: f,
      };
      if (context !== undefined) pos.context = context;
      if (replayState !== undefined) pos.value = JSON.parse(replayState) as unknown;
      positions.push(pos);
    }
    replay?.stop();
    return { address, kind: detail.kind, positions: positions.reverse().slice(0, limit) };
  };

  // --- a fact and the facts that caused it (causes are seqs of the fact's own chain) ----------
  const causalChain = async (chain: string, seq: number): Promise<unknown> => {
    const fact = await rt.journal.fact(chain, seq);
    if (!fact) return undefined;
    const causes: Fact[] = [];
    const seen = new Set<number>([fact.seq]);
    const queue = [...fact.causes];
    while (queue.length > 0 && causes.length < 50) {
      const s = queue.shift()!;
      if (seen.has(s)) continue;
      seen.add(s);
      const f = await rt.journal.fact(chain, s);
      if (!f) continue;
      causes.push(f);
      queue.push(...f.causes);
    }
    const known = new Set([fact, ...causes].map(factKey));
    const related = fact.intentId ? (await rt.journal.factsOfIntent(fact.intentId)).filter((f) => !known.has(factKey(f))) : [];
    const all = [...causes, ...related];
    const pick = (type: string) => all.find((f) => f.type === type) ?? (fact.type === type ? fact : undefined);
    return {
      fact,
      causes: causes.sort((a, b) => b.seq - a.seq),
      related: byTimeDesc(related),
      intent: pick('intent.proposed') ?? pick('approval'),
      decision: pick('decision') ?? pick('decision.refused'),
      transition: pick('transition'),
    };
  };

  // --- facts, newest first: one chain (by seq), or every chain (by time) ---------------------
  const facts = async (o: { limit: number; chain?: string; beforeSeq?: number; offset?: number }): Promise<Fact[]> => {
    if (o.chain !== undefined) {
      if (o.beforeSeq === undefined) return rt.journal.tail({ chain: o.chain, limit: o.limit });
      const from = Math.max(1, o.beforeSeq - o.limit);
      const n = o.beforeSeq - from;
      return n > 0 ? (await rt.journal.chain(o.chain, from, n)).filter((f) => f.seq < o.beforeSeq!).reverse() : [];
    }
    const offset = o.offset ?? 0;
    return byTimeDesc(await rt.journal.tail({ limit: offset + o.limit })).slice(offset, offset + o.limit);
  };

  // --- HTTP ---------------------------------------------------------------------------------
  const send = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, JSON_HEADERS);
    res.end(JSON.stringify(body));
  };
  const sendText = (res: ServerResponse, type: string, body: string): void => {
    res.writeHead(200, { 'content-type': `${type}; charset=utf-8`, 'cache-control': 'no-store' });
    res.end(body);
  };
  const intParam = (v: string | null, dflt: number, max: number): number => {
    if (v === null || v === '') return dflt;
    const n = Number(v);
    return Number.isInteger(n) && n > 0 ? Math.min(n, max) : dflt;
  };

  // When bound to loopback, only answer requests addressed to a loopback name: a web page
  // elsewhere cannot use DNS rebinding to read actor contexts and the journal.
  const loopback = ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(host);
  if (opts.approvals && !loopback)
    throw new ConfigError(`the inspector serves approve / deny buttons only on a loopback address, not ${host}`);
  const approvals = approvalsApi(opts.approvals);
  const hostAllowed = (h: string | undefined): boolean => {
    if (!loopback) return true;
    if (!h) return false;
    const name = h.startsWith('[') ? h.slice(0, h.indexOf(']') + 1) : h.split(':')[0]!;
    return ['127.0.0.1', 'localhost', '[::1]'].includes(name.toLowerCase());
  };

  /**
   * Actors that act (README, "Actors that act"), from the newest facts: intents between actors
   * (`intent.emitted` → the answer's `outcomeOf`) and effects (`effect.started` → `effectOf`
   * or `effect.cancelled`), newest first, with the effects running or retrying now.
   */
  const acting = async () => {
    const facts = await rt.journal.tail({ limit: 2000 }); // newest first
    const answered = new Map<string, string>();
    const results = new Map<string, { status: string; attempts?: unknown; detail?: string }>();
    for (const f of facts) {
      if (typeof f.data.outcomeOf === 'string') {
        const ev = f.data.event as { outcome?: { status?: string } } | undefined;
        if (!answered.has(f.data.outcomeOf) || f.data.pending !== true) answered.set(f.data.outcomeOf, ev?.outcome?.status ?? '?');
      } else if (typeof f.data.effectOf === 'string') {
        const ev = f.data.event as { type?: string; error?: { message?: string } } | undefined;
        const done = (ev?.type ?? '').startsWith('ice.effect.done.');
        results.set(f.data.effectOf, {
          status: done ? 'done' : 'failed',
          attempts: f.data.attempts,
          ...(ev?.error?.message ? { detail: ev.error.message } : {}),
        });
      } else if (f.type === 'effect.cancelled' && typeof f.data.id === 'string') {
        results.set(f.data.id, { status: 'cancelled' });
      }
    }
    const now = new Map((await (rt.effects?.({ limit: 200 }) ?? Promise.resolve([]))).map((x) => [x.id, x]));
    const intents = [];
    const effects = [];
    for (const f of facts) {
      if (f.type === 'intent.emitted') {
        const i = f.data.intent as { id?: string; target?: string; action?: string };
        intents.push({ id: i.id, from: f.actor, to: i.target, action: i.action, at: f.at, status: answered.get(String(i.id)) ?? 'sent' });
      } else if (f.type === 'effect.started') {
        const x = f.data.effect as { id: string; name: string; state: string };
        const live = now.get(x.id);
        const r = results.get(x.id);
        effects.push({
          id: x.id,
          actor: f.actor,
          name: x.name,
          state: x.state,
          at: f.at,
          status: r?.status ?? (live ? (live.running ? 'running' : 'retrying') : 'started'),
          attempts: r?.attempts ?? live?.attempts ?? 0,
          ...(r?.detail ? { detail: r.detail } : live?.lastError ? { detail: live.lastError } : {}),
        });
      }
      if (intents.length >= 50 && effects.length >= 50) break;
    }
    return { intents: intents.slice(0, 50), effects: effects.slice(0, 50) };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://inspector');
    const path = url.pathname;
    if (!hostAllowed(req.headers.host)) return send(res, 421, { error: 'unexpected Host header' });
    if (path === '/api/approvals' || path.startsWith('/api/approvals/')) {
      if (req.method !== 'GET' && !originAllowed(req.headers.origin)) return send(res, 403, { error: 'origin not allowed' });
      return approvals.handle(req, res, path);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: 'read-only' });
    if (path === '/' || path === '/index.html') {
      res.setHeader(
        'content-security-policy',
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
      );
      return sendText(res, 'text/html', INDEX_HTML);
    }
    if (path === '/app.js') return sendText(res, 'text/javascript', APP_JS);
    if (path === '/app.css') return sendText(res, 'text/css', APP_CSS);
    if (path === '/stately') {
      return sendText(res, 'text/html', STATELY_BRIDGE_HTML(opts.statelyUrl ?? 'https://stately.ai/inspect'));
    }
    if (path === '/metrics') {
      if (!rt.metrics) return send(res, 404, { error: 'no metrics here: each node serves its own (ice start --inspect)' });
      return sendText(res, 'text/plain; version=0.0.4; charset=utf-8', await rt.metrics());
    }
    if (path === '/api/acting') return send(res, 200, await acting());
    if (path === '/api/actors') {
      return send(res, 200, { actors: (await rt.listActors()).map((a) => view(a)) });
    }
    let m = /^\/api\/actors\/([^/]+)\/([^/]+)(\/history)?$/.exec(path);
    if (m) {
      const address = `${decodeURIComponent(m[1]!)}/${decodeURIComponent(m[2]!)}`;
      if (!isAddress(address)) return send(res, 404, { error: `no actor ${address}` });
      if (m[3]) {
        const h = await history(address, intParam(url.searchParams.get('limit'), 500, 10_000));
        return h ? send(res, 200, h) : send(res, 404, { error: `no actor ${address}` });
      }
      const d = await rt.actor(address);
      if (!d) return send(res, 404, { error: `no actor ${address}` });
      // If the runtime has applied an intent whose facts are not committed yet, report the
      // committed state and say that context/snapshot are ahead of the journal.
      const k = known.get(address);
      const ahead = k !== undefined && k.seq < d.seq;
      return send(res, 200, {
        ...view(d, d.snapshot),
        ...(ahead ? { state: k.state, status: k.status, seq: k.seq, stateIds: k.stateIds, aheadOfJournal: true } : {}),
        context: toJsonSafe(d.context, 30),
        snapshot: toJsonSafe(d.snapshot, 30),
      });
    }
    m = /^\/api\/machines\/([^/]+)$/.exec(path);
    if (m) {
      const mv = machineView(decodeURIComponent(m[1]!));
      if (!mv) return send(res, 404, { error: `no actor kind ${m[1]}` });
      const v = await mv;
      if (url.searchParams.get('format') === 'svg') {
        const hl = url.searchParams.getAll('highlight');
        return sendText(res, 'image/svg+xml', hl.length ? renderSvg(v.layout, { highlight: hl, graph: v.graph }) : v.svg);
      }
      if (url.searchParams.get('format') === 'mermaid') return sendText(res, 'text/plain', v.mermaid);
      return send(res, 200, v);
    }
    if (path === '/api/machines') {
      return send(res, 200, { kinds: rt.definitions().map((d) => ({ kind: d.kind, description: d.description })) });
    }
    if (path === '/api/facts') {
      // `actor` (or `chain`) picks one chain, paged with `beforeSeq`; without it every chain,
      // paged with `offset`.
      const o: { limit: number; chain?: string; beforeSeq?: number; offset?: number } = {
        limit: intParam(url.searchParams.get('limit'), 100, 1000),
      };
      const chain = url.searchParams.get('chain') ?? url.searchParams.get('actor');
      if (chain) {
        if (!isChainName(chain)) return send(res, 200, { facts: [] });
        o.chain = chain;
        const before = url.searchParams.get('beforeSeq');
        if (before) o.beforeSeq = intParam(before, 1, Number.MAX_SAFE_INTEGER);
      } else {
        const offset = url.searchParams.get('offset');
        if (offset) o.offset = intParam(offset, 0, 100_000);
      }
      return send(res, 200, { facts: await facts(o) });
    }
    m = /^\/api\/facts\/([^/]+)\/([^/]+)\/(\d+)$/.exec(path);
    if (m) {
      const chain = `${decodeURIComponent(m[1]!)}/${decodeURIComponent(m[2]!)}`;
      const seq = Number(m[3]);
      const c = isChainName(chain) && Number.isSafeInteger(seq) && seq > 0 ? await causalChain(chain, seq) : undefined;
      return c ? send(res, 200, c) : send(res, 404, { error: `no fact ${chain}#${m[3]}` });
    }
    if (path === '/api/verify') return send(res, 200, await verifyNow());
    return send(res, 404, { error: 'not found' });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, { error: err instanceof Error ? err.message : String(err) });
      else res.destroy();
    });
  });

  // --- journal status -------------------------------------------------------------------------
  // Verifying reads every chain (in a cluster, the whole stream), so concurrent requests share
  // one verification as long as no fact arrived since it started, and re-verification after
  // facts keeps a gap of a few times what the last one took.
  let lastVerify: VerifyResult | undefined;
  let lastVerifyFacts = -1;
  let factsSeen = 0;
  let verifyCostMs = 0;
  let inflight: { promise: Promise<VerifyResult>; facts: number } | undefined;
  const verifyNow = (): Promise<VerifyResult> => {
    if (inflight && inflight.facts === factsSeen) return inflight.promise;
    const facts = factsSeen;
    const started = Date.now();
    const promise = rt.journal.verify().then((r) => {
      verifyCostMs = Date.now() - started;
      if (facts >= lastVerifyFacts) {
        lastVerify = r;
        lastVerifyFacts = facts;
      }
      return r;
    });
    inflight = { promise, facts };
    const done = () => {
      if (inflight?.promise === promise) inflight = undefined;
    };
    promise.then(done, done);
    return promise;
  };

  // --- WebSockets -------------------------------------------------------------------------------
  const live = new WebSocketServer({ noServer: true });
  const stately = new WebSocketServer({ noServer: true });
  let listenPort = 0;
  const originAllowed = (origin: string | undefined): boolean => {
    if (!origin) return true;
    if (opts.allowedOrigins?.includes(origin)) return true;
    try {
      const u = new URL(origin);
      if (['localhost', '127.0.0.1', '[::1]', '::1'].includes(u.hostname)) return true;
      return u.host === `${host}:${listenPort}`;
    } catch {
      return false;
    }
  };
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = new URL(req.url ?? '/', 'http://inspector').pathname;
    const target = path === '/ws' ? live : path === '/stately' || path === '/stately/ws' ? stately : undefined;
    if (!target || !originAllowed(req.headers.origin) || !hostAllowed(req.headers.host)) {
      socket.write(`HTTP/1.1 ${target ? '403 Forbidden' : '404 Not Found'}\r\nConnection: close\r\n\r\n`);
      socket.destroy();
      return;
    }
    target.handleUpgrade(req, socket, head, (ws) => target.emit('connection', ws, req));
  });

  const broadcast = (wss: WebSocketServer, msg: unknown, except?: WebSocket): void => {
    if (wss.clients.size === 0) return;
    const text = typeof msg === 'string' ? msg : JSON.stringify(msg);
    for (const c of wss.clients) if (c !== except && c.readyState === WebSocket.OPEN) c.send(text);
  };
  const sendTo = (ws: WebSocket, msg: unknown): void => {
    if (ws.readyState === WebSocket.OPEN) ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  };

  live.on('connection', (ws) => {
    ws.on('error', () => {});
    void (async () => {
      const actors = await rt.listActors();
      const verify = lastVerify ?? (await verifyNow());
      sendTo(ws, {
        type: 'hello',
        // Where the runtime's view differs from the facts seen, the facts win: it is either
        // ahead of the journal (not committed yet) or older than the facts pushed since.
        actors: actors.map((a) => {
          const k = known.get(a.address);
          return k && k.seq !== a.seq ? k : view(a);
        }),
        verify,
        kinds: rt.definitions().map((d) => d.kind),
      });
    })().catch((err: unknown) => sendTo(ws, { type: 'error', error: err instanceof Error ? err.message : String(err) }));
  });

  stately.on('connection', (ws) => {
    ws.on('error', () => {});
    void (async () => {
      for (const a of await rt.listActors()) {
        const d = await rt.actor(a.address);
        sendTo(ws, statelyActorRegistration(a.address, definition(a.kind)?.machine, d?.snapshot));
      }
    })().catch(() => {});
    ws.on('message', (data) => {
      // Like @statelyai/inspect's own server: relay events other senders push to every viewer.
      let parsed: unknown;
      try {
        parsed = JSON.parse(
          Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(Array.isArray(data) ? data : [Buffer.from(data)]).toString('utf8'),
        );
      } catch {
        return;
      }
      if (isStatelyMessage(parsed)) broadcast(stately, JSON.stringify(parsed), ws);
    });
  });

  // --- runtime listeners ----------------------------------------------------------------------
  // Actor updates are derived from committed facts. The runtime's in-memory view may already be
  // ahead of the journal (the next intent is applied before its commit), and the page must only
  // show what is durable; context is attached only when the runtime agrees with the facts.
  // `seq` of a view is the position of the actor's newest fact seen in its chain.
  const known = new Map<string, ActorView>();
  for (const a of await rt.listActors()) known.set(a.address, view(a));
  const dirty = new Set<string>();
  const applyFact = (f: Fact): string | undefined => {
    const chain = f.actor ?? '';
    if (isRuntimeChain(chain)) {
      // an actor that failed to restore is reported on the runtime chain
      const a = f.data.actor;
      if (f.type !== 'actor.failed' || typeof a !== 'string') return undefined;
      const v = known.get(a);
      if (v) known.set(a, { ...v, status: 'failed' });
      return v ? a : undefined;
    }
    if (!isAddress(chain)) return undefined;
    const data = f.data;
    const { kind, id } = splitAddr(chain);
    const v: ActorView = known.get(chain) ?? { address: chain, kind, id, state: '', status: 'active', seq: 0, owner: '', stateIds: [] };
    if (f.seq <= v.seq) return undefined; // seen already
    const next: ActorView = { ...v, seq: f.seq };
    const state = f.type === 'transition' ? data.to : data.state;
    switch (f.type) {
      case 'actor.started':
      case 'actor.restored':
      case 'transition':
        if (typeof state === 'string') next.state = state;
        if (f.type === 'actor.started') next.status = 'active';
        break;
      case 'actor.stopped':
        next.status = 'stopped';
        break;
      default:
        break;
    }
    next.stateIds = idsFor(kind, next.state);
    known.set(chain, next);
    return chain;
  };
  // One flush at a time, so updates of an actor go out in order.
  let flushing = false;
  const flushOne = async (address: string): Promise<void> => {
    const d = await rt.actor(address).catch(() => undefined);
    if (closed) return;
    const v = known.get(address);
    if (!v && !d) return;
    let msg: Record<string, unknown>;
    if (d && (!v || d.seq === v.seq)) {
      // The runtime is exactly at the last committed fact: its view (and context) is durable.
      const full = view(d, d.snapshot);
      if (v && v.status !== full.status && d.status === 'active') full.status = v.status;
      known.set(address, full);
      msg = { type: 'actor', actor: full };
      const ctx = toJsonSafe(d.context, 30);
      const text = JSON.stringify(ctx);
      if (text !== undefined && text.length <= 64_000) msg.context = ctx;
    } else {
      msg = { type: 'actor', actor: v };
    }
    broadcast(live, msg);
  };
  const flushActors = async (): Promise<void> => {
    if (flushing) return;
    flushing = true;
    try {
      while (dirty.size > 0 && !closed) {
        const batch = [...dirty];
        dirty.clear();
        for (const address of batch) await flushOne(address).catch(() => {});
      }
    } finally {
      flushing = false;
    }
  };
  // Re-verify the journal after facts settle (debounced), but at least every 4 debounce
  // periods while facts keep coming; one verification at a time, repeated if facts came meanwhile.
  let verifyTimer: NodeJS.Timeout | undefined;
  let verifyPendingSince: number | undefined;
  let lastVerifyEnd = 0;
  let verifying = false;
  let verifyAgain = false;
  const runVerify = async (): Promise<void> => {
    verifyTimer = undefined;
    verifyPendingSince = undefined;
    if (verifying) {
      verifyAgain = true;
      return;
    }
    verifying = true;
    try {
      do {
        verifyAgain = false;
        const r = await verifyNow();
        if (!closed) broadcast(live, { type: 'verify', verify: r });
      } while (verifyAgain && !closed);
    } catch {
      // runtime stopped
    } finally {
      verifying = false;
      lastVerifyEnd = Date.now();
    }
  };
  const scheduleVerify = (): void => {
    const now = Date.now();
    verifyPendingSince ??= now;
    if (verifyTimer) clearTimeout(verifyTimer);
    const overdue = now - verifyPendingSince >= verifyDebounceMs * 4;
    const gap = lastVerifyEnd + verifyCostMs * 4 - now;
    verifyTimer = setTimeout(() => void runVerify(), Math.max(overdue ? 0 : verifyDebounceMs, gap));
    verifyTimer.unref?.();
  };
  const offFact = rt.onFact((f) => {
    if (closed) return;
    factsSeen++;
    const msg: Record<string, unknown> = { type: 'fact', fact: f };
    if (f.type === 'transition' && f.actor && isAddress(f.actor)) {
      const kind = splitAddr(f.actor).kind;
      const data = f.data as { from?: unknown; to?: unknown };
      msg.fromIds = typeof data.from === 'string' ? idsFor(kind, data.from) : [];
      msg.toIds = typeof data.to === 'string' ? idsFor(kind, data.to) : [];
    }
    broadcast(live, msg);
    const changed = applyFact(f);
    if (changed) {
      const first = dirty.size === 0;
      dirty.add(changed);
      if (first && !flushing) setImmediate(() => void flushActors());
    }
    scheduleVerify();
  });
  // Inspection events arrive synchronously from inside XState (even from an actor's
  // constructor). Never do work or throw there: queue them and convert on the next turn.
  let inspectQueue: InspectorRecord[] = [];
  const processInspect = (rec: InspectorRecord): void => {
    const ev: InspectionEvent | StatelyMessage = rec.event;
    const liveEvent = 'actorRef' in ev;
    if (stately.clients.size > 0) {
      const msg: StatelyMessage | undefined = liveEvent
        ? toStatelyMessage(rec.actor, ev, {
            definitionOf: (ref) => {
              const isRoot = !(ref as { _parent?: unknown })._parent;
              const def = isRoot ? definition(splitAddr(rec.actor).kind) : undefined;
              return def ? JSON.stringify(toJsonSafe((def.machine as unknown as { config: unknown }).config, 20)) : undefined;
            },
          })
        : ev;
      if (msg) broadcast(stately, msg);
    }
    if (live.clients.size > 0 && ev.type === '@xstate.snapshot') {
      const snap = ev.snapshot as { value?: unknown; status?: string } | undefined;
      const isRoot = liveEvent ? !(ev.actorRef as { _parent?: unknown })._parent : ev.sessionId === rec.actor;
      const g = isRoot ? graphOf(splitAddr(rec.actor).kind) : undefined;
      broadcast(live, {
        type: 'inspect',
        actor: rec.actor,
        node: rec.node,
        session: liveEvent ? undefined : ev.sessionId,
        event: toJsonSafe(ev.event, 6),
        value: toJsonSafe(snap?.value, 10),
        status: snap?.status,
        stateIds: g && snap?.value !== undefined ? stateValueToIds(g, snap.value) : [],
      });
    }
  };
  const offInspect = rt.onInspect((rec) => {
    if (closed || (stately.clients.size === 0 && live.clients.size === 0)) return;
    if (rec.event.type !== '@xstate.actor' && rec.event.type !== '@xstate.event' && rec.event.type !== '@xstate.snapshot') return;
    inspectQueue.push(rec);
    if (inspectQueue.length === 1) {
      setImmediate(() => {
        const batch = inspectQueue;
        inspectQueue = [];
        for (const item of batch) {
          try {
            processInspect(item);
          } catch {
            // a snapshot that cannot be serialized must not disturb the runtime
          }
        }
      });
    }
    if (inspectQueue.length > 10_000) inspectQueue.splice(0, inspectQueue.length - 10_000);
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 4848, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    offFact();
    offInspect();
    throw e;
  }
  listenPort = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  const base = `http://${urlHost}:${listenPort}`;

  return {
    url: base,
    port: listenPort,
    statelyUrl: `ws://${urlHost}:${listenPort}/stately`,
    ...(approvals.token ? { operatorUrl: `${base}/?token=${approvals.token}` } : {}),
    async close() {
      if (closed) return;
      closed = true;
      offFact();
      offInspect();
      if (verifyTimer) clearTimeout(verifyTimer);
      for (const c of live.clients) c.terminate();
      for (const c of stately.clients) c.terminate();
      live.close();
      stately.close();
      server.closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import WebSocket from 'ws';
import { setup } from 'xstate';
import type { Fact, Runtime } from '../../src/index.js';
import { machineToGraph } from '../../src/inspector/machine-graph.js';
import { APP_CSS, APP_JS, INDEX_HTML } from '../../src/inspector/page/assets.js';
import { startInspector, stateStringToIds, type Inspector } from '../../src/inspector/server.js';
import { MODES, iid, tempRuntime } from '../helpers/runtime.js';

type Msg = { type: string } & Record<string, unknown>;

function openLive(url: string): Promise<{ ws: WebSocket; messages: Msg[] }> {
  const messages: Msg[] = [];
  const ws = new WebSocket(url.replace(/^http/, 'ws') + '/ws');
  ws.on('message', (d) => messages.push(JSON.parse(d.toString()) as Msg));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, messages }));
    ws.once('error', reject);
  });
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 15));
  }
}

describe('page assets', () => {
  it('app.js is valid JavaScript with no template placeholders', () => {
    expect(() => new Function(APP_JS)).not.toThrow();
    expect(APP_JS).not.toContain('${');
  });
  it('the page references only its own assets and has the test ids', () => {
    expect(INDEX_HTML).not.toMatch(/https?:\/\//);
    expect(APP_CSS).not.toMatch(/@import|url\(http/);
    for (const id of [
      'actors-list',
      'actor-filter',
      'machine-view',
      'timeline',
      'fact-detail',
      'actor-context',
      'actor-snapshot',
      'actor-history',
      'journal-status',
    ]) {
      expect(INDEX_HTML).toContain(`data-testid="${id}"`);
    }
  });
});

describe('stateStringToIds', () => {
  const m = setup({}).createMachine({
    id: 'm',
    initial: 'p',
    states: {
      p: {
        type: 'parallel',
        states: {
          r1: { initial: 'a', states: { a: {}, b: {} } },
          r2: { initial: 'x', states: { x: { initial: 'deep', states: { deep: {} } }, y: {} } },
        },
      },
      q: {},
    },
  });
  const g = machineToGraph(m);
  it('resolves the runtime’s state strings, parallel parts included', () => {
    expect(stateStringToIds(g, 'q')).toEqual(['m', 'm.q']);
    // stateToString({ p: { r1: 'a', r2: { x: 'deep' } } }) === 'p.r1.a,r2.x.deep'
    expect(stateStringToIds(g, 'p.r1.a,r2.x.deep').sort()).toEqual(
      ['m', 'm.p', 'm.p.r1', 'm.p.r1.a', 'm.p.r2', 'm.p.r2.x', 'm.p.r2.x.deep'].sort(),
    );
    expect(stateStringToIds(g, 'nope')).toEqual(['m']);
  });
});

// The same API over a runtime on a data dir and over a cluster node (journal in JetStream).
describe.each(MODES)('inspector HTTP API and live socket (%s)', (mode) => {
  let rt: Runtime;
  let close: () => Promise<void>;
  let ins: Inspector;
  const get = async (path: string) => {
    const r = await fetch(ins.url + path);
    return {
      status: r.status,
      type: r.headers.get('content-type') ?? '',
      body: r.headers.get('content-type')?.includes('json') ? ((await r.json()) as Record<string, unknown>) : await r.text(),
    };
  };

  beforeAll(async () => {
    ({ rt, close } = await tempRuntime({ mode }));
    ins = await startInspector({ runtime: rt, port: 0 });
    await rt.spawn('deployment/web', { service: 'web' });
    await rt.grants.issue({ subject: 'agent:bot', scope: 'deployment/web:*' });
  });
  afterAll(async () => {
    await ins.close();
    await close();
  });

  it('listens on 127.0.0.1 and serves the page and assets', async () => {
    expect(ins.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const page = await get('/');
    expect(page.status).toBe(200);
    expect(page.type).toContain('text/html');
    expect((await get('/app.js')).type).toContain('javascript');
    expect((await get('/app.css')).type).toContain('text/css');
    expect((await get('/nope')).status).toBe(404);
    const post = await fetch(ins.url + '/api/actors', { method: 'POST', body: '{}' });
    expect(post.status).toBe(405);
  });

  it('serves actors, details, machines, facts, chains, history and verification', async () => {
    const out = await rt.propose({
      id: iid(),
      proposer: 'agent:bot',
      target: 'deployment/web',
      action: 'CONFIGURE',
      params: { version: '1.0.0', replicas: 2 },
    });
    expect(out.status).toBe('executed');
    const sub = await rt.propose({
      id: iid(),
      proposer: 'agent:bot',
      target: 'deployment/web',
      action: 'SUBMIT',
      params: { author: 'bot' },
    });
    expect(sub.status).toBe('executed');

    const actors = (await get('/api/actors')).body as { actors: Array<Record<string, unknown>> };
    expect(actors.actors).toEqual([
      expect.objectContaining({
        address: 'deployment/web',
        kind: 'deployment',
        id: 'web',
        state: 'in_review',
        status: 'active',
        owner: rt.node,
        stateIds: ['deployment', 'deployment.in_review'],
      }),
    ]);

    const detail = (await get('/api/actors/deployment/web')).body as Record<string, unknown>;
    expect(detail).toMatchObject({ state: 'in_review', context: { version: '1.0.0', author: 'bot' }, snapshot: { value: 'in_review' } });
    expect((await get('/api/actors/deployment/missing')).status).toBe(404);

    const machine = (await get('/api/machines/deployment')).body as Record<string, unknown>;
    expect(Object.keys(machine)).toEqual(expect.arrayContaining(['graph', 'layout', 'svg', 'mermaid', 'events']));
    expect(machine.events).toContain('APPROVE');
    expect((machine.layout as { nodes: unknown[] }).nodes.length).toBeGreaterThan(8);
    const svg = await get('/api/machines/deployment?format=svg&highlight=in_review');
    expect(svg.type).toContain('image/svg+xml');
    expect(svg.body).toMatch(/class="state atomic active" data-state-id="deployment\.in_review"/);
    expect((await get('/api/machines/deployment?format=mermaid')).body).toContain('draft --> in_review : SUBMIT [isConfigured]');
    expect((await get('/api/machines/nope')).status).toBe(404);

    // one chain, newest first, paged by seq
    const facts = ((await get('/api/facts?actor=deployment/web&limit=3')).body as { facts: Fact[] }).facts;
    expect(facts).toHaveLength(3);
    expect(facts.every((f) => f.actor === 'deployment/web')).toBe(true);
    expect(facts.map((f) => f.seq)).toEqual([facts[0]!.seq, facts[0]!.seq - 1, facts[0]!.seq - 2]);
    const older = ((await get(`/api/facts?actor=deployment/web&limit=2&beforeSeq=${facts[2]!.seq}`)).body as { facts: Fact[] }).facts;
    expect(older.map((f) => f.seq)).toEqual([facts[2]!.seq - 1, facts[2]!.seq - 2]);
    const whole = (await rt.journal.chain('deployment/web')).map((f) => f.seq).reverse();
    const paged = ((await get(`/api/facts?actor=deployment/web&limit=100&beforeSeq=${whole[0]! + 1}`)).body as { facts: Fact[] }).facts;
    expect(paged.map((f) => f.seq)).toEqual(whole);

    // the click-through follows causes inside the fact's own chain
    const transition = facts.find((f) => f.type === 'transition')!;
    const chain = (await get(`/api/facts/deployment/web/${transition.seq}`)).body as Record<string, Fact>;
    expect(chain.fact).toMatchObject({ actor: 'deployment/web', seq: transition.seq, type: 'transition' });
    expect(chain.decision).toMatchObject({ actor: 'deployment/web', seq: transition.causes[0] });
    expect(chain.intent!.type).toBe('intent.proposed');
    expect(chain.intent!.actor).toBe('deployment/web');
    expect(chain.decision!.causes).toContain(chain.intent!.seq);
    expect((chain.intent!.data as { intent: { action: string } }).intent.action).toBe('SUBMIT');
    expect((await get('/api/facts/deployment/web/99999')).status).toBe(404);
    expect((await get('/api/facts/deployment/nope/1')).status).toBe(404);
    expect((await get(`/api/facts/${transition.seq}`)).status).toBe(404);

    // every chain: the grant lives on the runtime chain; ordered by time, paged by offset
    const all = ((await get('/api/facts?limit=100')).body as { facts: Fact[] }).facts;
    const grant = all.find((f) => f.type === 'grant.issued')!;
    expect(grant.actor).toBe(rt.runtimeChain);
    expect(new Set(all.map((f) => f.actor))).toEqual(new Set(['deployment/web', rt.runtimeChain]));
    for (let i = 1; i < all.length; i++) expect(all[i - 1]!.at >= all[i]!.at).toBe(true);
    expect(new Set(all.map((f) => `${f.actor}#${f.seq}`)).size).toBe(all.length);
    const page2 = ((await get('/api/facts?limit=2&offset=2')).body as { facts: Fact[] }).facts;
    expect(page2).toEqual(all.slice(2, 4));
    const [rk, rid] = rt.runtimeChain.split('/') as [string, string];
    const grantChain = (await get(`/api/facts/${rk}/${rid}/${grant.seq}`)).body as Record<string, Fact | undefined>;
    expect(grantChain.fact).toMatchObject({ type: 'grant.issued', actor: rt.runtimeChain });
    expect(grantChain.transition).toBeUndefined();

    const hist = (await get('/api/actors/deployment/web/history')).body as { positions: Array<Record<string, unknown>> };
    const states = hist.positions.map((p) => `${p.type}:${p.state}`).reverse();
    expect(states[0]).toBe('actor.started:draft');
    expect(states.at(-1)).toBe('transition:in_review');
    const started = hist.positions.at(-1)!;
    expect(started.context).toMatchObject({ service: 'web', replicas: 1 });
    expect(hist.positions[0]!.context).toMatchObject({ version: '1.0.0', author: 'bot' });
    expect(hist.positions[0]!.stateIds).toEqual(['deployment', 'deployment.in_review']);

    const verified = await rt.journal.verify();
    expect(verified).toMatchObject({ ok: true, chains: 2 });
    expect((await get('/api/verify')).body).toMatchObject({ ok: true, count: verified.count, chains: 2 });
  });

  it('pushes facts, committed actor updates and journal status over /ws', async () => {
    const { ws, messages } = await openLive(ins.url);
    await until(() => messages.some((m) => m.type === 'hello'), 'hello');
    const hello = messages.find((m) => m.type === 'hello')!;
    expect(hello.actors).toEqual([expect.objectContaining({ address: 'deployment/web', state: 'in_review' })]);
    expect(hello.verify).toMatchObject({ ok: true });

    const denied = await rt.propose({
      id: iid(),
      proposer: 'agent:eve',
      target: 'deployment/web',
      action: 'APPROVE',
      params: { reviewer: 'eve' },
    });
    expect(denied.status).toBe('denied');
    await rt.spawn('run/r1', { goal: 'g' });
    await until(
      () => messages.some((m) => m.type === 'actor' && (m.actor as { address: string }).address === 'run/r1'),
      'run actor update',
    );
    await until(() => messages.some((m) => m.type === 'verify'), 'verify push');
    const decision = messages.find((m) => m.type === 'fact' && (m.fact as Fact).type === 'decision')!.fact as Fact;
    expect((decision.data as { decision: { verdict: string } }).decision.verdict).toBe('denied');
    const run = messages.find((m) => m.type === 'actor' && (m.actor as { address: string }).address === 'run/r1')!;
    expect(run.actor).toMatchObject({ kind: 'run', state: 'CREATED', stateIds: ['run', 'run.CREATED'] });
    expect(run.context).toMatchObject({ goal: 'g' });
    ws.close();
  });

  it('never reports a state that is not in the journal yet', async () => {
    const { ws, messages } = await openLive(ins.url);
    await until(() => messages.some((m) => m.type === 'hello'), 'hello');
    // Two intents back to back: the second is applied in memory before the first's actor
    // update is flushed; updates must still follow the committed facts in order.
    await rt.grants.issue({ subject: 'agent:bot', scope: 'run/r1:*' });
    const p1 = rt.propose({ id: iid(), proposer: 'agent:bot', target: 'run/r1', action: 'PROVISION', params: { resources: ['a'] } });
    const r1 = await p1;
    const p2 = rt.propose({ id: iid(), proposer: 'agent:bot', target: 'run/r1', action: 'LOAD_CONTEXT', params: { sources: ['s'] } });
    const r2 = await p2;
    expect([r1.status, r2.status]).toEqual(['executed', 'executed']);
    await until(() => messages.some((m) => m.type === 'actor' && (m.actor as { state: string }).state === 'CONTEXT_READY'), 'final update');
    // The state of run/r1 after each of its facts pushed so far (its chain, in order).
    const stateAfter = new Map<number, string>();
    let state = 'CREATED';
    let updates = 0;
    for (const m of messages) {
      const f = m.fact as Fact | undefined;
      if (m.type === 'fact' && f!.actor === 'run/r1') {
        if (f!.type === 'transition') state = f!.data.to as string;
        stateAfter.set(f!.seq, state);
      }
      if (m.type === 'actor' && (m.actor as { address: string }).address === 'run/r1') {
        const a = m.actor as { seq: number; state: string };
        // every update names a fact already pushed, with the state after that fact (or the
        // state from before these intents)
        if (stateAfter.has(a.seq)) expect(a.state).toBe(stateAfter.get(a.seq));
        else expect(a.state).toBe('CREATED');
        updates++;
      }
    }
    expect(updates).toBeGreaterThan(0);
    ws.close();
  });

  it('answers only to loopback Host names (no DNS rebinding)', async () => {
    const status = (hostHeader: string) =>
      new Promise<number>((resolve, reject) => {
        const u = new URL(ins.url + '/api/actors');
        const req = request({ host: u.hostname, port: u.port, path: u.pathname, headers: { host: hostHeader } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
    expect(await status('evil.example:80')).toBe(421);
    expect(await status(`localhost:${ins.port}`)).toBe(200);
    expect(await status(`127.0.0.1:${ins.port}`)).toBe(200);
    const page = await fetch(ins.url + '/');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
  });

  it('refuses cross-site browser origins on /ws', async () => {
    const status = await new Promise<number | string>((resolve) => {
      const ws = new WebSocket(ins.url.replace(/^http/, 'ws') + '/ws', { headers: { origin: 'https://evil.example' } });
      ws.on('unexpected-response', (_q, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => {
        ws.close();
        resolve('open');
      });
      ws.on('error', () => undefined);
    });
    expect(status).toBe(403);
  });
});

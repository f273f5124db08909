import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createInspector, createWebSocketInspector, createWebSocketReceiver } from '@statelyai/inspect';
import type { StatelyInspectionEvent } from '@statelyai/inspect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import WebSocket from 'ws';
import { deploymentMachine } from '../../machines/deployment.machine.js';
import type { Runtime } from '../../src/index.js';
import { startInspector, type Inspector } from '../../src/inspector/server.js';
import { STATELY_INSPECT_VERSION, isStatelyMessage, toJsonSafe, toStatelyMessage } from '../../src/inspector/stately.js';
import { iid, tempRuntime } from '../helpers/runtime.js';

type Msg = Record<string, unknown> & { type: string; sessionId: string };

const require_ = createRequire(import.meta.url);
function statelyPackageVersion(): string {
  // The package's exports map hides package.json; find it next to the resolved entry.
  let dir = dirname(require_.resolve('@statelyai/inspect'));
  for (let i = 0; i < 4; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === '@statelyai/inspect') return pkg.version ?? '';
    } catch {
      // keep walking up
    }
    dir = dirname(dir);
  }
  return '';
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Field name → JSON type, as it arrives on the wire. */
function shape(m: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m)) out[k] = v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
  return out;
}

function receiver(url: string): { messages: Msg[]; stop: () => void } {
  const messages: Msg[] = [];
  const r = createWebSocketReceiver({ server: url });
  const sub = r.subscribe((ev: StatelyInspectionEvent) => messages.push(ev as unknown as Msg));
  return { messages, stop: () => sub.unsubscribe() };
}

describe('the /stately WebSocket speaks @statelyai/inspect', () => {
  let rt: Runtime;
  let close: () => Promise<void>;
  let inspector: Inspector;

  beforeAll(async () => {
    ({ rt, close } = await tempRuntime());
    inspector = await startInspector({ runtime: rt, port: 0 });
  });
  afterAll(async () => {
    await inspector.close();
    await close();
  });

  it('targets the installed @statelyai/inspect version', () => {
    expect(STATELY_INSPECT_VERSION).toBe(statelyPackageVersion());
  });

  it('sends the same message shapes as Stately’s own WebSocket inspector', async () => {
    // Viewer: Stately's receiver, connected to our bridge.
    const viewer = receiver(inspector.statelyUrl);
    await new Promise((r) => setTimeout(r, 200));

    // Reference: an actor inspected by @statelyai/inspect's WebSocket inspector, whose messages
    // our bridge relays to viewers (as `@statelyai/inspect/server` does).
    const stately = createWebSocketInspector({ url: inspector.statelyUrl });
    const reference = createActor(deploymentMachine, { inspect: stately.inspect, input: { service: 'ref' } });
    reference.start();
    reference.send({ type: 'CONFIGURE', version: '1.0.0', replicas: 2 });

    // Ours: a hosted actor driven through the runtime.
    await rt.spawn('deployment/web', { service: 'web' });
    await rt.grants.issue({ subject: 'agent:bot', scope: 'deployment/web:*' });
    const out = await rt.propose({
      id: iid(),
      proposer: 'agent:bot',
      target: 'deployment/web',
      action: 'CONFIGURE',
      params: { version: '1.0.0', replicas: 2 },
    });
    expect(out.status).toBe('executed');

    const ours = (t: string) => viewer.messages.filter((m) => m.type === t && m.sessionId.startsWith('deployment/web'));
    const theirs = (t: string) => viewer.messages.filter((m) => m.type === t && !m.sessionId.startsWith('deployment/'));
    await until(
      () =>
        ['@xstate.actor', '@xstate.event', '@xstate.snapshot'].every((t) => ours(t).length > 0 && theirs(t).length > 0) &&
        ours('@xstate.event').some((m) => (m.event as { type?: string }).type === 'CONFIGURE') &&
        theirs('@xstate.event').some((m) => (m.event as { type?: string }).type === 'CONFIGURE'),
      'actor, event and snapshot messages from both senders',
    );
    stately.stop();
    reference.stop();
    viewer.stop();

    for (const t of ['@xstate.actor', '@xstate.event', '@xstate.snapshot']) {
      const a = ours(t)[0]!;
      const b = theirs(t)[0]!;
      expect(shape(a), t).toEqual(shape(b));
    }

    const actor = ours('@xstate.actor')[0]!;
    expect(actor).toMatchObject({ name: 'deployment/web', sessionId: 'deployment/web', rootId: 'deployment/web', id: null });
    expect(actor._version).toBe(theirs('@xstate.actor')[0]!._version);
    expect(Number(actor.createdAt)).toBeGreaterThan(0);
    const def = JSON.parse(actor.definition as string) as { id: string; states: Record<string, unknown> };
    const refDef = JSON.parse(theirs('@xstate.actor')[0]!.definition as string) as { id: string; states: Record<string, unknown> };
    expect(def.id).toBe('deployment');
    expect(Object.keys(def.states).sort()).toEqual(Object.keys(refDef.states).sort());
    expect(def).toEqual(refDef);

    const configure = ours('@xstate.event').find((m) => (m.event as { type: string }).type === 'CONFIGURE')!;
    expect(configure.event).toEqual({ type: 'CONFIGURE', version: '1.0.0', replicas: 2 });

    const snap = ours('@xstate.snapshot').at(-1)!;
    expect(snap.snapshot).toMatchObject({ status: 'active', value: 'draft', context: { service: 'web', version: '1.0.0', replicas: 2 } });
    expect(Object.keys(snap.snapshot as object).sort()).toEqual(Object.keys(theirs('@xstate.snapshot').at(-1)!.snapshot as object).sort());
  });

  it('registers existing actors for viewers that connect late', async () => {
    const late = receiver(inspector.statelyUrl);
    await until(() => late.messages.some((m) => m.sessionId === 'deployment/web'), 'registration');
    late.stop();
    const reg = late.messages.find((m) => m.sessionId === 'deployment/web')!;
    expect(reg.type).toBe('@xstate.actor');
    expect(reg).toMatchObject({ name: 'deployment/web', rootId: 'deployment/web', id: null, _version: STATELY_INSPECT_VERSION });
    expect(reg.snapshot).toMatchObject({ status: 'active', value: 'draft', context: { version: '1.0.0' } });
    expect(JSON.parse(reg.definition as string)).toMatchObject({ id: 'deployment', initial: 'draft' });
    expect(isStatelyMessage(reg)).toBe(true);
  });

  it('rejects browser origins that are not local', async () => {
    const url = inspector.statelyUrl;
    const code = await new Promise<number | string>((resolve) => {
      const ws = new WebSocket(url, { headers: { origin: 'https://evil.example' } });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => {
        ws.close();
        resolve('open');
      });
      ws.on('error', () => undefined);
    });
    expect(code).toBe(403);
  });
});

describe('toStatelyMessage matches @statelyai/inspect’s conversion of XState inspection events', () => {
  it('produces the same fields for actor, event and snapshot events', async () => {
    const captured: StatelyInspectionEvent[] = [];
    const reference = createInspector({ send: (e) => captured.push(e) });
    const raw: Parameters<typeof toStatelyMessage>[1][] = [];
    const actor = createActor(deploymentMachine, {
      input: { service: 's' },
      inspect: (ev) => {
        raw.push(ev);
        reference.inspect.next?.(ev);
      },
    });
    actor.start();
    actor.send({ type: 'CONFIGURE', version: '2.0.0', replicas: 1 });
    await until(() => captured.filter((e) => e.type === '@xstate.snapshot').length >= 2, 'reference conversion');

    const ours = raw.map((ev) => toStatelyMessage('deployment/s', ev)).filter((m) => m !== undefined);
    // Same kinds of events, in the same order.
    expect(ours.map((m) => m.type)).toEqual(captured.map((e) => e.type));
    const wire = (v: unknown) => JSON.parse(JSON.stringify(v)) as Record<string, unknown>;
    ours.forEach((m, i) => {
      const theirs = wire(captured[i]);
      const mine = wire(m);
      expect(Object.keys(mine).sort(), m.type).toEqual(Object.keys(theirs).sort());
      expect(shape(mine), m.type).toEqual(shape(theirs));
      if (m.type !== '@xstate.actor') expect(mine.event).toEqual(theirs.event);
      if (m.type === '@xstate.snapshot') expect(mine.snapshot).toEqual(theirs.snapshot);
    });
    actor.stop();
  });

  it('maps XState session ids to the stable actor address, even for the constructor-time actor event', () => {
    const events: Parameters<typeof toStatelyMessage>[1][] = [];
    let during: ReturnType<typeof toStatelyMessage>;
    const a = createActor(deploymentMachine, {
      input: undefined,
      inspect: (ev) => {
        events.push(ev);
        // XState emits @xstate.actor from the constructor, when the snapshot cannot be read yet.
        if (ev.type === '@xstate.actor') during = toStatelyMessage('deployment/a', ev);
      },
    });
    a.start();
    expect(during!).toMatchObject({ type: '@xstate.actor', sessionId: 'deployment/a', snapshot: { status: 'active' } });
    const first = toStatelyMessage('deployment/a', events[0]!);
    expect(first).toMatchObject({ type: '@xstate.actor', sessionId: 'deployment/a', rootId: 'deployment/a', name: 'deployment/a' });
    expect(first?.type === '@xstate.actor' ? first.parentId : 'x').toBeUndefined();
    expect(first?.type === '@xstate.actor' ? first.snapshot : undefined).toMatchObject({ value: 'draft' });
    a.stop();
  });

  it('serializes functions, cycles and actor refs safely', () => {
    const cyc: Record<string, unknown> = { a: 1 };
    cyc.self = cyc;
    const out = toJsonSafe({ f: function named() {}, cyc, n: NaN, big: 10n, deep: { a: { b: { c: 1 } } } }, 3) as Record<string, unknown>;
    expect(out.f).toEqual({ type: 'named' });
    expect((out.cyc as Record<string, unknown>).self).toBe('[Circular]');
    expect(out.n).toBeNull();
    expect(out.big).toBe('10');
    expect(out.deep).toEqual({ a: { b: '[...]' } });
  });
});

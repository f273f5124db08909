import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Runtime } from '../../src/index.js';
import { startInspector, type Inspector, type InspectorRuntime } from '../../src/inspector/server.js';
import { isStatelyMessage } from '../../src/inspector/stately.js';
import { inspectSubject, publishInspection, subscribeInspection, type WireInspectRecord } from '../../src/inspector/wire.js';
import { iid, tempRuntime } from '../helpers/runtime.js';

type Msg = { type: string } & Record<string, unknown>;

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 15));
  }
}

function open(url: string): Promise<{ ws: WebSocket; messages: Msg[] }> {
  const messages: Msg[] = [];
  const ws = new WebSocket(url);
  ws.on('message', (d) => messages.push(JSON.parse(d.toString()) as Msg));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, messages }));
    ws.once('error', reject);
  });
}

/** Inspection events across processes: published by a node, received by `ice inspect --nats`. */
describe('inspection events on the wire', () => {
  let rt: Runtime;
  let close: () => Promise<void>;
  let stopPublishing: () => void;
  const received: WireInspectRecord[] = [];
  const subjects: string[] = [];
  let offReceive: () => void;
  let offSubjects: () => void;

  beforeAll(async () => {
    ({ rt, close } = await tempRuntime());
    stopPublishing = publishInspection(rt, rt.transport);
    offReceive = subscribeInspection(rt.transport, (r) => received.push(r));
    const sub = rt.transport.subscribe('ice.inspect.>', (m) => void subjects.push(m.subject));
    offSubjects = () => sub.unsubscribe();
    await rt.spawn('deployment/web', { service: 'web' });
    await rt.grants.issue({ subject: 'agent:bot', scope: 'deployment/web:*' });
  });
  afterAll(async () => {
    offReceive();
    offSubjects();
    stopPublishing();
    await close();
  });

  it('publishes actor, event and snapshot records as JSON on ice.inspect.<node>.<kind>.<id>', async () => {
    const out = await rt.propose({
      id: iid(),
      proposer: 'agent:bot',
      target: 'deployment/web',
      action: 'CONFIGURE',
      params: { version: '1.0.0', replicas: 2 },
    });
    expect(out.status).toBe('executed');
    await until(
      () =>
        received.some(
          (r) =>
            r.event.type === '@xstate.snapshot' && (r.event.snapshot as { context?: { version?: string } }).context?.version === '1.0.0',
        ),
      'the snapshot after CONFIGURE',
    );
    expect(new Set(subjects)).toEqual(new Set([inspectSubject(rt.node, 'deployment/web')]));
    expect(inspectSubject(rt.node, 'deployment/web')).toBe(`ice.inspect.${rt.node}.deployment.web`);
    expect(new Set(received.map((r) => r.event.type))).toEqual(new Set(['@xstate.actor', '@xstate.event', '@xstate.snapshot']));
    for (const r of received) {
      expect(r).toMatchObject({ actor: 'deployment/web', node: rt.node });
      expect(isStatelyMessage(r.event)).toBe(true);
      // JSON-safe: survives a round trip unchanged (no actor refs, no functions)
      expect(JSON.parse(JSON.stringify(r))).toEqual(r);
    }
    const actor = received.find((r) => r.event.type === '@xstate.actor' && r.event.sessionId === 'deployment/web')!;
    expect(actor.event).toMatchObject({ name: 'deployment/web', rootId: 'deployment/web' });
    expect(JSON.parse((actor.event as { definition: string }).definition)).toMatchObject({ id: 'deployment' });
    const ev = received.find((r) => r.event.type === '@xstate.event' && (r.event.event as { type?: string }).type === 'CONFIGURE')!;
    expect(ev.event).toMatchObject({ sessionId: 'deployment/web', event: { type: 'CONFIGURE', version: '1.0.0', replicas: 2 } });
  });

  it('ignores messages that are not inspection records', async () => {
    const before = received.length;
    rt.transport.publish(inspectSubject(rt.node, 'deployment/web'), { actor: 'deployment/web', node: rt.node, event: { type: 'nope' } });
    rt.transport.publish(inspectSubject('other', 'deployment/web'), { actor: 'deployment/web', node: rt.node, event: received[0]!.event });
    rt.transport.publish('ice.inspect.x.y', { actor: 'x/y', node: 'x', event: received[0]!.event });
    // a valid record after them arrives: everything before it was looked at
    rt.transport.publish(inspectSubject('n2', 'deployment/web'), { actor: 'deployment/web', node: 'n2', event: received[0]!.event });
    await until(() => received.some((r) => r.node === 'n2'), 'the valid record');
    expect(received.slice(before).map((r) => r.node)).toEqual(['n2']);
  });

  it('feeds an inspector: its Stately socket and its live socket take the wire form', async () => {
    // The inspector of another process: it sees this runtime's journal, and inspection events
    // only as they come over the transport.
    const remote: InspectorRuntime = {
      definitions: () => rt.definitions(),
      listActors: () => rt.listActors(),
      actor: (a) => rt.actor(a),
      journal: rt.journal,
      onFact: (l) => rt.onFact(l),
      onInspect: (l) => subscribeInspection(rt.transport, l),
    };
    const ins: Inspector = await startInspector({ runtime: remote, port: 0 });
    try {
      const stately = await open(ins.statelyUrl);
      const live = await open(ins.url.replace(/^http/, 'ws') + '/ws');
      await until(() => live.messages.some((m) => m.type === 'hello'), 'hello');
      await until(() => stately.messages.some((m) => m.sessionId === 'deployment/web'), 'the registration of existing actors');
      const out = await rt.propose({
        id: iid(),
        proposer: 'agent:bot',
        target: 'deployment/web',
        action: 'SUBMIT',
        params: { author: 'bot' },
      });
      expect(out.status).toBe('executed');
      await until(
        () => stately.messages.some((m) => m.type === '@xstate.event' && (m.event as { type?: string }).type === 'SUBMIT'),
        'the SUBMIT event on /stately',
      );
      await until(
        () => live.messages.some((m) => m.type === 'inspect' && (m.stateIds as string[]).includes('deployment.in_review')),
        'the snapshot in review on /ws',
      );
      const snap = stately.messages.find(
        (m) => m.type === '@xstate.snapshot' && (m.snapshot as { value?: unknown }).value === 'in_review',
      )!;
      expect(snap).toMatchObject({ sessionId: 'deployment/web', rootId: 'deployment/web' });
      expect(isStatelyMessage(snap)).toBe(true);
      const inspect = live.messages.find((m) => m.type === 'inspect' && (m.stateIds as string[]).includes('deployment.in_review'))!;
      expect(inspect).toMatchObject({ actor: 'deployment/web', node: rt.node, value: 'in_review', status: 'active' });
      stately.ws.close();
      live.ws.close();
    } finally {
      await ins.close();
    }
  });

  it('stops publishing when asked', async () => {
    stopPublishing();
    const before = received.length;
    await rt.spawn('run/quiet', { goal: 'g' });
    // a marker published after the spawn arrives after anything the spawn would have published
    rt.transport.publish(inspectSubject('marker', 'run/quiet'), { actor: 'run/quiet', node: 'marker', event: received[0]!.event });
    await until(() => received.some((r) => r.node === 'marker'), 'the marker');
    expect(received.slice(before).map((r) => r.node)).toEqual(['marker']);
  });
});

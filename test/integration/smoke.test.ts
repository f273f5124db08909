import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/index.js';
import { MODES, iid, tempRuntime } from '../helpers/runtime.js';

describe.each(MODES)('smoke (%s)', (mode) => {
  let rt: Runtime;
  let close: () => Promise<void>;
  beforeEach(async () => {
    ({ rt, close } = await tempRuntime({ mode }));
  });
  afterEach(async () => close());

  it('executes a granted intent and denies an ungranted one', async () => {
    expect(rt.mode).toBe(mode);
    expect(rt.runtimeChain).toBe(mode === 'embedded' ? '_runtime/_' : `_runtime/${rt.node}`);
    await rt.spawn('deployment/web', { service: 'web' });
    await rt.grants.issue({ subject: 'agent:bot', scope: 'deployment/web:CONFIGURE' });
    const ok = await rt.propose({
      id: iid(),
      proposer: 'agent:bot',
      target: 'deployment/web',
      action: 'CONFIGURE',
      params: { version: '1.0.0', replicas: 2 },
    });
    expect(ok).toMatchObject({ status: 'executed', actor: 'deployment/web', seq: 4 });
    const no = await rt.propose({ id: iid(), proposer: 'agent:bot', target: 'deployment/web', action: 'SUBMIT', params: { author: 'x' } });
    expect(no).toMatchObject({ status: 'denied', actor: 'deployment/web', seq: 6 });
    const bad = await rt.propose({
      id: iid(),
      proposer: 'agent:bot',
      target: 'deployment/web',
      action: 'CONFIGURE',
      params: { version: 'x', replicas: 0 },
    });
    expect(bad).toMatchObject({ status: 'rejected', chain: rt.runtimeChain, seq: 2 });
    expect(await rt.journal.verify()).toMatchObject({ ok: true, count: 8, chains: 2 });
    // per chain: the actor's, and the runtime chain (the grant, the rejection)
    const web = await rt.journal.chain('deployment/web');
    expect(web.map((f) => [f.seq, f.type])).toEqual([
      [1, 'actor.started'],
      [2, 'intent.proposed'],
      [3, 'decision'],
      [4, 'transition'],
      [5, 'intent.proposed'],
      [6, 'decision'],
    ]);
    expect(web.every((f, i) => f.actor === 'deployment/web' && f.prev === (i === 0 ? '' : web[i - 1]!.hash))).toBe(true);
    expect(web[3]!.causes).toEqual([3]);
    expect(web[2]!.causes).toEqual([2]);
    const runtime = await rt.journal.chain(rt.runtimeChain);
    expect(runtime.map((f) => [f.seq, f.type, f.actor])).toEqual([
      [1, 'grant.issued', rt.runtimeChain],
      [2, 'intent.rejected', rt.runtimeChain],
    ]);
    // across chains, newest first: the order they were written in
    const types = (await rt.journal.tail({ limit: 20 })).map((f) => f.type).reverse();
    expect(types).toEqual([
      'actor.started',
      'grant.issued',
      'intent.proposed',
      'decision',
      'transition',
      'intent.proposed',
      'decision',
      'intent.rejected',
    ]);
    expect((await rt.journal.tail({ limit: 2, chain: 'deployment/web' })).map((f) => f.seq)).toEqual([6, 5]);
    expect(await rt.journal.fact('deployment/web', 4)).toEqual(web[3]);
    expect(await rt.listActors()).toMatchObject([{ address: 'deployment/web', state: 'draft', seq: 6, active: true }]);
  });

  it('reports inspection events only while listened to, once each, also for actors created before', async () => {
    await rt.spawn('deployment/web', { service: 'web' });
    await rt.grants.issue({ subject: 'agent:bot', scope: 'deployment/web:CONFIGURE' });
    const configure = (version: string) =>
      rt.propose({ id: iid(), proposer: 'agent:bot', target: 'deployment/web', action: 'CONFIGURE', params: { version, replicas: 1 } });
    const seen: string[] = [];
    const listen = () =>
      rt.onInspect((r) => {
        if (r.actor === 'deployment/web' && r.event.type === '@xstate.event') seen.push((r.event.event as { type: string }).type);
      });
    let off = listen();
    await configure('1.0.0');
    expect(seen).toEqual(['CONFIGURE']);
    off();
    await configure('1.0.1');
    expect(seen).toEqual(['CONFIGURE']);
    off = listen();
    await configure('1.0.2');
    off();
    expect(seen).toEqual(['CONFIGURE', 'CONFIGURE']);
  });
});

describe.each(MODES)('principal-bound subjects (%s)', (mode) => {
  it('rt.propose passes a node that requires them; a bare subject is refused', async () => {
    const { rt, close } = await tempRuntime({ mode, requirePrincipalSubject: true });
    try {
      await rt.spawn('deployment/web', { service: 'web' });
      await rt.grants.issue({ subject: 'agent:bot', scope: 'deployment/web:CONFIGURE' });
      const ok = await rt.propose({
        id: iid(),
        proposer: 'agent:bot',
        target: 'deployment/web',
        action: 'CONFIGURE',
        params: { version: '1.0.0', replicas: 1 },
      });
      expect(ok.status).toBe('executed');
      const bare = await rt.transport.request(
        'ice.intent.deployment.web',
        { id: iid(), proposer: 'agent:bot', target: 'deployment/web', action: 'CONFIGURE', params: { version: '1.0.1', replicas: 1 } },
        { timeoutMs: 5000 },
      );
      expect(bare.data).toMatchObject({
        status: 'rejected',
        chain: rt.runtimeChain,
        issues: [expect.objectContaining({ code: 'unauthenticated_subject' })],
      });
    } finally {
      await close();
    }
  });
});

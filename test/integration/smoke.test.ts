import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/index.js';
import { iid, tempRuntime } from '../helpers/runtime.js';

describe('smoke', () => {
  let rt: Runtime;
  let close: () => Promise<void>;
  beforeEach(async () => {
    ({ rt, close } = await tempRuntime());
  });
  afterEach(async () => close());

  it('executes a granted intent and denies an ungranted one', async () => {
    await rt.spawn('deployment/web', { service: 'web' });
    await rt.grants.issue({ subject: 'agent:bot', scope: 'deployment/web:CONFIGURE' });
    const ok = await rt.propose({
      id: iid(),
      proposer: 'agent:bot',
      target: 'deployment/web',
      action: 'CONFIGURE',
      params: { version: '1.0.0', replicas: 2 },
    });
    expect(ok.status).toBe('executed');
    const no = await rt.propose({ id: iid(), proposer: 'agent:bot', target: 'deployment/web', action: 'SUBMIT', params: { author: 'x' } });
    expect(no.status).toBe('denied');
    const bad = await rt.propose({
      id: iid(),
      proposer: 'agent:bot',
      target: 'deployment/web',
      action: 'CONFIGURE',
      params: { version: 'x', replicas: 0 },
    });
    expect(bad.status).toBe('rejected');
    expect(rt.journal.verify().ok).toBe(true);
    const types = rt.journal
      .tail({ limit: 20 })
      .map((f) => f.type)
      .reverse();
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
  });
});

describe('principal-bound subjects on the embedded bus', () => {
  it('rt.propose passes a node that requires them; a bare subject is refused', async () => {
    const { rt, close } = await tempRuntime({ requirePrincipalSubject: true });
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
      expect(bare.data).toMatchObject({ status: 'rejected', issues: [expect.objectContaining({ code: 'unauthenticated_subject' })] });
    } finally {
      await close();
    }
  });
});

import { describe, expect, it } from 'vitest';
import { ManualClock, type Fact } from '../../src/index.js';
import { MODES, iid, tempRuntime } from '../helpers/runtime.js';

describe.each(MODES)('passivation (%s)', (mode) => {
  it('frees idle actors, keeps their state, and re-activates them on demand', async () => {
    const clock = new ManualClock();
    const { rt, close } = await tempRuntime({ mode, clock, passivateAfterMs: 0 });
    try {
      for (let i = 0; i < 10; i++) await rt.spawn(`deployment/p${i}`, { service: `p${i}` });
      await rt.grants.issue({ subject: 'agent:p', scope: 'deployment/*:CONFIGURE' });
      const r = await rt.propose({
        id: iid(),
        proposer: 'agent:p',
        target: 'deployment/p3',
        action: 'CONFIGURE',
        params: { version: '3.0.0', replicas: 7 },
      });
      expect(r.status).toBe('executed');
      expect(rt.stats().active).toBe(10);

      clock.advance(1000);
      await rt.propose({
        id: iid(),
        proposer: 'agent:p',
        target: 'deployment/p5',
        action: 'CONFIGURE',
        params: { version: '5.0.0', replicas: 5 },
      });
      // p5 was used after the cutoff; the other nine were idle for 1000 ms.
      expect(await rt.passivateIdle(500)).toBe(9);
      expect(rt.stats().active).toBe(1);
      expect(rt.hosting('deployment/p5')).toBeDefined();
      expect(rt.hosting('deployment/p3')).toBeUndefined();
      const listed = await rt.listActors();
      expect(listed).toHaveLength(10);
      expect(listed.filter((a) => a.active).map((a) => a.address)).toEqual(['deployment/p5']);

      const detail = (await rt.actor('deployment/p3'))!;
      expect(detail.active).toBe(false);
      expect(detail).toMatchObject({ state: 'draft', status: 'active', seq: 4 });
      expect((detail.context as { version: string; replicas: number }).replicas).toBe(7);

      const again = await rt.propose({
        id: iid(),
        proposer: 'agent:p',
        target: 'deployment/p3',
        action: 'CONFIGURE',
        params: { version: '3.0.1', replicas: 8 },
      });
      expect(again.status).toBe('executed');
      // the chain carries on where it stopped: no lifecycle fact in between
      expect(again.status === 'executed' && again.seq).toBe(7);
      expect((await rt.actor('deployment/p3'))!.active).toBe(true);
      expect(((await rt.actor('deployment/p3'))!.context as { replicas: number }).replicas).toBe(8);
      // Re-activation after passivation in the same process is not a lifecycle fact.
      const p3 = await rt.journal.chain('deployment/p3');
      expect(p3.filter((f) => f.type === 'actor.restored')).toHaveLength(0);
      expect(p3.map((f) => f.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
      expect((await rt.journal.verify()).ok).toBe(true);
    } finally {
      await close();
    }
  });

  it('never passivates an actor whose commit is still pending', async () => {
    const { rt, close } = await tempRuntime({ mode, passivateAfterMs: 0 });
    try {
      await rt.spawn('deployment/busy', { service: 'b' });
      await rt.grants.issue({ subject: 'agent:p', scope: 'deployment/*:CONFIGURE' });
      const id = iid();
      // Durable = this process has seen the intent's transition committed (onFact comes after the store's ack).
      let durable = false;
      const off = rt.onFact((f: Fact) => {
        if (f.type === 'transition' && f.intentId === id) durable = true;
      });
      const p = rt.propose({
        id,
        proposer: 'agent:p',
        target: 'deployment/busy',
        action: 'CONFIGURE',
        params: { version: '1.0.0', replicas: 2 },
      });
      let settled = false;
      void p.finally(() => (settled = true));
      // Between the turn (the head moved on in memory) and its commit, every attempt must fail.
      let attempts = 0;
      while (!durable && !settled) {
        await new Promise((r) => setImmediate(r));
        const h = rt.hosting('deployment/busy');
        if (h && h.seq > 1 && !durable) {
          attempts++;
          expect(await rt.passivate('deployment/busy')).toBe(false);
        }
      }
      off();
      expect((await p).status).toBe('executed');
      expect(attempts).toBeGreaterThan(0);
      expect(rt.hosting('deployment/busy')).toMatchObject({ seq: 4, context: { replicas: 2 } });
      // once durable it may go
      expect(await rt.passivate('deployment/busy')).toBe(true);
      expect(((await rt.actor('deployment/busy'))!.context as { replicas: number }).replicas).toBe(2);
    } finally {
      await close();
    }
  });
});

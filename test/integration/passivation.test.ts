import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/index.js';
import { iid, tempRuntime } from '../helpers/runtime.js';

describe('passivation', () => {
  it('frees idle actors, keeps their state, and re-activates them on demand', async () => {
    const clock = new ManualClock();
    const { rt, close } = await tempRuntime({ clock, passivateAfterMs: 0 });
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
      expect(rt.passivateIdle(500)).toBe(9);
      expect(rt.stats().active).toBe(1);
      expect(rt.stats().actors).toBe(10);

      const detail = rt.actor('deployment/p3')!;
      expect(detail.active).toBe(false);
      expect((detail.context as { version: string; replicas: number }).replicas).toBe(7);

      const again = await rt.propose({
        id: iid(),
        proposer: 'agent:p',
        target: 'deployment/p3',
        action: 'CONFIGURE',
        params: { version: '3.0.1', replicas: 8 },
      });
      expect(again.status).toBe('executed');
      expect(rt.actor('deployment/p3')!.active).toBe(true);
      expect((rt.actor('deployment/p3')!.context as { replicas: number }).replicas).toBe(8);
      // Re-activation after passivation in the same process is not a lifecycle fact.
      expect(rt.journal.tail({ limit: 100, actor: 'deployment/p3' }).filter((f) => f.type === 'actor.restored')).toHaveLength(0);
      expect(rt.journal.verify().ok).toBe(true);
    } finally {
      await close();
    }
  });

  it('never passivates an actor whose commit is still pending', async () => {
    const { rt, close } = await tempRuntime({ passivateAfterMs: 0 });
    try {
      await rt.spawn('deployment/busy', { service: 'b' });
      await rt.grants.issue({ subject: 'agent:p', scope: 'deployment/*:CONFIGURE' });
      const p = rt.propose({
        id: iid(),
        proposer: 'agent:p',
        target: 'deployment/busy',
        action: 'CONFIGURE',
        params: { version: '1.0.0', replicas: 2 },
      });
      // Let the intent reach the host but not its commit.
      let passivatedWhilePending = false;
      for (let i = 0; i < 50 && !passivatedWhilePending; i++) {
        await new Promise((r) => queueMicrotask(() => r(undefined)));
        const d = rt.actor('deployment/busy')!;
        if (d.seq > 1 && rt.passivate('deployment/busy')) passivatedWhilePending = true;
      }
      expect((await p).status).toBe('executed');
      expect(passivatedWhilePending).toBe(false);
      expect((rt.actor('deployment/busy')!.context as { replicas: number }).replicas).toBe(2);
    } finally {
      await close();
    }
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import { Authority, validateIntent } from '../../src/authority/index.js';
import { IceError } from '../../src/errors.js';
import type { StorePort, Turn } from '../../src/host/ports.js';
import { DEFAULT_LIMITS } from '../../src/protocol/index.js';
import { embeddedCore, type Core } from '../helpers/core.js';

/**
 * A repeat of an intent whose turn is applied but not yet durable is answered from the host's
 * memory of that turn. It must be answered only once that commit is durable, and fail with
 * it: otherwise a proposer holds an outcome the journal never got (found by a seeded cluster
 * chaos run: an acknowledged outcome named a position another intent's transition took).
 */
describe('repeats while the first turn commits', () => {
  let core: Core | undefined;
  afterEach(async () => core?.close());

  it('wait for the commit and fail with it; the retry after the failure executes once', async () => {
    // the next commit is held until the test releases or fails it
    let held: { turn: Turn; resolve: () => void; reject: (e: Error) => void } | undefined;
    let armed = false;
    const wrap = (s: StorePort): StorePort =>
      new Proxy(s, {
        get(t, k) {
          if (k === 'commit')
            return (turn: Turn) => {
              if (!armed) return t.commit(turn);
              armed = false;
              return new Promise<void>((resolve, reject) => (held = { turn, resolve, reject }));
            };
          const v = Reflect.get(t, k) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
        },
      });
    core = embeddedCore({ wrapStore: wrap });
    const c = core;
    const authority = new Authority({ key: c.key, grants: c.grants, clock: c.clock, ids: c.ids, decisionTtlMs: 10_000 });
    await c.host.spawn('deployment/web', { service: 'web' });
    await c.grants.issue({ subject: 'agent:bot', scope: 'deployment/web:*' });
    const v = validateIntent(
      { id: 'i-1', proposer: 'agent:bot', target: 'deployment/web', action: 'CONFIGURE', params: { version: '1.0.0', replicas: 2 } },
      c.registry,
      DEFAULT_LIMITS,
    );
    if (!v.ok) throw new Error('invalid test intent');
    const decide = () =>
      Promise.resolve(
        authority.decide({
          intent: v.intent,
          digest: v.digest,
          event: v.event,
          actor: c.host.view(v.intent.target),
          run: c.host.runView(v.intent.runId),
          kindPolicies: v.def.policies,
          sign: true,
        }),
      );
    const execute = async () => {
      const r = await c.host.execute(v.intent, v.digest, decide, { event: v.event });
      if (!('outcome' in r)) throw new Error(`unexpected ${JSON.stringify(r)}`);
      return r;
    };

    armed = true;
    const first = await execute();
    expect(first.outcome.status).toBe('executed');
    const repeat = await execute();
    expect(repeat.outcome).toEqual(first.outcome);
    let repeatSettled = false;
    const repeatCommitted = repeat.committed.then(
      () => (repeatSettled = true),
      (e: unknown) => {
        repeatSettled = true;
        throw e;
      },
    );
    // the repeat's answer waits for the first turn's commit…
    await new Promise((r) => setTimeout(r, 50));
    expect(repeatSettled).toBe(false);
    // …and fails with it
    held!.reject(new IceError('E_COMMIT', 'the held commit failed'));
    await expect(first.committed).rejects.toMatchObject({ code: 'E_COMMIT' });
    await expect(repeatCommitted).rejects.toMatchObject({ code: 'E_COMMIT' });

    // nothing of it is in the journal; the proposer's retry executes it, once
    expect((await c.reader.factsOfIntent('i-1')).length).toBe(0);
    const retry = await execute();
    await retry.committed;
    expect(retry.outcome.status).toBe('executed');
    const transitions = (await c.reader.chain('deployment/web')).filter((f) => f.type === 'transition');
    expect(transitions.map((f) => f.intentId)).toEqual(['i-1']);
  });
});

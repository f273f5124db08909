/**
 * Text that is not valid Unicode (a lone surrogate) has no RFC 8785 canonical form, so it can
 * be neither hashed nor signed the same way in every language: the intake refuses it with a
 * typed issue naming the field, in both modes (embedded transport; cluster over a real
 * nats-server, sent as raw JSON bytes), and the admin operations refuse it too.
 */
import { connect as natsConnect } from '@nats-io/transport-node';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAdminOp } from '../../src/admin/index.js';
import { ValidationError } from '../../src/errors.js';
import { isWellFormed, type Outcome } from '../../src/protocol/index.js';
import { MODES, iid, tempRuntime, type TempRuntime } from '../helpers/runtime.js';

const LONE_HIGH = '\ud800';
const LONE_LOW = '\udc00';

function rejectedAt(out: Outcome, path: string): void {
  expect(out.status).toBe('rejected');
  if (out.status !== 'rejected') return;
  expect(out.issues[0]).toMatchObject({ path, code: 'not_unicode' });
  expect(out.seq).toBeGreaterThan(0); // journaled as an intent.rejected fact
}

describe.each(MODES)('lone surrogates at the doors (%s)', (mode) => {
  let h: TempRuntime;
  beforeAll(async () => {
    h = await tempRuntime({ mode });
    await h.rt.spawn('deployment/web', { service: 'web' });
    await h.rt.grants.issue({ subject: 'agent:bot', scope: 'deployment/*:*' });
  }, 30_000);
  afterAll(() => h?.close());

  const base = () => ({ id: iid('u'), proposer: 'agent:bot', target: 'deployment/web', action: 'CONFIGURE' });

  it('in a params value, a params key, nested values, the rationale and the trace ids: rejected, naming the field', async () => {
    rejectedAt(await h.rt.propose({ ...base(), params: { version: `1${LONE_HIGH}`, replicas: 2 } }), 'params.version');
    rejectedAt(await h.rt.propose({ ...base(), params: { version: '1', replicas: 2, [`k${LONE_LOW}`]: 1 } }), 'params.k\\udc00');
    rejectedAt(
      await h.rt.propose({ ...base(), params: { version: '1', replicas: 2, deep: { list: ['ok', `x${LONE_LOW}y`] } } }),
      'params.deep.list.1',
    );
    rejectedAt(await h.rt.propose({ ...base(), params: { version: '1', replicas: 2 }, rationale: `because ${LONE_HIGH}` }), 'rationale');
    rejectedAt(await h.rt.propose({ ...base(), params: { version: '1', replicas: 2 }, correlationId: LONE_LOW }), 'correlationId');
    rejectedAt(
      await h.rt.propose({ ...base(), params: { version: '1', replicas: 2 }, causationId: `${LONE_LOW}${LONE_HIGH}` }),
      'causationId',
    );
    // an id that is not valid Unicode is not echoed back as the intent id
    const out = await h.rt.propose({ ...base(), id: `a${LONE_HIGH}`, params: { version: '1', replicas: 2 } });
    rejectedAt(out, 'id');
    expect(out.status === 'rejected' && out.intentId).toBeFalsy();
    // a pair is valid Unicode and goes through
    const ok = await h.rt.propose({ ...base(), params: { version: '1.0.0', replicas: 2 }, rationale: 'rocket \ud83d\ude80' });
    expect(ok.status).toBe('executed');
    expect((await h.rt.journal.verify()).ok).toBe(true);
  });

  it('any UTF-16 text in the rationale: rejected not_unicode exactly when it is not well formed, never a crash (fast-check)', async () => {
    const utf16 = fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 8 }).map((cs) => String.fromCharCode(...cs));
    await fc.assert(
      fc.asyncProperty(utf16, async (s) => {
        const out = await h.rt.propose({ ...base(), params: { version: '1.0.0', replicas: 1 }, rationale: s });
        if (isWellFormed(s)) expect(out.status).toBe('executed');
        else rejectedAt(out, 'rationale');
      }),
      { numRuns: 40, examples: [[LONE_HIGH], [`a${LONE_LOW}`], ['\ud83d\ude80'], ['']] },
    );
    expect((await h.rt.journal.verify()).ok).toBe(true);
  }, 60_000);

  it('admin operations refuse a lone surrogate in what they would record, naming the field', async () => {
    const refused = async (op: string, args: unknown, path: string) => {
      const e = await runAdminOp(h.rt, op, args).then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(e).toBeInstanceOf(ValidationError);
      expect((e as ValidationError).issues[0]).toMatchObject({ path, code: 'not_unicode' });
    };
    await refused('spawn', { address: 'deployment/u1', input: { service: `w${LONE_HIGH}` } }, 'args.input.service');
    await refused('grant.issue', { subject: 'agent:bot', scope: 'deployment/*:*', note: LONE_LOW }, 'args.note');
    await refused('actor.stop', { address: 'deployment/web', reason: `r${LONE_LOW}` }, 'args.reason');
    await refused('signal', { address: 'deployment/web', event: { type: 'X', [LONE_HIGH]: 1 }, reason: 'r' }, 'args.event.\\ud800');
    expect(await h.rt.actor('deployment/u1')).toBeUndefined();
  });

  it('the in-process API refuses it too, before anything changes (spawn, grants, stop, approvals)', async () => {
    const refused = async (p: Promise<unknown>, path: string) => {
      const e = await p.then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(e).toBeInstanceOf(ValidationError);
      expect((e as ValidationError).issues[0]).toMatchObject({ path, code: 'not_unicode' });
    };
    const grants = h.rt.grants.list().length;
    await refused(h.rt.spawn('deployment/u2', { service: `s${LONE_LOW}` }), 'input.service');
    await refused(h.rt.grants.issue({ subject: 'agent:bot', scope: 'deployment/*:*', note: `n${LONE_HIGH}` }), 'note');
    await refused(h.rt.stopActor('deployment/web', LONE_LOW), 'reason');
    await refused(h.rt.approvals.approve('no-such-intent', 'human:bob', `ok${LONE_HIGH}`), 'note');
    expect(await h.rt.actor('deployment/u2')).toBeUndefined();
    expect(h.rt.grants.list()).toHaveLength(grants);
    expect((await h.rt.actor('deployment/web'))?.status).toBe('active');
    expect((await h.rt.journal.verify()).ok).toBe(true);
  });

  if (mode === 'cluster')
    it('over NATS, as raw JSON bytes with \\u escapes: rejected with the path', async () => {
      const nc = await natsConnect({ servers: h.server!.url });
      try {
        const body = `{"id":"${iid('raw')}","proposer":"agent:bot","target":"deployment/web","action":"CONFIGURE","params":{"version":"1\\ud800","replicas":2}}`;
        const msg = await nc.request('ice.as.agent:bot.deployment.web', new TextEncoder().encode(body), { timeout: 10_000 });
        rejectedAt(msg.json<Outcome>(), 'params.version');
      } finally {
        await nc.close();
      }
    });
});

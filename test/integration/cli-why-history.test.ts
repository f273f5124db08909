import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntime, type Runtime } from '../../src/index.js';
import { createLogger } from '../../src/util/logger.js';
import { ice } from '../helpers/ice-cli.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { tempDir } from '../helpers/runtime.js';

interface Why {
  end: string;
  steps: Array<{ type: string; seq: number; summary: string; grant?: { id: string; subject: string; scope: string } }>;
  path: number[];
  broken?: unknown;
}

/**
 * `ice why`, `ice actor history` and `ice actor at` read the journal alone (and the kind's
 * machine for the replays), so they answer the same from a data dir and from a cluster.
 */
function whyAndHistory(mode: string, where: () => string[]) {
  const run = (args: string[]) => ice([...args, ...where()]);
  const ok = async (args: string[]) => {
    const r = await run(args);
    expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0);
    return r.stdout;
  };
  const propose = (action: string, as: string, params: string, id: string) =>
    run(['propose', 'deployment/web', action, '--as', as, '--params', params, '--id', id]);

  describe(`${mode}: ice why, ice actor history, ice actor at`, () => {
    let grantId = '';
    beforeAll(async () => {
      await ok(['spawn', 'deployment/web', '--input', '{"service":"web"}']);
      grantId = (JSON.parse(await ok(['grant', 'issue', '--to', 'agent:cli', '--scope', 'deployment/web:*', '--json'])) as { id: string })
        .id;
      await ok(['grant', 'issue', '--to', 'human:alice', '--scope', 'deployment/*:APPROVE']);
      expect((await propose('CONFIGURE', 'agent:cli', '{"version":"1.0.0","replicas":2}', 'w1')).code).toBe(0);
      expect((await propose('SUBMIT', 'agent:cli', '{"author":"agent:cli"}', 'w2')).code).toBe(0);
      // a reviewer without a grant to SUBMIT: denied
      expect((await propose('SUBMIT', 'human:alice', '{"author":"human:alice"}', 'w-denied')).code).not.toBe(0);
      // params that do not fit the schema: rejected
      expect((await propose('CONFIGURE', 'agent:cli', '{"replicas":"many"}', 'w-rejected')).code).not.toBe(0);
      expect((await propose('APPROVE', 'human:alice', '{"reviewer":"alice"}', 'w3')).code).toBe(0);
      // a production deploy waits for a human, then is approved
      expect((await propose('DEPLOY', 'agent:cli', '{"environment":"production"}', 'w4')).code).toBe(10);
      await ok(['approve', 'w4', '--by', 'human:bob', '--note', 'window open']);
    });

    it('why: an executed intent, from the transition back to the proposal, with the grant behind it', async () => {
      const r = JSON.parse(await ok(['why', 'w1', '--json'])) as Why;
      expect(r.end).toBe('executed');
      expect(r.steps.map((s) => s.type)).toEqual(['intent.proposed', 'decision', 'transition']);
      expect(r.path).toEqual([r.steps[2]!.seq, r.steps[1]!.seq, r.steps[0]!.seq]);
      expect(r.broken).toBeUndefined();
      expect(r.steps[1]!.grant).toMatchObject({ id: grantId, subject: 'agent:cli', scope: 'deployment/web:*' });
      const text = await ok(['why', 'w1']);
      expect(text).toContain('intent w1: executed');
      expect(text).toContain(`grant ${grantId}: agent:cli → deployment/web:*`);
      expect(text).toMatch(/causes: #\d+ transition ← #\d+ decision ← #\d+ intent\.proposed/);
    });

    it('why: an approved intent leads through the approval back to its proposal', async () => {
      const r = JSON.parse(await ok(['why', 'w4', '--json'])) as Why;
      expect(r.end).toBe('executed');
      expect(r.steps.map((s) => s.type)).toEqual(expect.arrayContaining(['intent.proposed', 'decision', 'approval', 'transition']));
      const typeAt = (seq: number) => r.steps.find((s) => s.seq === seq)?.type;
      expect(r.path.map(typeAt)).toContain('approval');
      expect(typeAt(r.path[0]!)).toBe('transition');
      expect(typeAt(r.path[r.path.length - 1]!)).toBe('intent.proposed');
      expect(r.broken).toBeUndefined();
      expect(r.steps.find((s) => s.type === 'approval')!.summary).toContain('human:bob');
    });

    it('why: a denied intent names the reasons; a rejected one its issues; an unknown id is not found', async () => {
      const denied = JSON.parse(await ok(['why', 'w-denied', '--json'])) as Why;
      expect(denied.end).toBe('denied');
      expect(denied.steps.some((s) => s.type === 'transition')).toBe(false);
      expect(denied.steps.find((s) => s.type === 'decision')!.summary).toContain('no_grant');
      const rejected = JSON.parse(await ok(['why', 'w-rejected', '--json'])) as Why;
      expect(rejected.end).toBe('rejected');
      expect(rejected.steps.find((s) => s.type === 'intent.rejected')!.summary).toContain('replicas');
      const unknown = await run(['why', 'no-such-intent']);
      expect(unknown.code).not.toBe(0);
      expect(unknown.stderr).toContain('E_NOT_FOUND');
      const bad = await run(['why', '../etc']);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('<intentId>');
    });

    it('actor history: every transition with its proposer, each agreeing with a replay', async () => {
      const h = JSON.parse(await ok(['actor', 'history', 'deployment/web', '--json'])) as {
        rows: Array<{ type: string; event?: string; from?: string; to?: string; proposer?: string; replayed?: string }>;
        mismatches: unknown[];
      };
      const transitions = h.rows.filter((r) => r.type === 'transition');
      expect(transitions.map((t) => [t.event, t.from, t.to, t.proposer])).toEqual([
        ['CONFIGURE', 'draft', 'draft', 'agent:cli'],
        ['SUBMIT', 'draft', 'in_review', 'agent:cli'],
        ['APPROVE', 'in_review', 'approved', 'human:alice'],
        ['DEPLOY', 'approved', 'rolling_out', 'agent:cli'],
      ]);
      expect(transitions.every((t) => t.replayed === 'same')).toBe(true);
      expect(h.rows[0]!.type).toBe('actor.started');
      expect(h.mismatches).toEqual([]);
    });

    it('actor at: the state and context right after a given fact, rebuilt by replay', async () => {
      const w2 = JSON.parse(await ok(['why', 'w2', '--json'])) as Why;
      const submitSeq = w2.steps.find((s) => s.type === 'transition')!.seq;
      const at = JSON.parse(await ok(['actor', 'at', 'deployment/web', '--seq', String(submitSeq), '--json'])) as {
        state: string;
        context: { version?: string; replicas?: number };
        lastTransition: number;
      };
      expect(at).toMatchObject({ state: 'in_review', lastTransition: submitSeq, context: { version: '1.0.0', replicas: 2 } });
      const before = JSON.parse(await ok(['actor', 'at', 'deployment/web', '--seq', String(submitSeq - 1), '--json'])) as { state: string };
      expect(before.state).toBe('draft');
      const past = await run(['actor', 'at', 'deployment/web', '--seq', '100000']);
      expect(past.code).toBe(2);
      expect(past.stderr).toContain('--seq');
      expect((await run(['actor', 'at', 'deployment/web', '--seq', 'x'])).code).toBe(2);
      const none = await run(['actor', 'history', 'deployment/none']);
      expect(none.stderr).toContain('E_NOT_FOUND');
    });
  });
}

const t = tempDir('ice-why-');
afterAll(() => t.cleanup());
whyAndHistory('embedded', () => ['--data', t.dir]);

let srv: NatsServer | undefined;
let nodes: Runtime[] = [];
beforeAll(async () => {
  srv = await startNatsServer();
  const logger = createLogger({ level: 'silent' });
  nodes = [
    await createRuntime({ node: 'n1', logger, cluster: { servers: srv.url } }),
    await createRuntime({ node: 'n2', logger, cluster: { servers: srv.url } }),
  ];
});
afterAll(async () => {
  for (const n of nodes) await n.stop();
  await srv?.stop();
});
whyAndHistory('cluster', () => ['--nats', srv!.url]);

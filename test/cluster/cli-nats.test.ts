import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntime, type Runtime } from '../../src/index.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { createLogger } from '../../src/util/logger.js';
import { ice, spawnIce } from '../helpers/ice-cli.js';

/** Polls `check` until it holds (a condition, not a fixed sleep). */
async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Every CLI read and operator command with `--nats` against cluster nodes: the same commands
 * as on a data dir, answered by whichever node takes the request (ice.admin.as.<principal>.<op>).
 */
describe('ice … --nats against cluster nodes', () => {
  let srv: NatsServer;
  let n1: Runtime;
  let n2: Runtime;
  let nats: string[];
  /** CONFIGURE, SUBMIT, a reviewer's APPROVE, then the production DEPLOY (ids <p>1…<p>4); returns the DEPLOY's result. */
  const toPendingDeploy = async (target: string, p: string) => {
    const steps: Array<[string, string, string]> = [
      ['CONFIGURE', 'agent:cli', '{"version":"1.0.0","replicas":2}'],
      ['SUBMIT', 'agent:cli', '{"author":"agent:cli"}'],
      ['APPROVE', 'human:alice', '{"reviewer":"alice"}'],
    ];
    for (const [i, [action, as, params]] of steps.entries()) {
      const r = await ice(['propose', target, action, '--as', as, '--params', params, '--id', `${p}${i + 1}`, ...nats]);
      expect(r.code, `${action}: ${r.stdout}${r.stderr}`).toBe(0);
    }
    return ice(['propose', target, 'DEPLOY', '--as', 'agent:cli', '--params', '{"environment":"production"}', '--id', `${p}4`, ...nats]);
  };
  beforeAll(async () => {
    srv = await startNatsServer();
    nats = ['--nats', srv.url];
    const logger = createLogger({ level: 'silent' });
    n1 = await createRuntime({ node: 'n1', logger, cluster: { servers: srv.url } });
    n2 = await createRuntime({ node: 'n2', logger, cluster: { servers: srv.url } });
  });
  afterAll(async () => {
    await n1?.stop();
    await n2?.stop();
    await srv?.stop();
  });

  it('spawn, grant, propose, approvals, approve, deny, and every read command', async () => {
    expect((await ice(['spawn', 'deployment/web', '--input', '{"service":"web"}', ...nats])).stdout).toContain(
      'deployment/web started in draft',
    );
    const g = await ice(['grant', 'issue', '--to', 'agent:cli', '--scope', 'deployment/web:*', '--json', ...nats]);
    expect(g.code).toBe(0);
    const grantId = (JSON.parse(g.stdout) as { id: string }).id;
    await ice(['grant', 'issue', '--to', 'human:alice', '--scope', 'deployment/*:APPROVE', ...nats]);

    // configured, submitted, approved by a reviewer; the production deploy waits for a human
    const deploy = await toPendingDeploy('deployment/web', 'c');
    expect(deploy.code, deploy.stdout + deploy.stderr).toBe(10);

    const pending = JSON.parse((await ice(['approvals', '--json', ...nats])).stdout) as Array<{ intentId: string }>;
    expect(pending.map((p) => p.intentId)).toEqual(['c4']);
    expect(pending[0]).toMatchObject({ requirement: { quorum: 1, approvers: ['*'] }, approvals: [], remaining: 1 });
    const listed = (await ice(['approvals', ...nats])).stdout;
    expect(listed).toContain('needs 1 of * (policy production-deploy-needs-human');
    expect(listed).toMatch(/1 more before \d{4}-/);
    // the proposer approving its own intent is refused, with the code and why
    const self = await ice(['approve', 'c4', '--by', 'agent:cli', ...nats]);
    expect(self.code).toBe(1);
    expect(self.stderr).toContain('E_APPROVAL_SELF');
    const approved = await ice(['approve', 'c4', '--by', 'human:bob', ...nats]);
    expect(approved.code).toBe(0);
    expect(approved.stdout).toContain('executed');
    expect(JSON.parse((await ice(['approvals', '--json', ...nats])).stdout)).toEqual([]);

    const actors = JSON.parse((await ice(['actors', 'ls', '--json', ...nats])).stdout) as Array<{ address: string; state: string }>;
    expect(actors).toEqual([expect.objectContaining({ address: 'deployment/web', state: 'rolling_out' })]);
    const show = JSON.parse((await ice(['actor', 'show', 'deployment/web', '--json', '-n', '50', ...nats])).stdout) as {
      state: string;
      facts: Array<{ type: string; seq: number; actor: string }>;
    };
    expect(show.state).toBe('rolling_out');
    expect(show.facts.map((f) => f.type)).toContain('approval');
    expect(show.facts.every((f) => f.actor === 'deployment/web')).toBe(true);

    const tail = (await ice(['journal', 'tail', '--json', '-n', '200', ...nats])).stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; actor: string });
    expect(tail.some((f) => f.type === 'grant.issued' && f.actor.startsWith('_runtime/'))).toBe(true);
    expect(tail.filter((f) => f.type === 'transition').length).toBe(4);

    const verify = await ice(['journal', 'verify', '--json', ...nats]);
    expect(verify.code).toBe(0);
    const v = JSON.parse(verify.stdout) as { ok: boolean; chains: number; checkpoints: number; attestedPos: number; lastPos: number };
    expect(v).toMatchObject({ ok: true });
    expect(v.chains).toBeGreaterThanOrEqual(2); // the actor and at least one runtime chain
    expect(v.attestedPos).toBe(v.lastPos); // every turn signed by its node
    expect((await ice(['journal', 'verify', ...nats])).stdout).toContain('attested: every turn carries a node signature that verifies');

    const grants = JSON.parse((await ice(['grant', 'ls', '--json', ...nats])).stdout) as Array<{ id: string }>;
    expect(grants.map((x) => x.id)).toContain(grantId);
    expect((await ice(['grant', 'revoke', grantId, ...nats])).code).toBe(0);

    // a refusal through the CLI: no grant any more
    const denied = await ice(['propose', 'deployment/web', 'MARK_HEALTHY', '--as', 'agent:cli', '--id', 'c5', ...nats]);
    expect(denied.code).toBe(11);
    const stop = await ice(['actor', 'stop', 'deployment/web', '--reason', 'done', ...nats]);
    expect(stop.code).toBe(0);
    const after = JSON.parse((await ice(['actor', 'show', 'deployment/web', '--json', ...nats])).stdout) as { status: string };
    expect(after.status).toBe('stopped');
  });

  it('deny through the CLI settles a pending intent on whichever node owns the actor', async () => {
    await ice(['spawn', 'deployment/api', '--input', '{"service":"api"}', ...nats]);
    await ice(['grant', 'issue', '--to', 'agent:cli', '--scope', 'deployment/api:*', ...nats]);
    const held = await toPendingDeploy('deployment/api', 'd');
    expect(held.code, held.stdout + held.stderr).toBe(10);
    const denied = await ice(['deny', 'd4', '--reason', 'freeze', '--by', 'human:bob', ...nats]);
    expect(denied.stdout, denied.stdout + denied.stderr).toContain('denied');
    const facts = JSON.parse((await ice(['actor', 'show', 'deployment/api', '--json', '-n', '3', ...nats])).stdout) as {
      facts: Array<{ type: string; data: { approved?: boolean } }>;
    };
    expect(facts.facts[0]).toMatchObject({ type: 'approval', data: { approved: false } });
  });

  it('journal tail --actor --from: one chain from a seq, oldest first; with -f, then each new fact', async () => {
    await ice(['spawn', 'deployment/tail', '--input', '{"service":"tail"}', ...nats]);
    await ice(['grant', 'issue', '--to', 'agent:cli', '--scope', 'deployment/tail:*', ...nats]);
    const configure = (id: string) =>
      ice([
        'propose',
        'deployment/tail',
        'CONFIGURE',
        '--as',
        'agent:cli',
        '--params',
        '{"version":"1.0.0","replicas":2}',
        '--id',
        id,
        ...nats,
      ]);
    for (const id of ['t1', 't2']) expect((await configure(id)).code).toBe(0);
    const head = (JSON.parse((await ice(['actor', 'show', 'deployment/tail', '--json', ...nats])).stdout) as { seq: number }).seq;
    const lines = (out: string) =>
      out
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { actor: string; seq: number; type: string });

    const page = await ice(['journal', 'tail', '--actor', 'deployment/tail', '--from', '2', '-n', '3', '--json', ...nats]);
    expect(page.code, page.stderr).toBe(0);
    expect(lines(page.stdout).map((f) => [f.actor, f.seq])).toEqual([
      ['deployment/tail', 2],
      ['deployment/tail', 3],
      ['deployment/tail', 4],
    ]);

    const tail = spawnIce(['journal', 'tail', '--actor', 'deployment/tail', '--from', '3', '-f', '--json', ...nats]);
    try {
      await until('the chain up to its head', () => lines(tail.stdout()).some((f) => f.seq === head));
      expect((await configure('t3')).code).toBe(0);
      await until('the new facts', () => lines(tail.stdout()).some((f) => f.type === 'transition' && f.seq > head));
      const seqs = lines(tail.stdout()).map((f) => f.seq);
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 3));
    } finally {
      tail.child.kill('SIGINT');
    }
    expect(await tail.exited).toBe(0);
  });
});

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Fact, Grant, Outcome } from '../../src/protocol/index.js';
import { startIceProcess, startNatsServer, type IceProcess, type NatsServer } from '../../src/testing/index.js';
import { NatsTransport } from '../../src/transport/index.js';
import { ice } from '../helpers/ice-cli.js';
import { tempDir } from '../helpers/runtime.js';

/**
 * The shipped locked-down NATS configuration (deploy/nats/locked-down.conf) loaded into a
 * real nats-server, a real runtime node connected as the node user and started strict
 * (--require-principal-subjects), and each role on a connection of its own: what each may do
 * works, what it may not is refused by the server (a permission violation) and leaves no trace
 * in the journal. Once with an embedded node (`ice dev --nats`, SQLite) and once with a cluster
 * node (`ice start --cluster`, JetStream).
 */

const CONF = readFileSync(resolve(import.meta.dirname, '../../deploy/nats/locked-down.conf'), 'utf8');
const PW = {
  node: 'change-me-node',
  planner: 'change-me-planner',
  builder: 'change-me-builder',
  observer: 'change-me-observer',
  alice: 'change-me-alice',
};
const CONFIGURE = (v: string) => ({ version: v, replicas: 2 });

interface Conn {
  t: NatsTransport;
  /** Permission violations the server reported on this connection: `publish <subject>` / `subscription <subject>`. */
  violations: string[];
}

async function connect(url: string, user: keyof typeof PW, inboxPrefix?: string): Promise<Conn> {
  const t = await NatsTransport.connect({
    servers: url,
    user: user === 'node' ? 'ice-node' : user,
    pass: PW[user],
    ...(inboxPrefix ? { inboxPrefix } : {}),
  });
  const violations: string[] = [];
  void (async () => {
    for await (const s of t.connection.status()) {
      if (s.type === 'error' && s.error.name === 'PermissionViolationError') {
        const pe = s.error as unknown as { operation: string; subject: string };
        violations.push(`${pe.operation} ${pe.subject}`);
      }
    }
  })();
  return { t, violations };
}

/** Waits until the server has answered everything sent so far (an -ERR comes before the PONG). */
const settle = async (c: Conn) => {
  await c.t.flush();
  await new Promise((r) => setTimeout(r, 100));
};

const intent = (proposer: string, id: string, v = '1.0.0') => ({
  id,
  proposer,
  target: 'deployment/web',
  action: 'CONFIGURE',
  params: CONFIGURE(v),
});

describe.each(['embedded', 'cluster'] as const)('locked-down NATS, %s node', (mode) => {
  let server: NatsServer;
  let node: IceProcess;
  let node2: IceProcess | undefined;
  let url: string;
  const conns: Conn[] = [];
  const cleanups: Array<() => void> = [];
  const alice = { NATS_USER: 'alice', NATS_PASSWORD: PW.alice };
  const as = async (user: keyof typeof PW, inboxPrefix?: string) => {
    const c = await connect(url, user, inboxPrefix);
    conns.push(c);
    return c;
  };
  /** Every fact of the journal, read as the operator over NATS. */
  const facts = async (): Promise<Fact[]> => {
    const r = await ice(['journal', 'tail', '-n', '1000', '--json', '--nats', url, '--as', 'operator:alice'], { env: alice });
    expect(r.code, r.stderr).toBe(0);
    return r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Fact);
  };

  beforeAll(async () => {
    server = await startNatsServer({ extraConfig: CONF });
    url = server.url;
    const t = tempDir('ice-locked-');
    cleanups.push(t.cleanup);
    node = await startIceProcess(t.dir, {
      command: mode === 'cluster' ? 'start' : 'dev',
      args: [
        '--nats',
        url,
        '--user',
        'ice-node',
        '--require-principal-subjects',
        ...(mode === 'cluster' ? ['--cluster', '--node', 'n1'] : []),
      ],
      env: { NATS_PASSWORD: PW.node },
    });
    if (mode === 'cluster') {
      // a second node: intents and admin requests it takes for n1's actors are forwarded on ice.node.n1.…
      const t2 = tempDir('ice-locked-');
      cleanups.push(t2.cleanup);
      node2 = await startIceProcess(t2.dir, {
        command: 'start',
        args: ['--nats', url, '--user', 'ice-node', '--require-principal-subjects', '--cluster', '--node', 'n2'],
        env: { NATS_PASSWORD: PW.node },
      });
    }
    // The operator sets up, as itself.
    const spawned = await ice(['spawn', 'deployment/web', '--input', '{"service":"web"}', '--nats', url, '--as', 'operator:alice'], {
      env: alice,
    });
    expect(spawned.code, spawned.stderr).toBe(0);
    for (const agent of ['planner', 'builder']) {
      const g = await ice(
        [
          'grant',
          'issue',
          '--to',
          `agent:${agent}`,
          '--scope',
          'deployment/web:*',
          '--id',
          `g-${agent}`,
          '--json',
          '--nats',
          url,
          '--as',
          'operator:alice',
        ],
        { env: alice },
      );
      expect(g.code, g.stderr).toBe(0);
      expect((JSON.parse(g.stdout) as Grant).issuedBy).toBe('operator:alice');
    }
  }, 60_000);
  afterAll(async () => {
    for (const c of conns) await c.t.close();
    await node2?.kill('SIGTERM');
    await node?.kill('SIGTERM');
    await server?.stop();
    for (const c of cleanups) c();
  });

  it('an operator acts as itself: grants record operator:alice; another name in --by is refused; it cannot send as operator:bob', async () => {
    const listed = await ice(['grant', 'ls', '--json', '--nats', url, '--as', 'operator:alice'], { env: alice });
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as Grant[]).map((g) => g.issuedBy)).toEqual(['operator:alice', 'operator:alice']);
    const issued = (await facts()).filter((f) => f.type === 'grant.issued');
    expect(issued.map((f) => (f.data as { grant: Grant }).grant.issuedBy)).toEqual(['operator:alice', 'operator:alice']);
    // naming someone else as who acted: refused by the node (exit 2, nothing recorded)
    const other = await ice(
      ['grant', 'issue', '--to', 'agent:planner', '--scope', '*', '--by', 'operator:bob', '--nats', url, '--as', 'operator:alice'],
      { env: alice },
    );
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/identity_mismatch|is not operator:alice/);
    // claiming to be someone else: the server refuses the publish
    const op = await as('alice', '_INBOX.operator:alice');
    await expect(
      op.t.request('ice.admin.as.operator:bob.grant.issue', { subject: 'agent:planner', scope: '*' }, { timeoutMs: 500 }),
    ).rejects.toThrow();
    await settle(op);
    expect(op.violations).toContain('publish ice.admin.as.operator:bob.grant.issue');
    const grants = await ice(['grant', 'ls', '--json', '--nats', url, '--as', 'operator:alice'], { env: alice });
    expect((JSON.parse(grants.stdout) as Grant[]).length).toBe(2);
    // an admin propose as itself reaches the intake (the node sends it on as the node user)
    const proposed = (
      await op.t.request(
        'ice.admin.as.operator:alice.propose',
        {
          intent: {
            id: `op-${mode}`,
            proposer: 'operator:alice',
            target: 'deployment/web',
            action: 'CONFIGURE',
            params: { version: '1.0.0', replicas: 1 },
          },
        },
        { timeoutMs: 10_000 },
      )
    ).data as { result?: { status: string; reasons?: Array<{ code: string }> }; error?: unknown };
    expect(proposed.error).toBeUndefined();
    expect(proposed.result?.status).toBe('denied'); // no grant of operator:alice's covers it
  });

  it('an agent proposes as itself and gets its outcome (library and CLI)', async () => {
    const planner = await as('planner', '_INBOX.agent:planner');
    const out = (
      await planner.t.request('ice.as.agent:planner.deployment.web', intent('agent:planner', `p1-${mode}`), { timeoutMs: 10_000 })
    ).data as Outcome;
    expect(out.status).toBe('executed');
    const cli = await ice(
      ['propose', 'deployment/web', 'CONFIGURE', '--as', 'agent:planner', '--params', JSON.stringify(CONFIGURE('1.0.1')), '--nats', url],
      { env: { NATS_USER: 'planner', NATS_PASSWORD: PW.planner } },
    );
    expect(cli.code, cli.stderr).toBe(0);
    expect(planner.violations).toEqual([]);
  });

  it("an agent cannot propose as another, answer or take decisions, forward intents, send admin requests, or read another's replies", async () => {
    const planner = await as('planner', '_INBOX.agent:planner');
    const tries: Array<[string, unknown]> = [
      ['ice.as.agent:builder.deployment.web', intent('agent:builder', `forged-${mode}`)], // propose as someone else
      ['ice.intent.deployment.web', intent('agent:planner', `unbound-${mode}`)], // the unbound subject
      ['ice.authority.decide', { intent: intent('agent:planner', `decide-${mode}`) }],
      ['ice.node.n1.intent', intent('agent:planner', `fwd-${mode}`)], // a forwarded intent
      ['ice.admin.as.agent:planner.grant.issue', { subject: 'agent:planner', scope: '*' }],
      ['ice.admin.grant.issue', { subject: 'agent:planner', scope: '*', by: 'operator' }],
      ['ice.fact.deployment.web', { fake: true }],
    ];
    for (const [subject, body] of tries) planner.t.publish(subject, body);
    planner.t.publish('_INBOX.somebody.reply', { v: 1, status: 'executed' }); // a fake reply (to an outcome or a decision request)
    const decide = planner.t.subscribe('ice.authority.decide', () => {
      throw new Error('an agent received a decision request');
    });
    const others: unknown[] = [];
    planner.t.subscribe('_INBOX.agent:builder.>', (m) => void others.push(m.data));
    planner.t.subscribe('_INBOX.>', (m) => void others.push(m.data));
    planner.t.subscribe('ice.as.>', (m) => void others.push(m.data));
    await settle(planner);
    for (const [subject] of tries) expect(planner.violations).toContain(`publish ${subject}`);
    expect(planner.violations).toContain('publish _INBOX.somebody.reply');
    for (const s of ['ice.authority.decide', '_INBOX.agent:builder.>', '_INBOX.>', 'ice.as.>'])
      expect(planner.violations).toContain(`subscription ${s}`);
    // the other agent proposes meanwhile; its outcome reaches it and no one else
    const builder = await as('builder', '_INBOX.agent:builder');
    const out = (
      await builder.t.request('ice.as.agent:builder.deployment.web', intent('agent:builder', `b1-${mode}`, '2.0.0'), { timeoutMs: 10_000 })
    ).data as Outcome;
    expect(out.status).toBe('executed');
    await settle(planner);
    expect(others).toEqual([]);
    decide.unsubscribe();
    // none of it reached the runtime: no fact of those intents, no grant issued by the agent
    const all = await facts();
    for (const id of [`forged-${mode}`, `unbound-${mode}`, `decide-${mode}`, `fwd-${mode}`])
      expect(all.filter((f) => f.intentId === id)).toEqual([]);
    expect(all.filter((f) => f.type === 'grant.issued')).toHaveLength(2);
    // an agent without its own inbox prefix cannot even receive its replies
    const noPrefix = await as('planner');
    await expect(
      noPrefix.t.request('ice.as.agent:planner.deployment.web', intent('agent:planner', `np-${mode}`), { timeoutMs: 1000 }),
    ).rejects.toThrow();
  });

  it('an observer reads facts and cannot propose or read replies', async () => {
    const observer = await as('observer');
    const seen: Fact[] = [];
    observer.t.subscribe('ice.fact.>', (m) => void seen.push(m.data as Fact));
    await observer.t.flush();
    const planner = await as('planner', '_INBOX.agent:planner');
    const out = (
      await planner.t.request('ice.as.agent:planner.deployment.web', intent('agent:planner', `o1-${mode}`, '3.0.0'), { timeoutMs: 10_000 })
    ).data as Outcome;
    expect(out.status).toBe('executed');
    await new Promise((r) => setTimeout(r, 300));
    expect(seen.filter((f) => f.intentId === `o1-${mode}`).map((f) => f.type)).toEqual(['intent.proposed', 'decision', 'transition']);
    observer.t.publish('ice.as.agent:planner.deployment.web', intent('agent:planner', `obs-${mode}`));
    observer.t.publish('ice.intent.deployment.web', intent('agent:planner', `obs2-${mode}`));
    observer.t.subscribe('_INBOX.>', () => {});
    await settle(observer);
    expect(observer.violations).toEqual(
      expect.arrayContaining(['publish ice.as.agent:planner.deployment.web', 'publish ice.intent.deployment.web', 'subscription _INBOX.>']),
    );
  });

  it('the runtime nodes did all of it as the node user without one permission violation (the agents had many)', async () => {
    const planner = await as('planner', '_INBOX.agent:planner');
    // enough intents that the intake queue group hands some to the node that does not own the actor (cluster: forwarded)
    for (let k = 0; k < 10; k++) {
      const out = (
        await planner.t.request('ice.as.agent:planner.deployment.web', intent('agent:planner', `last-${mode}-${k}`, `4.0.${k}`), {
          timeoutMs: 10_000,
        })
      ).data as Outcome;
      expect(out.status, JSON.stringify(out)).toBe('executed');
    }
    const violations = server
      .log()
      .split('\n')
      .filter((l) => /violation/i.test(l));
    expect(violations.some((l) => l.includes('"planner"'))).toBe(true); // the log names the user
    expect(violations.filter((l) => l.includes('"ice-node"'))).toEqual([]);
  });
});

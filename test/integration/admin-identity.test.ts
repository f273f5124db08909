import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Fact, Grant } from '../../src/protocol/index.js';
import { startIceProcess, startNatsServer, type IceProcess, type NatsServer } from '../../src/testing/index.js';
import { NatsTransport } from '../../src/transport/index.js';
import { ice } from '../helpers/ice-cli.js';
import { tempDir } from '../helpers/runtime.js';

/**
 * Admin requests over NATS carry the operator's identity in the subject
 * (`ice.admin.as.<principal>.<op>`), and the node records that principal as who acted. Every
 * request under `ice.admin.>` gets a typed answer, also an unknown operation or a malformed
 * subject. A strict node (--require-principal-subjects) refuses the old `ice.admin.<op>`; one
 * that is not serves it (deprecated). On an open server (no NATS permissions), with an
 * embedded node (`ice dev --nats`, SQLite) and a cluster node (`ice start --cluster`, JetStream).
 */

type Reply = { result?: unknown; error?: { code: string; message: string; issues?: Array<{ path: string; code: string }> } };

describe.each(['embedded', 'cluster'] as const)('operator identity on admin requests, %s node', (mode) => {
  const servers: NatsServer[] = [];
  const nodes: IceProcess[] = [];
  const cleanups: Array<() => void> = [];
  let strict: { url: string; node: IceProcess; t: NatsTransport };
  let lenient: { url: string; node: IceProcess; t: NatsTransport };
  const start = async (extra: string[]) => {
    const s = await startNatsServer({ jetstream: mode === 'cluster' });
    servers.push(s);
    const d = tempDir('ice-admin-id-');
    cleanups.push(d.cleanup);
    const node = await startIceProcess(d.dir, {
      command: mode === 'cluster' ? 'start' : 'dev',
      args: ['--nats', s.url, ...(mode === 'cluster' ? ['--cluster', '--node', 'a1'] : []), ...extra],
      env: { ICE_LOG_LEVEL: 'warn' },
    });
    nodes.push(node);
    const t = await NatsTransport.connect({ servers: s.url });
    cleanups.push(() => void t.close());
    return { url: s.url, node, t };
  };
  const ask = async (t: NatsTransport, subject: string, body: unknown = {}): Promise<Reply> =>
    (await t.request(subject, body, { timeoutMs: 10_000 })).data as Reply;

  beforeAll(async () => {
    [strict, lenient] = await Promise.all([start(['--require-principal-subjects']), start([])]);
  }, 60_000);
  afterAll(async () => {
    for (const n of nodes) await n.kill('SIGTERM');
    for (const s of servers) await s.stop();
    for (const c of cleanups) c();
  });

  it('a grant issued on ice.admin.as.operator:alice.grant.issue is recorded as issued by operator:alice; its revocation too', async () => {
    const issued = await ask(strict.t, 'ice.admin.as.operator:alice.grant.issue', {
      id: 'g-alice',
      subject: 'agent:a',
      scope: 'deployment/*:*',
    });
    expect(issued.error).toBeUndefined();
    expect((issued.result as Grant).issuedBy).toBe('operator:alice');
    const revoked = await ask(strict.t, 'ice.admin.as.operator:alice.grant.revoke', { id: 'g-alice', reason: 'test' });
    expect(revoked.error).toBeUndefined();
    const tail = (await ask(strict.t, 'ice.admin.as.operator:alice.journal.tail', { limit: 100 })).result as Fact[];
    const grantFacts = tail.filter((f) => f.type.startsWith('grant.'));
    expect(grantFacts.map((f) => f.type).sort()).toEqual(['grant.issued', 'grant.revoked']);
    expect((grantFacts.find((f) => f.type === 'grant.issued')!.data as { grant: Grant }).grant.issuedBy).toBe('operator:alice');
    expect((grantFacts.find((f) => f.type === 'grant.revoked')!.data as { by: string }).by).toBe('operator:alice');
  });

  it('a request naming someone else as who acted is refused (identity_mismatch), and nothing is recorded', async () => {
    for (const [subject, body, path] of [
      ['ice.admin.as.operator:alice.grant.issue', { subject: 'agent:m', scope: '*', by: 'operator:mallory' }, 'by'],
      ['ice.admin.as.operator:alice.approve', { intentId: 'nope', by: 'human:mallory' }, 'by'],
      [
        'ice.admin.as.operator:alice.propose',
        { intent: { id: 'x1', proposer: 'agent:a', target: 'deployment/web', action: 'CONFIGURE', params: {} } },
        'intent.proposer',
      ],
    ] as const) {
      const r = await ask(strict.t, subject, body);
      expect(r.error?.code, subject).toBe('E_VALIDATION');
      expect(r.error?.issues).toEqual([expect.objectContaining({ path, code: 'identity_mismatch' })]);
    }
    const grants = (await ask(strict.t, 'ice.admin.as.operator:alice.grant.ls')).result as Grant[];
    expect(grants.filter((g) => g.subject === 'agent:m')).toEqual([]);
  });

  it('every request under ice.admin.> is answered with a typed error naming the right subject', async () => {
    const cases: Array<[string, string, RegExp]> = [
      [
        'ice.admin.as.operator:alice.grant.frobnicate',
        'E_UNKNOWN_OP',
        /no admin operation "grant\.frobnicate"; send to ice\.admin\.as\.operator:alice\.<op>; the operations are .*grant\.issue/,
      ],
      ['ice.admin.as.operator:alice', 'E_UNKNOWN_OP', /no operation; send to ice\.admin\.as\.operator:alice\.<op>/],
      [
        'ice.admin.as.nobody.grant.ls',
        'E_BAD_SUBJECT',
        /"nobody" is not a principal "type:name"; send to ice\.admin\.as\.<principal>\.<op>/,
      ],
      ['ice.admin.as', 'E_BAD_SUBJECT', /send to ice\.admin\.as\.<principal>\.<op>/],
      ['ice.admin.frobnicate', 'E_UNKNOWN_OP', /send to ice\.admin\.as\.<principal>\.<op>/],
    ];
    for (const { t } of [strict, lenient]) {
      for (const [subject, code, message] of cases) {
        const r = await ask(t, subject);
        expect(r.error?.code, subject).toBe(code);
        expect(r.error?.message).toMatch(message);
      }
    }
  });

  it('a strict node refuses the unbound ice.admin.<op>; a lenient one serves it and warns that it is deprecated', async () => {
    const refused = await ask(strict.t, 'ice.admin.grant.issue', { subject: 'agent:u', scope: '*', by: 'operator' });
    expect(refused.error?.code).toBe('E_UNBOUND_SUBJECT');
    expect(refused.error?.message).toMatch(/carries no identity.*ice\.admin\.as\.<principal>\.grant\.issue/);
    expect(
      ((await ask(strict.t, 'ice.admin.as.operator:alice.grant.ls')).result as Grant[]).filter((g) => g.subject === 'agent:u'),
    ).toEqual([]);
    const served = await ask(lenient.t, 'ice.admin.grant.ls');
    expect(served.error).toBeUndefined();
    expect(Array.isArray(served.result)).toBe(true);
    await new Promise((r) => setTimeout(r, 200));
    expect(lenient.node.output()).toMatch(/ice\.admin\.grant\.ls, which carries no identity \(deprecated\)/);
  });

  it('the CLI sends --as (or ICE_OPERATOR, else operator:$USER) and records it', async () => {
    const byFlag = await ice([
      'grant',
      'issue',
      '--to',
      'agent:c1',
      '--scope',
      '*',
      '--json',
      '--nats',
      strict.url,
      '--as',
      'operator:carol',
    ]);
    expect(byFlag.code, byFlag.stderr).toBe(0);
    expect((JSON.parse(byFlag.stdout) as Grant).issuedBy).toBe('operator:carol');
    const byEnv = await ice(['grant', 'issue', '--to', 'agent:c2', '--scope', '*', '--json', '--nats', strict.url], {
      env: { ICE_OPERATOR: 'operator:dave' },
    });
    expect((JSON.parse(byEnv.stdout) as Grant).issuedBy).toBe('operator:dave');
    const byDefault = await ice(['grant', 'issue', '--to', 'agent:c3', '--scope', '*', '--json', '--nats', strict.url], {
      env: { USER: 'erin', ICE_OPERATOR: undefined },
    });
    expect((JSON.parse(byDefault.stdout) as Grant).issuedBy).toBe('operator:erin');
    const bad = await ice(['grant', 'ls', '--nats', strict.url, '--as', 'alice']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--as/);
  });
});

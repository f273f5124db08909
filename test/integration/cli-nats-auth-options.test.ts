import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startIceProcess, startNatsServer, type IceProcess, type NatsServer } from '../../src/testing/index.js';
import { NatsTransport, natsAuthIssues } from '../../src/transport/index.js';
import { ice } from '../helpers/ice-cli.js';
import { makeCreds, makeNkeyUser, makeTlsFiles } from '../helpers/nats-auth.js';
import { tempDir } from '../helpers/runtime.js';

/**
 * Every command with --nats authenticates the ways NATS users do: --user/--password,
 * --token, --nkey <seed file>, --creds <file>, TLS with a CA and a client certificate, and the
 * NATS_* environment variables. Real nats-server processes that require each; real `ice`
 * processes (a serving node and the operator commands). No secret appears in what they print,
 * whether they succeed or fail.
 */

const PASSWORD = 'pw-9f8e7d6c';
const TOKEN = 'tok-1a2b3c4d5e';
const servers: NatsServer[] = [];
const nodes: IceProcess[] = [];
const cleanups: Array<() => void> = [];
afterAll(async () => {
  for (const n of nodes) await n.kill('SIGTERM');
  for (const s of servers) await s.stop();
  for (const c of cleanups) c();
});
const fresh = () => {
  const t = tempDir('ice-nauth-');
  cleanups.push(t.cleanup);
  return t.dir;
};
const server = async (extraConfig: string, jetstream = false) => {
  const s = await startNatsServer({ jetstream, extraConfig });
  servers.push(s);
  return s;
};
const node = async (command: 'dev' | 'start', args: string[], env: Record<string, string> = {}) => {
  const n = await startIceProcess(fresh(), { command, args, env: { ICE_LOG_LEVEL: 'info', ...env } });
  nodes.push(n);
  return n;
};
/** Spawns an actor and lists grants over NATS with `auth` (options and env); both must succeed. */
async function operatorCommands(url: string, args: string[], env: Record<string, string | undefined> = {}) {
  const spawned = await ice(['spawn', 'deployment/auth', '--input', '{"service":"auth"}', '--if-absent', '--nats', url, ...args], { env });
  expect(spawned.code, spawned.stderr).toBe(0);
  const issued = await ice(['grant', 'issue', '--to', 'agent:x', '--scope', 'deployment/auth:*', '--json', '--nats', url, ...args], {
    env,
  });
  expect(issued.code, issued.stderr).toBe(0);
  const listed = await ice(['grant', 'ls', '--json', '--nats', url, ...args], { env });
  expect(listed.code, listed.stderr).toBe(0);
  expect(JSON.parse(listed.stdout)).toEqual(expect.arrayContaining([expect.objectContaining({ subject: 'agent:x' })]));
  return [spawned, issued, listed].flatMap((r) => [r.stdout, r.stderr]);
}
const noSecret = (texts: string[], secret: string) => {
  for (const t of texts) expect(t).not.toContain(secret);
};

describe('NATS authentication options', () => {
  it('--user/--password: ice dev serves, operator commands work, also from NATS_URL/NATS_USER/NATS_PASSWORD; wrong password refused; the password never printed', async () => {
    const s = await server(`authorization { user: ice, password: ${PASSWORD} }`);
    const n = await node('dev', ['--nats', s.url, '--user', 'ice'], { NATS_PASSWORD: PASSWORD });
    const out = await operatorCommands(s.url, ['--user', 'ice', '--password', PASSWORD]);
    const fromEnv = await ice(['grant', 'ls'], { env: { NATS_URL: s.url, NATS_USER: 'ice', NATS_PASSWORD: PASSWORD } });
    expect(fromEnv.code, fromEnv.stderr).toBe(0);
    expect(fromEnv.stdout).toContain('agent:x');
    const wrong = await ice(['grant', 'ls', '--nats', s.url, '--user', 'ice', '--password', `wrong-${PASSWORD}`]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/refused this client's credentials/);
    const wrongNode = await ice(['start', '--nats', s.url, '--data', fresh(), '--user', 'ice', '--password', `wrong-${PASSWORD}`]);
    expect(wrongNode.code).toBe(1);
    expect(wrongNode.stderr).toMatch(/refused this client's credentials.*--user and --password/);
    noSecret(
      [...out, n.output(), fromEnv.stdout, fromEnv.stderr, wrong.stdout, wrong.stderr, wrongNode.stdout, wrongNode.stderr],
      PASSWORD,
    );
  });

  it('--token (and NATS_TOKEN): ice start serves, operator commands work; the token never printed', async () => {
    const s = await server(`authorization { token: ${TOKEN} }`);
    const n = await node('start', ['--nats', s.url, '--token', TOKEN]);
    const out = await operatorCommands(s.url, [], { NATS_TOKEN: TOKEN });
    const wrong = await ice(['grant', 'ls', '--nats', s.url, '--token', `x${TOKEN}`]);
    expect(wrong.code).toBe(1);
    noSecret([...out, n.output(), wrong.stdout, wrong.stderr], TOKEN);
  });

  it('--nkey <seed file> (and NATS_NKEY): ice start --cluster serves on JetStream, operator commands work; another seed is refused; the seed never printed', async () => {
    const dir = fresh();
    const user = makeNkeyUser(dir, 'node');
    const stranger = makeNkeyUser(dir, 'stranger');
    const s = await server(`authorization { users: [ { nkey: ${user.publicKey} } ] }`, true);
    const n = await node('start', ['--nats', s.url, '--cluster', '--node', 'nk1', '--nkey', user.seedFile]);
    expect(n.output()).toContain('ice start --cluster node nk1');
    const out = await operatorCommands(s.url, [], { NATS_NKEY: user.seedFile });
    const wrong = await ice(['grant', 'ls', '--nats', s.url, '--nkey', stranger.seedFile]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/authorization violation|authentication/i);
    noSecret([...out, n.output(), wrong.stdout, wrong.stderr], user.seed);
  });

  it('--creds <file> (and NATS_CREDS): decentralized auth (operator, account and user JWTs made here); ice dev serves, operator commands work', async () => {
    const dir = fresh();
    const creds = makeCreds(dir);
    const s = await server(creds.serverConfig);
    const n = await node('dev', ['--nats', s.url, '--creds', creds.credsFile]);
    const out = await operatorCommands(s.url, [], { NATS_CREDS: creds.credsFile });
    const none = await ice(['grant', 'ls', '--nats', s.url]);
    expect(none.code).toBe(1);
    noSecret([...out, n.output(), none.stdout, none.stderr], creds.seed);
  });

  it('TLS with a CA and a client certificate (server verify: true), tls:// URL: ice dev serves and operator commands work; without the client certificate refused', async () => {
    const dir = fresh();
    const tls = makeTlsFiles(dir);
    const s = await server(`tls { cert_file: "${tls.serverCert}", key_file: "${tls.serverKey}", ca_file: "${tls.ca}", verify: true }`);
    const url = `tls://127.0.0.1:${s.port}`;
    const tlsArgs = ['--tls-ca', tls.ca, '--tls-cert', tls.clientCert, '--tls-key', tls.clientKey];
    await node('dev', ['--nats', url, ...tlsArgs]);
    await operatorCommands(url, tlsArgs);
    const fromEnv = await ice(['grant', 'ls', '--nats', url], {
      env: { NATS_CA: tls.ca, NATS_CERT: tls.clientCert, NATS_KEY: tls.clientKey },
    });
    expect(fromEnv.code, fromEnv.stderr).toBe(0);
    const noClientCert = await ice(['grant', 'ls', '--nats', url, '--tls-ca', tls.ca]);
    expect(noClientCert.code).toBe(1);
    expect(noClientCert.stderr).toMatch(/cannot connect to NATS at tls:\/\/127\.0\.0\.1:\d+ .*--tls-cert with --tls-key/);
    // a tls:// URL never falls back to plain text: a server without TLS is refused
    const plain = await server('');
    const downgraded = await ice(['grant', 'ls', '--nats', `tls://127.0.0.1:${plain.port}`]);
    expect(downgraded.code).toBe(1);
    expect(downgraded.stderr).toMatch(/does not support 'tls'/);
    // the library takes the same options
    const t = await NatsTransport.connect({ servers: url, tls: { caFile: tls.ca, certFile: tls.clientCert, keyFile: tls.clientKey } });
    await t.close();
  });

  it('wrong combinations are refused at once (exit 2) with what to do, naming files and options, never a secret', async () => {
    const dir = fresh();
    const unreadable = join(dir, 'secret.creds');
    writeFileSync(unreadable, 'x');
    chmodSync(unreadable, 0o000);
    const notCreds = join(dir, 'not.creds');
    writeFileSync(notCreds, `password ${PASSWORD}\n`);
    const url = 'nats://127.0.0.1:1';
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [['grant', 'ls', '--creds', notCreds], {}, /--creds.*without a NATS server[\s\S]*--nats <url> \(or NATS_URL\)/],
      [['grant', 'ls', '--nats', url, '--creds', join(dir, 'missing.creds')], {}, /no such file: .*missing\.creds/],
      [['grant', 'ls', '--nats', url, '--creds', notCreds], {}, /is not a NATS creds file/],
      [['grant', 'ls', '--nats', url, '--tls-cert', notCreds], {}, /--tls-cert without --tls-key/],
      [['grant', 'ls', '--nats', url, '--token', TOKEN, '--user', 'u', '--password', PASSWORD], {}, /2 ways to authenticate/],
      [['grant', 'ls', '--nats', url, '--user', 'u'], {}, /a user without a password[\s\S]*--password as well/],
      [['grant', 'ls', '--nats', `nats://u:${PASSWORD}@127.0.0.1:1`, '--token', TOKEN], {}, /2 ways to authenticate/],
      [['grant', 'ls', '--nats', url, '--user', 'u'], { NATS_TOKEN: TOKEN, NATS_PASSWORD: PASSWORD }, /NATS_TOKEN/],
      [['start', '--nats', url, '--nkey', notCreds, '--data', dir], {}, /does not hold a user nkey seed/],
      [['grant', 'ls', '--nats', url, '--token', ''], {}, /--token: got a value \(not shown: it is a secret\)/],
      [['propose', 'deployment/web', 'X', '--as', 'agent:a', '--password', PASSWORD], {}, /--password without a NATS server/],
      [['grant', 'ls', '--as', 'operator:alice'], {}, /--as without a NATS server/],
    ];
    if (process.getuid?.() !== 0) cases.push([['grant', 'ls', '--nats', url, '--creds', unreadable], {}, /cannot read .*secret\.creds/]);
    for (const [args, env, expected] of cases) {
      const r = await ice(args, { env });
      expect(r.code, `${args.join(' ')}\n${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(expected);
      noSecret([r.stdout, r.stderr], PASSWORD);
      noSecret([r.stdout, r.stderr], TOKEN);
    }
    // the same checks for library callers
    expect(natsAuthIssues({ servers: url, token: 't', nkeyFile: notCreds }).map((i) => i.code)).toEqual(['conflict', 'bad_file']);
  });
});

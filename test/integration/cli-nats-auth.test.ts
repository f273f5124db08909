import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIceProcess, startNatsServer, type NatsServer } from '../../src/testing/index.js';
import { NatsTransport, redactNatsUrls, splitNatsCredentials } from '../../src/transport/index.js';
import { ice } from '../helpers/ice-cli.js';
import { tempDir } from '../helpers/runtime.js';

/**
 * A NATS server that requires authentication, reached the way NATS users write it: the
 * credentials in the URL (`nats://user:password@host`, `nats://token@host`). Real servers with
 * `authorization` blocks; the secrets never show in what the CLI prints or logs.
 */
const SECRET = 's3cret-pw';
const TOKEN = 't0ken-abc';
let withPassword: NatsServer;
let withToken: NatsServer;
const dirs: Array<() => void> = [];
beforeAll(async () => {
  withPassword = await startNatsServer({ jetstream: false, extraConfig: `authorization { user: ice, password: ${SECRET} }` });
  withToken = await startNatsServer({ jetstream: false, extraConfig: `authorization { token: ${TOKEN} }` });
});
afterAll(async () => {
  await withPassword?.stop();
  await withToken?.stop();
  for (const d of dirs) d();
});
const freshDir = () => {
  const t = tempDir('ice-auth-');
  dirs.push(t.cleanup);
  return t.dir;
};

describe('credentials in NATS URLs', () => {
  it('are split from the URL and never shown', () => {
    expect(splitNatsCredentials('nats://ice:pw@h:1,nats://ice:pw@h:2')).toEqual({
      servers: ['nats://h:1', 'nats://h:2'],
      user: 'ice',
      pass: 'pw',
    });
    expect(splitNatsCredentials(['nats://tok@h:1'])).toEqual({ servers: ['nats://h:1'], token: 'tok' });
    expect(() => splitNatsCredentials('nats://a:1@h:1,nats://b:2@h:2')).toThrow(/different credentials/);
    expect(redactNatsUrls('nats://ice:pw@h:1,nats://tok@h:2,nats://h:3')).toEqual(['nats://ice:***@h:1', 'nats://***@h:2', 'nats://h:3']);
  });

  it('user and password: a node serves and a client proposes; the password is in no output', async () => {
    const port = withPassword.port;
    const url = `nats://ice:${SECRET}@127.0.0.1:${port}`;
    // The library reads them too.
    const t = await NatsTransport.connect({ servers: url });
    await t.close();
    const dir = freshDir();
    const node = await startIceProcess(dir, { command: 'start', args: ['--nats', url], env: { ICE_LOG_LEVEL: 'info' } });
    try {
      expect(node.output()).toContain(`nats://ice:***@127.0.0.1:${port}`);
      const spawned = await ice(['spawn', 'deployment/auth', '--input', '{"service":"auth"}', '--nats', url]);
      expect(spawned.code, spawned.stderr).toBe(0);
      const proposed = await ice([
        'propose',
        'deployment/auth',
        'CONFIGURE',
        '--as',
        'agent:x',
        '--params',
        '{"version":"1.0.0","replicas":1}',
        '--nats',
        url,
      ]);
      expect(proposed.code, proposed.stderr).toBe(11); // reached the node: denied, no grant
      for (const text of [node.output(), spawned.stdout, spawned.stderr, proposed.stdout, proposed.stderr])
        expect(text).not.toContain(SECRET);
    } finally {
      await node.kill('SIGTERM');
    }
  });

  it('a token: a node serves', async () => {
    const node = await startIceProcess(freshDir(), { command: 'start', args: ['--nats', `nats://${TOKEN}@127.0.0.1:${withToken.port}`] });
    try {
      expect(node.output()).not.toContain(TOKEN);
    } finally {
      await node.kill('SIGTERM');
    }
  });

  it('wrong or missing credentials: refused at once, with what to do, and nothing secret printed', async () => {
    for (const url of [`nats://ice:wrong-${SECRET}@127.0.0.1:${withPassword.port}`, `nats://127.0.0.1:${withPassword.port}`]) {
      const r = await ice(['start', '--nats', url, '--data', freshDir(), '--connect-timeout', '60s']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/refused this client's credentials/);
      expect(r.stderr).toMatch(/nats:\/\/user:password@host:port/);
      expect(r.stdout + r.stderr).not.toContain(SECRET);
    }
  });
});

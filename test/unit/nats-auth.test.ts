import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAdminSubject } from '../../src/admin/index.js';
import { natsAuthFromEnv, natsAuthIssues, natsConnectOptions } from '../../src/transport/index.js';
import { makeCreds, makeNkeyUser } from '../helpers/nats-auth.js';
import { tempDir } from '../helpers/runtime.js';

/** The one place that turns NATS auth options into nats.js connect options, and the admin subject grammar. */

const t = tempDir('ice-nauth-unit-');
afterAll(() => t.cleanup());

describe('natsConnectOptions', () => {
  it('takes credentials out of the URLs and maps tls:// to TLS that must be there', () => {
    const co = natsConnectOptions({ servers: 'tls://u:p%40ss@h:1,tls://u:p%40ss@h:2' });
    expect(co.servers).toEqual(['nats://h:1', 'nats://h:2']);
    expect([co.user, co.pass]).toEqual(['u', 'p@ss']);
    expect(co.tls).toEqual({});
    expect(natsConnectOptions({ servers: 'nats://h:1' }).tls).toBeUndefined();
  });

  it('turns a seed file and a creds file into authenticators, TLS files into absolute paths, and sets the inbox prefix', () => {
    const nkey = makeNkeyUser(t.dir);
    const creds = makeCreds(t.dir);
    const nk = natsConnectOptions({ servers: 'h:1', nkeyFile: nkey.seedFile, inboxPrefix: '_INBOX.agent:a' });
    expect(typeof nk.authenticator).toBe('function');
    expect(nk.inboxPrefix).toBe('_INBOX.agent:a');
    const auth = (nk.authenticator as (nonce?: string) => { nkey: string; sig: string })('nonce');
    expect(auth.nkey).toBe(nkey.publicKey);
    const cr = natsConnectOptions({ servers: 'h:1', credsFile: creds.credsFile });
    const jwtAuth = (cr.authenticator as (nonce?: string) => { jwt: string; nkey: string; sig: string })('nonce');
    expect(jwtAuth.jwt.split('.')).toHaveLength(3);
    const ca = join(t.dir, 'ca.pem');
    writeFileSync(ca, 'x');
    expect(natsConnectOptions({ servers: 'h:1', tls: { caFile: ca } }).tls).toEqual({ caFile: ca });
  });

  it('refuses what cannot work, naming the option, never the secret', () => {
    const issues = natsAuthIssues(
      { servers: 'nats://h:1', user: 'u', pass: 'hunter2', token: 'sekrit', tls: { keyFile: join(t.dir, 'none.key') } },
      { user: '--user', pass: '--password', token: '--token', keyFile: '--tls-key', certFile: '--tls-cert' },
    );
    expect(issues.map((i) => `${i.path}: ${i.code}`)).toEqual([
      '--user/--password, --token: conflict',
      '--tls-key: needs_option',
      '--tls-key: bad_file',
    ]);
    expect(JSON.stringify(issues)).not.toMatch(/hunter2|sekrit/);
    expect(() => natsConnectOptions({ servers: 'h:1', token: 'sekrit', nkeyFile: join(t.dir, 'none') })).toThrow(/cannot authenticate/);
  });

  it('reads the NATS_* variables the NATS tools use', () => {
    expect(
      natsAuthFromEnv({ NATS_URL: 'nats://h:1', NATS_USER: 'u', NATS_PASSWORD: 'p', NATS_CREDS: '/c', NATS_CA: '/ca', NATS_TOKEN: '' }),
    ).toEqual({ servers: 'nats://h:1', user: 'u', pass: 'p', credsFile: '/c', tls: { caFile: '/ca' } });
  });
});

describe('admin subjects', () => {
  it('ice.admin.as.<principal>.<op> names who acts; ice.admin.<op> names no one; anything else is a typed error', () => {
    expect(parseAdminSubject('ice.admin.as.operator:alice.grant.issue')).toEqual({ op: 'grant.issue', principal: 'operator:alice' });
    expect(parseAdminSubject('ice.admin.as.svc:a%2Eb.grant.ls')).toEqual({ op: 'grant.ls', principal: 'svc:a.b' });
    expect(parseAdminSubject('ice.admin.journal.tail')).toEqual({ op: 'journal.tail' });
    expect(() => parseAdminSubject('ice.admin.as.operator:alice.nope')).toThrow(expect.objectContaining({ code: 'E_UNKNOWN_OP' }));
    expect(() => parseAdminSubject('ice.admin.as.alice.grant.ls')).toThrow(expect.objectContaining({ code: 'E_BAD_SUBJECT' }));
    expect(() => parseAdminSubject('ice.admin.nope')).toThrow(expect.objectContaining({ code: 'E_UNKNOWN_OP' }));
  });
});

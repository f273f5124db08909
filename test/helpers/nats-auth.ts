import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createAccount, createOperator, createUser, type KeyPair } from '@nats-io/nkeys';

/**
 * Authentication material for real nats-server processes, made in the test: TLS certificates
 * with openssl, nkey users and a decentralized-auth chain (operator → account → user JWTs and
 * a .creds file) with the nkeys package nats.js itself depends on.
 */

/** A CA, a server certificate for 127.0.0.1/localhost and a client certificate, in `dir`. */
export function makeTlsFiles(dir: string): { ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string } {
  const f = (name: string) => join(dir, name);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  ssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=ice-test-ca',
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.pem'),
  );
  const leaf = (name: string, cn: string, ext: string) => {
    writeFileSync(f(`${name}.ext`), ext);
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`));
    ssl(
      'x509',
      '-req',
      '-in',
      f(`${name}.csr`),
      '-CA',
      f('ca.pem'),
      '-CAkey',
      f('ca.key'),
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      f(`${name}.ext`),
      '-out',
      f(`${name}.pem`),
    );
  };
  leaf('server', 'localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  leaf('client', 'ice-client', 'extendedKeyUsage=clientAuth\n');
  return {
    ca: f('ca.pem'),
    serverCert: f('server.pem'),
    serverKey: f('server.key'),
    clientCert: f('client.pem'),
    clientKey: f('client.key'),
  };
}

const seedText = (kp: KeyPair) => new TextDecoder().decode(kp.getSeed());

/** A user nkey: its public key (for the server config) and its seed written to `<dir>/<name>.nk`. */
export function makeNkeyUser(dir: string, name = 'user'): { publicKey: string; seedFile: string; seed: string } {
  const kp = createUser();
  const seedFile = join(dir, `${name}.nk`);
  writeFileSync(seedFile, seedText(kp) + '\n', { mode: 0o600 });
  return { publicKey: kp.getPublicKey(), seedFile, seed: seedText(kp) };
}

const b64url = (s: string) => Buffer.from(s).toString('base64url');

/** A JWT as nats-server reads it: ed25519-nkey, signed by `signer`. */
function jwt(signer: KeyPair, subject: string, name: string, nats: Record<string, unknown>): string {
  const claims: Record<string, unknown> = {
    iat: Math.floor(Date.now() / 1000),
    iss: signer.getPublicKey(),
    name,
    sub: subject,
    nats: { ...nats, version: 2 },
  };
  claims.jti = createHash('sha256').update(JSON.stringify(claims)).digest('base64url');
  const signed = `${b64url(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' }))}.${b64url(JSON.stringify(claims))}`;
  return `${signed}.${Buffer.from(signer.sign(new TextEncoder().encode(signed))).toString('base64url')}`;
}

/**
 * Decentralized auth without nsc: an operator, one account it signs, one user the account
 * signs. Returns the server config lines (operator JWT, memory resolver preloaded with the
 * account) and the user's .creds file.
 */
export function makeCreds(dir: string): { serverConfig: string; credsFile: string; seed: string } {
  const operator = createOperator();
  const account = createAccount();
  const user = createUser();
  const unlimited = { subs: -1, data: -1, payload: -1 };
  const operatorJwt = jwt(operator, operator.getPublicKey(), 'ice-test-operator', { type: 'operator' });
  const accountJwt = jwt(operator, account.getPublicKey(), 'ice-test-account', {
    type: 'account',
    limits: { ...unlimited, conn: -1, leaf: -1, imports: -1, exports: -1, wildcards: true },
  });
  const userJwt = jwt(account, user.getPublicKey(), 'ice-test-user', { type: 'user', pub: {}, sub: {}, ...unlimited });
  const credsFile = join(dir, 'user.creds');
  writeFileSync(
    credsFile,
    `-----BEGIN NATS USER JWT-----\n${userJwt}\n------END NATS USER JWT------\n\n` +
      `************************* IMPORTANT *************************\nNKEY Seed printed below can be used to sign and prove identity.\n\n` +
      `-----BEGIN USER NKEY SEED-----\n${seedText(user)}\n------END USER NKEY SEED------\n`,
    { mode: 0o600 },
  );
  return {
    serverConfig: `operator: ${operatorJwt}\nresolver: MEMORY\nresolver_preload: {\n  ${account.getPublicKey()}: ${accountJwt}\n}\n`,
    credsFile,
    seed: seedText(user),
  };
}

import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { credsAuthenticator, nkeyAuthenticator, type NodeConnectionOptions } from '@nats-io/transport-node';
import { ValidationError, type IssueDetail } from '../errors.js';
import { splitNatsCredentials } from './nats-url.js';

/**
 * How a client proves who it is to NATS, in one place: every `ice` command and
 * `NatsTransport.connect` turn these into nats.js connect options with
 * {@link natsConnectOptions}. One way to authenticate at a time (user and password, a token,
 * an nkey seed or a creds file), plus TLS. Credentials written into the URLs
 * (`nats://user:pass@host`, `nats://token@host`) count as user/password or token.
 *
 * Secrets (password, token, seed, creds) never appear in an error message: problems name the
 * option or the file, never the value.
 */
export interface NatsAuthOptions {
  /** Server URLs (`nats://`, `tls://` or `host:port`), an array or comma-separated. */
  servers: string | string[];
  user?: string;
  pass?: string;
  token?: string;
  /** A `.creds` file: a user JWT and its nkey seed (decentralized auth, `nsc`). */
  credsFile?: string;
  /** A file holding an nkey seed (`SU…`): the server's `authorization { users: [{ nkey: U… }] }`. */
  nkeyFile?: string;
  /** TLS: the CA that signed the server certificate, and a client certificate and key (both or neither). */
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  /** Reply subjects under this prefix instead of `_INBOX` (NATS permissions can then be per client). */
  inboxPrefix?: string;
}

/** What each field is called where it was given (an option, an environment variable), for messages. */
export type NatsAuthNames = Partial<
  Record<'servers' | 'user' | 'pass' | 'token' | 'credsFile' | 'nkeyFile' | 'caFile' | 'certFile' | 'keyFile', string>
>;

const DEFAULT_NAMES: Required<NatsAuthNames> = {
  servers: 'servers',
  user: 'user',
  pass: 'pass',
  token: 'token',
  credsFile: 'credsFile',
  nkeyFile: 'nkeyFile',
  caFile: 'tls.caFile',
  certFile: 'tls.certFile',
  keyFile: 'tls.keyFile',
};

/** Environment variables the NATS tools use, and which field each fills. */
export const NATS_ENV = {
  NATS_URL: 'servers',
  NATS_USER: 'user',
  NATS_PASSWORD: 'pass',
  NATS_TOKEN: 'token',
  NATS_CREDS: 'credsFile',
  NATS_NKEY: 'nkeyFile',
  NATS_CA: 'caFile',
  NATS_CERT: 'certFile',
  NATS_KEY: 'keyFile',
} as const;

/** Why `path` cannot be read as a file, or undefined. Names the path, never the content. */
function fileProblem(path: string): string | undefined {
  const abs = resolve(path);
  const st = statSync(abs, { throwIfNoEntry: false });
  if (!st) return `no such file: ${abs}`;
  if (!st.isFile()) return `not a file: ${abs}`;
  try {
    accessSync(abs, constants.R_OK);
  } catch {
    return `cannot read ${abs} (permission denied)`;
  }
  return undefined;
}

const CREDS_RE =
  /-{3,}[^\n]*BEGIN NATS USER JWT[^\n]*-{3,}\s*\n\s*(\S+)\s*\n[\s\S]*-{3,}[^\n]*BEGIN USER NKEY SEED[^\n]*-{3,}\s*\n\s*(S[A-Z2-7]+)\s*\n/;

function contentProblem(kind: 'creds' | 'nkey', abs: string): string | undefined {
  const text = readFileSync(abs, 'utf8');
  if (kind === 'creds')
    return CREDS_RE.test(text) ? undefined : `${abs} is not a NATS creds file (a USER JWT block and a USER NKEY SEED block, as nsc writes)`;
  const seed = text.trim();
  return /^SU[A-Z2-7]{50,}$/.test(seed)
    ? undefined
    : `${abs} does not hold a user nkey seed (one line starting with SU, as nk -gen user writes)`;
}

/**
 * Every problem with a set of auth options, each naming the option (by `names`) and what to
 * do; empty when they can be used. Checks that files exist and are readable, and that one
 * way of authenticating is chosen.
 */
export function natsAuthIssues(
  a: Omit<NatsAuthOptions, 'servers'> & { servers?: string | string[] },
  names: NatsAuthNames = {},
): IssueDetail[] {
  const n = { ...DEFAULT_NAMES, ...names };
  const issues: IssueDetail[] = [];
  let fromUrl: { user?: string; pass?: string; token?: string } = {};
  if (a.servers !== undefined) {
    try {
      fromUrl = splitNatsCredentials(a.servers);
    } catch (e) {
      issues.push({
        path: n.servers,
        code: 'conflict',
        message: (e as Error).message,
        expected: 'the same credentials in every URL, or none',
      });
    }
  }
  const ways: string[] = [];
  if (a.user !== undefined || a.pass !== undefined) ways.push(`${n.user}/${n.pass}`);
  if (a.token !== undefined) ways.push(n.token);
  if (a.credsFile !== undefined) ways.push(n.credsFile);
  if (a.nkeyFile !== undefined) ways.push(n.nkeyFile);
  if (fromUrl.user !== undefined || fromUrl.token !== undefined) ways.push(`credentials in the URL (${n.servers})`);
  if (ways.length > 1)
    issues.push({
      path: ways.join(', '),
      code: 'conflict',
      message: `${ways.length} ways to authenticate given`,
      expected: 'one of: a user and password, a token, an nkey seed file, a creds file (or credentials in the URL)',
    });
  if (a.user !== undefined && a.pass === undefined)
    issues.push({ path: n.user, code: 'needs_option', message: 'a user without a password', expected: `${n.pass} as well` });
  if (a.pass !== undefined && a.user === undefined)
    issues.push({ path: n.pass, code: 'needs_option', message: 'a password without a user', expected: `${n.user} as well` });
  const tls = a.tls ?? {};
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    const [has, lacks] = tls.certFile !== undefined ? [n.certFile, n.keyFile] : [n.keyFile, n.certFile];
    issues.push({
      path: has,
      code: 'needs_option',
      message: `${has} without ${lacks}`,
      expected: `${lacks} as well: a client certificate and its private key go together`,
    });
  }
  const files: Array<[string, string | undefined, 'creds' | 'nkey' | undefined]> = [
    [n.credsFile, a.credsFile, 'creds'],
    [n.nkeyFile, a.nkeyFile, 'nkey'],
    [n.caFile, tls.caFile, undefined],
    [n.certFile, tls.certFile, undefined],
    [n.keyFile, tls.keyFile, undefined],
  ];
  for (const [path, file, kind] of files) {
    if (file === undefined) continue;
    const problem = fileProblem(file) ?? (kind ? contentProblem(kind, resolve(file)) : undefined);
    if (problem) issues.push({ path, code: 'bad_file', message: problem, expected: 'a readable file' });
  }
  return issues;
}

/**
 * The nats.js connect options for `a`: servers without credentials, and the authentication
 * and TLS they ask for. Files are read here (the seed and creds once; nats.js signs the
 * server's nonce with them on every connect).
 * @throws ValidationError (with {@link natsAuthIssues}) when the options cannot be used.
 */
export function natsConnectOptions(a: NatsAuthOptions, names: NatsAuthNames = {}): NodeConnectionOptions {
  const issues = natsAuthIssues(a, names);
  if (issues.length) throw new ValidationError(`cannot authenticate to NATS: ${issues.map((i) => i.path).join(', ')}`, issues);
  const fromUrls = splitNatsCredentials(a.servers);
  const co: NodeConnectionOptions = { servers: fromUrls.servers.map((s) => s.replace(/^tls:\/\//i, 'nats://')) };
  const user = a.user ?? fromUrls.user;
  const pass = a.pass ?? fromUrls.pass;
  const token = a.token ?? fromUrls.token;
  if (user !== undefined) co.user = user;
  if (pass !== undefined) co.pass = pass;
  if (token !== undefined) co.token = token;
  if (a.credsFile !== undefined) co.authenticator = credsAuthenticator(new Uint8Array(readFileSync(resolve(a.credsFile))));
  if (a.nkeyFile !== undefined)
    co.authenticator = nkeyAuthenticator(new TextEncoder().encode(readFileSync(resolve(a.nkeyFile), 'utf8').trim()));
  const tlsUrl = fromUrls.servers.some((s) => /^tls:\/\//i.test(s));
  const tls = a.tls ?? {};
  if (tlsUrl || tls.caFile !== undefined || tls.certFile !== undefined) {
    co.tls = {
      ...(tls.caFile !== undefined ? { caFile: resolve(tls.caFile) } : {}),
      ...(tls.certFile !== undefined ? { certFile: resolve(tls.certFile) } : {}),
      ...(tls.keyFile !== undefined ? { keyFile: resolve(tls.keyFile) } : {}),
    };
  }
  if (a.inboxPrefix !== undefined) co.inboxPrefix = a.inboxPrefix;
  return co;
}

/** The auth options the NATS environment variables give (see {@link NATS_ENV}); only those that are set. */
export function natsAuthFromEnv(env: NodeJS.ProcessEnv = process.env): Partial<NatsAuthOptions> {
  const v = (k: keyof typeof NATS_ENV) => (env[k] !== undefined && env[k] !== '' ? env[k] : undefined);
  const tls = {
    ...(v('NATS_CA') ? { caFile: v('NATS_CA')! } : {}),
    ...(v('NATS_CERT') ? { certFile: v('NATS_CERT')! } : {}),
    ...(v('NATS_KEY') ? { keyFile: v('NATS_KEY')! } : {}),
  };
  return {
    ...(v('NATS_URL') ? { servers: v('NATS_URL')! } : {}),
    ...(v('NATS_USER') ? { user: v('NATS_USER')! } : {}),
    ...(v('NATS_PASSWORD') ? { pass: v('NATS_PASSWORD')! } : {}),
    ...(v('NATS_TOKEN') ? { token: v('NATS_TOKEN')! } : {}),
    ...(v('NATS_CREDS') ? { credsFile: v('NATS_CREDS')! } : {}),
    ...(v('NATS_NKEY') ? { nkeyFile: v('NATS_NKEY')! } : {}),
    ...(Object.keys(tls).length ? { tls } : {}),
  };
}

import { ConfigError } from '../errors.js';

/**
 * Credentials written into server URLs, the way NATS users write them:
 * `nats://user:password@host:4222` (user and password) or `nats://token@host:4222` (a token).
 * nats.js does not read them from the URL, so they are taken out here and passed as options;
 * the URLs it gets, and every URL printed or logged, carry none.
 */
export interface NatsCredentials {
  servers: string[];
  user?: string;
  pass?: string;
  token?: string;
}

const parse = (u: string): URL | undefined => {
  try {
    return new URL(u.includes('://') ? u : `nats://${u}`);
  } catch {
    return undefined;
  }
};

export function splitNatsCredentials(servers: string | string[]): NatsCredentials {
  const list = (Array.isArray(servers) ? servers : servers.split(',')).map((s) => s.trim());
  let found: Omit<NatsCredentials, 'servers'> | undefined;
  const out: string[] = [];
  for (const s of list) {
    const url = parse(s);
    if (!url || (url.username === '' && url.password === '')) {
      out.push(s);
      continue;
    }
    const creds = url.password
      ? { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) }
      : { token: decodeURIComponent(url.username) };
    if (found && JSON.stringify(found) !== JSON.stringify(creds)) {
      throw new ConfigError(`the NATS server URLs carry different credentials (${redactNatsUrls(list).join(',')}); give one set`);
    }
    found = creds;
    url.username = '';
    url.password = '';
    out.push(url.toString().replace(/\/$/, ''));
  }
  return { servers: out, ...found };
}

/** The URLs with any password or token replaced by `***`, for logs and messages. */
export function redactNatsUrls(servers: string | string[]): string[] {
  const list = Array.isArray(servers) ? servers : servers.split(',');
  return list.map((s) => {
    const url = parse(s.trim());
    if (!url || (url.username === '' && url.password === '')) return s;
    const user = url.password ? `${url.username}:***` : '***';
    return s.replace(/^([a-z]+:\/\/)?[^@/]*@/i, (_m, scheme: string | undefined) => `${scheme ?? ''}${user}@`);
  });
}

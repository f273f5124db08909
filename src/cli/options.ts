import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command, Option } from 'commander';
import { z } from 'zod';
import { IceError, ValidationError, ensureError, type IssueDetail } from '../errors.js';
import { isRuntimeChain } from '../host/ports.js';
import { ACTOR_KIND_RE, IdSchema, PrincipalSchema, ScopeSchema, SubjectPatternSchema, isAddress } from '../protocol/index.js';
import { redactNatsUrls } from '../transport/nats-url.js';
import { ACTOR_STATUSES } from '../host/actor-page.js';
import { DURATION_HINT, parseDuration } from './format.js';

/**
 * Every value the CLI takes from an option, an environment variable or the project config
 * goes through one rule of the tables below: a zod schema that parses it and the words for
 * what it expects. A value that fails is refused before the command does anything, naming
 * the option (or variable), what was given and what is expected.
 */
interface Rule<S extends z.ZodType = z.ZodType> {
  readonly expected: string;
  readonly schema: S;
}
const rule = <S extends z.ZodType>(expected: string, schema: S): Rule<S> => ({ expected, schema });

const intText = z.union([
  z.int(),
  z
    .string()
    .trim()
    .regex(/^-?\d+$/)
    .transform(Number),
]);
const int = (min: number, max = Number.MAX_SAFE_INTEGER) => intText.pipe(z.int().min(min).max(max));

const UNITS: Array<[string, number]> = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1000],
  ['ms', 1],
];
/** Milliseconds in the largest unit that divides them: 3_600_000 → `1h`. */
const showMs = (ms: number): string => {
  const [unit, size] = UNITS.find(([, n]) => ms % n === 0) ?? ['ms', 1];
  return `${ms / size}${unit}`;
};
const duration = (minMs: number, maxMs: number) =>
  rule(
    `${DURATION_HINT}; ${showMs(minMs)} to ${showMs(maxMs)}`,
    z
      .string()
      .trim()
      .regex(/^\d+(ms|s|m|h|d)$/)
      .transform(parseDuration)
      .pipe(z.number().min(minMs).max(maxMs)),
  );

/** A port to listen on; 0 lets the system pick a free one. */
const listenPort = int(0, 65_535);

const jsonText = z.string().transform((s, ctx): unknown => {
  try {
    return JSON.parse(s);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: `not JSON (${ensureError(e).message})` });
    return z.NEVER;
  }
});

const text = (min: number, max: number) => z.string().min(min).max(max);

/** `nats://host:port`, `tls://host:port` or `host:port`; port 1-65535. */
function natsUrlProblem(u: string): string | undefined {
  if (u === '') return 'an empty URL';
  const shownUrl = JSON.stringify(redactNatsUrls(u)[0]); // never a password or token in a message
  let url: URL;
  try {
    url = new URL(u.includes('://') ? u : `nats://${u}`);
  } catch {
    return `${shownUrl} is not a URL`;
  }
  if (url.protocol !== 'nats:' && url.protocol !== 'tls:') return `${shownUrl}: the scheme is not nats:// or tls://`;
  if (url.hostname === '') return `${shownUrl} has no host`;
  if (url.port === '0') return `${shownUrl}: port 0 (a server listens on 1-65535)`;
  if (url.pathname !== '' && url.pathname !== '/') return `${shownUrl} has a path`;
  return undefined;
}
const natsUrls = z.string().transform((s, ctx) => {
  const urls = s.split(',').map((u) => u.trim());
  for (const u of urls) {
    const problem = natsUrlProblem(u);
    if (problem) {
      ctx.addIssue({ code: 'custom', message: problem });
      return z.NEVER;
    }
  }
  return urls.join(',');
});

const isFile = (path: string): boolean => statSync(path, { throwIfNoEntry: false })?.isFile() === true;
/** Module paths, resolved against the current directory; each must be a file. */
const moduleFiles = z.array(z.string().min(1)).transform((paths, ctx) => {
  const out: string[] = [];
  for (const p of paths) {
    const abs = resolve(p);
    if (!isFile(abs)) {
      ctx.addIssue({ code: 'custom', message: `no such file: ${abs}` });
      return z.NEVER;
    }
    out.push(abs);
  }
  return out;
});

const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2}))?$/;
/** An ISO 8601 date, or date and time with `Z` or an offset, that names a real day (no 02-31); as a UTC ISO string. */
const isoTime = z.string().transform((s, ctx) => {
  const m = ISO_TIME.exec(s.trim());
  const [y, mo, d] = [Number(m?.[1]), Number(m?.[2]), Number(m?.[3])];
  const day = new Date(Date.UTC(y, mo - 1, d));
  const t = Date.parse(s.trim());
  if (!m || day.getUTCMonth() !== mo - 1 || day.getUTCDate() !== d || Number.isNaN(t)) {
    ctx.addIssue({ code: 'custom', message: 'not an ISO 8601 date or time' });
    return z.NEVER;
  }
  return new Date(t).toISOString();
});

/** {@link isoTime}, after now. */
const futureTime = isoTime.refine((t) => Date.parse(t) > Date.now(), 'that time has passed');

const chainName = z.string().refine((s) => isAddress(s) || (isRuntimeChain(s) && /^_runtime\/[A-Za-z0-9_-]{1,64}$/.test(s)));

const ID = '1-128 characters of A-Z a-z 0-9 _ : - starting with a letter or digit';

/** The rule of every option that takes a value, by its attribute name (`--max-uses` → `maxUses`). */
export const OPTION_RULES = {
  data: rule('a directory path', z.string().trim().min(1)),
  actors: rule('paths of ES module files that exist', moduleFiles),
  nats: rule('NATS server URLs, comma-separated, e.g. nats://127.0.0.1:4222', natsUrls),
  // NATS authentication (files are checked with the combination, see checkNatsAuth in main.ts)
  creds: rule('the path of a NATS .creds file', z.string().trim().min(1)),
  nkey: rule('the path of a file holding an nkey seed (SU…)', z.string().trim().min(1)),
  user: rule('a NATS user name, 1-256 characters', text(1, 256)),
  password: rule('a NATS password, 1-1024 characters', text(1, 1024)),
  token: rule('a NATS token, 1-1024 characters', text(1, 1024)),
  tlsCa: rule('the path of a PEM file with the CA certificate(s) of the server', z.string().trim().min(1)),
  tlsCert: rule('the path of a PEM client certificate', z.string().trim().min(1)),
  tlsKey: rule('the path of the PEM private key of the client certificate', z.string().trim().min(1)),
  node: rule('1-64 characters of A-Z a-z 0-9 _ -, as it names a NATS subject token', z.string().regex(/^[A-Za-z0-9_-]{1,64}$/)),
  limit: rule('an integer from 1 to 100000', int(1, 100_000)),
  from: rule('a seq number: an integer, 1 or more', int(1)),
  seq: rule('a seq number: an integer, 1 or more', int(1)),
  maxUses: rule('an integer, 1 or more', int(1)),
  uses: rule('an integer, 1 or more', int(1)),
  replicas: rule('an integer from 1 to 5, the JetStream maximum', int(1, 5)),
  adminPort: rule('a port from 0 to 65535; 0 for any free port', listenPort),
  inspect: rule('a port from 0 to 65535; 0 for any free port', z.union([z.literal(false), listenPort])),
  inspectHost: rule('a host name or IP address to bind, e.g. 127.0.0.1', z.string().regex(/^[A-Za-z0-9.:_%[\]-]{1,253}$/)),
  ttl: duration(1000, 3650 * 86_400_000),
  leaseTtl: duration(500, 3_600_000),
  timeout: duration(1, 86_400_000),
  connectTimeout: duration(1000, 30 * 86_400_000),
  expires: rule('an ISO 8601 time in the future, e.g. 2030-01-31T12:00:00Z or 2030-01-31', futureTime),
  params: rule('a JSON object, e.g. {"replicas":2}', jsonText.pipe(z.record(z.string(), z.unknown()))),
  input: rule('JSON text, e.g. {"service":"web"}', jsonText),
  as: rule('a principal "type:name", e.g. agent:planner', PrincipalSchema),
  approveAs: rule('a principal "type:name", e.g. human:alice', PrincipalSchema),
  to: rule('a principal "type:name" (wildcards: *), e.g. agent:*', SubjectPatternSchema),
  scope: rule('a scope "kind/id:ACTION" (wildcards: *), or "*"', ScopeSchema),
  id: rule(ID, IdSchema),
  run: rule(ID, IdSchema),
  by: rule('1-200 characters', text(1, 200)),
  reason: rule('1-1000 characters', text(1, 1000)),
  note: rule('at most 1000 characters', text(0, 1000)),
  rationale: rule('at most 4000 characters', text(0, 4000)),
  actor: rule('an actor address "kind/id", or a runtime chain "_runtime/<node>"', chainName),
  kind: rule('a kind: a-z 0-9 -, starting with a letter', z.string().regex(ACTOR_KIND_RE)),
  status: rule(`one of ${ACTOR_STATUSES.join(', ')}`, z.enum(ACTOR_STATUSES)),
  state: rule('a state name, e.g. draft or review.waiting (1-1000 characters)', text(1, 1000)),
  after: rule('an actor address "kind/id": the one printed after "next: --after"', z.string().refine(isAddress)),
  format: rule('json, mermaid or svg', z.enum(['json', 'mermaid', 'svg'])),
  out: rule('a file path', z.string().min(1)),
  groups: rule('a groups file (YAML or JSON) that exists', z.string().min(1).refine(isFile, 'no such file')),
  since: rule(
    'a journal position (with --actor: a seq of that chain), an integer 1 or more; or an ISO 8601 time, e.g. 2030-01-31T12:00:00Z',
    z.union([int(1), isoTime]),
  ),
  file: rule(
    'the path of a file that exists',
    z
      .string()
      .min(1)
      .transform((p) => resolve(p))
      .refine(isFile, 'no such file'),
  ),
  key: rule(
    'authority public keys, each a PEM file, a file written by `ice authority keys --json`, or a raw ed25519 key in base64url',
    z.array(z.string().trim().min(1)).min(1),
  ),
} as const;

/** Environment variables the CLI reads that are no option's source. */
export const ENV_RULES = {
  ICE_LOG_LEVEL: rule(
    'one of fatal, error, warn, info, debug, trace, silent',
    z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  ),
} as const;

type Values = { [K in keyof typeof OPTION_RULES]: z.output<(typeof OPTION_RULES)[K]['schema']> };
/** Option values after {@link checkOptions}: parsed (durations in ms, JSON parsed, paths absolute). */
export type Opts<Required extends keyof Values = never> = Partial<Values> & Pick<Values, Required> & Flags;
/** Options without a value. */
interface Flags {
  json?: boolean;
  follow?: boolean;
  seed?: boolean;
  cluster?: boolean;
  publishInspection?: boolean;
  requirePrincipalSubjects?: boolean;
  serveBrokenJournal?: boolean;
  ensure?: boolean;
  ifAbsent?: boolean;
  all?: boolean;
}

const takesValue = (o: Option): boolean => o.required || o.optional;

/** Throws at start if an option that takes a value has no rule: every value is checked. */
export function assertEveryOptionHasARule(cmd: Command): void {
  for (const o of cmd.options.filter(takesValue)) {
    if (!(o.attributeName() in OPTION_RULES))
      throw new IceError('E_INTERNAL', `option ${o.flags} of ${cmd.name()} has no rule`, 'terminal');
  }
  for (const sub of cmd.commands) assertEveryOptionHasARule(sub);
}

const shown = (v: unknown): string => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
};

/** Options whose value is a secret: a refused value is never shown. */
export const SECRET_OPTIONS: ReadonlySet<string> = new Set(['password', 'token']);

function issue(path: string, value: unknown, r: Rule, error: z.ZodError, key?: string): IssueDetail {
  const custom = error.issues.find((i) => i.code === 'custom')?.message;
  const got =
    key !== undefined && SECRET_OPTIONS.has(key)
      ? 'a value (not shown: it is a secret)'
      : shown(key === 'nats' ? redactNatsUrls(String(value)).join(',') : value);
  return { path, code: 'invalid_option', message: `got ${got}${custom ? `: ${custom}` : ''}`, expected: r.expected };
}

/**
 * Checks the value of every option of `cmd`, wherever it came from (command line,
 * environment, project config, default), and each of {@link ENV_RULES}; replaces each value
 * with its parsed form. Throws one ValidationError naming every bad value.
 */
export function checkOptions(cmd: Command, configFile?: string): void {
  const issues: IssueDetail[] = [];
  const seen = new Set<string>();
  for (const option of cmd.options.filter(takesValue)) {
    const key = option.attributeName();
    if (seen.has(key)) continue;
    seen.add(key);
    const value: unknown = cmd.getOptionValue(key);
    if (value === undefined) continue;
    const r: Rule = OPTION_RULES[key as keyof typeof OPTION_RULES];
    const source = cmd.getOptionValueSource(key);
    const parsed = r.schema.safeParse(value);
    if (parsed.success) {
      cmd.setOptionValueWithSource(key, parsed.data, source);
      continue;
    }
    const path =
      source === 'env' && option.envVar
        ? option.envVar
        : source === 'config'
          ? `${key} in ${configFile ?? 'the project config'}`
          : (option.long ?? key);
    issues.push(issue(path, value, r, parsed.error, key));
  }
  for (const [name, r] of Object.entries(ENV_RULES) as Array<[string, Rule]>) {
    const value = process.env[name];
    if (value === undefined) continue;
    const parsed = r.schema.safeParse(value);
    if (!parsed.success) issues.push(issue(name, value, r, parsed.error));
  }
  if (issues.length) throw new ValidationError(`invalid ${issues.map((i) => i.path).join(', ')}`, issues);
}

import type { IssueDetail } from '../errors.js';
import { isAddress, splitAddress, type ActorAddress } from './address.js';
import { PrincipalSchema } from './intent.js';

/**
 * NATS subjects of the wire protocol. Kinds and ids are valid subject tokens by construction
 * (see address.ts), so an address maps to two tokens.
 */
export const Subjects = {
  /** Request/reply: propose an intent, receive its outcome. */
  intent: (target: string) => (isAddress(target) ? `ice.intent.${target.replace('/', '.')}` : 'ice.intent._invalid._'),
  intentAll: 'ice.intent.>',
  /**
   * Request/reply, principal-bound: `ice.as.<principal>.<kind>.<id>`. NATS permissions can
   * then restrict each client to its own principal (publish `ice.as.agent:planner.>`), and the
   * runtime checks that the intent's `proposer` is the principal in the subject.
   */
  intentAs: (principal: string, target: string) =>
    isAddress(target)
      ? `ice.as.${principalToken(principal)}.${target.replace('/', '.')}`
      : `ice.as.${principalToken(principal)}._invalid._`,
  /**
   * Every `ice.as.…` subject, whatever its token count: the intake answers malformed ones
   * with a `rejected` outcome naming the mistake (see {@link parseIntentSubject}).
   */
  intentAsAll: 'ice.as.>',
  /** Request/reply: the authority decides one validated intent. */
  decide: 'ice.authority.decide',
  /**
   * Every committed fact, on its chain's subject: `ice.fact.<kind>.<id>` for an actor,
   * `ice.fact._runtime.<name>` for a runtime chain (grant changes, rejected intents).
   */
  fact: (chain?: string) =>
    chain && isAddress(chain)
      ? `ice.fact.${chain.replace('/', '.')}`
      : chain && RUNTIME_CHAIN_RE.test(chain)
        ? `ice.fact.${chain.replace('/', '.')}`
        : 'ice.fact._runtime._',
  factAll: 'ice.fact.>',
  admin: (verb: string) => `ice.admin.${verb}`,
} as const;

const RUNTIME_CHAIN_RE = /^_runtime\/[A-Za-z0-9_-]{1,64}$/;

/** A principal as one subject token: `%` → `%25`, `.` → `%2E` (the other characters are allowed). */
export function principalToken(principal: string): string {
  return principal
    .replaceAll('%', '%25')
    .replaceAll('.', '%2E')
    .replace(/[\s*>]/g, '_');
}

/** What an intent subject names, or the first thing wrong with it (see {@link parseIntentSubject}). */
export type IntentSubject =
  | { ok: true; principal: string | undefined; target: ActorAddress }
  | {
      ok: false;
      /** `path`: `subject` (token count, prefix), `principal` (its token) or `target` (the `<kind>.<id>` tokens). */
      issue: IssueDetail;
      /** Whether the subject is an `ice.as.…` one (the subject to use then names a principal too). */
      principalBound: boolean;
    };

const AS_FORM = 'ice.as.<principal>.<kind>.<id>';
const INTENT_FORM = 'ice.intent.<kind>.<id>';

/**
 * The one parser of intent subjects: `ice.intent.<kind>.<id>` (4 tokens) and
 * `ice.as.<principal>.<kind>.<id>` (5 tokens). The principal token must be the canonical
 * encoding of a principal ({@link principalToken}: `%` → `%25`, `.` → `%2E`, upper-case hex,
 * no other escapes), so that one principal has exactly one subject and a client permitted
 * `ice.as.agent:a.>` cannot reach another principal by spelling it differently. Mistakes come
 * back as an issue (`subject_prefix`, `subject_tokens`, `principal_encoding`,
 * `principal_invalid`, `subject_target`) for the intake to answer with.
 */
export function parseIntentSubject(subject: string): IntentSubject {
  const parts = subject.split('.');
  const principalBound = parts[0] === 'ice' && parts[1] === 'as';
  const fail = (path: string, code: string, message: string, expected: string): IntentSubject => ({
    ok: false,
    issue: { path, code, message, expected },
    principalBound,
  });
  if (parts[0] !== 'ice' || (parts[1] !== 'as' && parts[1] !== 'intent')) {
    return fail('subject', 'subject_prefix', `${subject} is not an intent subject`, `${AS_FORM} or ${INTENT_FORM}`);
  }
  const want = principalBound ? 5 : 4;
  if (parts.length !== want) {
    const hint =
      principalBound && parts.length > want
        ? ' (a "." in a principal is written %2E, a "%" %25)'
        : !principalBound && parts.length === 5
          ? ' (a principal goes in ice.as.<principal>.<kind>.<id>)'
          : '';
    return fail(
      'subject',
      'subject_tokens',
      `${subject} has ${parts.length} tokens, ${principalBound ? AS_FORM : INTENT_FORM} has ${want}${hint}`,
      principalBound ? AS_FORM : INTENT_FORM,
    );
  }
  let principal: string | undefined;
  if (principalBound) {
    const token = parts[2]!;
    const decoded = decodePrincipalToken(token);
    if (!decoded.ok) return fail('principal', 'principal_encoding', decoded.message, `the principal as ${principalTokenRule}`);
    if (!PrincipalSchema.safeParse(decoded.value).success) {
      return fail(
        'principal',
        'principal_invalid',
        `${JSON.stringify(decoded.value)} (from the subject's principal token) is not a principal`,
        'a principal "type:name", e.g. agent:planner',
      );
    }
    if (principalToken(decoded.value) !== token) {
      // Unreachable with today's principal rule (it has no "%"), kept so that a wider rule cannot open a second spelling.
      return fail(
        'principal',
        'principal_encoding',
        `${token} is not the canonical token of ${decoded.value}`,
        principalToken(decoded.value),
      );
    }
    principal = decoded.value;
  }
  const [kind, id] = parts.slice(-2) as [string, string];
  const target = `${kind}/${id}`;
  if (!isAddress(target)) {
    return fail(
      'target',
      'subject_target',
      `${kind}.${id} in ${subject} is not an actor address`,
      '<kind>.<id> of the target actor (kind: a-z0-9-, id: A-Za-z0-9_-)',
    );
  }
  return { ok: true, principal, target };
}

const principalTokenRule = 'one subject token: "%" written %25, "." written %2E (upper-case), no other escapes';

function decodePrincipalToken(token: string): { ok: true; value: string } | { ok: false; message: string } {
  let out = '';
  for (let i = 0; i < token.length; i++) {
    const c = token[i]!;
    if (c !== '%') {
      out += c;
      continue;
    }
    const esc = token.slice(i, i + 3);
    if (esc === '%25') out += '%';
    else if (esc === '%2E') out += '.';
    else {
      const lower = esc === '%2e' ? ' (escapes are upper-case: %2E)' : '';
      return {
        ok: false,
        message: `${JSON.stringify(esc)} at ${i} of the principal token ${JSON.stringify(token)} is not an escape${lower}`,
      };
    }
    i += 2;
  }
  return { ok: true, value: out };
}

/** The principal a `ice.as.<token>.<kind>.<id>` subject names, or undefined (not such a subject, or a malformed one). */
export function principalFromSubject(subject: string): string | undefined {
  const p = parseIntentSubject(subject);
  return p.ok ? p.principal : undefined;
}

/** The target a `ice.intent.<kind>.<id>` subject names, or undefined (see {@link parseIntentSubject}). */
export function addressFromIntentSubject(subject: string): ActorAddress | undefined {
  const p = parseIntentSubject(subject);
  return p.ok && p.principal === undefined ? p.target : undefined;
}

export { splitAddress };

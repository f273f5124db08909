import { isAddress, splitAddress, type ActorAddress } from './address.js';

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
  intentAsAll: 'ice.as.*.*.*',
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

/** The principal a `ice.as.<token>.<kind>.<id>` subject names, or undefined. */
export function principalFromSubject(subject: string): string | undefined {
  const parts = subject.split('.');
  if (parts.length !== 5 || parts[0] !== 'ice' || parts[1] !== 'as') return undefined;
  return parts[2]!.replaceAll('%2E', '.').replaceAll('%25', '%');
}

export function addressFromIntentSubject(subject: string): ActorAddress | undefined {
  const parts = subject.split('.');
  if (parts.length !== 4) return undefined;
  const a = `${parts[2]}/${parts[3]}`;
  return isAddress(a) ? a : undefined;
}

export { splitAddress };

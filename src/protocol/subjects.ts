import { isAddress, splitAddress, type ActorAddress } from './address.js';

/**
 * NATS subjects of the wire protocol. Kinds and ids are valid subject tokens by construction
 * (see address.ts), so an address maps to two tokens.
 */
export const Subjects = {
  /** Request/reply: propose an intent, receive its outcome. */
  intent: (target: string) => (isAddress(target) ? `ice.intent.${target.replace('/', '.')}` : 'ice.intent._invalid._'),
  intentAll: 'ice.intent.>',
  /** Request/reply: the authority decides one validated intent. */
  decide: 'ice.authority.decide',
  /** Every committed fact; actorless facts (grants) go to `ice.fact._runtime._`. */
  fact: (actor?: string) => (actor && isAddress(actor) ? `ice.fact.${actor.replace('/', '.')}` : 'ice.fact._runtime._'),
  factAll: 'ice.fact.>',
  admin: (verb: string) => `ice.admin.${verb}`,
} as const;

export function addressFromIntentSubject(subject: string): ActorAddress | undefined {
  const parts = subject.split('.');
  if (parts.length !== 4) return undefined;
  const a = `${parts[2]}/${parts[3]}`;
  return isAddress(a) ? (a as ActorAddress) : undefined;
}

export { splitAddress };

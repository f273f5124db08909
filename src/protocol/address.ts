import { z } from 'zod';

/** `kind/id`: kind is lower-case, id is URL- and subject-safe. */
export const ACTOR_KIND_RE = /^[a-z][a-z0-9-]{0,62}$/;
export const ACTOR_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
const ADDRESS_RE = /^[a-z][a-z0-9-]{0,62}\/[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

declare const addressBrand: unique symbol;
/** A validated actor address, `kind/id`. Obtain one from {@link parseAddress}. */
export type ActorAddress = string & { readonly [addressBrand]: true };

/**
 * `kind/id/a/b`: child `b` of child `a` of the actor `kind/id` (an XState child id: letters,
 * digits, `_ . : -`). Children are addressable to read; intents go to top-level actors only.
 */
const CHILD_ADDRESS_RE = /^([a-z][a-z0-9-]{0,62}\/[A-Za-z0-9][A-Za-z0-9_-]{0,127})((?:\/[A-Za-z0-9_.:-]{1,128})+)$/;

export const ActorAddressSchema = z
  .string()
  .refine((s) => !CHILD_ADDRESS_RE.test(s), {
    message:
      'a child actor takes no intents: address its top-level actor "kind/id", whose machine forwards to the child (children are addressable to read: ice actor show kind/id/child)',
    abort: true,
  })
  .regex(ADDRESS_RE, 'expected an actor address "kind/id" (kind: a-z0-9-, id: A-Za-z0-9_-)')
  .transform((s) => s as ActorAddress);

export function isAddress(s: string): s is ActorAddress {
  return ADDRESS_RE.test(s);
}

/** @throws TypeError when `s` is not `kind/id`. */
export function parseAddress(s: string): ActorAddress {
  if (!ADDRESS_RE.test(s)) throw new TypeError(`not an actor address: ${JSON.stringify(s)} (expected "kind/id")`);
  return s as ActorAddress;
}

export function splitAddress(a: ActorAddress): { kind: string; id: string } {
  const i = a.indexOf('/');
  return { kind: a.slice(0, i), id: a.slice(i + 1) };
}

/** The top-level actor and the child path of a child address `kind/id/a/b`; undefined for anything else. */
export function parseChildAddress(s: string): { parent: ActorAddress; child: string } | undefined {
  const m = CHILD_ADDRESS_RE.exec(s);
  return m ? { parent: m[1] as ActorAddress, child: m[2]!.slice(1) } : undefined;
}

import { z } from 'zod';

/** `kind/id`: kind is lower-case, id is URL- and subject-safe. */
export const ACTOR_KIND_RE = /^[a-z][a-z0-9-]{0,62}$/;
export const ACTOR_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
const ADDRESS_RE = /^[a-z][a-z0-9-]{0,62}\/[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

declare const addressBrand: unique symbol;
/** A validated actor address, `kind/id`. Obtain one from {@link parseAddress}. */
export type ActorAddress = string & { readonly [addressBrand]: true };

export const ActorAddressSchema = z
  .string()
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

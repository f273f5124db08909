import { hash } from 'node:crypto';
import canonicalize from 'canonicalize';

/**
 * RFC 8785 JSON Canonicalization Scheme (JCS), by the `canonicalize` package (the RFC
 * author's implementation): object keys sorted by UTF-16 code units, no whitespace, numbers
 * as ECMAScript prints them, strings as `JSON.stringify` escapes them, `undefined` members
 * dropped. Two values that are equal as JSON always give the same text, in any language
 * that implements the RFC, so the text can be hashed and signed.
 *
 * Refused with a TypeError: non-finite numbers and strings that are not valid Unicode (a
 * lone surrogate), which the RFC forbids; the intake refuses both before anything is hashed.
 */
export function canonicalJson(value: unknown): string {
  let text: string | undefined;
  try {
    text = canonicalize(value);
  } catch (e) {
    throw new TypeError(`no canonical JSON (RFC 8785) for this value: ${(e as Error).message}`, { cause: e });
  }
  if (text === undefined) throw new TypeError(`canonical JSON cannot encode a ${typeof value}`);
  return text;
}

/** sha256 as hex, in one call (a `createHash` object per small input costs several times more). */
export function sha256Hex(data: string | Uint8Array): string {
  return hash('sha256', data, 'hex');
}

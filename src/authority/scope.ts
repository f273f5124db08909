import type { ActorAddress } from '../protocol/index.js';

/**
 * Scope patterns over `kind/id:ACTION` and principal patterns over `type:name`.
 * `*` matches any run of characters inside one part (it never crosses `/` or `:`).
 */
const cache = new Map<string, RegExp>();

function partRegex(part: string): string {
  return part
    .split('*')
    .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('[^/:]*');
}

function compile(pattern: string): RegExp {
  let re = cache.get(pattern);
  if (re) return re;
  if (pattern === '*') re = /^.*$/;
  else {
    const parts = pattern.split(/([/:])/);
    re = new RegExp('^' + parts.map((p) => (p === '/' || p === ':' ? p : partRegex(p))).join('') + '$');
  }
  if (cache.size > 10_000) cache.clear();
  cache.set(pattern, re);
  return re;
}

export function scopeMatches(scope: string, target: ActorAddress | string, action: string): boolean {
  return compile(scope).test(`${target}:${action}`);
}

export function principalMatches(pattern: string, principal: string): boolean {
  return compile(pattern).test(principal);
}

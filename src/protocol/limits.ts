import type { IssueDetail } from '../errors.js';
import { isWellFormed, notUnicodeIssue, pathKey } from './unicode.js';

/** Bounds applied to every JSON value that enters the runtime from outside. */
export interface JsonLimits {
  /** Largest encoded size in bytes. */
  maxBytes: number;
  /** Deepest nesting of objects and arrays. */
  maxDepth: number;
}

export const DEFAULT_LIMITS: JsonLimits = { maxBytes: 64 * 1024, maxDepth: 16 };

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Checks depth, prototype-polluting keys and text that is not valid Unicode (lone surrogates,
 * in keys and string values) of an already parsed value. Returns the first problem found, or
 * `undefined`. Walks iteratively so a hostile depth cannot blow the stack.
 */
export function checkJsonShape(value: unknown, limits: JsonLimits): IssueDetail | undefined {
  const stack: Array<{ v: unknown; depth: number; path: string }> = [{ v: value, depth: 0, path: '' }];
  while (stack.length > 0) {
    const { v, depth, path } = stack.pop()!;
    if (typeof v === 'bigint' || typeof v === 'symbol' || typeof v === 'function' || (typeof v === 'number' && !Number.isFinite(v))) {
      // In-process callers can hand over values JSON has no spelling for; refuse them as
      // input errors here instead of letting JSON.stringify / canonicalJson throw later on.
      const what = typeof v === 'number' ? String(v) : `a ${typeof v}`;
      return {
        path,
        code: 'not_json',
        message: `${what} is not a JSON value`,
        expected: 'JSON values only (finite numbers, no bigint, symbol or function)',
      };
    }
    if (typeof v === 'string') {
      if (!isWellFormed(v)) return notUnicodeIssue(path, 'string');
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    if (depth >= limits.maxDepth) {
      return {
        path,
        code: 'too_deep',
        message: `nesting deeper than ${limits.maxDepth}`,
        expected: `at most ${limits.maxDepth} levels of objects/arrays`,
      };
    }
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) stack.push({ v: v[i], depth: depth + 1, path: join(path, String(i)) });
      continue;
    }
    for (const key of Object.keys(v)) {
      if (!isWellFormed(key)) return notUnicodeIssue(join(path, pathKey(key)), 'key');
      if (FORBIDDEN_KEYS.has(key)) {
        return {
          path: join(path, key),
          code: 'forbidden_key',
          message: `key "${key}" is not allowed`,
          expected: 'no __proto__, constructor or prototype keys',
        };
      }
      stack.push({ v: (v as Record<string, unknown>)[key], depth: depth + 1, path: join(path, key) });
    }
  }
  return undefined;
}

/**
 * Parses JSON text from outside under the limits. `JSON.parse` turns `"__proto__"` into an
 * own property (it does not pollute), and the shape check then refuses it.
 */
export function parseJsonBounded(text: string, limits: JsonLimits): { ok: true; value: unknown } | { ok: false; issue: IssueDetail } {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > limits.maxBytes) {
    return {
      ok: false,
      issue: {
        path: '',
        code: 'too_large',
        message: `${bytes} bytes exceeds the limit`,
        expected: `at most ${limits.maxBytes} bytes`,
      },
    };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return {
      ok: false,
      issue: { path: '', code: 'invalid_json', message: (e as Error).message, expected: 'JSON text' },
    };
  }
  const issue = checkJsonShape(value, limits);
  return issue ? { ok: false, issue } : { ok: true, value };
}

/** Encoded size of a parsed value; used when a value arrives already parsed (in process). */
export function jsonByteLength(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8');
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

import { ValidationError, type IssueDetail } from '../errors.js';

/**
 * A string is valid Unicode unless it holds a lone surrogate (a UTF-16 half of a pair without
 * its other half, e.g. the JSON escape `"\ud800"`). Such a string has no UTF-8 encoding and no
 * RFC 8785 canonical form, so it can be neither hashed nor signed the same way in every
 * language: the runtime refuses it wherever text enters (intents, admin requests).
 */
export function isWellFormed(s: string): boolean {
  return (s as unknown as { isWellFormed(): boolean }).isWellFormed();
}

/** A key for a field path: lone surrogates written as `\uXXXX`, so the path itself is valid text. */
export function pathKey(key: string): string {
  return isWellFormed(key) ? key : key.replace(/[\ud800-\udfff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The issue for a string (or key) at `path` that is not valid Unicode. */
export function notUnicodeIssue(path: string, what: 'key' | 'string'): IssueDetail {
  return {
    path,
    code: 'not_unicode',
    message: `the ${what} at ${path === '' ? 'the top' : path} holds a lone surrogate (not valid Unicode)`,
    expected: 'text that is valid Unicode (every \\ud800-\\udbff escape followed by a \\udc00-\\udfff one)',
  };
}

/**
 * The first string or key in `value` that is not valid Unicode, as an issue naming its field
 * path (under `base`), or undefined. Walks iteratively (no recursion on hostile depth).
 */
export function findNotUnicode(value: unknown, base = ''): IssueDetail | undefined {
  const stack: Array<{ v: unknown; path: string }> = [{ v: value, path: base }];
  while (stack.length > 0) {
    const { v, path } = stack.pop()!;
    if (typeof v === 'string') {
      if (!isWellFormed(v)) return notUnicodeIssue(path, 'string');
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ v: v[i], path: join(path, String(i)) });
      continue;
    }
    const keys = Object.keys(v);
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i]!;
      if (!isWellFormed(key)) return notUnicodeIssue(join(path, pathKey(key)), 'key');
      stack.push({ v: (v as Record<string, unknown>)[key], path: join(path, key) });
    }
  }
  return undefined;
}

/**
 * Throws a ValidationError (`not_unicode`, naming the field) if `value` holds text that is not
 * valid Unicode: for the in-process doors (spawn input, signals, grants, approvals), which
 * must refuse it before any state changes, as the intake and the admin operations do.
 */
export function assertUnicode(value: unknown, base: string, what: string): void {
  const issue = findNotUnicode(value, base);
  if (issue) throw new ValidationError(`${what}: text that is not valid Unicode`, [issue]);
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

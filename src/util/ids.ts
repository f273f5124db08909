import { randomBytes } from 'node:crypto';

/** Id source, injected so runs can be replayed from a seed. */
export interface IdGen {
  /** A fresh id with the given prefix, safe as a NATS subject token. */
  next(prefix: string): string;
}

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';

/** Time-ordered, random-suffixed ids: `<prefix>_<ms base36><10 random chars>`. */
export const randomIds: IdGen = {
  next(prefix: string): string {
    const bytes = randomBytes(10);
    let s = '';
    for (const b of bytes) s += ALPHABET[b % 36];
    return `${prefix}_${Date.now().toString(36)}${s}`;
  },
};

/** Deterministic ids for tests: `<prefix>_<n>`. */
export function sequentialIds(start = 1): IdGen {
  let n = start;
  return { next: (prefix) => `${prefix}_${n++}` };
}

import { randomBytes } from 'node:crypto';

/** Id source, injected so runs can be replayed from a seed. */
export interface IdGen {
  /** A fresh id with the given prefix, safe as a NATS subject token. */
  next(prefix: string): string;
}

/**
 * Unique, roughly time-ordered ids without a syscall per id:
 * `<prefix>_<ms base36><8 random base36 chars per process><counter base36>`.
 */
export function createRandomIds(): IdGen {
  const salt = BigInt('0x' + randomBytes(6).toString('hex'))
    .toString(36)
    .padStart(8, '0')
    .slice(-8);
  let counter = 0;
  return {
    next(prefix: string): string {
      counter = (counter + 1) % 0x7fffffff;
      return `${prefix}_${Date.now().toString(36)}${salt}${counter.toString(36)}`;
    },
  };
}

export const randomIds: IdGen = createRandomIds();

/** Deterministic ids for tests: `<prefix>_<n>`. */
export function sequentialIds(start = 1): IdGen {
  let n = start;
  return { next: (prefix) => `${prefix}_${n++}` };
}

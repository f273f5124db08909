import type { ValidatedIntent } from './validate.js';

/**
 * What one process knows it produced itself. Objects never leave the process by reference:
 * a decision or intent that came over a transport is a fresh object and is never in here,
 * so it is checked in full (signature, schema). Objects in here are frozen on entry, so
 * they cannot be altered after they were vouched for.
 *
 * This is the "verify where a decision crosses a trust boundary" rule: inside one process
 * the authority and the host share memory, and an ed25519 verify per intent (~80 µs) would
 * buy nothing; the journal's signed checkpoints attest these decisions instead.
 */
export class LocalTrust {
  vouchDecision<T extends object>(d: T): T {
    mark(d, DECISION, this);
    deepFreeze(d);
    return d;
  }

  isLocalDecision(d: object): boolean {
    return (d as Marked)[DECISION] === this;
  }

  vouchIntent(v: ValidatedIntent): void {
    mark(v.intent, INTENT, { trust: this, v });
    deepFreeze(v.intent);
  }

  validated(intent: unknown): ValidatedIntent | undefined {
    if (typeof intent !== 'object' || intent === null) return undefined;
    const m = (intent as Marked)[INTENT];
    return m?.trust === this ? m.v : undefined;
  }
}

/**
 * The marks are properties under symbols private to this module, set before the object is
 * frozen: nothing outside can set or forge them, and no copy carries them (they are not
 * enumerable: spreads, JSON and structured clones leave them out). Cheaper than a WeakSet
 * or WeakMap entry per intent, which the garbage collector has to process as ephemerons.
 */
const DECISION = Symbol('ice.localDecision');
const INTENT = Symbol('ice.localIntent');

interface Marked {
  [DECISION]?: LocalTrust;
  [INTENT]?: { trust: LocalTrust; v: ValidatedIntent };
}

function mark(o: object, key: typeof DECISION | typeof INTENT, value: unknown): void {
  // An object frozen before it was vouched for cannot take the mark: it stays unvouched.
  if (Object.isExtensible(o)) Object.defineProperty(o, key, { value, enumerable: false, writable: false, configurable: false });
}

function deepFreeze(o: unknown): void {
  if (o === null || typeof o !== 'object' || Object.isFrozen(o)) return;
  Object.freeze(o);
  if (Array.isArray(o)) {
    for (let i = 0; i < o.length; i++) deepFreeze(o[i]);
    return;
  }
  const r = o as Record<string, unknown>;
  for (const k in r) if (Object.hasOwn(r, k)) deepFreeze(r[k]);
}

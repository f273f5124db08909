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
  readonly #decisions = new WeakSet<object>();
  readonly #intents = new WeakMap<object, ValidatedIntent>();

  vouchDecision<T extends object>(d: T): T {
    deepFreeze(d);
    this.#decisions.add(d);
    return d;
  }

  isLocalDecision(d: object): boolean {
    return this.#decisions.has(d);
  }

  vouchIntent(v: ValidatedIntent): void {
    deepFreeze(v.intent);
    this.#intents.set(v.intent, v);
  }

  validated(intent: unknown): ValidatedIntent | undefined {
    return typeof intent === 'object' && intent !== null ? this.#intents.get(intent) : undefined;
  }
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

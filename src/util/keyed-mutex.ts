/**
 * One turn at a time per key, in arrival order (the actor model's mailbox turn). A turn that
 * throws still lets the next one run.
 */
export class KeyedMutex {
  readonly #tails = new Map<string, Promise<void>>();

  /** True while a turn for `key` is running or queued. */
  busy(key: string): boolean {
    return this.#tails.has(key);
  }

  async run<T>(key: string, fn: () => T | Promise<T>): Promise<T> {
    const prev = this.#tails.get(key);
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev ? prev.then(() => mine) : mine;
    this.#tails.set(key, tail);
    if (prev) await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}

import type { Clock } from '../util/clock.js';

/** Longest single wait: Node's setTimeout takes at most 2^31 - 1 ms (24.8 days); longer waits re-arm. */
const MAX_WAIT_MS = 2 ** 31 - 1;

/**
 * When each actor next has something due (a durable timer, a restart after a failure), and
 * one real timeout for the earliest of them all: an actor in memory or passivated costs one
 * heap entry, not a timeout of its own. When an actor's time comes, `due(address)` is called
 * (the Host's `fireTimers`), which fires what is due and sets the actor's next time again.
 *
 * A binary heap with lazy deletion: `set` pushes a new entry and the map says which entry of
 * an actor is current; stale entries are skipped when they reach the top.
 */
export class TimerSchedule {
  readonly #clock: Clock;
  readonly #due: (address: string) => Promise<unknown>;
  readonly #at = new Map<string, number>();
  readonly #heap: Array<[number, string]> = [];
  #timer: NodeJS.Timeout | undefined;
  #armedFor = Infinity;
  #stopped = false;

  /** @param armed false: nothing fires by itself (`dueBy` still lists what is due). */
  constructor(clock: Clock, due: (address: string) => Promise<unknown>, armed = true) {
    this.#clock = clock;
    this.#due = due;
    this.#stopped = !armed;
  }

  /** Sets when an actor next has something due (undefined: nothing). */
  set(address: string, at: number | undefined): void {
    if (at === undefined) {
      this.#at.delete(address);
      return;
    }
    if (this.#at.get(address) === at) return;
    this.#at.set(address, at);
    this.#push([at, address]);
    if (at < this.#armedFor) this.#arm();
  }

  /** Actors whose time has come by `now`, taken off the schedule (their handler sets them again). */
  dueBy(now: number): string[] {
    const out: string[] = [];
    for (const [address, at] of this.#at) if (at <= now) out.push(address);
    for (const a of out) this.#at.delete(a);
    return out;
  }

  remove(address: string): void {
    this.#at.delete(address);
  }

  get(address: string): number | undefined {
    return this.#at.get(address);
  }

  get size(): number {
    return this.#at.size;
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(): void {
    if (this.#stopped) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedFor = Infinity;
    const top = this.#peek();
    if (!top) return;
    this.#armedFor = top[0];
    const wait = Math.min(Math.max(0, top[0] - this.#clock.now()), MAX_WAIT_MS);
    this.#timer = setTimeout(() => this.#run(), wait);
    this.#timer.unref?.();
  }

  #run(): void {
    this.#timer = undefined;
    this.#armedFor = Infinity;
    const now = this.#clock.now();
    for (let top = this.#peek(); top && top[0] <= now; top = this.#peek()) {
      this.#pop();
      const [, address] = top;
      this.#at.delete(address); // the handler sets the next time again
      this.#due(address).catch(() => {});
    }
    this.#arm();
  }

  /** The current earliest entry (stale ones dropped). */
  #peek(): [number, string] | undefined {
    while (this.#heap.length > 0) {
      const top = this.#heap[0]!;
      if (this.#at.get(top[1]) === top[0]) return top;
      this.#pop();
    }
    return undefined;
  }

  #push(item: [number, string]): void {
    const h = this.#heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]![0] <= item[0]) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = item;
  }

  #pop(): void {
    const h = this.#heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const c = r < h.length && h[r]![0] < h[l]![0] ? r : l;
      if (h[c]![0] >= last[0]) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = last;
  }
}

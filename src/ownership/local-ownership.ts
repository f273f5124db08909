import type { OwnershipPort, Ownership } from '../host/ports.js';

/**
 * Ownership in one process (embedded): the data-dir lock (src/store/data-dir-lock.ts), held
 * for the process's life, makes this process the owner of every actor in the dir. Nothing
 * is ever lost to another owner: a second process cannot open the dir.
 */
export class LocalOwnership implements OwnershipPort {
  readonly node: string;
  static readonly #mine: Ownership = Object.freeze({ kind: 'mine' });

  constructor(node: string) {
    this.node = node;
  }

  claim(): Promise<Ownership> {
    return Promise.resolve(LocalOwnership.#mine);
  }

  holds(): boolean {
    return true;
  }

  release(): Promise<void> {
    return Promise.resolve();
  }

  onLost(): () => void {
    return () => {};
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

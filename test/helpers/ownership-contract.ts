import { describe, expect, it } from 'vitest';
import type { OwnershipPort } from '../../src/host/ports.js';

/**
 * What every ownership port must do (src/host/ports.ts). `open(name)` gives a contender
 * named `name`; where one process owns everything (the data-dir lock), a second contender
 * cannot be made at all, and `open` throws for it — that is its exclusivity.
 */
export interface OwnershipRig {
  open(name: string): Promise<OwnershipPort>;
  /** Moves time past every lease (leases), or undefined where ownership never expires. */
  expire?: () => void;
  /** Runs the background renewal now (leases). */
  renew?: (o: OwnershipPort) => Promise<void>;
  close(): Promise<void>;
}

export function ownershipContract(name: string, makeRig: () => Promise<OwnershipRig>): void {
  describe(`ownership port contract: ${name}`, () => {
    it('a claim makes the claimer the holder, for as long as it holds', async () => {
      const rig = await makeRig();
      try {
        const a = await rig.open('a');
        expect(await a.claim('deployment/w1')).toEqual({ kind: 'mine' });
        expect(a.holds('deployment/w1')).toBe(true);
        // claiming again is idempotent
        expect(await a.claim('deployment/w1')).toEqual({ kind: 'mine' });
      } finally {
        await rig.close();
      }
    });

    it('a claim is exclusive: a second contender is told who holds it (or cannot exist)', async () => {
      const rig = await makeRig();
      try {
        const a = await rig.open('a');
        await a.claim('deployment/w2');
        let b: OwnershipPort | undefined;
        try {
          b = await rig.open('b');
        } catch (e) {
          // one process owns everything: the second contender is refused outright
          expect(String(e)).toMatch(/owned|lock/i);
          return;
        }
        expect(await b.claim('deployment/w2')).toEqual({ kind: 'elsewhere', owner: 'a' });
        expect(b.holds('deployment/w2')).toBe(false);
      } finally {
        await rig.close();
      }
    });

    it('a released actor can be claimed by another contender', async () => {
      const rig = await makeRig();
      try {
        const a = await rig.open('a');
        await a.claim('deployment/w3');
        await a.release('deployment/w3');
        let b: OwnershipPort;
        try {
          b = await rig.open('b');
        } catch {
          expect(await a.claim('deployment/w3')).toEqual({ kind: 'mine' });
          return;
        }
        expect(a.holds('deployment/w3')).toBe(false);
        expect(await b.claim('deployment/w3')).toEqual({ kind: 'mine' });
      } finally {
        await rig.close();
      }
    });

    it('a holder past its expiry no longer holds, and learns of a takeover through onLost', async () => {
      const rig = await makeRig();
      try {
        const a = await rig.open('a');
        await a.claim('deployment/w4');
        if (!rig.expire) {
          expect(a.holds('deployment/w4')).toBe(true); // never expires
          return;
        }
        const lost: Array<[string, string | undefined]> = [];
        a.onLost((actor, owner) => lost.push([actor, owner]));
        rig.expire();
        expect(a.holds('deployment/w4')).toBe(false);
        const b = await rig.open('b');
        expect(await b.claim('deployment/w4')).toEqual({ kind: 'mine' });
        await rig.renew!(a);
        expect(lost).toEqual([['deployment/w4', 'b']]);
        expect(await a.claim('deployment/w4')).toEqual({ kind: 'elsewhere', owner: 'b' });
      } finally {
        await rig.close();
      }
    });
  });
}

import { afterEach, describe, expect, it } from 'vitest';
import type { Outcome } from '../../src/index.js';
import { checkInvariants } from '../../src/testing/index.js';
import { startIceDev, type IceProcess } from '../helpers/ice-process.js';
import { tempDir } from '../helpers/runtime.js';

/**
 * A real `ice dev` process takes a stream of intents and is SIGKILLed in the middle of it.
 * After a restart on the same data dir: every intent whose outcome was acknowledged is in
 * the journal exactly once, the chain verifies, and every actor's snapshot equals a replay
 * of its journal. Intents that were in flight are retried with the same id and execute at
 * most once.
 */
describe('SIGKILL mid-stream, restart, nothing acknowledged is lost', () => {
  const procs: IceProcess[] = [];
  const dirs: Array<() => void> = [];
  afterEach(async () => {
    for (const p of procs.splice(0)) await p.kill('SIGKILL');
    for (const d of dirs.splice(0)) d();
  });

  it('keeps every acknowledged intent exactly once and snapshots equal replay', async () => {
    const t = tempDir('ice-chaos-');
    dirs.push(t.cleanup);
    const first = await startIceDev(t.dir);
    procs.push(first);

    const ACTORS = 12;
    const actors = Array.from({ length: ACTORS }, (_, i) => `deployment/svc-${i}`);
    for (const a of actors) await first.admin('spawn', { address: a, input: { service: a } });
    await first.admin('grant.issue', { subject: 'agent:load', scope: 'deployment/*:CONFIGURE' });

    const acked = new Map<string, Outcome>();
    const sent = new Map<string, number>();
    /** Intent number i, always the same intent for the same i (so a retry is the same intent). */
    const propose = async (proc: IceProcess, i: number) =>
      (await proc.admin('propose', {
        intent: {
          id: `load-${i}`,
          proposer: 'agent:load',
          target: actors[i % ACTORS]!,
          action: 'CONFIGURE',
          params: { version: `1.0.${i}`, replicas: 1 + (i % 90) },
        },
      })) as Outcome;
    let n = 0;
    let killed = false;
    const KILL_AFTER = 150 + Math.floor(Math.random() * 100);
    const worker = async () => {
      while (!killed) {
        const i = ++n;
        const id = `load-${i}`;
        sent.set(id, i);
        try {
          acked.set(id, await propose(first, i));
          if (acked.size === KILL_AFTER && !killed) {
            killed = true;
            await first.kill('SIGKILL');
          }
        } catch {
          // connection reset by the kill: not acknowledged
          return;
        }
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    expect(first.child.signalCode).toBe('SIGKILL');
    expect(acked.size).toBeGreaterThanOrEqual(KILL_AFTER);
    for (const o of acked.values()) expect(o.status).toBe('executed');

    // Restart on the same dir: the OS released the dead owner's lock.
    const second = await startIceDev(t.dir);
    procs.push(second);
    // Retry everything that was sent but not acknowledged, with the same ids.
    const unacked = [...sent.keys()].filter((id) => !acked.has(id));
    for (const id of unacked) expect((await propose(second, sent.get(id)!)).status).toBe('executed');
    // Acknowledged ones, retried, answer with their first outcome and do not execute again.
    const sample = [...acked.keys()].slice(0, 20);
    for (const id of sample) expect(await propose(second, sent.get(id)!)).toEqual(acked.get(id));
    await second.kill('SIGTERM');

    // Checked per chain, from the stopped data dir alone: every chain links and its signed
    // checkpoints match, each acknowledged outcome's transition is at the chain and seq it named.
    const report = await checkInvariants({ dataDir: t.dir, acknowledged: acked, retried: unacked });
    expect(report.violations).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.acknowledged).toBe(acked.size);
    expect(report.actors).toBe(ACTORS);
    // one chain per actor, and the runtime chain (the grant)
    expect(report.chains).toBe(ACTORS + 1);
    expect(report.executed).toBe(new Set([...acked.keys(), ...unacked]).size);
    expect(report.facts).toBeGreaterThan(acked.size * 3);
    console.log(`chaos: ${acked.size} acknowledged before SIGKILL, ${unacked.length} in flight retried, ${report.facts} facts checked`);
  });
});

import { createRuntime } from '../runtime.js';
import { createLogger } from '../util/logger.js';
import { replayActor, type ActorDefinition } from '../host/index.js';
import type { Outcome } from '../protocol/index.js';

export interface InvariantReport {
  ok: boolean;
  /** Every broken invariant, readable. */
  violations: string[];
  facts: number;
  actors: number;
  acknowledged: number;
}

export interface CheckInvariantsOptions {
  dataDir: string;
  /** The actor kinds of that data dir (default: the examples). */
  actors?: ActorDefinition[];
  /** Outcomes the proposers saw, by intent id. */
  acknowledged?: ReadonlyMap<string, Outcome>;
  /** Intent ids that were retried after a crash (each must have executed at most once). */
  retried?: Iterable<string>;
}

/**
 * Opens a stopped data dir and checks what a crash must never break:
 * - the hash chain and the signed checkpoints verify;
 * - every acknowledged `executed` outcome has exactly one transition fact, at the seq it named;
 * - every acknowledged denial or rejection has no transition;
 * - no intent ever has two transitions;
 * - every actor's snapshot equals a replay of its journal (state and context) and is not
 *   ahead of it.
 */
export async function checkInvariants(opts: CheckInvariantsOptions): Promise<InvariantReport> {
  const rt = await createRuntime({
    dataDir: opts.dataDir,
    ...(opts.actors ? { actors: opts.actors } : {}),
    passivateAfterMs: 0,
    logger: createLogger({ level: process.env.ICE_LOG_LEVEL ?? 'warn' }),
  });
  const violations: string[] = [];
  try {
    const v = rt.journal.verify();
    if (!v.ok) violations.push(`journal broken at #${v.brokenAt}: ${v.reason}`);
    const facts = rt.journal.read(1, Number.MAX_SAFE_INTEGER);
    const transitions = new Map<string, number[]>();
    for (const f of facts) {
      if (f.type === 'transition' && f.intentId) transitions.set(f.intentId, [...(transitions.get(f.intentId) ?? []), f.seq]);
    }
    for (const [id, seqs] of transitions)
      if (seqs.length > 1) violations.push(`intent ${id} transitioned ${seqs.length} times (#${seqs.join(', #')})`);
    for (const [id, o] of opts.acknowledged ?? []) {
      const seqs = transitions.get(id) ?? [];
      if (o.status === 'executed') {
        if (seqs.length !== 1) violations.push(`acknowledged ${id} has ${seqs.length} transitions`);
        else if (seqs[0] !== o.seq) violations.push(`acknowledged ${id} named transition #${o.seq}, the journal has #${seqs[0]}`);
      } else if (o.status !== 'pending' && seqs.length > 0 && o.status !== 'failed') {
        violations.push(`${id} was acknowledged ${o.status} but has a transition`);
      }
    }
    for (const id of opts.retried ?? []) {
      if ((transitions.get(id) ?? []).length > 1) violations.push(`retried ${id} executed more than once`);
    }
    const defs = new Map(rt.definitions().map((d) => [d.kind, d]));
    const byActor = new Map<string, typeof facts>();
    for (const f of facts) if (f.actor) byActor.set(f.actor, [...(byActor.get(f.actor) ?? []), f]);
    for (const a of rt.listActors()) {
      const def = defs.get(a.kind);
      const own = byActor.get(a.address) ?? [];
      if (!def || !own.some((f) => f.type === 'actor.started')) continue;
      const replay = replayActor(def, own);
      const detail = rt.actor(a.address)!;
      if (replay.state !== detail.state) violations.push(`${a.address}: snapshot state ${detail.state}, replay ${replay.state}`);
      if (JSON.stringify(replay.context) !== JSON.stringify(detail.context))
        violations.push(`${a.address}: snapshot context differs from replay`);
      const last = own.filter((f) => f.type === 'transition').at(-1);
      if (last && detail.seq < last.seq) violations.push(`${a.address}: snapshot at #${detail.seq} is behind transition #${last.seq}`);
      replay.actor.stop();
    }
    return {
      ok: violations.length === 0,
      violations,
      facts: facts.length,
      actors: rt.listActors().length,
      acknowledged: opts.acknowledged?.size ?? 0,
    };
  } finally {
    await rt.stop();
  }
}

import { ValidationError } from '../errors.js';
import type { ActorDefinition } from '../host/index.js';
import { replayActor, type ReplayMismatch } from '../host/replay.js';
import { FactType, type Fact } from '../protocol/index.js';
import { c } from './format.js';

/** Facts that change what an actor is: its transitions and its lifecycle. */
const HISTORY_TYPES: ReadonlySet<string> = new Set([
  FactType.actorStarted,
  FactType.transition,
  FactType.actorStopped,
  FactType.actorFailed,
  FactType.actorRestored,
  FactType.actorMigrated,
]);

/** One step of an actor's life (`ice actor history`). */
export interface HistoryRow {
  seq: number;
  at: string;
  type: Fact['type'];
  origin: Fact['origin'];
  intentId?: string;
  /** Who proposed the intent behind a transition, from its `intent.proposed` fact. */
  proposer?: string;
  event?: string;
  from?: string;
  to?: string;
  /** For a transition: whether replaying the journal to here gives the same from → to. */
  replayed?: 'same' | 'differs';
}

/**
 * The life of one actor from its chain: every transition (with the proposer of its intent)
 * and lifecycle fact, each transition checked against a replay of the chain when the kind's
 * definition is at hand.
 */
export function actorHistory(facts: readonly Fact[], def?: ActorDefinition): { rows: HistoryRow[]; mismatches: ReplayMismatch[] } {
  const proposers = new Map<string, string>();
  for (const f of facts)
    if (f.type === FactType.intentProposed && f.intentId !== undefined)
      proposers.set(f.intentId, (f.data.intent as { proposer: string }).proposer);
  let mismatches: ReplayMismatch[] = [];
  if (def && facts.some((f) => f.type === FactType.actorStarted)) {
    const r = replayActor(def, facts);
    r.actor.stop(); // no timer of the replayed machine keeps the command alive
    mismatches = r.mismatches;
  }
  const differs = new Set(mismatches.map((m) => m.seq));
  const rows = facts
    .filter((f) => HISTORY_TYPES.has(f.type))
    .map((f): HistoryRow => {
      const row: HistoryRow = { seq: f.seq, at: f.at, type: f.type, origin: f.origin };
      if (f.intentId !== undefined) row.intentId = f.intentId;
      const proposer = f.intentId !== undefined ? proposers.get(f.intentId) : undefined;
      if (proposer !== undefined) row.proposer = proposer;
      if (f.type === FactType.transition) {
        row.event = (f.data.event as { type: string }).type;
        row.from = String(f.data.from);
        row.to = String(f.data.to);
        if (def) row.replayed = differs.has(f.seq) ? 'differs' : 'same';
      }
      return row;
    });
  return { rows, mismatches };
}

export function formatHistory(address: string, rows: readonly HistoryRow[]): string {
  if (rows.length === 0) return c.dim(`(no history for ${address})`);
  return rows
    .map((r) => {
      const what =
        r.type === FactType.transition
          ? `${r.from} → ${c.bold(r.to ?? '')} on ${r.event}${r.proposer ? ` by ${r.proposer}` : ` (${r.origin})`}${r.intentId ? c.dim(` · intent ${r.intentId}`) : ''}`
          : r.type;
      const check = r.replayed === 'differs' ? c.red('  replay differs') : '';
      return `${c.dim(String(r.seq).padStart(6))} ${c.dim(r.at)}  ${what}${check}`;
    })
    .join('\n');
}

/** What an actor was just after fact `seq` of its chain (`ice actor at`). */
export interface ActorAt {
  address: string;
  seq: number;
  at: string;
  state: string;
  context: unknown;
  /** The last transition at or before `seq` (undefined: none yet since the start). */
  lastTransition?: number;
  mismatches: ReplayMismatch[];
}

/**
 * Rebuilds an actor as it was right after fact `seq` by replaying its chain from the start
 * with the kind's machine: the `actor.started` input, then each transition's event.
 * @throws ValidationError when the chain has no fact `seq`.
 */
export function actorAt(address: string, facts: readonly Fact[], seq: number, def: ActorDefinition): ActorAt {
  const upTo = facts.filter((f) => f.seq <= seq);
  const last = upTo[upTo.length - 1];
  if (!last || last.seq !== seq) {
    const newest = facts[facts.length - 1]?.seq ?? 0;
    throw new ValidationError(`${address} has no fact #${seq}`, [
      { path: '--seq', code: 'out_of_range', message: `got ${seq}; the chain has ${newest} facts`, expected: `a seq from 1 to ${newest}` },
    ]);
  }
  if (!upTo.some((f) => f.type === FactType.actorStarted))
    throw new ValidationError(`${address} had not started at #${seq}`, [
      {
        path: '--seq',
        code: 'out_of_range',
        message: `no actor.started fact at or before #${seq}`,
        expected: 'a seq at or after the actor.started fact',
      },
    ]);
  const r = replayActor(def, upTo);
  r.actor.stop();
  const lastTransition = [...upTo].reverse().find((f) => f.type === FactType.transition)?.seq;
  return {
    address,
    seq,
    at: last.at,
    state: r.state,
    context: r.context,
    ...(lastTransition !== undefined ? { lastTransition } : {}),
    mismatches: r.mismatches,
  };
}

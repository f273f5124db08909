import type { EffectRow, TimerRow } from '../host/timer-rows.js';
import { ValidationError } from '../errors.js';
import type { Fact, Grant, Outcome } from '../protocol/index.js';
import type { ActorInfo } from '../host/index.js';
import { ownStatus, type GrantStatus } from '../authority/delegation.js';

const useColor = process.stdout.isTTY === true && process.env.NO_COLOR === undefined;
const paint = (code: string) => (s: string) => (useColor ? `\u001b[${code}m${s}\u001b[0m` : s);
export const c = {
  green: paint('32'),
  red: paint('31'),
  yellow: paint('33'),
  cyan: paint('36'),
  dim: paint('2'),
  bold: paint('1'),
  magenta: paint('35'),
};

/** Reason codes that say why something was allowed; a denial shows only the others. */
const POSITIVE = new Set(['grant', 'policy_allow', 'state', 'approved']);

export function formatOutcome(o: Outcome): string {
  switch (o.status) {
    case 'executed':
      return `${c.green('✔ executed')}  ${o.from} → ${c.bold(o.to)}  ${c.dim(`decision ${o.decisionId}${o.grantId ? ` · grant ${o.grantId}` : ''} · transition #${o.seq}`)}`;
    case 'denied':
      return `${c.red('✘ denied')}    ${o.reasons
        .filter((r) => !POSITIVE.has(r.code))
        .map((r) => `${r.code}: ${r.message}`)
        .join('; ')}  ${c.dim(`decision ${o.decisionId} · #${o.seq}`)}`;
    case 'pending':
      return `${c.yellow('⧗ pending')}   ${o.reasons
        .filter((r) => r.code === 'approval_required' || r.code === 'approval_recorded')
        .map((r) => r.message)
        .join('; ')}  ${c.dim(`intent ${o.intentId} awaits approval · #${o.seq}`)}`;
    case 'rejected':
      return `${c.magenta('⊘ rejected')}  ${o.issues.map((i) => `${i.path || '(intent)'}: ${i.message}${i.expected ? ` (expected ${i.expected})` : ''}`).join('; ')}`;
    case 'failed':
      return `${c.red('! failed')}    ${o.error.code}: ${o.error.message}`;
  }
}

export function formatFact(f: Fact): string {
  const d = f.data;
  let what = '';
  switch (f.type) {
    case 'intent.proposed': {
      const i = d.intent as { proposer: string; action: string; params: unknown };
      what = `${i.proposer} proposes ${i.action} ${JSON.stringify(i.params)}`;
      break;
    }
    case 'decision': {
      const dec = d.decision as { verdict: string; reasons: Array<{ code: string }>; grantId?: string };
      what = `${dec.verdict}${dec.grantId ? ` (grant ${dec.grantId})` : ''} [${dec.reasons.map((r) => r.code).join(', ')}]`;
      break;
    }
    case 'transition':
      what = `${String(d.from)} → ${String(d.to)} on ${(d.event as { type: string }).type}`;
      break;
    case 'intent.rejected':
      what = (d.issues as Array<{ path: string; code: string }>).map((i) => `${i.path || '(intent)'}: ${i.code}`).join('; ');
      break;
    case 'grant.issued': {
      const g = d.grant as Grant;
      what = `${g.id}: ${g.subject} → ${g.scope}`;
      break;
    }
    case 'grant.delegated': {
      const g = d.grant as Grant;
      what = `${g.id}: ${g.subject} → ${g.scope} from ${String(d.parentId)} by ${String(d.by)}`;
      break;
    }
    case 'grant.revoked':
      what = `${String(d.grantId)} by ${String(d.by)}${typeof d.revokedWith === 'string' ? ` with ${d.revokedWith}` : ''}${Array.isArray(d.cascade) ? ` (and ${d.cascade.join(', ')})` : ''}`;
      break;
    case 'grant.used':
      what = `${String(d.grantId)} use ${String(d.uses)}/${String(d.maxUses)}`;
      break;
    default:
      what = JSON.stringify(d);
  }
  if (what.length > 140) what = what.slice(0, 137) + '...';
  return `${c.dim(String(f.seq).padStart(6))} ${c.dim(f.at.slice(11, 23))} ${f.type.padEnd(16)} ${(f.actor ?? '').padEnd(24)} ${what}${f.causes.length ? c.dim(` ← #${f.causes.join(',#')}`) : ''}`;
}

/** Actors as a table; `header: false` and a fixed `width` print a later page of one table. */
export function formatActors(rows: ActorInfo[], opts: { header?: boolean; width?: number } = {}): string {
  if (rows.length === 0) return opts.header === false ? '' : c.dim('(no actors)');
  const w = opts.width ?? Math.max(8, ...rows.map((r) => r.address.length));
  const lines = opts.header === false ? [] : [`${'ACTOR'.padEnd(w)}  ${'STATE'.padEnd(22)} ${'STATUS'.padEnd(8)} SEQ`];
  for (const r of rows) lines.push(`${r.address.padEnd(w)}  ${r.state.padEnd(22)} ${r.status.padEnd(8)} ${r.seq}`);
  return lines.join('\n');
}

/** Pending timers, earliest first, with how far off each is (or how overdue). */
export function formatTimers(rows: TimerRow[], now: number): string {
  if (rows.length === 0) return c.dim('(no pending timers)');
  const w = Math.max(8, ...rows.map((r) => r.actor.length + (r.source ? r.source.length + 1 : 0)));
  const lines = [`${'ACTOR'.padEnd(w)}  ${'DUE'.padEnd(24)} ${'IN'.padEnd(10)} EVENT`];
  for (const r of rows) {
    const who = r.source ? `${r.actor}/${r.source}` : r.actor;
    const left = r.dueAt - now;
    const inText = left >= 0 ? `${Math.round(left / 1000)} s` : c.yellow(`${Math.round(-left / 1000)} s late`);
    lines.push(`${who.padEnd(w)}  ${new Date(r.dueAt).toISOString().padEnd(24)} ${inText.padEnd(10)} ${r.event}`);
  }
  return lines.join('\n');
}

/** Effects started and not finished: where, which, attempts so far, running or when it retries. */
export function formatEffects(rows: EffectRow[], now: number): string {
  if (rows.length === 0) return c.dim('(no effects running or retrying)');
  const w = Math.max(8, ...rows.map((r) => r.actor.length));
  const lines = [`${'ACTOR'.padEnd(w)}  ${'EFFECT'.padEnd(16)} ${'STATE'.padEnd(16)} ATTEMPTS  NEXT`];
  for (const r of rows) {
    const next = r.running ? c.green('running') : r.retryAt <= now ? 'due' : `retry in ${Math.ceil((r.retryAt - now) / 1000)} s`;
    const err = r.lastError ? c.dim(`  last: ${r.lastError}`) : '';
    lines.push(`${r.actor.padEnd(w)}  ${r.name.padEnd(16)} ${r.state.padEnd(16)} ${String(r.attempts).padEnd(9)} ${next}${err}`);
  }
  return lines.join('\n');
}

export function formatGrants(grants: Grant[]): string {
  if (grants.length === 0) return c.dim('(no grants)');
  return grants
    .map((g) => {
      const status = paintStatus(ownStatus(g, Date.now()));
      return `${g.id.padEnd(26)} ${status.padEnd(useColor ? 16 : 7)} ${g.subject} → ${g.scope}  ${c.dim(grantTerms(g).join(' · '))}`;
    })
    .join('\n');
}

/** A grant status, coloured. */
export function paintStatus(status: GrantStatus): string {
  return status === 'active' ? c.green(status) : status === 'revoked' ? c.red(status) : c.yellow(status);
}

/** A grant's limits and origin: run, expiry, uses, the grant it was delegated from. */
export function grantTerms(g: Grant): string[] {
  return [
    g.parentId ? `from ${g.parentId} by ${g.delegatedBy ?? '?'}` : '',
    g.runId ? `run ${g.runId}` : '',
    g.expiresAt ? `until ${g.expiresAt}` : '',
    g.maxUses !== undefined ? `uses ${g.uses}/${g.maxUses}${g.delegatedUses ? ` (+${g.delegatedUses} delegated)` : ''}` : `uses ${g.uses}`,
  ].filter(Boolean);
}

/** What a duration looks like, for messages. */
export const DURATION_HINT = 'a duration with a unit, e.g. 30s, 15m, 2h, 7d';

const DURATION_UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/**
 * `500ms`, `30s`, `15m`, `2h`, `7d` in milliseconds. A bare number is refused: `2` could mean
 * 2 ms or 2 s, and a grant that expires 2 ms after it is issued is never what was meant.
 * @throws ValidationError naming what was given and what is expected.
 */
export function parseDuration(s: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(s.trim());
  if (!m) {
    throw new ValidationError(`not a duration: ${JSON.stringify(s)}`, [
      { path: '', code: 'invalid_duration', message: `got ${JSON.stringify(s)}`, expected: DURATION_HINT },
    ]);
  }
  return Number(m[1]) * DURATION_UNITS[m[2] as keyof typeof DURATION_UNITS];
}

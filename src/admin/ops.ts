import { z } from 'zod';
import { NotFoundError, ValidationError } from '../errors.js';
import { GrantDelegationSchema, GrantRequestSchema, IdSchema, findNotUnicode, parseChildAddress } from '../protocol/index.js';
import { zodIssues, type EnsureGrantRequest } from '../authority/index.js';
import type { Runtime } from '../runtime.js';
import { PolicySourceSchema } from '../policy/index.js';
import { storedSnapshotPage } from '../host/migrations.js';
import { ActorPageArgsSchema } from '../host/actor-page.js';

/** What `rt.approvals.approve` / `deny` take, from the API and from an operator alike. */
export const ApproveArgs = z.strictObject({ intentId: IdSchema, by: z.string().min(1).max(200), note: z.string().max(4000).optional() });
export const DenyArgs = z.strictObject({ intentId: IdSchema, by: z.string().min(1).max(200), reason: z.string().min(1).max(4000) });
export const ExpireArgs = z.strictObject({ intentId: IdSchema });

/**
 * Every change an operator can make, as named operations with a zod schema for their
 * arguments. The CLI runs them against a runtime it opens itself, or — when another process
 * owns the data dir — sends them to that process's admin endpoint, which runs the same code.
 */
const S = {
  propose: z.object({ intent: z.unknown(), timeoutMs: z.int().positive().optional() }),
  /** `ifAbsent`: return the actor if it exists with the same input (`created: false`). */
  spawn: z.strictObject({ address: z.string(), input: z.unknown().optional(), ifAbsent: z.boolean().optional() }),
  /** `ensure`: issue only if no grant has this `id`; the same terms return it (see `rt.grants.ensure`). */
  'grant.issue': GrantRequestSchema.extend({ ensure: z.boolean().optional() }),
  'grant.revoke': z.strictObject({ id: z.string(), by: z.string().optional(), reason: z.string().optional() }),
  /** A holder (`by`; over `ice.admin.as.<principal>` the principal) delegates a narrower grant from `parentId`. */
  'grant.delegate': GrantDelegationSchema,
  approve: ApproveArgs,
  deny: DenyArgs,
  /** Denies a pending intent past its approval deadline (`approval_expired`); nothing before it. */
  'approval.expire': ExpireArgs,
  'actor.stop': z.strictObject({ address: z.string(), reason: z.string().min(1) }),
  /** Restarts a failed actor (an `actor.restarted` fact, origin operator). */
  'actor.restart': z.strictObject({ address: z.string(), by: z.string().min(1).max(200), reason: z.string().min(1).max(4000).optional() }),
  /** Pending durable timers, earliest first. */
  'timers.ls': z.strictObject({ limit: z.int().positive().max(100_000).optional() }),
  /** Durable effects started and not finished (running or retrying). */
  'effects.ls': z.strictObject({ limit: z.int().positive().max(100_000).optional() }),
  signal: z.strictObject({ address: z.string(), event: z.looseObject({ type: z.string() }), reason: z.string().min(1) }),
  // Reads: the same answers from one node (its SQLite store) and from a cluster (JetStream).
  /** One page of actors, `{ rows, next? }` (src/host/actor-page.ts): limit 1-1000 (default 100), after, kind, status, state. */
  'actors.ls': ActorPageArgsSchema,
  'actor.show': z.strictObject({ address: z.string(), limit: z.int().positive().max(100_000).optional() }),
  /** Stored snapshot records, a page at a time by address (`ice actors check`): `{ records, next? }`. */
  'actors.snapshots': z.strictObject({ after: z.string().optional(), limit: z.int().positive().max(1000).optional() }),
  'journal.tail': z.strictObject({ limit: z.int().positive().max(100_000).optional(), chain: z.string().optional() }),
  'journal.chain': z.strictObject({
    chain: z.string(),
    fromSeq: z.int().positive().optional(),
    limit: z.int().positive().max(100_000).optional(),
  }),
  'journal.verify': z.strictObject({}),
  /** Every fact of one intent, in every chain it touched (`ice why`). */
  'journal.intent': z.strictObject({ intentId: IdSchema }),
  /** One page of a journal export (`ice journal export`; src/journal/export-format.ts). */
  'journal.export': z.strictObject({
    after: z.int().min(0),
    limit: z.int().positive().max(10_000),
    actor: z.string().optional(),
    sinceTime: z.iso.datetime().optional(),
    sinceSeq: z.int().positive().optional(),
  }),
  /** The authority's public keys (a cluster: every node's). */
  'authority.keys': z.strictObject({}),
  'grant.ls': z.strictObject({}),
  /** One grant with its status, its chain (root → … → it) and the grants delegated from it. */
  'grant.show': z.strictObject({ id: IdSchema }),
  approvals: z.strictObject({}),
  /** A Cedar policy set (the files' text) to install as the next version on every node. */
  'policy.apply': PolicySourceSchema.extend({ by: z.string().min(1).max(200) }),
  'policy.ls': z.strictObject({}),
  'policy.show': z.strictObject({ version: z.int().positive().optional() }),
} as const;

/** Fact bytes after which a `journal.export` page ends (one fact may pass it: at most 64 KiB of intent more). */
const EXPORT_PAGE_BYTES = 384 * 1024;

export type AdminOp = keyof typeof S;
export const ADMIN_OPS = Object.keys(S) as AdminOp[];

type Args<K extends AdminOp> = z.output<(typeof S)[K]>;
const handlers: { [K in AdminOp]: (rt: Runtime, a: Args<K>) => Promise<unknown> } = {
  propose: (rt, a) => rt.propose(a.intent as Record<string, unknown>, a.timeoutMs !== undefined ? { timeoutMs: a.timeoutMs } : {}),
  spawn: (rt, a) => rt.spawn(a.address, a.input, { ifAbsent: a.ifAbsent === true }),
  'grant.issue': (rt, { ensure, ...req }) =>
    // ensure checks `id` and `ttlMs` itself (ValidationError naming them)
    ensure ? rt.grants.ensure(req as EnsureGrantRequest) : rt.grants.issue(req),
  'grant.revoke': (rt, a) => rt.grants.revoke(a.id, a.by, a.reason),
  'grant.delegate': (rt, a) => rt.grants.delegate(a),
  approve: (rt, a) => rt.approvals.approve(a.intentId, a.by, a.note),
  deny: (rt, a) => rt.approvals.deny(a.intentId, a.by, a.reason),
  'approval.expire': async (rt, a) => (await rt.approvals.expire(a.intentId)) ?? null,
  'actor.stop': async (rt, a) => {
    await rt.stopActor(a.address, a.reason);
    return { stopped: a.address };
  },
  'actor.restart': (rt, a) => rt.restartActor(a.address, a.by, a.reason),
  'timers.ls': (rt, a) => rt.timers(a.limit !== undefined ? { limit: a.limit } : {}),
  'effects.ls': (rt, a) => rt.effects(a.limit !== undefined ? { limit: a.limit } : {}),
  signal: (rt, a) => rt.signal(a.address, a.event, a.reason),
  'actors.ls': (rt, a) => rt.listActorsPage(a),
  'actor.show': async (rt, a) => {
    const detail = await rt.actor(a.address);
    if (!detail) throw new NotFoundError(`actor ${a.address}`);
    // a child's history is part of its top-level actor's chain
    const chain = parseChildAddress(a.address)?.parent ?? a.address;
    return { ...detail, facts: await rt.journal.tail({ chain, limit: a.limit ?? 20 }) };
  },
  'actors.snapshots': (rt, a) =>
    storedSnapshotPage(rt.store, {
      ...(a.after !== undefined ? { after: a.after } : {}),
      limit: a.limit ?? 200,
      maxBytes: EXPORT_PAGE_BYTES,
    }),
  'journal.tail': (rt, a) =>
    rt.journal.tail({ ...(a.limit !== undefined ? { limit: a.limit } : {}), ...(a.chain ? { chain: a.chain } : {}) }),
  'journal.chain': (rt, a) => rt.journal.chain(a.chain, a.fromSeq ?? 1, a.limit ?? 1000),
  'journal.verify': (rt) => rt.journal.verify(),
  'journal.intent': (rt, a) => rt.journal.factsOfIntent(a.intentId),
  'journal.export': (rt, a) =>
    rt.journal.exportPage({
      after: a.after,
      limit: a.limit,
      // the reply must fit a NATS message (default max_payload 1 MiB)
      maxBytes: EXPORT_PAGE_BYTES,
      ...(a.actor !== undefined ? { actor: a.actor } : {}),
      ...(a.sinceTime !== undefined ? { sinceTime: a.sinceTime } : {}),
      ...(a.sinceSeq !== undefined ? { sinceSeq: a.sinceSeq } : {}),
    }),
  'authority.keys': (rt) => rt.authorityKeys(),
  'grant.ls': (rt) => Promise.resolve(rt.grants.list()),
  'grant.show': (rt, a) => Promise.resolve(rt.grants.show(a.id)),
  approvals: (rt) => rt.approvals.list(),
  'policy.apply': (rt, { by, ...source }) => rt.policies.apply(source, by),
  'policy.ls': (rt) => Promise.resolve(rt.policies.list().map(policySummary)),
  'policy.show': (rt, a) => Promise.resolve(rt.policies.show(a.version)),
};

/** A version without its files' text (`ice policy ls`). */
export function policySummary(r: {
  version: number;
  hash: string;
  appliedBy: string;
  appliedAt: string;
  count: number;
  files: Array<{ name: string }>;
}) {
  return {
    version: r.version,
    hash: r.hash,
    appliedBy: r.appliedBy,
    appliedAt: r.appliedAt,
    count: r.count,
    files: r.files.map((f) => f.name),
  };
}

export async function runAdminOp(rt: Runtime, op: string, rawArgs: unknown): Promise<unknown> {
  if (!(op in S))
    throw new ValidationError(`unknown admin operation ${op}`, [
      { path: 'op', code: 'unknown_op', message: op, expected: ADMIN_OPS.join(', ') },
    ]);
  const k = op as AdminOp;
  // Whatever an operation records is hashed and signed as RFC 8785 canonical JSON, which has no
  // form for a lone surrogate: refused here, naming the field, before anything is looked up.
  const notUnicode = findNotUnicode(rawArgs, 'args');
  if (notUnicode) throw new ValidationError(`invalid arguments for ${op}`, [notUnicode]);
  const parsed = S[k].safeParse(rawArgs ?? {});
  if (!parsed.success) throw new ValidationError(`invalid arguments for ${op}`, zodIssues(parsed.error, 'args'));
  return (handlers[k] as (rt: Runtime, a: unknown) => Promise<unknown>)(rt, parsed.data);
}

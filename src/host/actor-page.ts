import { z } from 'zod';
import { ValidationError } from '../errors.js';
import { ACTOR_KIND_RE, isAddress } from '../protocol/address.js';
import { ActorStatus } from '../protocol/snapshot.js';
import { zodIssues } from '../authority/validate.js';

/**
 * One page of the actor listing (`ice actors ls`, admin op `actors.ls`, `rt.listActorsPage`).
 *
 * Order: actor address, by code unit (the stores' order: SQLite's binary collation, a sort
 * of the JetStream keys); addresses are ASCII, so this is byte order. `after` is the last
 * address of the previous page (`next`); a page holds the actors after it that match every
 * filter given, at most `limit`. Continuing from `next` until there is none visits every
 * actor that exists all along exactly once; actors created meanwhile appear when their
 * address is still ahead of the cursor.
 */

/** Rows per page when none is asked for (the CLI's default too). */
export const ACTOR_PAGE_DEFAULT = 100;
/** The largest page: a page's reply must fit one NATS message (1 MiB by default) with room to spare. */
export const ACTOR_PAGE_MAX = 1000;

export const ACTOR_STATUSES = Object.values(ActorStatus);

export const ActorPageArgsSchema = z.strictObject({
  /** Start after this address (the `next` of the previous page). */
  after: z.string().refine(isAddress, { message: 'expected an actor address "kind/id" (the `next` of the previous page)' }).optional(),
  limit: z.int().min(1).max(ACTOR_PAGE_MAX).optional(),
  kind: z.string().regex(ACTOR_KIND_RE, 'expected an actor kind (a-z0-9-, starting with a letter)').optional(),
  status: z.enum(ACTOR_STATUSES).optional(),
  /** A state (`a.b` for nested states): actors in it or in a state nested in it (`a` matches `a.b`). */
  state: z.string().min(1).max(1000).optional(),
});
export type ActorPageArgs = z.input<typeof ActorPageArgsSchema>;

/** Page arguments checked, with the limit filled in. */
export interface ActorPageQuery {
  after?: string;
  limit: number;
  kind?: string;
  status?: ActorStatus;
  state?: string;
}

/** A page: its rows in address order, and `next` (pass it as `after`) when more may follow. */
export interface ActorPage<Row> {
  rows: Row[];
  next?: string;
}

/**
 * Checks page arguments.
 * @throws ValidationError naming the field (`limit`, `after`, `kind`, `status`, `state`), what
 *   was expected and what to do.
 */
export function parseActorPageArgs(raw: unknown, prefix = ''): ActorPageQuery {
  const r = ActorPageArgsSchema.safeParse(raw ?? {});
  if (!r.success)
    throw new ValidationError(
      `invalid actor listing arguments (limit 1-${ACTOR_PAGE_MAX}, after an address from \`next\`, status one of ${ACTOR_STATUSES.join(', ')})`,
      zodIssues(r.error, prefix),
    );
  const { limit, ...rest } = r.data;
  return { ...rest, limit: limit ?? ACTOR_PAGE_DEFAULT };
}

/** True when `state` is `filter` or a state nested in it (`a.b` is in `a`). */
export function stateMatches(state: string, filter: string): boolean {
  return state === filter || (state.length > filter.length && state.startsWith(filter) && state[filter.length] === '.');
}

/** Whether a row passes the page's filters (not the cursor). */
export function matchesActorPage(row: { kind: string; status: string; state: string }, q: ActorPageQuery): boolean {
  return (
    (q.kind === undefined || row.kind === q.kind) &&
    (q.status === undefined || row.status === q.status) &&
    (q.state === undefined || stateMatches(row.state, q.state))
  );
}

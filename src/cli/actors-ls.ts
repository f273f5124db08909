import { ACTOR_PAGE_MAX, type ActorPage, type ActorPageArgs } from '../host/actor-page.js';
import type { ActorInfo } from '../host/index.js';
import type { ActorStatus } from '../protocol/index.js';
import { c, formatActors } from './format.js';

export interface ActorsLsOptions {
  kind?: string;
  status?: ActorStatus;
  state?: string;
  /** Rows to print (pages of at most ACTOR_PAGE_MAX are asked for until there are this many). */
  limit: number;
  after?: string;
  /** Every row, page by page (no limit). */
  all?: boolean;
  json?: boolean;
}

/**
 * `ice actors ls`: asks for pages (`actors.ls`, at most ACTOR_PAGE_MAX rows each) until
 * `limit` rows are printed, or with `all` until there are no more. Text is printed a page at
 * a time; JSON is one array of every row (as before pages). When rows are left, says how to
 * go on: `next: --after <address>` (on stderr with --json, so stdout stays one JSON value).
 */
export async function actorsLs(
  o: ActorsLsOptions,
  page: (args: ActorPageArgs) => Promise<ActorPage<ActorInfo>>,
  out: { print: (s: string) => void; printErr: (s: string) => void },
): Promise<void> {
  const filters = {
    ...(o.kind !== undefined ? { kind: o.kind } : {}),
    ...(o.status !== undefined ? { status: o.status } : {}),
    ...(o.state !== undefined ? { state: o.state } : {}),
  };
  const json: Array<Omit<ActorInfo, 'owner' | 'active'>> = [];
  let after = o.after;
  let shown = 0;
  let width: number | undefined;
  let next: string | undefined;
  for (;;) {
    const limit = o.all ? ACTOR_PAGE_MAX : Math.min(ACTOR_PAGE_MAX, o.limit - shown);
    const p = await page({ ...filters, limit, ...(after !== undefined ? { after } : {}) });
    if (o.json) json.push(...p.rows.map(({ owner: _o, active: _a, ...r }) => r));
    else if (p.rows.length > 0) {
      width ??= Math.max(24, ...p.rows.map((r) => r.address.length));
      out.print(formatActors(p.rows, { header: shown === 0, width }));
    }
    shown += p.rows.length;
    next = p.next;
    if (next === undefined || (!o.all && shown >= o.limit)) break;
    after = next;
  }
  if (o.json) out.print(JSON.stringify(json, null, 2));
  else if (shown === 0) out.print(formatActors([]));
  if (next !== undefined) {
    const hint = `next: --after ${next}`;
    if (o.json) out.printErr(hint);
    else out.print(c.dim(hint));
  }
}

import Database from 'better-sqlite3';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createMachine } from 'xstate';
import { z } from 'zod';
import { exampleActors } from '../../actors/index.js';
import { runAdminOp } from '../../src/admin/index.js';
import { ManualClock, ValidationError, defineActor, type ActorInfo, type Runtime } from '../../src/index.js';
import { SqliteStore } from '../../src/store/index.js';
import { ice } from '../helpers/ice-cli.js';
import { MODES, iid, tempRuntime } from '../helpers/runtime.js';

/** A kind with a nested state (`open.new`, `open.triaged`) and a final one (`closed`). */
const ticketMachine = createMachine({
  id: 'ticket',
  initial: 'open',
  states: {
    open: { initial: 'new', states: { new: { on: { TRIAGE: 'triaged' } }, triaged: {} }, on: { CLOSE: '#ticket.closed' } },
    closed: { type: 'final' },
  },
});
const ticket = defineActor({ kind: 'ticket', machine: ticketMachine, events: { TRIAGE: z.strictObject({}), CLOSE: z.strictObject({}) } });
const actors = [...exampleActors, ticket];

const deployments = Array.from({ length: 12 }, (_, i) => `deployment/d${String(i).padStart(2, '0')}`);
const tickets = Array.from({ length: 6 }, (_, i) => `ticket/t${i}`);
const ALL = [...deployments, ...tickets].sort();

/**
 * 12 deployments in draft (d03 and d07 stopped), 6 tickets: t1 and t2 triaged (`open.triaged`),
 * t5 closed (final: done), the others `open.new`.
 */
async function populate(rt: Runtime): Promise<void> {
  for (const a of deployments) await rt.spawn(a, { service: a.slice(11) });
  for (const a of tickets) await rt.spawn(a);
  await rt.grants.issue({ subject: 'agent:lister', scope: 'ticket/*:*' });
  for (const [target, action] of [
    ['ticket/t1', 'TRIAGE'],
    ['ticket/t2', 'TRIAGE'],
    ['ticket/t5', 'CLOSE'],
  ] as const) {
    const out = await rt.propose({ id: iid(), proposer: 'agent:lister', target, action, params: {} });
    expect(out.status, JSON.stringify(out)).toBe('executed');
  }
  await rt.stopActor('deployment/d03', 'listing test');
  await rt.stopActor('deployment/d07', 'listing test');
}

/** Every page from `args`, following `next`; each page at most `limit` rows. */
async function allPages(
  rt: Runtime,
  args: { limit: number; kind?: string; status?: 'active' | 'done' | 'stopped' | 'failed'; state?: string },
) {
  const pages: ActorInfo[][] = [];
  for (let after: string | undefined; ;) {
    const page = await rt.listActorsPage({ ...args, ...(after !== undefined ? { after } : {}) });
    expect(page.rows.length).toBeLessThanOrEqual(args.limit);
    pages.push(page.rows);
    if (page.next === undefined) break;
    expect(page.next).toBe(page.rows.at(-1)?.address);
    after = page.next;
    expect(pages.length).toBeLessThan(100);
  }
  return pages;
}
const addresses = (rows: ActorInfo[]) => rows.map((r) => r.address);

describe.each(MODES)('actor listing by pages (%s)', (mode) => {
  it('covers every actor exactly once, filters by kind, status and state, and lists passivated actors from the store', async () => {
    const clock = new ManualClock();
    const h = await tempRuntime({ mode, actors, clock, passivateAfterMs: 0 });
    try {
      const rt = h.rt;
      await populate(rt);

      const pages = await allPages(rt, { limit: 5 });
      expect(pages.map((p) => p.length)).toEqual([5, 5, 5, 3]);
      expect(addresses(pages.flat())).toEqual(ALL);
      expect(new Set(addresses(pages.flat())).size).toBe(ALL.length);
      // a page that ends exactly at the last actor says there is none after it
      const exact = await rt.listActorsPage({ limit: ALL.length });
      expect(addresses(exact.rows)).toEqual(ALL);
      expect(exact.next).toBeUndefined();
      expect((await rt.listActorsPage()).rows).toHaveLength(ALL.length); // default limit 100
      // the cursor need not be a listed actor: any address continues after it
      expect(addresses((await rt.listActorsPage({ after: 'deployment/d05x', limit: 3 })).rows)).toEqual([
        'deployment/d06',
        'deployment/d07',
        'deployment/d08',
      ]);
      expect((await rt.listActorsPage({ after: 'ticket/t5' })).rows).toEqual([]);

      // kind
      const ticketPages = await allPages(rt, { kind: 'ticket', limit: 4 });
      expect(addresses(ticketPages.flat())).toEqual(tickets);
      expect(ticketPages.flat().every((r) => r.kind === 'ticket')).toBe(true);
      expect((await rt.listActorsPage({ kind: 'run' })).rows).toEqual([]);
      // status
      expect(addresses((await allPages(rt, { status: 'stopped', limit: 1 })).flat())).toEqual(['deployment/d03', 'deployment/d07']);
      expect(addresses((await rt.listActorsPage({ status: 'done' })).rows)).toEqual(['ticket/t5']);
      expect((await rt.listActorsPage({ status: 'failed' })).rows).toEqual([]);
      // state: the state itself or one nested in it, never a mere prefix of a name
      expect(addresses((await allPages(rt, { state: 'open', limit: 2 })).flat())).toEqual([
        'ticket/t0',
        'ticket/t1',
        'ticket/t2',
        'ticket/t3',
        'ticket/t4',
      ]);
      expect(addresses((await rt.listActorsPage({ state: 'open.triaged' })).rows)).toEqual(['ticket/t1', 'ticket/t2']);
      expect((await rt.listActorsPage({ state: 'ope' })).rows).toEqual([]);
      expect((await rt.listActorsPage({ state: 'closed' })).rows).toMatchObject([
        { address: 'ticket/t5', state: 'closed', status: 'done' },
      ]);
      // filters together, paged
      const draftActive = await allPages(rt, { kind: 'deployment', status: 'active', state: 'draft', limit: 3 });
      expect(addresses(draftActive.flat())).toEqual(deployments.filter((a) => a !== 'deployment/d03' && a !== 'deployment/d07'));

      // passivated: not in memory, listed from the store with what it stored
      const activeBefore = rt.stats().active;
      expect(activeBefore).toBeGreaterThan(0);
      expect((await rt.listActorsPage({ kind: 'ticket' })).rows.find((r) => r.address === 'ticket/t1')).toMatchObject({ active: true });
      clock.advance(1000);
      expect(await rt.passivateIdle(0)).toBe(activeBefore);
      expect(rt.stats().active).toBe(0);
      const afterPassivation = (await allPages(rt, { limit: 7 })).flat();
      expect(addresses(afterPassivation)).toEqual(ALL);
      expect(afterPassivation.every((r) => !r.active)).toBe(true);
      expect(afterPassivation.find((r) => r.address === 'ticket/t1')).toMatchObject({ state: 'open.triaged', status: 'active' });
      expect(addresses((await rt.listActorsPage({ state: 'open.triaged' })).rows)).toEqual(['ticket/t1', 'ticket/t2']);

      // the admin op answers { rows, next } with the same pages
      const viaOp = (await runAdminOp(rt, 'actors.ls', { limit: 5, kind: 'deployment' })) as { rows: ActorInfo[]; next?: string };
      expect(addresses(viaOp.rows)).toEqual(deployments.slice(0, 5));
      expect(viaOp.next).toBe('deployment/d04');

      // an actor created after a page, ahead of its cursor, is in the pages that continue it
      const before = await rt.listActorsPage({ limit: 6 });
      expect(before.next).toBe('deployment/d05');
      await rt.spawn('deployment/d05a', { service: 'late' });
      expect(addresses((await rt.listActorsPage({ after: before.next!, limit: 2 })).rows)).toEqual(['deployment/d05a', 'deployment/d06']);
    } finally {
      await h.close();
    }
  });

  it('refuses bad page arguments with a typed error naming the field', async () => {
    const h = await tempRuntime({ mode });
    try {
      const refused = async (args: unknown, path: string, fn: (a: unknown) => Promise<unknown>) => {
        const err = await fn(args).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, JSON.stringify(args)).toBeInstanceOf(ValidationError);
        expect((err as ValidationError).issues.map((i) => i.path)).toContain(path);
      };
      const page = (a: unknown) => h.rt.listActorsPage(a as never);
      const op = (a: unknown) => runAdminOp(h.rt, 'actors.ls', a);
      for (const [args, field] of [
        [{ limit: 0 }, 'limit'],
        [{ limit: 1001 }, 'limit'],
        [{ limit: 2.5 }, 'limit'],
        [{ limit: '10' }, 'limit'],
        [{ status: 'sleeping' }, 'status'],
        [{ after: 'not an address' }, 'after'],
        [{ kind: 'Deployment' }, 'kind'],
        [{ state: '' }, 'state'],
      ] as const) {
        await refused(args, field, page);
        await refused(args, `args.${field}`, op);
      }
      await refused({ offset: 3 }, 'args', op); // unknown field
    } finally {
      await h.close();
    }
  });

  it('ice actors ls pages, filters, continues with --after, and refuses bad values', async () => {
    const h = await tempRuntime({ mode, actors });
    try {
      await populate(h.rt);
      await h.rt.stop(); // embedded: the CLI reads the data dir; cluster: a second node answers below
      const where = mode === 'embedded' ? ['--data', h.dir] : ['--nats', h.server!.url];
      if (mode === 'cluster') h.rt = await h.node('n2', { actors });
      const ls = async (...args: string[]) => {
        const r = await ice(['actors', 'ls', ...args, ...where]);
        return r;
      };
      const json = (stdout: string) => (JSON.parse(stdout) as Array<{ address: string }>).map((r) => r.address);

      // default: up to 100, everything here, no hint
      const all = await ls('--json');
      expect(all.code, all.stderr).toBe(0);
      expect(json(all.stdout)).toEqual(ALL);
      expect(all.stderr).not.toContain('next:');

      // a page, the hint, and its continuation until the end
      const seen: string[] = [];
      let args = ['--limit', '5'];
      for (let i = 0; i < 10; i++) {
        const r = await ls(...args, '--json');
        expect(r.code, r.stderr).toBe(0);
        seen.push(...json(r.stdout));
        const m = /next: --after (\S+)/.exec(r.stderr);
        if (!m) break;
        args = ['--limit', '5', '--after', m[1]!];
      }
      expect(seen).toEqual(ALL);
      const text = await ls('--limit', '2');
      expect(text.code).toBe(0);
      expect(text.stdout).toMatch(/^ACTOR\s+STATE\s+STATUS\s+SEQ/);
      expect(text.stdout).toContain('deployment/d00');
      expect(text.stdout).toContain('next: --after deployment/d01');

      // filters
      expect(json((await ls('--kind', 'ticket', '--json')).stdout)).toEqual(tickets);
      expect(json((await ls('--status', 'stopped', '--json')).stdout)).toEqual(['deployment/d03', 'deployment/d07']);
      expect(json((await ls('--state', 'open.triaged', '--json')).stdout)).toEqual(['ticket/t1', 'ticket/t2']);
      expect(json((await ls('--state', 'open', '--kind', 'ticket', '--status', 'active', '--json')).stdout)).toEqual(
        tickets.filter((t) => t !== 'ticket/t5'),
      );
      // --all: every page (the CLI asks for up to 1000 a page), no hint
      const every = await ls('--all', '--limit', '1', '--json');
      expect(json(every.stdout)).toEqual(ALL);
      expect(every.stderr).not.toContain('next:');
      const none = await ls('--status', 'failed');
      expect(none.stdout).toContain('(no actors)');

      // bad values: refused before anything is read, naming the option and what it takes
      for (const [bad, option, expected] of [
        [['--limit', '0'], '--limit', 'an integer from 1 to 100000'],
        [['--limit', 'ten'], '--limit', 'an integer from 1 to 100000'],
        [['--status', 'sleeping'], '--status', 'one of active, done, stopped, failed'],
        [['--after', 'nope'], '--after', 'an actor address "kind/id"'],
        [['--kind', 'Bad Kind'], '--kind', 'a kind'],
      ] as const) {
        const r = await ls(...bad);
        expect(r.code, `${bad.join(' ')}: ${r.stdout}`).not.toBe(0);
        expect(r.stderr).toContain(option);
        expect(r.stderr).toContain(expected);
        expect(r.stdout).toBe('');
      }
    } finally {
      await h.close();
    }
  });
});

describe('actor listing in an SQLite store written before its indexes', () => {
  it('lists without them read-only, and a node creates them at its next start', async () => {
    const h = await tempRuntime({ mode: 'embedded' });
    try {
      const dir = h.dir;
      for (let i = 0; i < 5; i++) await h.rt.spawn(`deployment/x${i}`, { service: `x${i}` });
      await h.rt.stop();
      const indexes = () => {
        const db = new Database(join(dir, 'ice.db'), { readonly: true });
        try {
          return (
            db
              .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'snapshots' AND sql IS NOT NULL")
              .all() as Array<{ name: string }>
          )
            .map((r) => r.name)
            .sort();
        } finally {
          db.close();
        }
      };
      expect(indexes()).toEqual(['snapshots_state', 'snapshots_status']);
      // as a store of the version before them
      const db = new Database(join(dir, 'ice.db'));
      db.exec('DROP INDEX snapshots_status; DROP INDEX snapshots_state');
      db.close();
      expect(indexes()).toEqual([]);

      const ro = new SqliteStore(dir, { readonly: true });
      try {
        expect(ro.actorPage({ limit: 2, status: 'active' })).toEqual({
          rows: [expect.objectContaining({ actor: 'deployment/x0' }), expect.objectContaining({ actor: 'deployment/x1' })],
          next: 'deployment/x1',
        });
        expect(ro.actorPage({ limit: 10, state: 'draft', after: 'deployment/x3' }).rows.map((r) => r.actor)).toEqual(['deployment/x4']);
      } finally {
        await ro.close();
      }
      const rt = await h.restart();
      expect(indexes()).toEqual(['snapshots_state', 'snapshots_status']);
      expect((await rt.listActorsPage({ status: 'active', limit: 3 })).next).toBe('deployment/x2');
    } finally {
      await h.close();
    }
  });
});

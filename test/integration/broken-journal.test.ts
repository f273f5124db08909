import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { JournalBrokenAtStartError, chainFact, createRuntime, type Fact, type Runtime } from '../../src/index.js';
import { SqliteStore } from '../../src/store/index.js';
import { ice } from '../helpers/ice-cli.js';
import { startIceProcess } from '../../src/testing/index.js';
import { MODES, iid, tempDir, tempRuntime, type TempRuntime } from '../helpers/runtime.js';

/**
 * A node checks its journal before it serves: a changed fact is refused at start with its
 * chain, seq and the way forward; serving anyway takes an explicit option and leaves a
 * `journal.broken` fact; a broken chain is never appended to, whatever the option.
 */

const BOT = 'agent:bot';
const dirs: Array<() => void> = [];
const running: Runtime[] = [];
afterEach(async () => {
  for (const rt of running.splice(0)) await rt.stop();
  for (const d of dirs.splice(0)) d();
});

async function start(dir: string, opts: { serveBrokenJournal?: boolean } = {}): Promise<Runtime> {
  const rt = await createRuntime({ dataDir: dir, ...opts });
  running.push(rt);
  return rt;
}
async function stop(rt: Runtime): Promise<void> {
  running.splice(running.indexOf(rt), 1);
  await rt.stop();
}

const configure = (rt: Runtime, target: string, version: string, replicas: number) =>
  rt.propose({ id: iid(), proposer: BOT, target, action: 'CONFIGURE', params: { version, replicas } });

/** Two deployments with a few configurations each; returns the dir and every fact in write order. */
async function history(dir?: string): Promise<{ dir: string; facts: Fact[] }> {
  const d =
    dir ??
    (() => {
      const t = tempDir('ice-broken-');
      dirs.push(t.cleanup);
      return t.dir;
    })();
  const rt = await start(d);
  await rt.grants.issue({ subject: BOT, scope: 'deployment/*:CONFIGURE' });
  for (const id of ['a', 'b']) {
    if (!(await rt.actor(`deployment/${id}`))) await rt.spawn(`deployment/${id}`, { service: id });
    for (let i = 0; i < 3; i++) {
      const o = await configure(rt, `deployment/${id}`, `1.${i}.0`, 2);
      expect(o.status).toBe('executed');
    }
  }
  await stop(rt);
  const store = new SqliteStore(d, { readonly: true });
  const facts = store.factRows(1, 100_000).map((r) => ({ ...(JSON.parse(r.body) as Fact), prev: r.prev, hash: r.hash }));
  await store.close();
  return { dir: d, facts };
}

/** Changes one character of a transition's body, as a stray edit would. */
function editOneCharacter(dir: string, f: Fact): void {
  const db = new Database(join(dir, 'ice.db'));
  try {
    const row = db.prepare('SELECT body FROM facts WHERE chain = ? AND seq = ?').get(f.actor, f.seq) as { body: string };
    const edited = row.body.replace('"replicas":2', '"replicas":3');
    expect(edited).not.toBe(row.body);
    expect(edited.length).toBe(row.body.length);
    db.prepare('UPDATE facts SET body = ? WHERE chain = ? AND seq = ?').run(edited, f.actor, f.seq);
  } finally {
    db.close();
  }
}

const lastPos = async (dir: string) => {
  const s = new SqliteStore(dir, { readonly: true });
  try {
    return s.lastPos();
  } finally {
    await s.close();
  }
};

const aTransition = (facts: Fact[], actor: string) => facts.find((f) => f.actor === actor && f.type === 'transition')!;

describe('the start-up check', () => {
  it('refuses a journal changed by one character, naming the chain, the seq and the way forward; nothing is appended', async () => {
    const { dir, facts } = await history();
    const k = aTransition(facts, 'deployment/a');
    editOneCharacter(dir, k);
    const before = await lastPos(dir);
    const err = await createRuntime({ dataDir: dir }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(JournalBrokenAtStartError);
    expect(err).toMatchObject({ code: 'E_JOURNAL_BROKEN', chain: 'deployment/a', seq: k.seq });
    expect((err as Error).message).toMatch(/--serve-broken-journal/);
    expect((err as Error).message).toMatch(/ice journal verify/);
    // The same through the CLI: a non-zero exit at once, no banner.
    const r = await ice(['dev', '--data', dir, '--no-inspect']);
    expect(r.code).not.toBe(0);
    expect(r.stdout).not.toContain('ready');
    expect(r.stderr).toContain('E_JOURNAL_BROKEN');
    expect(r.stderr).toContain(`deployment/a at seq ${k.seq}`);
    expect(await lastPos(dir)).toBe(before);
    // Serving anyway takes the explicit flag, and leaves a fact.
    const node = await startIceProcess(dir, { args: ['--serve-broken-journal'] });
    await node.kill('SIGTERM');
    expect(await lastPos(dir)).toBe(before + 1);
  });

  it('with serveBrokenJournal it serves, records a journal.broken fact, and never appends to the broken chain', async () => {
    const { dir, facts } = await history();
    const k = aTransition(facts, 'deployment/a');
    editOneCharacter(dir, k);
    // Make the broken actor replay its history (no snapshot), as after a crash before one was kept.
    const db = new Database(join(dir, 'ice.db'));
    db.prepare('DELETE FROM snapshots WHERE actor = ?').run('deployment/a');
    db.close();
    const rt = await start(dir, { serveBrokenJournal: true });
    const recorded = (await rt.journal.tail({ chain: rt.runtimeChain, limit: 5 })).find((f) => f.type === 'journal.broken');
    expect(recorded?.data).toMatchObject({ chain: 'deployment/a', seq: k.seq, servedAnyway: true });
    const headA = (await rt.journal.chain('deployment/a')).length;
    const o = await configure(rt, 'deployment/a', '9.0.0', 1);
    expect(o.status).not.toBe('executed');
    expect(JSON.stringify(o)).toContain('E_JOURNAL_BROKEN');
    expect((await rt.journal.chain('deployment/a')).length).toBe(headA);
    // The other chains are intact and served.
    const ok = await configure(rt, 'deployment/b', '9.0.0', 1);
    expect(ok.status).toBe('executed');
  });

  it('checks what was written since the last start that verified; a mark moved forward is not trusted', async () => {
    const { dir } = await history();
    // This start verifies everything and marks the last position it checked.
    await stop(await start(dir));
    const { facts } = await history(dir);
    // A fact written after the mark (by the run above) is caught by the next start.
    const late = facts.filter((f) => f.actor === 'deployment/b' && f.type === 'transition').at(-1)!;
    editOneCharacter(dir, late);
    await expect(createRuntime({ dataDir: dir })).rejects.toMatchObject({ chain: 'deployment/b', seq: late.seq });
  });

  it('a mark moved past a changed fact does not verify: the check starts from the beginning', async () => {
    const { dir } = await history();
    await stop(await start(dir)); // marks the end of the first history
    const { facts } = await history(dir); // more facts after the mark
    const late = facts.filter((f) => f.actor === 'deployment/a' && f.type === 'transition').at(-1)!;
    editOneCharacter(dir, late);
    const db = new Database(join(dir, 'ice.db'));
    const mark = JSON.parse((db.prepare("SELECT value FROM meta WHERE key = 'verified_at_start'").get() as { value: string }).value) as {
      pos: number;
      sig: string;
    };
    // Without the authority's key a mark cannot be signed: move it past the change, keep the old signature.
    const last = db.prepare('SELECT pos, hash FROM facts ORDER BY pos DESC LIMIT 1').get() as { pos: number; hash: string };
    expect(last.pos).toBeGreaterThan(mark.pos);
    db.prepare("UPDATE meta SET value = ? WHERE key = 'verified_at_start'").run(
      JSON.stringify({ ...mark, pos: last.pos, hash: last.hash }),
    );
    db.close();
    await expect(createRuntime({ dataDir: dir })).rejects.toMatchObject({ chain: 'deployment/a', seq: late.seq });
  });
});

/** Commits, through the store port, a turn whose fact changed after it was hashed. */
async function commitChangedFact(rt: Runtime, actor: string): Promise<Fact> {
  const head = await rt.store.head(actor);
  const { fact } = chainFact(
    { ...head },
    {
      type: 'transition',
      origin: 'runtime',
      actor,
      data: { from: 'live', to: 'live', event: { type: 'CONFIGURE', version: '6.6.6', replicas: 1 } },
    },
    new Date().toISOString(),
  );
  const changed = { ...fact, data: { ...fact.data, event: { type: 'CONFIGURE', version: '6.6.6', replicas: 9 } } };
  await rt.store.commit({ chain: actor, after: head, facts: [changed] });
  return fact;
}

describe.each(MODES)('a fact that does not match its hash (%s)', (mode) => {
  async function withActor(): Promise<TempRuntime> {
    const h = await tempRuntime({ mode });
    await h.rt.grants.issue({ subject: BOT, scope: 'deployment/*:CONFIGURE' });
    await h.rt.spawn('deployment/x', { service: 'x' });
    const first = await configure(h.rt, 'deployment/x', '1.0.0', 2);
    expect(first.status).toBe('executed');
    return h;
  }

  it('is never replayed: the actor refuses to load, and its chain is not appended to', async () => {
    const h = await withActor();
    try {
      const rt = h.rt;
      expect(await rt.passivate('deployment/x')).toBe(true);
      const fact = await commitChangedFact(rt, 'deployment/x');
      const o = await configure(rt, 'deployment/x', '2.0.0', 2);
      expect(o.status).not.toBe('executed');
      expect(JSON.stringify(o)).toContain('E_JOURNAL_BROKEN');
      expect(await rt.store.head('deployment/x')).toEqual({ seq: fact.seq, hash: fact.hash });
    } finally {
      await h.close();
    }
  });

  it('stops the next start: refused with the chain and seq; serveBrokenJournal serves and records journal.broken', async () => {
    const h = await withActor();
    try {
      expect(await h.rt.passivate('deployment/x')).toBe(true);
      const fact = await commitChangedFact(h.rt, 'deployment/x');
      const err = await h.restart().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(JournalBrokenAtStartError);
      expect(err).toMatchObject({ chain: 'deployment/x', seq: fact.seq });
      expect((err as Error).message).toMatch(mode === 'cluster' ? /ice journal verify --nats/ : /ice journal verify --data/);
      const rt = await h.restart({ serveBrokenJournal: true });
      const recorded = (await rt.journal.tail({ chain: rt.runtimeChain, limit: 5 })).find((f) => f.type === 'journal.broken');
      expect(recorded?.data).toMatchObject({ chain: 'deployment/x', seq: fact.seq, servedAnyway: true });
    } finally {
      await h.close();
    }
  });
});

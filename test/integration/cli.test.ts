import { spawn } from 'node:child_process';
import Database from 'better-sqlite3';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ICE_BIN, startIceDev, type IceProcess } from '../helpers/ice-process.js';
import { tempDir } from '../helpers/runtime.js';
import { ice } from '../helpers/ice-cli.js';

/** Polls `check` until it holds (a condition, not a fixed sleep). */
async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('ice CLI against a running ice dev (changes go through its admin endpoint)', () => {
  const t = tempDir('ice-cli-');
  let dev: IceProcess;
  const data = ['--data', t.dir];
  beforeAll(async () => {
    dev = await startIceDev(t.dir);
  });
  afterAll(async () => {
    await dev.kill('SIGKILL');
    t.cleanup();
  });

  it('spawns, grants, proposes with meaningful exit codes, and reads', async () => {
    expect((await ice(['spawn', 'deployment/web', '--input', '{"service":"web"}', ...data])).stdout).toContain(
      'deployment/web started in draft',
    );
    const g = await ice([
      'grant',
      'issue',
      '--to',
      'agent:cli',
      '--scope',
      'deployment/web:*',
      '--max-uses',
      '5',
      '--ttl',
      '1h',
      '--json',
      ...data,
    ]);
    expect(g.code).toBe(0);
    const grant = JSON.parse(g.stdout) as { id: string; maxUses: number };
    expect(grant.maxUses).toBe(5);

    const ok = await ice([
      'propose',
      'deployment/web',
      'CONFIGURE',
      '--as',
      'agent:cli',
      '--params',
      '{"version":"1.2.3","replicas":2}',
      '--json',
      ...data,
    ]);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ status: 'executed', from: 'draft', to: 'draft' });

    const denied = await ice([
      'propose',
      'deployment/web',
      'DEPLOY',
      '--as',
      'agent:cli',
      '--params',
      '{"environment":"staging"}',
      ...data,
    ]);
    expect(denied.code).toBe(11);
    expect(denied.stdout).toContain('wrong_state');

    const rejected = await ice([
      'propose',
      'deployment/web',
      'CONFIGURE',
      '--as',
      'agent:cli',
      '--params',
      '{"version":"x","replicas":2}',
      ...data,
    ]);
    expect(rejected.code).toBe(12);
    expect(rejected.stdout).toContain('params.version');

    const notJson = await ice(['propose', 'deployment/web', 'CONFIGURE', '--as', 'agent:cli', '--params', '{oops', ...data]);
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toContain('--params: got "{oops": not JSON');

    const ls = JSON.parse((await ice(['actors', 'ls', '--json', ...data])).stdout) as Array<{ address: string; state: string }>;
    expect(ls).toEqual([expect.objectContaining({ address: 'deployment/web', state: 'draft' })]);

    const tail = (await ice(['journal', 'tail', '-n', '3', '--json', ...data])).stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string });
    // oldest first: the denied DEPLOY (intent + decision), then the rejected CONFIGURE
    expect(tail.map((f) => f.type)).toEqual(['intent.proposed', 'decision', 'intent.rejected']);

    const revoked = await ice(['grant', 'revoke', grant.id, '--reason', 'test', ...data]);
    expect(revoked.code).toBe(0);
    const after = await ice(['propose', 'deployment/web', 'SUBMIT', '--as', 'agent:cli', '--params', '{"author":"cli"}', ...data]);
    expect(after.code).toBe(11);
    expect(after.stdout).toContain('grant_revoked');

    // Read commands open the live data dir read-only (no lock, no admin round trip).
    const show = JSON.parse((await ice(['actor', 'show', 'deployment/web', '-n', '4', '--json', ...data])).stdout) as {
      address: string;
      state: string;
      seq: number;
      context: { version: string };
      facts: Array<{ actor: string; seq: number; type: string }>;
    };
    expect(show).toMatchObject({ address: 'deployment/web', state: 'draft', context: { version: '1.2.3' } });
    // its recent facts, newest first, are the actor's own chain, ending at the actor's seq
    expect(show.facts).toHaveLength(4);
    expect(show.facts.map((f) => f.actor)).toEqual(Array(4).fill('deployment/web'));
    expect(show.facts.map((f) => f.seq)).toEqual([show.seq, show.seq - 1, show.seq - 2, show.seq - 3]);
    const chain = (await ice(['journal', 'tail', '--actor', 'deployment/web', '-n', '100', '--json', ...data])).stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { actor: string; seq: number; type: string });
    expect(chain.map((f) => f.seq)).toEqual(Array.from({ length: show.seq }, (_, i) => i + 1));
    expect(chain[0]!.type).toBe('actor.started');
    expect(new Set(chain.map((f) => f.actor))).toEqual(new Set(['deployment/web']));
    const grants = JSON.parse((await ice(['grant', 'ls', '--json', ...data])).stdout) as Array<{ id: string; revokedAt?: string }>;
    expect(grants).toEqual([expect.objectContaining({ id: grant.id, revokedAt: expect.any(String) })]);
    expect(JSON.parse((await ice(['approvals', '--json', ...data])).stdout)).toEqual([]);

    const verify = await ice(['journal', 'verify', '--json', ...data]);
    expect(verify.code).toBe(0);
    // two chains: the actor's and the runtime chain (grant changes, rejections)
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true, chains: 2, keyChecked: true });
    const text = await ice(['journal', 'verify', ...data]);
    expect(text.stdout).toMatch(/ok: \d+ facts in 2 chains verified/);
  });

  it('journal tail -f prints facts committed after it started, then stops on SIGINT', async () => {
    expect((await ice(['spawn', 'deployment/before-tail', ...data])).code).toBe(0);
    const tail = spawn(process.execPath, [ICE_BIN, 'journal', 'tail', '-f', '-n', '1', '--json', ...data], {
      env: { ...process.env, NO_COLOR: '1', ICE_LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    tail.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => tail.once('exit', (code) => r(code)));
    const lines = () =>
      out
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { type: string; actor: string; seq: number });
    try {
      // the newest fact first: then it follows
      await until('the newest fact in the tail', () => out.includes('\n'));
      expect(lines()).toEqual([expect.objectContaining({ type: 'actor.started', actor: 'deployment/before-tail', seq: 1 })]);
      expect((await ice(['spawn', 'deployment/followed', ...data])).code).toBe(0);
      await until('the next spawn in the tail', () => out.includes('deployment/followed'));
      expect(lines()).toEqual([
        expect.objectContaining({ actor: 'deployment/before-tail', seq: 1 }),
        expect.objectContaining({ type: 'actor.started', actor: 'deployment/followed', seq: 1 }),
      ]);
    } finally {
      tail.kill('SIGINT');
    }
    expect(await exited).toBe(0);
  });

  it('a bootstrap script is safe to run on every start: spawn --if-absent, grant issue --id … --ensure', async () => {
    const ensureGrant = (to: string, ...more: string[]) =>
      ice(['grant', 'issue', '--id', 'g-boot', '--ensure', '--to', to, '--scope', 'deployment/boot:*', ...more, ...data]);
    const bootstrap = async () => {
      const s = await ice(['spawn', 'deployment/boot', '--input', '{"service":"boot"}', '--if-absent', ...data]);
      const g = await ensureGrant('agent:boot', '--json');
      return { s, g };
    };
    const first = await bootstrap();
    expect(first.s).toMatchObject({ code: 0 });
    expect(first.s.stdout).toContain('deployment/boot started in');
    expect(first.g.code).toBe(0);
    const again = await bootstrap();
    expect(again.s).toMatchObject({ code: 0 });
    expect(again.s.stdout).toContain('deployment/boot exists, in');
    expect(again.g.code).toBe(0);
    expect(JSON.parse(again.g.stdout)).toEqual(JSON.parse(first.g.stdout));
    const grants = JSON.parse((await ice(['grant', 'ls', '--json', ...data])).stdout) as Array<{ id: string }>;
    expect(grants.filter((g) => g.id === 'g-boot')).toHaveLength(1);
    // Other terms under the same id are refused, naming the field.
    const other = await ensureGrant('agent:other');
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/E_EXISTS_DIFFERENT.*subject/);
    // Without the idempotent form, an existing actor is an error that names it.
    const plain = await ice(['spawn', 'deployment/boot', '--input', '{"service":"boot"}', ...data]);
    expect(plain.code).not.toBe(0);
    expect(plain.stderr).toMatch(/--if-absent|ifAbsent/);
  });

  it('refuses a second owner of the data dir with a clear message', async () => {
    const second = await ice(['demo', ...data]);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/E_DATA_DIR_LOCKED: data dir .* is owned by another process \(pid \d+\)/);
  });
});

describe('ice CLI on its own', () => {
  it('hosts user-defined actor kinds from --actors <module>', async () => {
    const t = tempDir('ice-user-actors-');
    // Inside the repository so the module resolves xstate and zod like a user's project would.
    const dir = join(process.cwd(), 'test-artifacts');
    mkdirSync(dir, { recursive: true });
    const mod = join(dir, `ticket-actor-${process.pid}.mjs`);
    writeFileSync(
      mod,
      `import { setup } from 'xstate';
import { z } from 'zod';
import { defineActor } from '${join(process.cwd(), 'dist/src/index.js')}';
const ticketMachine = setup({}).createMachine({ id: 'ticket', initial: 'open', states: { open: { on: { CLOSE: 'closed' } }, closed: { type: 'final' } } });
export const actors = [defineActor({ kind: 'ticket', machine: ticketMachine, events: { CLOSE: z.strictObject({}) } })];
`,
    );
    try {
      const data = ['--data', t.dir, '--actors', mod];
      expect((await ice(['spawn', 'ticket/t1', ...data])).stdout).toContain('ticket/t1 started in open');
      await ice(['grant', 'issue', '--to', 'human:ann', '--scope', 'ticket/*:CLOSE', ...data]);
      const closed = await ice(['propose', 'ticket/t1', 'CLOSE', '--as', 'human:ann', '--json', ...data]);
      expect(closed.code).toBe(0);
      expect(JSON.parse(closed.stdout)).toMatchObject({ status: 'executed', from: 'open', to: 'closed' });
      // without the module the kind is unknown: a clear rejection, not a crash
      const unknown = await ice(['propose', 'ticket/t1', 'CLOSE', '--as', 'human:ann', '--data', t.dir]);
      expect(unknown.code).toBe(12);
      expect(unknown.stdout).toContain('no actor kind "ticket"');
    } finally {
      rmSync(mod, { force: true });
      t.cleanup();
    }
  });

  it('runs the demo to a verified journal, and verify names the first tampered fact', async () => {
    const t = tempDir('ice-demo-');
    try {
      const demo = await ice(['demo', '--data', t.dir]);
      expect(demo.code).toBe(0);
      expect(demo.stdout).toMatch(/journal verified: \d+ facts in \d+ chains, every chain intact/);
      expect(demo.stdout).toContain('⧗ pending');
      expect(demo.stdout).toContain('✘ denied');
      expect(demo.stdout).toContain('⊘ rejected');

      const db = new Database(join(t.dir, 'ice.db'));
      // The first proposed CONFIGURE, rewritten as a DEPLOY: found at its chain and seq.
      const tampered = db
        .prepare("SELECT pos, chain, seq FROM facts WHERE type = 'intent.proposed' AND body LIKE '%CONFIGURE%' ORDER BY pos LIMIT 1")
        .get() as { pos: number; chain: string; seq: number };
      db.prepare("UPDATE facts SET body = replace(body, 'CONFIGURE', 'DEPLOY') WHERE pos = ?").run(tampered.pos);
      db.close();
      const verify = await ice(['journal', 'verify', '--data', t.dir]);
      expect(verify.code).toBe(1);
      expect(verify.stdout).toContain(`BROKEN at ${tampered.chain} #${tampered.seq}`);
      const json = await ice(['journal', 'verify', '--json', '--data', t.dir]);
      expect(json.code).toBe(1);
      expect(JSON.parse(json.stdout)).toMatchObject({
        ok: false,
        brokenChain: tampered.chain,
        brokenAt: tampered.seq,
        brokenPos: tampered.pos,
      });
    } finally {
      t.cleanup();
    }
  });

  it('exports machines as mermaid and svg', async () => {
    const m = await ice(['machines', 'export', 'run', '--format', 'mermaid']);
    expect(m.stdout).toContain('stateDiagram-v2');
    expect(m.stdout).toContain('EXECUTING --> VALIDATING : SUBMIT');
    const s = await ice(['machines', 'export', 'deployment', '--format', 'svg']);
    expect(s.stdout.startsWith('<svg')).toBe(true);
    const bad = await ice(['machines', 'export', 'nope']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('no actor kind nope');
  });

  it('read commands on a dir without a store say so, and a version-1 store is refused with a clear message', async () => {
    const t = tempDir('ice-cli-empty-');
    try {
      const none = await ice(['journal', 'verify', '--data', t.dir]);
      expect(none.code).toBe(1);
      expect(none.stderr).toContain(`no ICE store in ${t.dir}`);
      const db = new Database(join(t.dir, 'ice.db'));
      db.exec('CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;');
      db.exec(
        'CREATE TABLE facts (seq INTEGER PRIMARY KEY, type TEXT NOT NULL, actor TEXT, intent_id TEXT, at TEXT NOT NULL, body TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL) STRICT;',
      );
      db.prepare("INSERT INTO meta(key, value) VALUES ('schema_version', '1')").run();
      db.close();
      for (const args of [
        ['journal', 'verify'],
        ['actors', 'ls'],
        ['spawn', 'deployment/x'],
      ]) {
        const r = await ice([...args, '--data', t.dir]);
        expect(r.code, args.join(' ')).toBe(1);
        expect(r.stderr, args.join(' ')).toMatch(/schema version 1/);
      }
    } finally {
      t.cleanup();
    }
  });

  it('ice start and ice dev refuse options that have no effect in their mode, at once and by name', async () => {
    // An unreachable NATS URL: had either command got past its options, it would wait to connect.
    const nats = 'nats://127.0.0.1:1';
    const t = tempDir('ice-cli-start-');
    try {
      const admin = await ice(['start', '--cluster', '--nats', nats, '--admin-port', '1', '--data', t.dir]);
      expect(admin.code).toBe(2);
      expect(admin.stderr).toContain('--admin-port');
      expect(admin.stderr).toContain('--cluster');
      expect(admin.stdout).not.toContain('ready');
      for (const extra of [
        ['--replicas', '3'],
        ['--lease-ttl', '10s'],
      ]) {
        const r = await ice(['start', '--nats', nats, ...extra, '--data', t.dir]);
        expect(r.code, extra[0]).toBe(2);
        expect(r.stderr, extra[0]).toContain(extra[0]);
        expect(r.stderr, extra[0]).toContain('--cluster');
        expect(r.stdout).not.toContain('ready');
      }
      // ice dev: a connect timeout with no NATS to connect to.
      const dev = await ice(['dev', '--no-inspect', '--connect-timeout', '5s', '--data', t.dir]);
      expect(dev.code).toBe(2);
      expect(dev.stderr).toContain('--connect-timeout has no effect without --nats');
      expect(dev.stdout).not.toContain('ready');
    } finally {
      t.cleanup();
    }
  });
});

describe('ice start with no NATS server to reach', () => {
  it('logs each attempt and exits non-zero with what to do, instead of waiting in silence', async () => {
    const t = tempDir('ice-cli-unreachable-');
    process.env.ICE_CONNECT_TIMEOUT = '1s';
    try {
      const r = await ice(['start', '--nats', 'nats://127.0.0.1:1', '--data', t.dir]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('no NATS server answered at nats://127.0.0.1:1');
      expect(r.stderr).toContain('ICE_CONNECT_TIMEOUT');
    } finally {
      delete process.env.ICE_CONNECT_TIMEOUT;
      t.cleanup();
    }
  });
});

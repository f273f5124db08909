import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ICE_BIN, startIceDev, type IceProcess } from '../helpers/ice-process.js';
import { tempDir } from '../helpers/runtime.js';

const run = promisify(execFile);

/** Runs the real `ice` binary; resolves with exit code and output, never throws on exit codes. */
async function ice(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [ICE_BIN, ...args], { env: { ...process.env, NO_COLOR: '1', ICE_LOG_LEVEL: 'silent' } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
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
    expect(notJson.code).toBe(1);
    expect(notJson.stderr).toContain('--params is not JSON');

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

    const verify = await ice(['journal', 'verify', '--json', ...data]);
    expect(verify.code).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true });
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
      expect(demo.stdout).toMatch(/journal verified: \d+ facts, chain intact/);
      expect(demo.stdout).toContain('⧗ pending');
      expect(demo.stdout).toContain('✘ denied');
      expect(demo.stdout).toContain('⊘ rejected');

      const db = new Database(join(t.dir, 'ice.db'));
      db.prepare(
        "UPDATE facts SET body = replace(body, 'CONFIGURE', 'DEPLOY') WHERE seq = (SELECT min(seq) FROM facts WHERE type = 'intent.proposed' AND body LIKE '%CONFIGURE%')",
      ).run();
      const tampered = (
        db.prepare("SELECT min(seq) AS s FROM facts WHERE type = 'intent.proposed' AND body LIKE '%DEPLOY%'").get() as { s: number }
      ).s;
      db.close();
      const verify = await ice(['journal', 'verify', '--data', t.dir]);
      expect(verify.code).toBe(1);
      expect(verify.stdout).toContain(`BROKEN at fact #${tampered}`);
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
});

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ICE_BIN } from '../helpers/ice-process.js';
import { ice } from '../helpers/ice-cli.js';
import { tempDir } from '../helpers/runtime.js';

const TICKET_MODULE = `import { setup } from 'xstate';
import { z } from 'zod';
import { defineActor } from '${join(process.cwd(), 'dist/src/index.js')}';
const ticketMachine = setup({}).createMachine({ id: 'ticket', initial: 'open', states: { open: { on: { CLOSE: 'closed' } }, closed: { type: 'final' } } });
export const actors = [defineActor({ kind: 'ticket', machine: ticketMachine, events: { CLOSE: z.strictObject({}) } })];
`;

const kinds = async (cwd: string, args: string[] = []) => {
  const r = await ice(['machines', 'ls', '--json', ...args], { cwd });
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as Array<{ kind: string }>).map((k) => k.kind);
};

/**
 * The project config: ice.config.json, or an "ice" field in package.json, found from the
 * current directory up to the project root; refused at once, by file and field, when wrong.
 */
describe('ice reads the project config', () => {
  // Inside the repository, so the actor module resolves xstate and zod as a user's project would.
  let root: string;
  const dir = (name: string, files: Record<string, string>) => {
    const d = join(root, name);
    mkdirSync(d, { recursive: true });
    for (const [f, text] of Object.entries(files)) {
      mkdirSync(join(d, f, '..'), { recursive: true });
      writeFileSync(join(d, f), text);
    }
    return d;
  };
  beforeAll(() => {
    mkdirSync(join(process.cwd(), 'test-artifacts'), { recursive: true });
    root = mkdtempSync(join(process.cwd(), 'test-artifacts', 'ice-config-'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('ice.config.json names actor modules, relative to the file, for every command run below it', async () => {
    const p = dir('json-project', {
      'package.json': '{"name":"my-project","private":true}',
      'ice.config.json': '{"actors":["./actors/ticket.mjs"]}',
      'actors/ticket.mjs': TICKET_MODULE,
    });
    expect(await kinds(p)).toContain('ticket');
    mkdirSync(join(p, 'src', 'deep'), { recursive: true });
    expect(await kinds(join(p, 'src', 'deep'))).toContain('ticket');
    // without a config there is no ticket kind
    expect(await kinds(root)).not.toContain('ticket');
  });

  it('an "ice" field in package.json, with "data"; the command line beats ICE_DATA beats the config', async () => {
    const p = dir('pkg-project', {
      'package.json': JSON.stringify({ name: 'pkg-project', ice: { actors: ['ticket.mjs'], data: './state' } }),
      'ticket.mjs': TICKET_MODULE,
    });
    const spawned = await ice(['spawn', 'ticket/t1'], { cwd: p });
    expect(spawned.code, spawned.stderr).toBe(0);
    expect(spawned.stdout).toContain('ticket/t1 started in open');
    expect(existsSync(join(p, 'state', 'ice.db'))).toBe(true);
    const ls = (r: { stdout: string }) => (JSON.parse(r.stdout) as Array<{ address: string }>).map((a) => a.address);
    expect(ls(await ice(['actors', 'ls', '--json'], { cwd: p }))).toEqual(['ticket/t1']);

    const other = tempDir('ice-config-env-');
    try {
      expect((await ice(['spawn', 'ticket/t2'], { cwd: p, env: { ICE_DATA: other.dir } })).code).toBe(0);
      expect(ls(await ice(['actors', 'ls', '--json'], { cwd: p, env: { ICE_DATA: other.dir } }))).toEqual(['ticket/t2']);
      const cli = await ice(['actors', 'ls', '--json', '--data', join(p, 'state')], { cwd: p, env: { ICE_DATA: other.dir } });
      expect(ls(cli)).toEqual(['ticket/t1']);
    } finally {
      other.cleanup();
    }
  });

  it('says which config it used in the banner of ice dev', async () => {
    const p = dir('banner-project', {
      'ice.config.json': '{"actors":["./ticket.mjs"],"data":".ice-data"}',
      'ticket.mjs': TICKET_MODULE,
    });
    const dev = spawn(process.execPath, [ICE_BIN, 'dev', '--no-inspect'], {
      cwd: p,
      env: { ...process.env, NO_COLOR: '1', ICE_LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    dev.stdout.on('data', (d: Buffer) => (out += d.toString()));
    dev.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => dev.once('exit', (code) => r(code)));
    try {
      await Promise.race([
        new Promise<void>((r) => dev.stdout.on('data', () => /^ready$/m.test(out) && r())),
        exited.then((code) => Promise.reject(new Error(`ice dev exited ${code}:\n${out}`))),
      ]);
      expect(out).toContain(`config ${join(p, 'ice.config.json')}`);
      expect(out).toContain(`serving ${join(p, '.ice-data')}`);
    } finally {
      dev.kill('SIGTERM');
    }
    expect(await exited, out).toBe(0);
  });

  it('refuses a bad config at once, naming the file and the field', async () => {
    const cases: Array<[string, Record<string, string>, string[]]> = [
      ['unknown key', { 'ice.config.json': '{"actor":["./x.mjs"]}' }, ['ice.config.json', 'actor: not a config field', 'actors, data']],
      ['wrong type', { 'ice.config.json': '{"actors":"./x.mjs"}' }, ['ice.config.json', 'actors:']],
      ['missing module', { 'ice.config.json': '{"actors":["./nope.mjs"]}' }, ['ice.config.json', 'actors.0: no such file', 'nope.mjs']],
      ['not JSON', { 'ice.config.json': '{"actors":' }, ['ice.config.json', 'JSON']],
      ['bad "ice" field', { 'package.json': '{"name":"x","ice":{"data":7}}' }, ['package.json', 'ice.data:']],
      [
        'two configs',
        { 'package.json': '{"name":"x","ice":{}}', 'ice.config.json': '{}' },
        ['two project configs', 'package.json', 'ice.config.json'],
      ],
    ];
    for (const [name, files, named] of cases) {
      const p = dir(`bad-${name.replace(/\W+/g, '-')}`, files);
      const r = await ice(['machines', 'ls'], { cwd: p });
      expect(r.code, name).toBe(2);
      for (const n of named) expect(r.stderr, `${name}: ${r.stderr}`).toContain(n);
      expect(r.stderr, name).toContain(p);
    }
  });
});

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ice } from '../helpers/ice-cli.js';
import { tempDir } from '../helpers/runtime.js';

const DURATION = 'a duration with a unit, e.g. 30s, 15m, 2h, 7d';
// An unreachable NATS URL: a serving command that got past its options would wait to connect.
const NOWHERE = 'nats://127.0.0.1:1';

describe('ice refuses an option value no rule accepts: at once, exit 2, naming the option, the value and what is expected', () => {
  const t = tempDir('ice-cli-options-');
  const data = ['--data', t.dir];
  afterAll(() => t.cleanup());
  const grant = ['grant', 'issue', '--to', 'agent:a', '--scope', 'deployment/*:DEPLOY'];
  const propose = ['propose', 'deployment/web', 'CONFIGURE', '--as', 'agent:a'];

  // [what, arguments, the option named, the value shown, words of what is expected]
  const cases: Array<[string, string[], string, string, string]> = [
    ['a grant TTL without a unit', [...grant, '--ttl', '2'], '--ttl', '"2"', DURATION],
    ['a grant TTL of nothing', [...grant, '--ttl', '0s'], '--ttl', '"0s"', DURATION],
    [
      'an expiry that is not a time',
      [...grant, '--expires', 'tomorrow'],
      '--expires',
      '"tomorrow": not an ISO 8601',
      'an ISO 8601 time in the future',
    ],
    [
      'an expiry in the past',
      [...grant, '--expires', '2020-01-01T00:00:00Z'],
      '--expires',
      '"2020-01-01T00:00:00Z": that time has passed',
      'in the future',
    ],
    ['zero uses', [...grant, '--max-uses', '0'], '--max-uses', '"0"', 'an integer, 1 or more'],
    [
      'a principal pattern that is not one',
      ['grant', 'issue', '--to', 'alice', '--scope', '*'],
      '--to',
      '"alice"',
      'a principal "type:name"',
    ],
    [
      'replicas that are not a number',
      ['start', '--cluster', '--nats', NOWHERE, '--replicas', 'two'],
      '--replicas',
      '"two"',
      'an integer from 1 to 5',
    ],
    [
      'more replicas than JetStream keeps',
      ['start', '--cluster', '--nats', NOWHERE, '--replicas', '6'],
      '--replicas',
      '"6"',
      'from 1 to 5',
    ],
    ['a lease TTL without a unit', ['start', '--cluster', '--nats', NOWHERE, '--lease-ttl', '5'], '--lease-ttl', '"5"', DURATION],
    ['a node name that is no subject token', ['start', '--nats', NOWHERE, '--node', 'a.b'], '--node', '"a.b"', 'A-Z a-z 0-9 _ -'],
    ['a connect timeout without a unit', ['start', '--nats', NOWHERE, '--connect-timeout', '10'], '--connect-timeout', '"10"', DURATION],
    ['a NATS URL with port 0', ['start', '--nats', 'nats://127.0.0.1:0'], '--nats', '"nats://127.0.0.1:0"', 'NATS server URLs'],
    [
      'a NATS URL of another scheme',
      ['actors', 'ls', '--nats', 'http://127.0.0.1:4222'],
      '--nats',
      '"http://127.0.0.1:4222"',
      'NATS server URLs',
    ],
    ['an inspector port that is not a number', ['dev', '--inspect', 'abc'], '--inspect', '"abc"', 'a port from 0 to 65535'],
    ['an admin port past 65535', ['dev', '--admin-port', '70000'], '--admin-port', '"70000"', 'a port from 0 to 65535'],
    [
      'a fact count that is not a number',
      ['actor', 'show', 'deployment/x', '-n', 'abc'],
      '--limit',
      '"abc"',
      'an integer from 1 to 100000',
    ],
    ['a fact count of 0', ['journal', 'tail', '-n', '0'], '--limit', '"0"', 'an integer from 1 to 100000'],
    ['a seq of 0', ['journal', 'tail', '--actor', 'deployment/x', '--from', '0'], '--from', '"0"', 'an integer, 1 or more'],
    ['a chain that is no actor address', ['journal', 'tail', '--actor', 'web'], '--actor', '"web"', 'an actor address "kind/id"'],
    ['params that are not JSON', [...propose, '--params', '{oops'], '--params', '"{oops": not JSON', 'a JSON object'],
    ['params that are not an object', [...propose, '--params', '[1]'], '--params', '"[1]"', 'a JSON object'],
    [
      'a proposer that is no principal',
      ['propose', 'deployment/web', 'CONFIGURE', '--as', 'bob'],
      '--as',
      '"bob"',
      'a principal "type:name"',
    ],
    ['a propose timeout without a unit', [...propose, '--timeout', '5'], '--timeout', '"5"', DURATION],
    [
      'an inspector approver that is no principal',
      ['inspect', '--nats', 'nats://127.0.0.1:1', '--approve-as', 'alice'],
      '--approve-as',
      '"alice"',
      'a principal "type:name"',
    ],
    [
      'spawn input that is not JSON',
      ['spawn', 'deployment/web', '--input', '{"service":'],
      '--input',
      '"{\\"service\\":": not JSON',
      'JSON text',
    ],
    [
      'an actor module that does not exist',
      ['machines', 'ls', '--actors', 'no-such-module.mjs'],
      '--actors',
      '["no-such-module.mjs"]: no such file',
      'ES module files that exist',
    ],
    ['an export format commander does not know', ['machines', 'export', 'run', '--format', 'png'], "'png'", '', 'json, mermaid, svg'],
  ];

  it.each(cases)('%s', async (_what, args, option, given, expected) => {
    const r = await ice([...args, ...data]);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stderr).toContain(given ? `${option}: got ${given}` : option);
    expect(r.stderr).toContain(expected);
    expect(r.stdout).not.toContain('ready');
    // refused before anything ran: no store was created
    expect(existsSync(join(t.dir, 'ice.db'))).toBe(false);
  });

  it('names every bad option of a command at once', async () => {
    const r = await ice([...grant, '--ttl', '2', '--max-uses', '-1', ...data]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('invalid --ttl, --max-uses');
    expect(r.stderr).toContain('--ttl: got "2"');
    expect(r.stderr).toContain('--max-uses: got "-1"');
  });

  it('checks the environment values it reads the same way, naming the variable', async () => {
    const env = [
      [{ ICE_DATA: '' }, ['actors', 'ls'], 'ICE_DATA: got ""', 'a directory path'],
      [{ ICE_LOG_LEVEL: 'loud' }, ['actors', 'ls', ...data], 'ICE_LOG_LEVEL: got "loud"', 'one of fatal, error, warn, info'],
      [{ ICE_CONNECT_TIMEOUT: '2' }, ['start', '--nats', NOWHERE, ...data], 'ICE_CONNECT_TIMEOUT: got "2"', DURATION],
    ] as const;
    for (const [vars, args, named, expected] of env) {
      const r = await ice([...args], { env: vars });
      expect(r.code, named).toBe(2);
      expect(r.stderr, named).toContain(named);
      expect(r.stderr, named).toContain(expected);
    }
    // an option given on the command line wins over the environment
    const cli = await ice(['actors', 'ls', '--json', ...data], { env: { ICE_DATA: '' } });
    expect(cli.stderr).not.toContain('ICE_DATA');
  });

  it('exits 2 on the usage errors commander finds too, and 0 for --help and --version', async () => {
    const missing = await ice(['grant', 'issue', '--scope', '*', ...data]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("required option '--to <principal>' not specified");
    const conflict = await ice([...grant, '--ttl', '2h', '--expires', '2999-01-01', ...data]);
    expect(conflict.code).toBe(2);
    expect(conflict.stderr).toContain("option '--ttl <duration>' cannot be used with option '--expires <iso>'");
    expect((await ice(['spawn', 'deployment/x', '--nope', ...data])).code).toBe(2);
    expect((await ice(['no-such-command'])).code).toBe(2);
    expect((await ice(['--help'])).code).toBe(0);
    expect((await ice(['--version'])).code).toBe(0);
  });

  it('passes the parsed values on: durations in ms, times in UTC, counts as numbers', async () => {
    const ttl = await ice([...grant, '--ttl', '2h', '--max-uses', '3', '--json', ...data]);
    expect(ttl.code, ttl.stderr).toBe(0);
    const g = JSON.parse(ttl.stdout) as { issuedAt: string; expiresAt: string; maxUses: number };
    expect(Date.parse(g.expiresAt) - Date.parse(g.issuedAt)).toBe(2 * 3_600_000);
    expect(g.maxUses).toBe(3);
    const at = await ice([...grant, '--expires', '2999-01-31T12:00:00+02:00', '--json', ...data]);
    expect(at.code, at.stderr).toBe(0);
    expect((JSON.parse(at.stdout) as { expiresAt: string }).expiresAt).toBe('2999-01-31T10:00:00.000Z');
    const tail = await ice(['journal', 'tail', '-n', '1', '--json', ...data]);
    expect(tail.stdout.trim().split('\n')).toHaveLength(1);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { startIceDev, type IceProcess } from '../helpers/ice-process.js';
import { ice } from '../helpers/ice-cli.js';
import { tempDir } from '../helpers/runtime.js';

/** A serving command either prints `ready` or exits non-zero: no node is left running after an error. */
describe('ice dev and ice start: ready, or a non-zero exit that says what to do', () => {
  it('ice dev --inspect abc is refused before anything is served', async () => {
    const t = tempDir('ice-serve-inspect-');
    try {
      const r = await ice(['dev', '--inspect', 'abc', '--data', t.dir]);
      expect(r.code, r.stdout + r.stderr).toBe(2);
      expect(r.stderr).toContain('--inspect: got "abc"');
      expect(r.stdout).not.toContain('ready');
    } finally {
      t.cleanup();
    }
  });

  it('ice dev prints the inspector address with its token; its approve / deny endpoint runs the admin operations', async () => {
    const t = tempDir('ice-serve-approvals-');
    try {
      const dev = await startIceDev(t.dir, ['--inspect', '0']);
      try {
        const m = /inspector (http:\/\/127\.0\.0\.1:\d+)\/\?token=([0-9a-f]{48})/.exec(dev.output());
        expect(m, dev.output()).not.toBeNull();
        const [, base, token] = m!;
        const listed = (await (await fetch(`${base}/api/approvals`)).json()) as { enabled: boolean; operator: string; pending: unknown[] };
        expect(listed).toMatchObject({ enabled: true, pending: [] });
        expect(listed.operator).toMatch(/^human:/);
        const post = (auth?: string) =>
          fetch(`${base}/api/approvals/i-nope/approve`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) },
            body: JSON.stringify({ by: 'human:alice' }),
          });
        expect((await post()).status).toBe(401);
        expect((await post('Bearer nope')).status).toBe(401);
        const refused = await post(`Bearer ${token}`);
        expect(refused.status).toBe(400);
        await expect(refused.json()).resolves.toMatchObject({ error: { code: 'E_APPROVAL_UNKNOWN_INTENT' } });
      } finally {
        await dev.kill('SIGTERM');
      }
    } finally {
      t.cleanup();
    }
  });

  it('a node that fails half-way through its start stops what it started and exits 1', async () => {
    const t = tempDir('ice-serve-bind-');
    try {
      // TEST-NET-3: no interface here has it, so the inspector cannot bind after the runtime is up
      const r = await ice(['dev', '--inspect', '0', '--inspect-host', '203.0.113.7', '--data', t.dir]);
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stderr).toContain('EADDRNOTAVAIL');
      expect(r.stdout).not.toContain('ready');
      // the data dir was released: a node starts on it at once
      const next = await startIceDev(t.dir, ['--no-inspect']);
      await next.kill('SIGTERM');
    } finally {
      t.cleanup();
    }
  });

  it('ice start logs each attempt to reach NATS, then exits 1 with what to do after --connect-timeout', async () => {
    const t = tempDir('ice-serve-unreachable-');
    const url = `nats://127.0.0.1:${await freePort()}`; // nothing listens there
    try {
      // the default log level: the attempts are on stderr without asking for them
      const r = await ice(['start', '--nats', url, '--connect-timeout', '2s', '--data', t.dir], { env: { ICE_LOG_LEVEL: undefined } });
      expect(r.code, r.stdout + r.stderr).toBe(1);
      const attempts = r.stderr.split('\n').filter((l) => l.includes(`NATS not reachable at ${url} (attempt`));
      expect(attempts.length, r.stderr).toBeGreaterThanOrEqual(2);
      expect(r.stderr).toContain(`no NATS server answered at ${url}`);
      expect(r.stderr).toContain('--connect-timeout');
      expect(r.stdout).not.toContain('ready');
    } finally {
      t.cleanup();
    }
  });

  describe('on a data dir another node serves', () => {
    const t = tempDir('ice-serve-locked-');
    let owner: IceProcess;
    let srv: NatsServer;
    beforeAll(async () => {
      owner = await startIceDev(t.dir, ['--no-inspect']);
      srv = await startNatsServer({ jetstream: false });
    });
    afterAll(async () => {
      await owner?.kill('SIGKILL');
      await srv?.stop();
      t.cleanup();
    });

    const refused = (r: { code: number | null; stdout: string; stderr: string }) => {
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stderr).toContain(`E_DATA_DIR_LOCKED: data dir ${t.dir} is owned by another process (pid ${owner.pid})`);
      expect(r.stderr).toContain('stop that node first, or give this one a data dir of its own with --data');
      expect(r.stdout).not.toContain('ready');
    };

    it('ice dev exits 1 at once, naming the owner', async () => {
      refused(await ice(['dev', '--no-inspect', '--data', t.dir]));
    });

    it('ice start --nats exits 1 at once too, though it is connected to NATS', async () => {
      refused(await ice(['start', '--nats', srv.url, '--data', t.dir]));
    });
  });
});

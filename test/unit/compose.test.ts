import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ICE_BIN } from '../helpers/ice-process.js';

const root = resolve(import.meta.dirname, '../..');

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, unknown>;
  environment?: Record<string, string>;
}

describe('docker-compose.yml', () => {
  const compose = parse(readFileSync(resolve(root, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
    services: Record<string, Service>;
  };
  const services = compose.services;

  it('has a 3-node NATS cluster whose configs route to each other and fsync JetStream', () => {
    const nats = Object.keys(services).filter((n) => n.startsWith('nats-'));
    expect(nats.sort()).toEqual(['nats-1', 'nats-2', 'nats-3']);
    for (const n of nats) {
      const s = services[n]!;
      expect(s.image).toMatch(/^nats:2\.(1[2-9]|[2-9]\d)/);
      const confMount = s.volumes!.find((v) => v.endsWith(':/etc/nats/nats.conf:ro'))!;
      const conf = readFileSync(resolve(root, confMount.split(':')[0]!), 'utf8');
      expect(conf).toMatch(/sync_interval:\s*always/);
      expect(conf).toContain(`server_name: ${n}`);
      const routes = [...conf.matchAll(/nats:\/\/(nats-\d):6222/g)].map((m) => m[1]);
      expect(routes.sort()).toEqual(nats.filter((o) => o !== n).sort());
    }
    expect(services['nats-1']!.ports).toContain('4222:4222');
  });

  it('runs runtime nodes with commands and options this package has', () => {
    const nodes = Object.entries(services).filter(([, s]) => s.build !== undefined);
    // two runtime nodes sharing actors through JetStream, and the inspector of the cluster
    const runtimes = nodes.filter(([, s]) => s.command![0] === 'start');
    expect(runtimes.length).toBeGreaterThanOrEqual(2);
    for (const [, s] of runtimes) expect(s.command).toContain('--cluster');
    const inspector = nodes.find(([, s]) => s.command![0] === 'inspect');
    expect(inspector?.[1].ports).toContain('4848:4848');
    expect(existsSync(resolve(root, 'Dockerfile'))).toBe(true);
    for (const [, s] of nodes) {
      const [cmd, ...args] = s.command!;
      const help = execFileSync(process.execPath, [ICE_BIN, cmd!, '--help'], { encoding: 'utf8' });
      for (const a of args.filter((x) => x.startsWith('--'))) expect(help, `ice ${cmd} has ${a}`).toContain(a);
      const natsUrls = args[args.indexOf('--nats') + 1]!.split(',');
      for (const u of natsUrls) expect(Object.keys(services)).toContain(new URL(u).hostname);
      for (const dep of Object.keys(s.depends_on ?? {})) expect(Object.keys(services)).toContain(dep);
    }
  });

  it('locks NATS down: every server includes deploy/nats/locked-down.conf, the runtime nodes connect as its node user and run strict', () => {
    const lockedDown = readFileSync(resolve(root, 'deploy/nats/locked-down.conf'), 'utf8');
    for (const n of ['nats-1', 'nats-2', 'nats-3']) {
      const s = services[n]!;
      expect(s.volumes).toContain('./deploy/nats/locked-down.conf:/etc/nats/locked-down.conf:ro');
      const confMount = s.volumes!.find((v) => v.endsWith(':/etc/nats/nats.conf:ro'))!;
      expect(readFileSync(resolve(root, confMount.split(':')[0]!), 'utf8')).toMatch(/^include locked-down\.conf$/m);
    }
    for (const [, s] of Object.entries(services).filter(([, s]) => s.build !== undefined)) {
      const user = s.environment?.NATS_USER;
      expect(user).toBe('ice-node');
      expect(lockedDown).toContain(`user: "${user}", password: "${s.environment?.NATS_PASSWORD}"`);
      if (s.command![0] === 'start') expect(s.command).toContain('--require-principal-subjects');
    }
  });
});

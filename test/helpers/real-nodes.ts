import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startIceProcess, type IceProcess, type NatsCluster } from '../../src/testing/index.js';
import { tempDir } from './runtime.js';

/** The built package's entry, for actor modules written by tests. */
export const DIST_INDEX = join(process.cwd(), 'dist/src/index.js');

/**
 * Writes an ES module of actor definitions (for `--actors`) inside the repository, so it
 * resolves xstate and zod like a user's project would; removed by the cleanup it registers.
 */
export function writeActorsModule(name: string, source: string, cleanups: Array<() => void>): string {
  const dir = join(process.cwd(), 'test-artifacts');
  mkdirSync(dir, { recursive: true });
  const mod = join(dir, `${name}-${process.pid}-${cleanups.length}.mjs`);
  writeFileSync(mod, source);
  cleanups.push(() => rmSync(mod, { force: true }));
  return mod;
}

/** Starts a real `ice start --cluster` node (R3, 1.5 s leases) on the cluster, with its own data dir. */
export async function startClusterNode(
  cluster: NatsCluster,
  node: string,
  mod: string,
  track: { procs: IceProcess[]; cleanups: Array<() => void> },
  env: Record<string, string> = {},
): Promise<IceProcess> {
  const d = tempDir(`ice-${node}-`);
  track.cleanups.push(d.cleanup);
  const p = await startIceProcess(d.dir, {
    command: 'start',
    args: ['--nats', cluster.urls.join(','), '--node', node, '--actors', mod, '--cluster', '--replicas', '3', '--lease-ttl', '1500ms'],
    env,
    readyTimeoutMs: 60_000,
  });
  track.procs.push(p);
  return p;
}

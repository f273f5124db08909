import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Outcome } from '../protocol/index.js';
import { NatsTransport } from '../transport/nats-transport.js';
import { startIceProcess, type IceProcess } from './ice-process.js';
import { startNatsCluster, type NatsCluster } from './nats-server.js';
import { checkInvariants, type InvariantReport } from './invariants.js';
import { JetStreamStore } from '../store/jetstream/jetstream-store.js';

/**
 * A seeded fault run against `ice start --cluster` processes on a 3-server JetStream cluster
 * (R3): a load generator keeps `inFlight` intents going, each retried with the same id and
 * the same bytes until it resolves, while a schedule derived from the seed injects faults.
 * At the end every node and server is back, every actor must still execute an intent (none
 * bricked), and `checkInvariants` reads the journal: every acknowledged intent executed
 * exactly once at the position it named, no fork, no gap, state equal to a replay.
 * Same seed → same schedule (the timing of the load, and so the interleaving, still varies).
 */
export const FAULT_KINDS = [
  'node-kill',
  'node-pause-past-lease',
  'node-pause-within-lease',
  'nats-kill-one',
  'nats-kill-two',
  'nats-kill-all',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface ClusterChaosOptions {
  seed: number;
  durationMs: number;
  /** Runtime node processes (default 3). */
  nodes?: number;
  actors?: number;
  /** Intents in flight at once (default 24). */
  inFlight?: number;
  leaseMs?: number;
  /** Pause between faults: [min, max] ms (default [2000, 6000]). */
  faultGapMs?: [number, number];
  faults?: readonly FaultKind[];
  /** An explicit schedule instead of the one the seed gives. */
  schedule?: ScheduledFault[];
  /** Keep one core busy with a spinning process while the run lasts. */
  cpuLoad?: boolean;
  log?: (line: string) => void;
}

export interface ScheduledFault {
  atMs: number;
  kind: FaultKind;
  /** Which node or server (index). */
  target: number;
}

export interface ClusterChaosReport {
  seed: number;
  schedule: ScheduledFault[];
  faults: Record<FaultKind, number>;
  acknowledged: number;
  executed: number;
  /** Ids still unresolved at the end (they must be 0: an unresolved id is a bricked actor or a lost reply). */
  unresolved: string[];
  /** Actors that did not execute a final intent after every fault healed. */
  bricked: string[];
  invariants: InvariantReport;
  violations: string[];
  /** For each chain a violation names: its facts around the named positions (who wrote what, when). */
  evidence: string[];
}

/** mulberry32: a small seeded PRNG (same seed, same sequence). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The fault schedule a seed gives. */
export function faultSchedule(
  opts: Pick<ClusterChaosOptions, 'seed' | 'durationMs' | 'faultGapMs' | 'faults' | 'nodes'>,
): ScheduledFault[] {
  const rnd = seededRandom(opts.seed);
  const [min, max] = opts.faultGapMs ?? [2000, 6000];
  const kinds = opts.faults ?? FAULT_KINDS;
  const out: ScheduledFault[] = [];
  for (let t = min + rnd() * (max - min); t < opts.durationMs; t += min + rnd() * (max - min)) {
    const kind = kinds[Math.floor(rnd() * kinds.length)]!;
    out.push({ atMs: Math.round(t), kind, target: Math.floor(rnd() * (kind.startsWith('node') ? (opts.nodes ?? 3) : 3)) });
  }
  return out;
}

const TRANSIENT = /E_NOT_OWNER|E_OWNER_UNREACHABLE|E_OWNERSHIP|E_TIMEOUT|E_COMMIT|E_JOURNAL|E_CONFLICT|E_CLOSED|E_INTERNAL|E_AUTHORITY/;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runClusterChaos(opts: ClusterChaosOptions): Promise<ClusterChaosReport> {
  const log = opts.log ?? (() => {});
  const nNodes = opts.nodes ?? 3;
  const leaseMs = opts.leaseMs ?? 2000;
  const schedule = opts.schedule ?? faultSchedule(opts);
  log(
    `seed ${opts.seed}: ${schedule.length} faults over ${opts.durationMs} ms: ${schedule.map((f) => `${f.atMs}:${f.kind}#${f.target}`).join(' ')}`,
  );
  const faults = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  const cluster: NatsCluster = await startNatsCluster(3);
  const servers = cluster.urls.join(',');
  const dirs: string[] = [];
  const nodes: Array<IceProcess | undefined> = [];
  let spinner: ChildProcess | undefined;
  const startNode = async (i: number) => {
    const dir = (dirs[i] ??= mkdtempSync(join(tmpdir(), `ice-chaos-n${i}-`)));
    nodes[i] = await startIceProcess(dir, {
      command: 'start',
      args: ['--nats', servers, '--cluster', '--node', `n${i}`, '--replicas', '3', '--lease-ttl', `${leaseMs}ms`],
      readyTimeoutMs: 60_000,
    });
  };
  const client = await NatsTransport.connect({
    servers: cluster.urls,
    maxReconnectAttempts: -1,
    reconnectTimeWaitMs: 100,
    name: 'chaos-load',
  });
  try {
    if (opts.cpuLoad) spinner = spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' });
    for (let i = 0; i < nNodes; i++) await startNode(i);
    const admin = async (op: string, args: unknown) => {
      for (let attempt = 0; ; attempt++) {
        try {
          const r = (await client.request(`ice.admin.${op}`, args, { timeoutMs: 10_000 })).data as {
            result?: unknown;
            error?: { message: string };
          };
          if (r.error) throw new Error(r.error.message);
          return r.result;
        } catch (e) {
          if (attempt >= 20) throw e;
          await sleep(250);
        }
      }
    };
    const actors = Array.from({ length: opts.actors ?? 16 }, (_, i) => `deployment/x${i}`);
    for (const a of actors) await admin('spawn', { address: a, input: { service: a } });
    await admin('grant.issue', { id: 'g-chaos', subject: 'agent:load', scope: 'deployment/*:CONFIGURE' });

    // ---- load: every id retried with the same bytes until it resolves
    const acked = new Map<string, Outcome>();
    const open = new Set<string>();
    let n = 0;
    let accepting = true;
    let draining = false;
    const body = (i: number, target: string) => ({
      id: `x-${opts.seed}-${i}`,
      proposer: 'agent:load',
      target,
      action: 'CONFIGURE',
      params: { version: `1.0.${i}`, replicas: 1 + (i % 50) },
    });
    const settle = async (i: number, target: string): Promise<void> => {
      const b = body(i, target);
      open.add(b.id);
      const subject = `ice.as.agent:load.${target.replace('/', '.')}`;
      for (;;) {
        try {
          const o = (await client.request(subject, b, { timeoutMs: 4000 })).data as Outcome;
          if (o.status !== 'failed' || !TRANSIENT.test(o.error.code)) {
            acked.set(b.id, o);
            open.delete(b.id);
            return;
          }
        } catch {
          // timeout or no responders: retry the same id
        }
        if (!accepting && !draining) return;
        await sleep(100);
      }
    };
    const workers = Array.from({ length: opts.inFlight ?? 24 }, async () => {
      while (accepting) {
        const i = ++n;
        await settle(i, actors[i % actors.length]!);
      }
    });

    // ---- faults
    const t0 = Date.now();
    for (const f of schedule) {
      const wait = t0 + f.atMs - Date.now();
      if (wait > 0) await sleep(wait);
      log(`${Date.now() - t0} ms: ${f.kind} #${f.target} (acknowledged so far ${acked.size})`);
      faults[f.kind]++;
      await inject(f);
    }
    const rest = t0 + opts.durationMs - Date.now();
    if (rest > 0) await sleep(rest);

    // ---- heal and drain: stop new ids, let open ones resolve (bounded)
    accepting = false;
    draining = true;
    for (const s of cluster.servers) if (!s.running) await s.restart();
    for (let i = 0; i < nNodes; i++) {
      const p = nodes[i];
      if (p) process.kill(p.pid, 'SIGCONT');
      else await startNode(i);
    }
    const drainUntil = Date.now() + 60_000 + 4 * leaseMs;
    while (open.size > 0 && Date.now() < drainUntil) await sleep(200);
    draining = false;
    await Promise.all(workers);
    const unresolved = [...open];

    // ---- no bricked actor: each one takes one more intent
    const bricked: string[] = [];
    for (const [k, a] of actors.entries()) {
      const i = 1_000_000_000 + k;
      accepting = false;
      draining = true;
      const done = settle(i, a);
      const res = await Promise.race([done.then(() => true), sleep(30_000).then(() => false)]);
      draining = false;
      const o = acked.get(body(i, a).id);
      if (!res || o?.status !== 'executed') bricked.push(`${a}: ${o ? JSON.stringify(o) : 'no answer in 30 s'}`);
    }

    const invariants = await checkInvariants({ servers: cluster.urls, acknowledged: acked });
    const evidence = await gatherEvidence(cluster.urls, invariants.violations);
    const violations = [
      ...invariants.violations,
      ...unresolved.map((id) => `unresolved intent ${id}`),
      ...bricked.map((b) => `bricked actor ${b}`),
    ];
    return {
      seed: opts.seed,
      schedule,
      faults,
      acknowledged: acked.size,
      executed: [...acked.values()].filter((o) => o.status === 'executed').length,
      unresolved,
      bricked,
      invariants,
      violations,
      evidence,
    };
  } finally {
    spinner?.kill('SIGKILL');
    for (const p of nodes) {
      if (!p) continue;
      try {
        process.kill(p.pid, 'SIGCONT');
      } catch {
        // gone
      }
      await p.kill('SIGKILL');
    }
    await client.close().catch(() => {});
    await cluster.stopAll();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }

  async function inject(f: ScheduledFault): Promise<void> {
    switch (f.kind) {
      case 'node-kill': {
        const p = nodes[f.target];
        if (!p) return;
        await p.kill('SIGKILL');
        nodes[f.target] = undefined;
        await sleep(500);
        await startNode(f.target);
        return;
      }
      case 'node-pause-past-lease':
      case 'node-pause-within-lease': {
        const p = nodes[f.target];
        if (!p) return;
        process.kill(p.pid, 'SIGSTOP');
        await sleep(f.kind === 'node-pause-past-lease' ? leaseMs + 1000 : Math.floor(leaseMs / 3));
        process.kill(p.pid, 'SIGCONT');
        return;
      }
      case 'nats-kill-one':
      case 'nats-kill-two':
      case 'nats-kill-all': {
        const count = f.kind === 'nats-kill-one' ? 1 : f.kind === 'nats-kill-two' ? 2 : 3;
        const victims = [0, 1, 2].map((k) => cluster.servers[(f.target + k) % 3]!).slice(0, count);
        for (const s of victims) await s.kill('SIGKILL');
        await sleep(1000 + 500 * count);
        for (const s of victims) await s.restart();
        return;
      }
    }
  }
}

/** The facts around each `chain#seq` a violation names, one line each, for the report. */
async function gatherEvidence(servers: string[], violations: string[]): Promise<string[]> {
  const spots = new Map<string, number[]>();
  for (const v of violations) {
    for (const m of v.matchAll(/([a-z][a-z0-9-]*\/[A-Za-z0-9_-]+) ?#(\d+)/g)) spots.set(m[1]!, [...(spots.get(m[1]!) ?? []), Number(m[2])]);
  }
  if (spots.size === 0) return [];
  const t = await NatsTransport.connect({ servers, name: 'chaos-evidence' });
  const out: string[] = [];
  try {
    const store = await JetStreamStore.open(t.connection, {});
    for (const [chain, seqs] of [...spots].slice(0, 5)) {
      const from = Math.max(1, Math.min(...seqs) - 8);
      const facts = await store.chainFacts(chain, from, Math.max(...seqs) - from + 6);
      for (const f of facts) {
        const d = f.data as { node?: string; decision?: { id?: string; authority?: string }; code?: string };
        const who = d.node ?? (d.decision ? `${d.decision.id ?? ''} by ${d.decision.authority ?? ''}` : (d.code ?? ''));
        out.push(`${chain}#${f.seq} ${f.at} ${f.type} ${f.intentId ?? ''} ${who}`);
      }
    }
    await store.close();
  } finally {
    await t.close();
  }
  return out;
}

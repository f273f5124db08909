import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { ActorDefinition } from '../host/definition.js';
import { requestAdmin } from '../admin/client.js';
import { Subjects, type Outcome } from '../protocol/index.js';
import { NatsTransport } from '../transport/nats-transport.js';
import { exampleActors } from '../../actors/index.js';
import { ledgerActor } from './chaos-actors.js';
import { ICE_BIN, startIceProcess, type IceProcess } from './ice-process.js';
import { checkInvariants, openJournal, type InvariantReport } from './invariants.js';
import { startNatsCluster, startNatsServer, type NatsServer } from './nats-server.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

/**
 * A seeded fault run against real `ice start` processes, in either deployment:
 * - `embedded`: one node on its SQLite data dir, serving over one nats-server;
 * - `cluster`: `nodes` nodes (`--cluster`, R3) on a 3-server JetStream cluster.
 * Every node reaches NATS through TCP proxies of this process and the cluster's routes run
 * through proxies too, so links can be cut, healed and slowed (tcp-proxy.ts says what such a
 * cut is and what it cannot show).
 *
 * Traffic: `proposers` principals keep `inFlight` intents going on their own
 * `ice.as.<principal>.…` subjects, each retried with the same id and bytes until it resolves
 * (a pending one until a human decides it); the last proposer's grant is revoked and reissued
 * over and over; an approver approves what waits. A schedule derived from the seed injects
 * the faults. At the end every fault is healed, every actor must execute one more intent (none
 * bricked), and `checkInvariants` reads the journal. Same seed → same schedule and the same
 * intents (the timing of the load, and so the interleaving, still varies).
 */
export const FAULT_KINDS = [
  'node-kill',
  'node-pause-past-lease',
  'node-pause-within-lease',
  'nats-kill-one',
  'nats-kill-two',
  'nats-kill-all',
  'partition-node',
  'partition-server',
  'slow-network',
  'actor-crash',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** The kinds each mode can inject (one server: no quorum to lose, no route to cut). */
export const MODE_FAULTS: Record<ChaosMode, readonly FaultKind[]> = {
  embedded: [
    'node-kill',
    'node-pause-past-lease',
    'node-pause-within-lease',
    'nats-kill-one',
    'partition-node',
    'slow-network',
    'actor-crash',
  ],
  cluster: FAULT_KINDS,
};

export type ChaosMode = 'embedded' | 'cluster';

/**
 * What the run drives: your actor kinds instead of the built-in ledger.
 * @example
 * const workload: ChaosWorkload = {
 *   actorsModule: fileURLToPath(new URL('./my-actors.js', import.meta.url)),
 *   definitions: [accountActor],
 *   actors: ['account/a1', 'account/a2'].map((address) => ({ address, input: { owner: 'x' } })),
 *   scope: 'account/*:*',
 *   intent: (i, rnd) => ({ action: 'DEPOSIT', params: { cents: 1 + Math.floor(rnd() * 100) } }),
 *   probe: { action: 'PING', params: {} },
 * };
 */
export interface ChaosWorkload {
  /** An ES module exporting `actors` (given to each node as `--actors`). */
  actorsModule: string;
  /** The same definitions, for the replay in `checkInvariants`. */
  definitions: ActorDefinition[];
  /** The actors to spawn. */
  actors: Array<{ address: string; input?: unknown }>;
  /** The scope the proposers' grants cover, e.g. `account/*:*`. */
  scope: string;
  /** The action and params of intent number `i` (the target is chosen by the run). */
  intent(i: number, rnd: () => number): { action: string; params: Record<string, unknown> };
  /** An intent every actor executes in any state: proves at the end that none is bricked. */
  probe: { action: string; params: Record<string, unknown> };
  /** An intent whose action throws inside the machine (for `actor-crash`); none: the fault is skipped. */
  crash?: { action: string; params: Record<string, unknown> };
}

export interface ChaosOptions {
  mode: ChaosMode;
  seed: number;
  durationMs: number;
  /** Runtime node processes: 1 in embedded mode (the default), default 3 in a cluster. */
  nodes?: number;
  /** Actors of the built-in ledger workload (default 12). */
  actors?: number;
  /** Principals proposing at once (default 3); the last one's grant is revoked and reissued. */
  proposers?: number;
  /** Intents in flight at once (default 16). */
  inFlight?: number;
  /** Cluster lease length (default 2 s); the embedded pauses use the same lengths. */
  leaseMs?: number;
  /** Pause between faults: [min, max] ms (default [2000, 6000]). */
  faultGapMs?: [number, number];
  /** The kinds to draw from (default: every kind of the mode). */
  faults?: readonly FaultKind[];
  /** An explicit schedule instead of the one the seed gives. */
  schedule?: ScheduledFault[];
  /** Keep one core busy with a spinning process while the run lasts. */
  cpuLoad?: boolean;
  workload?: ChaosWorkload;
  log?: (line: string) => void;
}

export interface ScheduledFault {
  atMs: number;
  kind: FaultKind;
  /** Which node, server or actor (an index). */
  target: number;
}

export interface ChaosReport {
  mode: ChaosMode;
  seed: number;
  schedule: ScheduledFault[];
  faults: Partial<Record<FaultKind, number>>;
  /** Intents whose final outcome a proposer saw, by status. */
  acknowledged: number;
  outcomes: Record<string, number>;
  /** Intents that waited for a human and were approved. */
  approved: number;
  grantsRevoked: number;
  /**
   * Liveness, measured: from the end of each fault (healed, restarted) to the next intent a
   * proposer saw resolved, by kind. Not checked, reported.
   */
  recovery: Partial<Record<FaultKind, { n: number; medianMs: number; maxMs: number }>>;
  /** Ids still unresolved at the end (an unresolved id is a bricked actor or a lost reply). */
  unresolved: string[];
  /** Actors that did not execute a final intent after every fault healed. */
  bricked: string[];
  invariants: InvariantReport;
  /** Everything broken: the invariants', unresolved ids, bricked actors. Must be empty. */
  violations: string[];
  /** For each chain a violation names: its facts around the named positions. */
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
  opts: Pick<ChaosOptions, 'mode' | 'seed' | 'durationMs' | 'faultGapMs' | 'faults' | 'nodes' | 'actors'>,
): ScheduledFault[] {
  const rnd = seededRandom(opts.seed);
  const [min, max] = opts.faultGapMs ?? [2000, 6000];
  const kinds = opts.faults ?? MODE_FAULTS[opts.mode];
  for (const k of kinds) if (!MODE_FAULTS[opts.mode].includes(k)) throw new Error(`fault ${k} cannot be injected in ${opts.mode} mode`);
  const nodes = opts.nodes ?? (opts.mode === 'cluster' ? 3 : 1);
  const out: ScheduledFault[] = [];
  for (let t = min + rnd() * (max - min); t < opts.durationMs; t += min + rnd() * (max - min)) {
    const kind = kinds[Math.floor(rnd() * kinds.length)]!;
    const of = kind === 'actor-crash' ? 1 << 16 : kind.startsWith('nats') || kind === 'partition-server' ? 3 : nodes;
    out.push({ atMs: Math.round(t), kind, target: Math.floor(rnd() * of) });
  }
  return out;
}

/** A schedule as one line: `atMs:kind#target …` (what a failing run prints, to replay it). */
export function formatSchedule(schedule: readonly ScheduledFault[]): string {
  return schedule.map((f) => `${f.atMs}:${f.kind}#${f.target}`).join(' ');
}

/** The built-in workload: ledgers credited, debited, frozen and thawed; large credits wait for a human. */
export function ledgerWorkload(actors = 12): ChaosWorkload {
  return {
    // the built module next to the `ice` the nodes run (also when this file runs from src/)
    actorsModule: join(dirname(ICE_BIN), '../testing/chaos-actors.js'),
    definitions: [ledgerActor],
    actors: Array.from({ length: actors }, (_, i) => ({ address: `ledger/l${i}` })),
    scope: 'ledger/*:*',
    intent(i, rnd) {
      const r = rnd();
      const amount = 1 + Math.floor(rnd() * 1000);
      if (r < 0.02) return { action: 'CREDIT', params: { amount: 900_000 + amount, ref: `r${i}` } }; // waits for a human
      if (r < 0.035) return { action: 'FREEZE', params: {} };
      if (r < 0.15) return { action: 'THAW', params: {} };
      if (r < 0.35) return { action: 'DEBIT', params: { amount, ref: `r${i}` } };
      return { action: 'CREDIT', params: { amount, ref: `r${i}` } };
    },
    probe: { action: 'PING', params: {} },
    crash: { action: 'CRASH', params: {} },
  };
}

/** Failures a proposer retries with the same id: the node, the store or the network was not there. */
const TRANSIENT = /E_NOT_OWNER|E_OWNER_UNREACHABLE|E_OWNERSHIP|E_TIMEOUT|E_COMMIT|E_JOURNAL|E_CONFLICT|E_CLOSED|E_INTERNAL|E_AUTHORITY/;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Who the run's admin requests (spawns, grants, approvals) are recorded as. */
const OPERATOR = 'operator:chaos';

export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const log = opts.log ?? (() => {});
  const mode = opts.mode;
  const cluster = mode === 'cluster';
  const nNodes = opts.nodes ?? (cluster ? 3 : 1);
  if (!cluster && nNodes !== 1) throw new Error('embedded mode runs one node (its data dir has one writer)');
  const leaseMs = opts.leaseMs ?? 2000;
  const workload = opts.workload ?? ledgerWorkload(opts.actors ?? 12);
  if (opts.schedule)
    for (const f of opts.schedule)
      if (!MODE_FAULTS[mode].includes(f.kind)) throw new Error(`fault ${f.kind} cannot be injected in ${mode} mode`);
  const schedule = opts.schedule ?? faultSchedule({ ...opts, nodes: nNodes });
  log(`${mode}, seed ${opts.seed}: ${schedule.length} faults over ${opts.durationMs} ms: ${formatSchedule(schedule)}`);
  const faults: Partial<Record<FaultKind, number>> = {};

  // ---- NATS: servers, and a proxy per (node, server) link
  const nats = cluster ? await startNatsCluster(3, { proxiedRoutes: true }) : undefined;
  const single: NatsServer | undefined = cluster ? undefined : await startNatsServer();
  const servers = nats ? nats.servers : [single!];
  const urls = servers.map((s) => s.url);
  const links: TcpProxy[][] = [];
  const dirs: string[] = [];
  const nodes: Array<IceProcess | undefined> = [];
  let spinner: ChildProcess | undefined;
  const client = await NatsTransport.connect({ servers: urls, maxReconnectAttempts: -1, reconnectTimeWaitMs: 100, name: 'chaos-load' });

  const startNode = async (i: number) => {
    links[i] ??= await Promise.all(servers.map((s) => startTcpProxy({ port: s.port })));
    const via = links[i].map((p) => `nats://127.0.0.1:${p.port}`).join(',');
    const dir = (dirs[i] ??= mkdtempSync(join(tmpdir(), `ice-chaos-${mode}-n${i}-`)));
    nodes[i] = await startIceProcess(dir, {
      command: 'start',
      args: [
        '--nats',
        via,
        '--node',
        `n${i}`,
        '--actors',
        workload.actorsModule,
        ...(cluster ? ['--cluster', '--replicas', '3', '--lease-ttl', `${leaseMs}ms`] : []),
      ],
      readyTimeoutMs: 60_000,
    });
  };
  const admin = async (op: string, args: unknown, attempts = 40): Promise<unknown> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await requestAdmin(client, OPERATOR, op, args, 5000);
      } catch (e) {
        const code = (e as { code?: string }).code ?? '';
        if (attempt >= attempts || /E_VALIDATION|E_NOT_FOUND|E_EXISTS/.test(code)) throw e;
        await sleep(250);
      }
    }
  };

  let healing = false;
  /** Nodes that would not start again (a start-up check refusing a broken journal, say): each a violation. */
  const failures: string[] = [];
  const restartNode = async (i: number) => {
    try {
      await startNode(i);
    } catch (e) {
      nodes[i] = undefined;
      const lines = (e as Error).message.split('\n').filter((l) => /E_[A-Z_]+|error/.test(l));
      failures.push(`node n${i} did not start again: ${(lines.at(-1) ?? (e as Error).message).slice(0, 600)}`);
      log(`node n${i} did not start again; ending the run`);
    }
  };
  try {
    if (opts.cpuLoad) spinner = spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' });
    for (let i = 0; i < nNodes; i++) await startNode(i);
    for (const a of workload.actors) await admin('spawn', { address: a.address, input: a.input, ifAbsent: true });
    const proposers = Array.from({ length: opts.proposers ?? 3 }, (_, k) => `agent:p${k}`);
    for (const p of proposers) await admin('grant.issue', { id: `g-${p.slice(6)}-0`, subject: p, scope: workload.scope, ensure: true });
    if (workload.crash) await admin('grant.issue', { id: 'g-chaos-crash', subject: 'agent:chaos', scope: workload.scope, ensure: true });

    // ---- load: every id retried with the same bytes until it resolves
    const acked = new Map<string, Outcome>();
    const open = new Set<string>();
    let n = 0;
    let accepting = true;
    let draining = false;
    const body = (i: number) => {
      const rnd = seededRandom(opts.seed * 7919 + i);
      const proposer = proposers[i % proposers.length]!;
      const target = workload.actors[Math.floor(rnd() * workload.actors.length)]!.address;
      return { id: `c-${opts.seed}-${i}`, proposer, target, ...workload.intent(i, rnd) };
    };
    const settle = async (b: { id: string; proposer: string; target: string }): Promise<void> => {
      open.add(b.id);
      const subject = Subjects.intentAs(b.proposer, b.target);
      for (;;) {
        try {
          const o = (await client.request(subject, b, { timeoutMs: 4000 })).data as Outcome;
          if (o.status === 'pending') {
            acked.set(b.id, o); // seen pending: asked again until a human decides
          } else if (o.status !== 'failed' || !TRANSIENT.test(o.error.code)) {
            acked.set(b.id, o);
            open.delete(b.id);
            return;
          }
        } catch {
          // timeout or no responders: retry the same id
        }
        if (!accepting && !draining) return;
        await sleep(acked.get(b.id)?.status === 'pending' ? 400 : 100);
      }
    };
    const workers = Array.from({ length: opts.inFlight ?? 16 }, async () => {
      while (accepting) await settle(body(++n));
    });

    // ---- an approver and a grant that comes and goes
    let approved = 0;
    let grantsRevoked = 0;
    const sideJobs = [
      (async () => {
        while (accepting || (draining && open.size > 0)) {
          try {
            const waiting = (await admin('approvals', {}, 0)) as Array<{ intentId: string }>;
            for (const w of waiting) {
              await admin('approve', { intentId: w.intentId }, 0).then(
                () => approved++,
                () => {},
              );
            }
          } catch {
            // a node is down or cut off: next round
          }
          await sleep(500);
        }
      })(),
      (async () => {
        const p = proposers.at(-1)!;
        for (let round = 1; accepting; round++) {
          await sleep(3000);
          if (!accepting) break;
          try {
            await admin('grant.revoke', { id: `g-${p.slice(6)}-${round - 1}`, reason: 'chaos: revoke and reissue' }, 10);
            grantsRevoked++;
            await sleep(1000);
          } catch {
            // already revoked by a retry that got through
          }
          await admin('grant.issue', { id: `g-${p.slice(6)}-${round}`, subject: p, scope: workload.scope, ensure: true }, 1000).catch(
            () => {},
          );
        }
      })(),
    ];

    // ---- faults, and how long after each one ended the next intent was acknowledged
    const recoveries: Array<{ kind: FaultKind; ms: number }> = [];
    const watchRecovery = (kind: FaultKind) => {
      const base = acked.size;
      const t = Date.now();
      void (async () => {
        while (acked.size === base && accepting) await sleep(50);
        if (acked.size > base) recoveries.push({ kind, ms: Date.now() - t });
      })();
    };
    const t0 = Date.now();
    const progress = setInterval(() => log(`${Date.now() - t0} ms: acknowledged ${acked.size}, open ${open.size}`), 5000);
    for (const f of schedule) {
      if (failures.length > 0) break;
      const wait = t0 + f.atMs - Date.now();
      if (wait > 0) await sleep(wait);
      log(`${Date.now() - t0} ms: ${f.kind} #${f.target} (acknowledged so far ${acked.size})`);
      faults[f.kind] = (faults[f.kind] ?? 0) + 1;
      await inject(f);
      watchRecovery(f.kind);
    }
    const rest = t0 + opts.durationMs - Date.now();
    if (rest > 0 && failures.length === 0) await sleep(rest);
    clearInterval(progress);

    // ---- heal and drain: stop new ids, let open ones resolve (bounded)
    accepting = false;
    draining = true;
    await healAll();
    // a node that would not start is the finding: no waiting on what it would have served
    const drainUntil = failures.length > 0 ? Date.now() : Date.now() + 60_000 + 4 * leaseMs;
    while (open.size > 0 && Date.now() < drainUntil) await sleep(200);
    draining = false;
    await Promise.all([...workers, ...sideJobs]);
    const unresolved = [...open];

    // ---- no bricked actor: each one takes one more intent
    const bricked: string[] = [];
    draining = true;
    for (const [k, a] of failures.length > 0 ? [] : workload.actors.entries()) {
      const b = { id: `c-${opts.seed}-probe-${k}`, proposer: proposers[0]!, target: a.address, ...workload.probe };
      const done = await Promise.race([settle(b).then(() => true), sleep(30_000).then(() => false)]);
      const o = acked.get(b.id);
      if (!done || o?.status !== 'executed') bricked.push(`${a.address}: ${o ? JSON.stringify(o) : 'no answer in 30 s'}`);
    }
    draining = false;

    // the journal is read with every node stopped, from a cluster whose streams have settled
    for (const p of nodes) await p?.kill('SIGTERM');
    await nats?.settled();
    const source = cluster ? { servers: urls } : { dataDir: dirs[0]! };
    const invariants = await checkInvariants({
      ...source,
      actors: [...(exampleActors as ActorDefinition[]), ...workload.definitions],
      acknowledged: acked,
    });
    const evidence = await gatherEvidence(source, invariants.violations);
    if (nats && (invariants.violations.length > 0 || failures.length > 0)) {
      // replicas that hold different histories point at the servers, one history at the writers
      for (const r of await nats.streamStates())
        if (r.stream === 'ICE_JOURNAL')
          evidence.push(`${r.stream} on ${r.server} (leader ${r.leader}): ${r.messages} messages, last seq ${r.lastSeq}`);
    }
    const violations = [
      ...failures,
      ...invariants.violations,
      ...unresolved.map((id) => `unresolved intent ${id}`),
      ...bricked.map((b) => `bricked actor ${b}`),
    ];
    if (violations.length > 0) log(`VIOLATIONS: replay with seed ${opts.seed}, schedule ${formatSchedule(schedule)}`);
    const recovery: ChaosReport['recovery'] = {};
    for (const k of new Set(recoveries.map((r) => r.kind))) {
      const ms = recoveries.filter((r) => r.kind === k).map((r) => r.ms);
      ms.sort((a, b) => a - b);
      recovery[k] = { n: ms.length, medianMs: ms[Math.floor(ms.length / 2)]!, maxMs: ms.at(-1)! };
    }
    const outcomes: Record<string, number> = {};
    for (const o of acked.values()) outcomes[o.status] = (outcomes[o.status] ?? 0) + 1;
    return {
      mode,
      seed: opts.seed,
      schedule,
      faults,
      acknowledged: acked.size,
      outcomes,
      approved,
      grantsRevoked,
      recovery,
      unresolved,
      bricked,
      invariants,
      violations,
      evidence,
    };
  } finally {
    healing = true;
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
    await nats?.stopAll();
    await single?.stop();
    for (const l of links.flat()) await l.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }

  async function healAll(): Promise<void> {
    nats?.heal();
    for (const l of links.flat()) {
      l.heal();
      l.delay(0);
    }
    for (const s of servers) if (!s.running) await s.restart();
    for (let i = 0; i < nNodes; i++) {
      const p = nodes[i];
      if (p) process.kill(p.pid, 'SIGCONT');
      else if (failures.length === 0) await restartNode(i);
    }
  }

  async function inject(f: ScheduledFault): Promise<void> {
    if (healing) return;
    switch (f.kind) {
      case 'node-kill': {
        const p = nodes[f.target];
        if (!p) return;
        await p.kill('SIGKILL');
        nodes[f.target] = undefined;
        await sleep(500);
        await restartNode(f.target);
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
        const count = Math.min(servers.length, f.kind === 'nats-kill-one' ? 1 : f.kind === 'nats-kill-two' ? 2 : 3);
        const victims = servers.map((_, k) => servers[(f.target + k) % servers.length]!).slice(0, count);
        for (const s of victims) await s.kill('SIGKILL');
        await sleep(1000 + 500 * count);
        for (const s of victims) await s.restart();
        return;
      }
      case 'partition-node': {
        // the node keeps running but reaches no server: past its lease, so another node takes over
        for (const l of links[f.target] ?? []) l.partition();
        await sleep(leaseMs + 1500);
        for (const l of links[f.target] ?? []) l.heal();
        return;
      }
      case 'partition-server': {
        // one server cut off from the other two; its clients still reach it
        nats!.partition(f.target);
        await sleep(leaseMs + 3000);
        nats!.heal();
        return;
      }
      case 'slow-network': {
        const ms = 20 + (f.target % 181);
        for (const l of links.flat()) l.delay(ms);
        await sleep(4000);
        for (const l of links.flat()) l.delay(0);
        return;
      }
      case 'actor-crash': {
        if (!workload.crash) return;
        const a = workload.actors[f.target % workload.actors.length]!.address;
        const b = { id: `c-${opts.seed}-crash-${f.atMs}`, proposer: 'agent:chaos', target: a, ...workload.crash };
        // its outcome (failed, E_TRANSITION_THREW) is checked like any other: no transition
        try {
          const o = (await client.request(Subjects.intentAs(b.proposer, b.target), b, { timeoutMs: 4000 })).data as Outcome;
          log(`  ${a} crashed: ${o.status}${o.status === 'failed' ? ` ${o.error.code} ${o.error.message.slice(0, 200)}` : ''}`);
        } catch {
          // not answered in time: the journal still says what happened
        }
        return;
      }
    }
  }
}

/** The facts around each `chain#seq` a violation names, one line each, for the report. */
async function gatherEvidence(source: { dataDir: string } | { servers: string[] }, violations: string[]): Promise<string[]> {
  const spots = new Map<string, number[]>();
  for (const v of violations) {
    for (const m of v.matchAll(/([a-z][a-z0-9-]*\/[A-Za-z0-9_-]+) ?#(\d+)/g)) spots.set(m[1]!, [...(spots.get(m[1]!) ?? []), Number(m[2])]);
  }
  if (spots.size === 0) return [];
  const view = await openJournal(source);
  const out: string[] = [];
  try {
    for (const [chain, seqs] of [...spots].slice(0, 5)) {
      const from = Math.max(1, Math.min(...seqs) - 8);
      for (const f of await view.reader.chain(chain, from, Math.max(...seqs) - from + 6)) {
        const d = f.data as { node?: string; decision?: { id?: string; authority?: string }; code?: string };
        const who = d.node ?? (d.decision ? `${d.decision.id ?? ''} by ${d.decision.authority ?? ''}` : (d.code ?? ''));
        out.push(`${chain}#${f.seq} ${f.at} ${f.type} ${f.intentId ?? ''} ${who}`);
      }
    }
  } finally {
    await view.close();
  }
  return out;
}

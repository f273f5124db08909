import { describe, expect, it, vi } from 'vitest';
import { createActor, type AnyStateMachine } from 'xstate';
import type { ZodType } from 'zod';
import { deploymentEvents, deploymentMachine, runEvents, runMachine, runRuntimeEvents } from '../../machines/index.js';
import { stateToString } from '../../src/host/state-value.js';

/**
 * The example machines, driven the way the host drives them: an actor restored from a
 * JSON-cloned persisted snapshot, one event, read the persisted snapshot back.
 */

type Ev = { type: string } & Record<string, unknown>;
type Persisted = { status: string; value: unknown; context: Record<string, unknown> } & Record<string, unknown>;

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

function start(machine: AnyStateMachine, input?: unknown) {
  const a = createActor(machine, { input });
  a.subscribe({ error: () => {} });
  a.start();
  return a;
}

function restore(machine: AnyStateMachine, persisted: unknown) {
  const a = createActor(machine, { snapshot: clone(persisted) as never });
  a.subscribe({ error: () => {} });
  a.start();
  return a;
}

/** Sends one event to a restored copy of `from`; the original is never touched. */
function step(machine: AnyStateMachine, from: Persisted, ev: Ev): { next: Persisted; could: boolean } {
  const a = restore(machine, from);
  const snap = a.getSnapshot() as { status: string; can(e: Ev): boolean };
  const could = snap.can(ev);
  if (snap.status !== 'active') {
    // A finished actor: XState ignores the event and warns about it; silence the warning.
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      a.send(ev);
    } finally {
      warn.mockRestore();
    }
  } else a.send(ev);
  const next = clone(a.getPersistedSnapshot()) as unknown as Persisted;
  a.stop();
  return { next, could };
}

const stateOf = (p: Persisted) => stateToString(p.value as never);
const keyOf = (p: Persisted) => JSON.stringify([p.status, p.value, p.context]);

interface Edge {
  from: string;
  to: string;
  event: string;
  before: Persisted;
  after: Persisted;
}

/** Breadth-first over every reachable (state, context) with every sample event. */
function explore(machine: AnyStateMachine, inputs: unknown[], samples: Ev[]) {
  const seen = new Map<string, Persisted>();
  const queue: Persisted[] = [];
  for (const input of inputs) {
    const a = start(machine, input);
    const p = clone(a.getPersistedSnapshot()) as unknown as Persisted;
    a.stop();
    if (!seen.has(keyOf(p))) {
      seen.set(keyOf(p), p);
      queue.push(p);
    }
  }
  const edges: Edge[] = [];
  while (queue.length > 0) {
    const cur = queue.shift()!;
    if (seen.size > 5000) throw new Error('state space did not close: the machine has an unbounded loop');
    for (const ev of samples) {
      const { next } = step(machine, cur, ev);
      const nk = keyOf(next);
      if (nk === keyOf(cur)) continue; // nothing happened
      edges.push({ from: stateOf(cur), to: stateOf(next), event: ev.type, before: cur, after: next });
      if (!seen.has(nk)) {
        seen.set(nk, next);
        queue.push(next);
      }
    }
  }
  return { nodes: [...seen.values()], edges };
}

/** Whether `to` reaches `from` over `edges` (state names only). */
function reaches(edges: Array<{ from: string; to: string }>, src: string, dst: string): boolean {
  const adj = new Map<string, Set<string>>();
  for (const e of edges) if (e.from !== e.to) (adj.get(e.from) ?? adj.set(e.from, new Set()).get(e.from)!).add(e.to);
  const stack = [src];
  const visited = new Set<string>();
  while (stack.length) {
    const s = stack.pop()!;
    if (s === dst) return true;
    if (visited.has(s)) continue;
    visited.add(s);
    for (const n of adj.get(s) ?? []) stack.push(n);
  }
  return false;
}

function checkSamples(schemas: Record<string, ZodType>, samples: Ev[]): void {
  for (const ev of samples) {
    const schema = schemas[ev.type];
    expect(schema, `sample for unknown event ${ev.type}`).toBeDefined();
    const { type: _t, ...params } = ev;
    expect(schema!.safeParse(params).success, `sample ${JSON.stringify(ev)} fails its schema`).toBe(true);
  }
  // Every event the machine accepts has at least one sample, so the exploration is complete.
  expect(new Set(samples.map((s) => s.type))).toEqual(new Set(Object.keys(schemas)));
}

const runSamples: Ev[] = [
  { type: 'PROVISION', resources: ['k8s:staging'] },
  { type: 'LOAD_CONTEXT', sources: ['git:repo'] },
  { type: 'EXECUTE' },
  { type: 'SUBMIT', summary: 'done' },
  { type: 'COMMIT' },
  { type: 'ABORT', reason: 'changed my mind' },
  { type: 'TERMINATE' },
  { type: 'RUNTIME_ABORT', reason: 'operator kill' },
  { type: 'ORCHESTRATE', deployment: 'deployment/web', environment: 'staging' },
];

const deploymentSamples: Ev[] = [
  { type: 'CONFIGURE', version: '1.0.0', replicas: 2 },
  { type: 'SUBMIT', author: 'alice' },
  { type: 'APPROVE', reviewer: 'alice' },
  { type: 'APPROVE', reviewer: 'bob' },
  { type: 'APPROVE', reviewer: 'carol' },
  { type: 'REJECT', reviewer: 'bob', reason: 'no' },
  { type: 'DEPLOY', environment: 'staging' },
  { type: 'DEPLOY', environment: 'production' },
  { type: 'MARK_HEALTHY' },
  { type: 'MARK_FAILED', reason: 'crashloop' },
  { type: 'RETRY' },
  { type: 'SCALE', replicas: 5 },
  { type: 'RETIRE' },
];

const declaredStates = (m: AnyStateMachine) => Object.keys(m.root.states).sort();

describe('run machine', () => {
  const graph = explore(runMachine, [undefined, { goal: 'ship it' }], runSamples);

  it('has a sample for every event and every sample is valid', () => {
    checkSamples({ ...runEvents, ...runRuntimeEvents }, runSamples);
  });

  it('reaches every declared state', () => {
    expect([...new Set(graph.nodes.map(stateOf))].sort()).toEqual(declaredStates(runMachine));
  });

  it('walks the happy path CREATED → … → TERMINATED', () => {
    const a = start(runMachine, { goal: 'g' });
    const seen = [stateToString(a.getSnapshot().value)];
    for (const ev of runSamples.filter((e) => ['PROVISION', 'LOAD_CONTEXT', 'EXECUTE', 'SUBMIT', 'COMMIT', 'TERMINATE'].includes(e.type))) {
      a.send(ev as never);
      seen.push(stateToString(a.getSnapshot().value));
    }
    expect(seen).toEqual(['CREATED', 'PROVISIONED', 'CONTEXT_READY', 'EXECUTING', 'VALIDATING', 'COMMITTED', 'TERMINATED']);
    expect(a.getSnapshot().status).toBe('done');
    expect(a.getSnapshot().context).toMatchObject({ goal: 'g', resources: ['k8s:staging'], sources: ['git:repo'], summary: 'done' });
  });

  it('is forward-only: no reachable transition leads back to an earlier state', () => {
    expect(graph.edges.length).toBeGreaterThan(0);
    for (const e of graph.edges) {
      // A change of state must never be undoable: the target never reaches the source again.
      if (e.from !== e.to) expect(reaches(graph.edges, e.to, e.from), `${e.from} -${e.event}-> ${e.to} is part of a cycle`).toBe(false);
    }
    // No event changes context without changing state (nothing is silently rewritten).
    for (const e of graph.edges) expect(e.from === e.to, `${e.event} in ${e.from} changed context in place`).toBe(false);
  });

  it('takes only the events of each state (exhaustive table)', () => {
    const allowed: Record<string, string[]> = {
      CREATED: ['PROVISION', 'ABORT', 'RUNTIME_ABORT'],
      PROVISIONED: ['LOAD_CONTEXT', 'ABORT', 'RUNTIME_ABORT'],
      CONTEXT_READY: ['EXECUTE', 'ABORT', 'RUNTIME_ABORT'],
      EXECUTING: ['SUBMIT', 'ABORT', 'RUNTIME_ABORT'],
      VALIDATING: ['COMMIT', 'ABORT', 'RUNTIME_ABORT'],
      COMMITTED: ['TERMINATE'],
      ABORTED: ['TERMINATE'],
      TERMINATED: [],
      TERMINATED_BY_RUNTIME: [],
    };
    const observed: Record<string, Set<string>> = {};
    for (const n of graph.nodes) observed[stateOf(n)] ??= new Set();
    for (const e of graph.edges) observed[e.from]!.add(e.event);
    expect(Object.fromEntries(Object.entries(observed).map(([k, v]) => [k, [...v].sort()]))).toEqual(
      Object.fromEntries(Object.entries(allowed).map(([k, v]) => [k, [...v].sort()])),
    );
  });

  it('RUNTIME_ABORT terminates every live state and records the reason', () => {
    const live = graph.nodes.filter((n) => restore(runMachine, n).getSnapshot().hasTag('live'));
    expect([...new Set(live.map(stateOf))].sort()).toEqual(['CONTEXT_READY', 'CREATED', 'EXECUTING', 'PROVISIONED', 'VALIDATING']);
    for (const n of live) {
      const { next, could } = step(runMachine, n, { type: 'RUNTIME_ABORT', reason: 'kill switch' });
      expect(could).toBe(true);
      expect(stateOf(next)).toBe('TERMINATED_BY_RUNTIME');
      expect(next.status).toBe('done');
      expect(next.context.abortReason).toBe('kill switch');
    }
  });

  it('RUNTIME_ABORT does nothing in COMMITTED, ABORTED and TERMINATED', () => {
    for (const name of ['COMMITTED', 'ABORTED', 'TERMINATED']) {
      const nodes = graph.nodes.filter((n) => stateOf(n) === name);
      expect(nodes.length, name).toBeGreaterThan(0);
      for (const n of nodes) {
        const { next, could } = step(runMachine, n, { type: 'RUNTIME_ABORT', reason: 'too late' });
        expect(keyOf(next), name).toBe(keyOf(n));
        // COMMITTED/ABORTED refuse it in the machine; TERMINATED is final, and the host refuses
        // any event to a `done` actor by its status (the root-level RUNTIME_ABORT would still
        // answer `can() === true` there).
        if (n.status === 'active') expect(could, name).toBe(false);
        else expect(n.status, name).toBe('done');
      }
    }
  });

  it('ABORT is refused without a reason by its schema and records the reason', () => {
    expect(runEvents.ABORT.safeParse({}).success).toBe(false);
    const a = start(runMachine);
    a.send({ type: 'PROVISION', resources: [] });
    a.send({ type: 'ABORT', reason: 'budget' });
    expect(stateToString(a.getSnapshot().value)).toBe('ABORTED');
    expect(a.getSnapshot().context.abortReason).toBe('budget');
  });
});

describe('deployment machine', () => {
  const inputs = [
    undefined,
    { service: 'web', requiredApprovals: 1 },
    { service: 'web', requiredApprovals: 2 },
    { service: 'web', requiredApprovals: 3 },
  ];
  const graph = explore(deploymentMachine, inputs, deploymentSamples);

  it('has a sample for every event and every sample is valid', () => {
    checkSamples(deploymentEvents, deploymentSamples);
  });

  it('reaches every declared state', () => {
    expect([...new Set(graph.nodes.map(stateOf))].sort()).toEqual(declaredStates(deploymentMachine));
  });

  it('is forward-only: the only way back is RETRY, which is bounded by attempts', () => {
    const changes = graph.edges.filter((e) => e.from !== e.to);
    expect(changes.length).toBeGreaterThan(0);
    // Without RETRY the state graph has no cycle at all.
    const noRetry = changes.filter((e) => e.event !== 'RETRY');
    for (const e of noRetry) expect(reaches(noRetry, e.to, e.from), `${e.from} -${e.event}-> ${e.to} is part of a cycle`).toBe(false);
    // RETRY goes failed → rolling_out only, and every RETRY spends an attempt (so the loop is finite).
    const retries = graph.edges.filter((e) => e.event === 'RETRY');
    expect(retries.length).toBeGreaterThan(0);
    for (const e of retries) {
      expect([e.from, e.to]).toEqual(['failed', 'rolling_out']);
      expect(e.after.context.attempts).toBe((e.before.context.attempts as number) + 1);
      expect(e.after.context.attempts as number).toBeLessThanOrEqual(3);
    }
    // Nothing ever re-enters draft, and in_review/approved are entered from one state each.
    const into = (st: string) => new Set(changes.filter((e) => e.to === st).map((e) => e.from));
    expect(into('draft').size).toBe(0);
    expect([...into('in_review')]).toEqual(['draft']);
    expect([...into('approved')]).toEqual(['in_review']);
  });

  it('changes context in place only with CONFIGURE (draft), APPROVE (in_review) and SCALE (live)', () => {
    const inPlace = new Set(graph.edges.filter((e) => e.from === e.to).map((e) => `${e.from}:${e.event}`));
    expect([...inPlace].sort()).toEqual(['draft:CONFIGURE', 'in_review:APPROVE', 'live:SCALE']);
  });

  it('SUBMIT needs CONFIGURE first', () => {
    const a = start(deploymentMachine, { service: 'web' });
    expect(a.getSnapshot().can({ type: 'SUBMIT', author: 'alice' })).toBe(false);
    a.send({ type: 'SUBMIT', author: 'alice' });
    expect(a.getSnapshot().value).toBe('draft');
    expect(a.getSnapshot().context.author).toBeUndefined();
    a.send({ type: 'CONFIGURE', version: '1.2.3', replicas: 3 });
    expect(a.getSnapshot().value).toBe('draft');
    a.send({ type: 'SUBMIT', author: 'alice' });
    expect(a.getSnapshot().value).toBe('in_review');
    expect(a.getSnapshot().context).toMatchObject({ version: '1.2.3', replicas: 3, author: 'alice' });
    // And everywhere in the explored space: no node without a version is ever in review.
    for (const n of graph.nodes) if (stateOf(n) !== 'draft') expect(n.context.version, stateOf(n)).toBeDefined();
  });

  it('APPROVE by the author is refused', () => {
    const a = start(deploymentMachine, { service: 'web' });
    a.send({ type: 'CONFIGURE', version: '1.0.0', replicas: 1 });
    a.send({ type: 'SUBMIT', author: 'alice' });
    expect(a.getSnapshot().can({ type: 'APPROVE', reviewer: 'alice' })).toBe(false);
    a.send({ type: 'APPROVE', reviewer: 'alice' });
    expect(a.getSnapshot().value).toBe('in_review');
    expect(a.getSnapshot().context.reviewers).toEqual([]);
    a.send({ type: 'APPROVE', reviewer: 'bob' });
    expect(a.getSnapshot().value).toBe('approved');
    expect(a.getSnapshot().context.reviewers).toEqual(['bob']);
    // Systematically: no explored APPROVE edge ever added the author as a reviewer.
    for (const e of graph.edges.filter((x) => x.event === 'APPROVE')) {
      expect(e.after.context.reviewers as string[]).not.toContain(e.before.context.author);
    }
  });

  it('requiredApprovals 2 needs two distinct reviewers', () => {
    const a = start(deploymentMachine, { service: 'web', requiredApprovals: 2 });
    a.send({ type: 'CONFIGURE', version: '1.0.0', replicas: 1 });
    a.send({ type: 'SUBMIT', author: 'alice' });
    a.send({ type: 'APPROVE', reviewer: 'bob' });
    expect(a.getSnapshot().value).toBe('in_review');
    expect(a.getSnapshot().context.reviewers).toEqual(['bob']);
    expect(a.getSnapshot().can({ type: 'APPROVE', reviewer: 'bob' })).toBe(false);
    a.send({ type: 'APPROVE', reviewer: 'bob' });
    expect(a.getSnapshot().value).toBe('in_review');
    expect(a.getSnapshot().context.reviewers).toEqual(['bob']);
    a.send({ type: 'APPROVE', reviewer: 'alice' });
    expect(a.getSnapshot().value).toBe('in_review');
    a.send({ type: 'APPROVE', reviewer: 'carol' });
    expect(a.getSnapshot().value).toBe('approved');
    expect(a.getSnapshot().context.reviewers).toEqual(['bob', 'carol']);
    // Systematically: every explored approved node has enough distinct, non-author reviewers.
    for (const n of graph.nodes.filter((x) => stateOf(x) !== 'draft' && stateOf(x) !== 'in_review' && stateOf(x) !== 'rejected')) {
      const reviewers = n.context.reviewers as string[];
      expect(new Set(reviewers).size).toBe(reviewers.length);
      expect(reviewers.length).toBeGreaterThanOrEqual(n.context.requiredApprovals as number);
      expect(reviewers).not.toContain(n.context.author);
    }
  });

  it('RETRY only while attempts < 3', () => {
    const a = start(deploymentMachine, { service: 'web' });
    a.send({ type: 'CONFIGURE', version: '1.0.0', replicas: 1 });
    a.send({ type: 'SUBMIT', author: 'alice' });
    a.send({ type: 'APPROVE', reviewer: 'bob' });
    a.send({ type: 'DEPLOY', environment: 'staging' });
    expect(a.getSnapshot().context.attempts).toBe(1);
    const attempts: number[] = [];
    for (let i = 0; i < 5; i++) {
      a.send({ type: 'MARK_FAILED', reason: `boom ${i}` });
      expect(a.getSnapshot().value).toBe('failed');
      const could = a.getSnapshot().can({ type: 'RETRY' });
      expect(could).toBe(a.getSnapshot().context.attempts < 3);
      a.send({ type: 'RETRY' });
      attempts.push(a.getSnapshot().context.attempts);
      if (!could) break;
      expect(a.getSnapshot().value).toBe('rolling_out');
    }
    expect(attempts).toEqual([2, 3, 3]);
    expect(a.getSnapshot().value).toBe('failed');
    expect(a.getSnapshot().context.lastFailure).toBe('boom 2');
    a.send({ type: 'RETIRE' });
    expect(a.getSnapshot().value).toBe('retired');
    expect(a.getSnapshot().status).toBe('done');
  });

  it('final states take nothing', () => {
    for (const n of graph.nodes.filter((x) => x.status === 'done')) {
      expect(['rejected', 'retired']).toContain(stateOf(n));
      for (const ev of deploymentSamples) expect(keyOf(step(deploymentMachine, n, ev).next)).toBe(keyOf(n));
    }
  });
});

describe('persisted snapshots survive a JSON round trip', () => {
  const cases: Array<{ name: string; machine: AnyStateMachine; input: unknown; path: Ev[] }> = [
    {
      name: 'run',
      machine: runMachine,
      input: { goal: 'ship' },
      path: runSamples.filter((e) => ['PROVISION', 'LOAD_CONTEXT', 'EXECUTE', 'SUBMIT', 'COMMIT', 'TERMINATE'].includes(e.type)),
    },
    { name: 'run (runtime abort)', machine: runMachine, input: undefined, path: [runSamples[0]!, { type: 'RUNTIME_ABORT', reason: 'r' }] },
    {
      name: 'deployment',
      machine: deploymentMachine,
      input: { service: 'web', requiredApprovals: 2 },
      path: [
        { type: 'CONFIGURE', version: '2.0.0', replicas: 4 },
        { type: 'SUBMIT', author: 'alice' },
        { type: 'APPROVE', reviewer: 'bob' },
        { type: 'APPROVE', reviewer: 'carol' },
        { type: 'DEPLOY', environment: 'production' },
        { type: 'MARK_FAILED', reason: 'oom' },
        { type: 'RETRY' },
        { type: 'MARK_HEALTHY' },
        { type: 'SCALE', replicas: 9 },
        { type: 'RETIRE' },
      ],
    },
  ];

  for (const c of cases) {
    it(`${c.name}: at every step the restored actor equals the original and continues the same way`, () => {
      const original = start(c.machine, c.input);
      const states: string[] = [];
      for (let i = 0; i <= c.path.length; i++) {
        const text = JSON.stringify(original.getPersistedSnapshot());
        const copy = restore(c.machine, JSON.parse(text));
        const o = original.getSnapshot() as { value: unknown; context: unknown; status: string };
        const r = copy.getSnapshot() as { value: unknown; context: unknown; status: string };
        expect(r.value).toEqual(o.value);
        expect(r.context).toEqual(o.context);
        expect(r.status).toBe(o.status);
        expect(copy.getPersistedSnapshot()).toEqual(JSON.parse(text));
        states.push(stateToString(o.value as never));
        const ev = c.path[i];
        if (ev) {
          original.send(ev as never);
          copy.send(ev as never);
          expect(clone(copy.getPersistedSnapshot())).toEqual(clone(original.getPersistedSnapshot()));
        }
        copy.stop();
      }
      // The path really moved the machine (the comparison was not between two idle actors).
      expect(new Set(states).size).toBeGreaterThan(2);
      expect(original.getSnapshot().status).toBe('done');
    });
  }
});

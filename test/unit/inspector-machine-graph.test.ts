import { describe, expect, it } from 'vitest';
import { and, not, setup, stateIn } from 'xstate';
import type { AnyStateMachine } from 'xstate';
import { deploymentMachine } from '../../machines/deployment.machine.js';
import { runMachine } from '../../machines/run.machine.js';
import {
  allNodes,
  allTransitions,
  findNode,
  graphToMermaid,
  graphToSvg,
  layoutGraph,
  machineToGraph,
  renderSvg,
  stateValueToIds,
} from '../../src/inspector/machine-graph.js';
import type { MachineGraph, TransitionInfo } from '../../src/inspector/machine-graph.js';

/** Minimal XML well-formedness check: balanced tags, quoted attributes, no stray `<`/`&`. */
function assertWellFormedXml(xml: string): void {
  const stack: string[] = [];
  const tagRe = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/y;
  let i = 0;
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    const text = xml.slice(i, lt === -1 ? xml.length : lt);
    expect(text, 'bare & in text').not.toMatch(/&(?!(amp|lt|gt|quot|#39);)/);
    if (lt === -1) break;
    tagRe.lastIndex = lt;
    const m = tagRe.exec(xml);
    if (!m) throw new Error(`malformed tag at ${lt}: ${xml.slice(lt, lt + 80)}`);
    const [, close, name, , selfClose] = m;
    if (close) {
      const open = stack.pop();
      if (open !== name) throw new Error(`</${name}> closes <${open}>`);
    } else if (!selfClose) {
      stack.push(name!);
    }
    i = tagRe.lastIndex;
  }
  expect(stack).toEqual([]);
}

function edgesOf(graph: MachineGraph, event: string): TransitionInfo[] {
  return allTransitions(graph).filter((t) => t.event === event);
}

/** Every transition XState knows about, minus forbidden ones, as `source|event|targets|guard`. */
function xstateTransitionKeys(machine: AnyStateMachine): string[] {
  const keys: string[] = [];
  const walk = (node: AnyStateMachine['root']): void => {
    const id = [machine.id, ...node.path].join('.');
    for (const [event, list] of node.transitions) {
      for (const t of list) {
        const targets = (t.target ?? []).map((n: { path: string[] }) => [machine.id, ...n.path].join('.'));
        const forbidden = targets.length === 0 && t.actions.length === 0 && !t.guard;
        if (!forbidden) keys.push(`${id}|${event}|${targets.join(',')}`);
      }
    }
    for (const child of Object.values(node.states)) walk(child as AnyStateMachine['root']);
  };
  walk(machine.root);
  return keys.sort();
}

describe('machineToGraph: deployment', () => {
  const graph = machineToGraph(deploymentMachine);

  it('has every state with its type', () => {
    expect(graph.id).toBe('deployment');
    expect(graph.root.type).toBe('compound');
    expect(graph.root.initial).toBe('deployment.draft');
    const states = Object.fromEntries(graph.root.children.map((c) => [c.key, c.type]));
    expect(states).toEqual({
      draft: 'atomic',
      in_review: 'atomic',
      approved: 'atomic',
      rolling_out: 'atomic',
      live: 'atomic',
      failed: 'atomic',
      rejected: 'final',
      retired: 'final',
    });
    for (const c of graph.root.children) {
      expect(c.id).toBe(`deployment.${c.key}`);
      expect(c.path).toEqual([c.key]);
    }
  });

  it('has every transition XState knows', () => {
    const ours = allTransitions(graph)
      .map((t) => `${t.source}|${t.event}|${t.targets.join(',')}`)
      .sort();
    expect(ours).toEqual(xstateTransitionKeys(deploymentMachine));
  });

  it('names guards, including the composite and() guard, and both APPROVE branches', () => {
    const approve = edgesOf(graph, 'APPROVE');
    expect(approve).toHaveLength(2);
    expect(approve[0]).toMatchObject({
      source: 'deployment.in_review',
      targets: ['deployment.approved'],
      guard: 'and(reviewerIsNotAuthor, approvalCompletesReview)',
      actions: ['xstate.assign'],
      internal: false,
    });
    expect(approve[1]).toMatchObject({
      source: 'deployment.in_review',
      targets: [],
      guard: 'reviewerIsNotAuthor',
      internal: true,
    });
    expect(edgesOf(graph, 'SUBMIT')).toEqual([
      expect.objectContaining({ source: 'deployment.draft', targets: ['deployment.in_review'], guard: 'isConfigured' }),
    ]);
    const retry = edgesOf(graph, 'RETRY');
    expect(retry).toEqual([
      expect.objectContaining({ source: 'deployment.failed', targets: ['deployment.rolling_out'], guard: 'canRetry' }),
    ]);
    expect(
      edgesOf(graph, 'RETIRE')
        .map((t) => t.source)
        .sort(),
    ).toEqual(['deployment.failed', 'deployment.live']);
    const configure = edgesOf(graph, 'CONFIGURE')[0];
    expect(configure).toMatchObject({ internal: true, targets: [], actions: ['xstate.assign'] });
    expect(configure?.guard).toBeUndefined();
    expect(edgesOf(graph, 'MARK_HEALTHY')[0]).toMatchObject({ targets: ['deployment.live'] });
  });

  it('is JSON-serializable', () => {
    expect(JSON.parse(JSON.stringify(graph))).toEqual(graph);
  });

  it('renders mermaid', () => {
    const text = graphToMermaid(graph);
    const lines = text.split('\n').map((l) => l.trim());
    expect(lines[0]).toBe('stateDiagram-v2');
    for (const line of [
      '[*] --> draft',
      'draft --> draft : CONFIGURE',
      'draft --> in_review : SUBMIT [isConfigured]',
      'in_review --> approved : APPROVE [and(reviewerIsNotAuthor, approvalCompletesReview)]',
      'in_review --> in_review : APPROVE [reviewerIsNotAuthor]',
      'in_review --> rejected : REJECT',
      'approved --> rolling_out : DEPLOY',
      'rolling_out --> live : MARK_HEALTHY',
      'rolling_out --> failed : MARK_FAILED',
      'failed --> rolling_out : RETRY [canRetry]',
      'failed --> retired : RETIRE',
      'live --> retired : RETIRE',
      'live --> live : SCALE',
      'rejected --> [*]',
      'retired --> [*]',
    ]) {
      expect(lines).toContain(line);
    }
    expect(lines.filter((l) => l.endsWith('--> [*]'))).toHaveLength(2);
  });
});

describe('machineToGraph: run', () => {
  const graph = machineToGraph(runMachine);

  it('has every state, tags, and final states', () => {
    expect(graph.root.children.map((c) => c.key)).toEqual([
      'CREATED',
      'PROVISIONED',
      'CONTEXT_READY',
      'EXECUTING',
      'VALIDATING',
      'COMMITTED',
      'ABORTED',
      'TERMINATED',
      'TERMINATED_BY_RUNTIME',
    ]);
    expect(findNode(graph, 'run.EXECUTING')?.tags).toEqual(['live', 'executing']);
    expect(findNode(graph, 'run.CREATED')?.tags).toEqual(['live']);
    expect(findNode(graph, 'run.TERMINATED')?.type).toBe('final');
    expect(findNode(graph, 'run.TERMINATED_BY_RUNTIME')?.type).toBe('final');
  });

  it('has every transition XState knows, RUNTIME_ABORT from each live state', () => {
    const ours = allTransitions(graph)
      .map((t) => `${t.source}|${t.event}|${t.targets.join(',')}`)
      .sort();
    expect(ours).toEqual(xstateTransitionKeys(runMachine));
    expect(graph.root.transitions).toEqual([]);
    expect(
      edgesOf(graph, 'RUNTIME_ABORT')
        .map((t) => t.source)
        .sort(),
    ).toEqual(['run.CONTEXT_READY', 'run.CREATED', 'run.EXECUTING', 'run.PROVISIONED', 'run.VALIDATING']);
    expect(
      edgesOf(graph, 'RUNTIME_ABORT').every((t) => t.targets[0] === 'run.TERMINATED_BY_RUNTIME' && t.actions?.includes('recordAbort')),
    ).toBe(true);
    expect(edgesOf(graph, 'ABORT')).toHaveLength(5);
    expect(edgesOf(graph, 'ABORT').every((t) => t.actions?.includes('recordAbort'))).toBe(true);
  });

  it('does not draw forbidden transitions but records them', () => {
    const m = setup({}).createMachine({
      id: 'f',
      initial: 'a',
      on: { STOP: '.done' },
      states: { a: { on: { GO: 'b' } }, b: { on: { STOP: undefined } }, done: { type: 'final' } },
    });
    const g = machineToGraph(m);
    expect(findNode(g, 'f.b')!.forbidden).toEqual(['STOP']);
    expect(findNode(g, 'f.b')!.transitions).toEqual([]);
    expect(edgesOf(g, 'STOP')).toHaveLength(1);
    expect(edgesOf(g, 'STOP')[0]!.source).toBe('f');
  });

  it('renders mermaid with the root transition expanded over live states only', () => {
    const lines = graphToMermaid(graph)
      .split('\n')
      .map((l) => l.trim());
    for (const line of [
      '[*] --> CREATED',
      'CREATED --> PROVISIONED : PROVISION',
      'PROVISIONED --> CONTEXT_READY : LOAD_CONTEXT',
      'CONTEXT_READY --> EXECUTING : EXECUTE',
      'EXECUTING --> VALIDATING : SUBMIT',
      'VALIDATING --> COMMITTED : COMMIT',
      'EXECUTING --> ABORTED : ABORT',
      'COMMITTED --> TERMINATED : TERMINATE',
      'ABORTED --> TERMINATED : TERMINATE',
      'TERMINATED --> [*]',
      'TERMINATED_BY_RUNTIME --> [*]',
      'CREATED --> TERMINATED_BY_RUNTIME : RUNTIME_ABORT',
      'VALIDATING --> TERMINATED_BY_RUNTIME : RUNTIME_ABORT',
    ]) {
      expect(lines).toContain(line);
    }
    expect(lines).not.toContain('COMMITTED --> TERMINATED_BY_RUNTIME : RUNTIME_ABORT');
    expect(lines).not.toContain('ABORTED --> TERMINATED_BY_RUNTIME : RUNTIME_ABORT');
    expect(lines.filter((l) => l.includes(': RUNTIME_ABORT'))).toHaveLength(5);
  });
});

describe('layout and SVG', () => {
  for (const machine of [deploymentMachine, runMachine] as AnyStateMachine[]) {
    it(`${machine.id}: lays out every node and edge with finite coordinates`, async () => {
      const graph = machineToGraph(machine);
      const layout = await layoutGraph(graph);
      expect(layout.machineId).toBe(machine.id);
      expect(layout.width).toBeGreaterThan(0);
      expect(layout.height).toBeGreaterThan(0);
      const stateNodes = layout.nodes.filter((n) => n.kind === 'state');
      expect(stateNodes.map((n) => n.id).sort()).toEqual(
        allNodes(graph)
          .map((n) => n.id)
          .sort(),
      );
      const byId = new Map(layout.nodes.map((n) => [n.id, n]));
      for (const n of layout.nodes) {
        for (const v of [n.x, n.y, n.width, n.height]) expect(Number.isFinite(v)).toBe(true);
        expect(n.width).toBeGreaterThan(0);
        if (n.parent) {
          const p = byId.get(n.parent)!;
          expect(n.x).toBeGreaterThanOrEqual(p.x);
          expect(n.y).toBeGreaterThanOrEqual(p.y);
          expect(n.x + n.width).toBeLessThanOrEqual(p.x + p.width + 0.5);
          expect(n.y + n.height).toBeLessThanOrEqual(p.y + p.height + 0.5);
        }
      }
      const transitionEdges = layout.edges.filter((e) => e.kind === 'transition');
      expect(transitionEdges).toHaveLength(allTransitions(graph).length);
      for (const e of layout.edges) {
        expect(e.sections.length).toBeGreaterThan(0);
        for (const p of e.sections.flat()) {
          expect(Number.isFinite(p.x) && Number.isFinite(p.y)).toBe(true);
        }
        if (e.kind === 'transition') expect(e.labelBox).toBeDefined();
      }
      // The layout is plain JSON (the browser receives it as such).
      expect(JSON.parse(JSON.stringify(layout))).toEqual(layout);
    });

    it(`${machine.id}: renders a well-formed standalone SVG`, async () => {
      const graph = machineToGraph(machine);
      const svg = await graphToSvg(graph);
      expect(svg.startsWith('<svg')).toBe(true);
      expect(svg).toContain('xmlns="http://www.w3.org/2000/svg"');
      expect(svg).not.toMatch(/NaN|undefined|Infinity/);
      assertWellFormedXml(svg);
      for (const n of allNodes(graph)) {
        expect(svg).toContain(`data-state-id="${n.id}"`);
        expect(svg).toContain(`>${n.key}</text>`);
      }
      for (const t of allTransitions(graph)) {
        expect(svg).toContain(`data-event="${t.event}"`);
        expect(svg).toContain(`>${t.label}</tspan>`);
        if (t.guard) expect(svg).toContain(`>[${t.guard}]</tspan>`);
      }
      expect(svg).not.toContain('class="state atomic active"');
    });
  }

  it('deployment: guards are drawn in edge labels and final states are double-bordered', async () => {
    const svg = await graphToSvg(machineToGraph(deploymentMachine));
    expect(svg).toContain('>[isConfigured]</tspan>');
    expect(svg).toContain('>[canRetry]</tspan>');
    expect(svg).toContain('>[and(reviewerIsNotAuthor, approvalCompletesReview)]</tspan>');
    const finals = svg.match(/<g class="state final[^"]*"[^>]*>.*?<\/g>/gs) ?? [];
    expect(finals).toHaveLength(2);
    for (const g of finals) expect(g.match(/<rect /g)).toHaveLength(2);
    // rounded state boxes
    expect(svg).toMatch(/<rect class="box"[^>]* rx="8"/);
  });

  it('highlight marks exactly the active state', async () => {
    const graph = machineToGraph(deploymentMachine);
    const svg = await graphToSvg(graph, { highlight: ['deployment.in_review'] });
    const active = [...svg.matchAll(/<g class="([^"]*\bactive\b[^"]*)" data-state-id="([^"]+)"/g)].map((m) => m[2]);
    expect(active).toEqual(['deployment.in_review']);
    // relative ids work too, and the layout can be re-rendered without re-running elk
    const layout = await layoutGraph(graph);
    const svg2 = renderSvg(layout, { highlight: ['live'] });
    const active2 = [...svg2.matchAll(/<g class="([^"]*\bactive\b[^"]*)" data-state-id="([^"]+)"/g)].map((m) => m[2]);
    expect(active2).toEqual(['deployment.live']);
    expect(svg2).toMatch(/<g class="state atomic active" data-state-id="deployment\.live"/);
  });

  it('run: highlights EXECUTING by state value', async () => {
    const graph = machineToGraph(runMachine);
    const ids = stateValueToIds(graph, 'EXECUTING');
    expect(ids).toEqual(['run', 'run.EXECUTING']);
    const svg = await graphToSvg(graph, { highlight: ids });
    expect(svg).toMatch(/<g class="state atomic active" data-state-id="run\.EXECUTING"/);
    expect(svg).toContain('data-event="RUNTIME_ABORT"');
  });
});

describe('nested machines', () => {
  const machine = setup({ guards: { ok: () => true, big: () => false } }).createMachine({
    id: 'nest',
    initial: 'idle',
    on: { FINISH: { target: '.done', guard: and(['ok', not('big')]) } },
    states: {
      idle: { on: { START: 'work', JUMP: 'work.phase.b' } },
      work: {
        initial: 'phase',
        tags: ['busy'],
        on: { CANCEL: 'idle' },
        states: {
          phase: {
            initial: 'a',
            onDone: 'par',
            states: {
              a: { on: { NEXT: { target: 'b', guard: not('ok') } } },
              b: { after: { 500: 'c' } },
              c: { type: 'final' },
              hist: { type: 'history', history: 'deep' },
            },
          },
          par: {
            type: 'parallel',
            states: {
              left: { initial: 'l1', states: { l1: { on: { L: 'l2' } }, l2: {} } },
              right: {
                initial: 'r1',
                states: { r1: { always: { target: 'r2', guard: stateIn('#nest.work.par.left.l2') } }, r2: {} },
              },
            },
          },
        },
      },
      done: { type: 'final' },
    },
  });
  const graph = machineToGraph(machine);

  it('captures nesting, node types, and special triggers', () => {
    expect(findNode(graph, 'nest.work')).toMatchObject({ type: 'compound', initial: 'nest.work.phase', tags: ['busy'] });
    expect(findNode(graph, 'nest.work.par')).toMatchObject({ type: 'parallel' });
    expect(findNode(graph, 'nest.work.par')?.initial).toBeUndefined();
    expect(findNode(graph, 'nest.work.phase.hist')).toMatchObject({ type: 'history', history: 'deep' });
    expect(findNode(graph, 'nest.work.phase.c')?.type).toBe('final');
    const labels = allTransitions(graph).map((t) => `${t.kind}:${t.label}:${t.guard ?? ''}`);
    expect(labels).toContain('after:after 500ms:');
    expect(labels).toContain('done:done:');
    expect(labels).toContain('always:always:stateIn(#nest.work.par.left.l2)');
    expect(labels).toContain('event:NEXT:not(ok)');
    expect(labels).toContain('event:FINISH:and(ok, not(big))');
    expect(edgesOf(graph, 'JUMP')[0]?.targets).toEqual(['nest.work.phase.b']);
  });

  it('maps nested and parallel state values to active ids', () => {
    expect(stateValueToIds(graph, { work: { par: { left: 'l2', right: 'r1' } } })).toEqual([
      'nest',
      'nest.work',
      'nest.work.par',
      'nest.work.par.left',
      'nest.work.par.left.l2',
      'nest.work.par.right',
      'nest.work.par.right.r1',
    ]);
    expect(stateValueToIds(graph, 'work.phase.a')).toEqual(['nest', 'nest.work', 'nest.work.phase', 'nest.work.phase.a']);
  });

  it('renders nested composite states in mermaid and SVG', async () => {
    const text = graphToMermaid(graph);
    expect(text).toContain('  state work {\n');
    expect(text).toContain('    state phase {\n');
    expect(text).toMatch(/state par \{\n\s+state left \{[\s\S]*?\}\n\s+--\n\s+state right \{/);
    expect(text).toContain('a --> b : NEXT [not(ok)]');
    expect(text).toContain('c --> [*]');
    expect(text).toContain('phase --> par : done');
    const svg = await graphToSvg(graph, { highlight: stateValueToIds(graph, { work: { par: { left: 'l2', right: 'r1' } } }) });
    assertWellFormedXml(svg);
    expect(svg).not.toMatch(/NaN/);
    expect(svg).toMatch(/<g class="state parallel active" data-state-id="nest\.work\.par"/);
    expect(svg).toMatch(/<g class="state atomic active" data-state-id="nest\.work\.par\.left\.l2"/);
    expect(svg).toMatch(/<g class="state atomic" data-state-id="nest\.work\.par\.left\.l1"/);
  });
});

import type { AnyStateMachine } from 'xstate';

/**
 * A JSON-serializable picture of an XState v5 machine's structure: states (nested), their
 * types, tags and transitions with event, guard and action names. Used by the inspector to
 * draw machines (Mermaid text, or an SVG laid out with elkjs; see ./layout.ts and ./svg.ts).
 */

export type StateNodeType = 'atomic' | 'compound' | 'parallel' | 'final' | 'history';

/** What triggers a transition. */
export type TransitionKind = 'event' | 'always' | 'after' | 'done' | 'error' | 'wildcard';

export interface TransitionInfo {
  /** Unique within the graph: `${source}#${event}#${index}`. */
  id: string;
  /** Id (dotted path) of the state node that declares the transition. */
  source: string;
  /** Ids of the target state nodes; empty for a targetless (internal) transition. */
  targets: string[];
  /** The event type exactly as XState sees it (`''` for eventless `always` transitions). */
  event: string;
  /** A short human label for the trigger: the event type, `always`, `after 1000ms`, `done`, `error: id`. */
  label: string;
  kind: TransitionKind;
  /** Guard name: `isConfigured`, `and(a, b)`, `not(a)`, `stateIn(...)`, or `inline`. */
  guard?: string;
  /** Action names (`xstate.assign`, named actions, `inline` for anonymous functions). */
  actions?: string[];
  /** Targetless: runs actions (if any) without leaving the source state. */
  internal: boolean;
  /** The source state is among the targets (a self-loop that leaves and re-enters). */
  self: boolean;
  /** Whether the transition re-enters its target (XState's `reenter: true`). */
  reenter: boolean;
}

export interface StateNodeInfo {
  /** Dotted path from the machine root, starting with the machine id: `deployment.in_review`. */
  id: string;
  /** The state's own key (`in_review`); the machine id for the root. */
  key: string;
  /** Path segments below the root (`[]` for the root). */
  path: string[];
  type: StateNodeType;
  /** Id of the initial child state (compound states only). */
  initial?: string;
  tags: string[];
  description?: string;
  /** `shallow` or `deep` for history states. */
  history?: 'shallow' | 'deep';
  children: StateNodeInfo[];
  /** Transitions declared on this node; forbidden transitions are not included (see `forbidden`). */
  transitions: TransitionInfo[];
  /** Events this node explicitly forbids (`EVENT: undefined`), overriding ancestors' handlers. */
  forbidden: string[];
  entry?: string[];
  exit?: string[];
  /** Ids/sources of actors invoked while in this state. */
  invoke?: string[];
}

export interface MachineGraph {
  /** The machine id (`deployment`, `run`); also the id of the root node. */
  id: string;
  root: StateNodeInfo;
}

// Structural views of the XState internals we read. Kept loose on purpose: these are
// runtime objects from StateNode / TransitionDefinition, not part of the typed config.
interface XTransition {
  eventType: string;
  target?: ReadonlyArray<XStateNode> | undefined;
  source: XStateNode;
  guard?: unknown;
  actions?: ReadonlyArray<unknown>;
  reenter?: boolean;
}
interface XStateNode {
  key: string;
  path: string[];
  type: StateNodeType;
  tags: string[];
  description?: string;
  history: false | 'shallow' | 'deep';
  states: Record<string, XStateNode>;
  transitions: Map<string, XTransition[]>;
  always?: XTransition[];
  entry: unknown[];
  exit: unknown[];
  config: { initial?: unknown };
  initial?: { target?: ReadonlyArray<XStateNode> };
  invoke?: ReadonlyArray<{ id?: string; src?: unknown }>;
}

function nodeId(machineId: string, path: readonly string[]): string {
  return [machineId, ...path].join('.');
}

/** The display name of a guard, including higher-order guards like `and([...])`. */
export function guardName(guard: unknown): string | undefined {
  if (guard === undefined || guard === null) return undefined;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'function') {
    const fn = guard as { name?: string; guards?: unknown[]; stateValue?: unknown };
    if (Array.isArray(fn.guards)) {
      const parts = fn.guards.map((g) => guardName(g) ?? 'inline');
      return `${fn.name || 'guard'}(${parts.join(', ')})`;
    }
    if (fn.stateValue !== undefined) {
      const v = typeof fn.stateValue === 'string' ? fn.stateValue : JSON.stringify(fn.stateValue);
      return `stateIn(${v})`;
    }
    return fn.name && fn.name !== 'guard' ? fn.name : 'inline';
  }
  if (typeof guard === 'object' && typeof (guard as { type?: unknown }).type === 'string') {
    return (guard as { type: string }).type;
  }
  return 'inline';
}

/** The display name of an action: its `type` for built-ins and named actions, else `inline`. */
export function actionName(action: unknown): string {
  if (typeof action === 'string') return action;
  if (action && (typeof action === 'object' || typeof action === 'function')) {
    const t = (action as { type?: unknown }).type;
    if (typeof t === 'string') return t;
  }
  return 'inline';
}

function describeTrigger(eventType: string, machineId: string): { kind: TransitionKind; label: string } {
  if (eventType === '') return { kind: 'always', label: 'always' };
  if (eventType === '*') return { kind: 'wildcard', label: '*' };
  if (eventType.startsWith('xstate.after.')) {
    // xstate.after.<delay>.<stateId>
    const rest = eventType.slice('xstate.after.'.length);
    const delay = rest.split('.')[0] ?? rest;
    return { kind: 'after', label: /^\d+$/.test(delay) ? `after ${delay}ms` : `after ${delay}` };
  }
  if (eventType.startsWith('xstate.done.state.')) return { kind: 'done', label: 'done' };
  if (eventType.startsWith('xstate.done.actor.')) {
    return { kind: 'done', label: `done: ${eventType.slice('xstate.done.actor.'.length)}` };
  }
  if (eventType.startsWith('xstate.error.actor.')) {
    return { kind: 'error', label: `error: ${eventType.slice('xstate.error.actor.'.length)}` };
  }
  void machineId;
  return { kind: 'event', label: eventType };
}

/**
 * A transition with no target, no actions and no guard that is declared as `EVENT: undefined`
 * is XState's way of forbidding an event in a state (overriding an ancestor's handler).
 */
function isForbidden(t: XTransition): boolean {
  return (t.target === undefined || t.target.length === 0) && (t.actions?.length ?? 0) === 0 && t.guard === undefined;
}

function convertNode(machineId: string, node: XStateNode): StateNodeInfo {
  const id = nodeId(machineId, node.path);
  const transitions: TransitionInfo[] = [];
  const forbidden: string[] = [];

  const pushTransition = (t: XTransition, index: number): void => {
    const targets = (t.target ?? []).map((n) => nodeId(machineId, n.path));
    const { kind, label } = describeTrigger(t.eventType, machineId);
    const info: TransitionInfo = {
      id: `${id}#${t.eventType || 'always'}#${index}`,
      source: id,
      targets,
      event: t.eventType,
      label,
      kind,
      internal: targets.length === 0,
      self: targets.includes(id),
      reenter: Boolean(t.reenter),
    };
    const guard = guardName(t.guard);
    if (guard !== undefined) info.guard = guard;
    const actions = (t.actions ?? []).map(actionName);
    if (actions.length > 0) info.actions = actions;
    transitions.push(info);
  };

  for (const [eventType, list] of node.transitions) {
    list.forEach((t, i) => {
      if (isForbidden(t)) {
        if (!forbidden.includes(eventType)) forbidden.push(eventType);
        return;
      }
      pushTransition(t, i);
    });
  }
  (node.always ?? []).forEach((t, i) => pushTransition(t, i));

  const children = Object.values(node.states ?? {}).map((c) => convertNode(machineId, c));
  const info: StateNodeInfo = {
    id,
    key: node.path.length === 0 ? machineId : node.key,
    path: [...node.path],
    type: node.type,
    tags: [...(node.tags ?? [])],
    children,
    transitions,
    forbidden,
  };
  if (node.type === 'compound') {
    const target = node.initial?.target?.[0];
    if (target) info.initial = nodeId(machineId, target.path);
    else if (typeof node.config.initial === 'string') info.initial = `${id}.${node.config.initial}`;
  }
  if (node.description) info.description = node.description;
  if (node.history) info.history = node.history;
  const entry = (node.entry ?? []).map(actionName);
  if (entry.length > 0) info.entry = entry;
  const exit = (node.exit ?? []).map(actionName);
  if (exit.length > 0) info.exit = exit;
  const invoke = (node.invoke ?? []).map((inv) => (typeof inv.src === 'string' ? inv.src : (inv.id ?? 'inline')));
  if (invoke.length > 0) info.invoke = invoke;
  return info;
}

/** Extracts the structure of an XState v5 machine as plain JSON. */
export function machineToGraph(machine: AnyStateMachine): MachineGraph {
  const root = machine.root as unknown as XStateNode;
  const id = machine.id;
  return { id, root: convertNode(id, root) };
}

/** Every node of the graph, depth first, root first. */
export function allNodes(graph: MachineGraph): StateNodeInfo[] {
  const out: StateNodeInfo[] = [];
  const walk = (n: StateNodeInfo): void => {
    out.push(n);
    n.children.forEach(walk);
  };
  walk(graph.root);
  return out;
}

/** Every transition of the graph, in document order. */
export function allTransitions(graph: MachineGraph): TransitionInfo[] {
  return allNodes(graph).flatMap((n) => n.transitions);
}

export function findNode(graph: MachineGraph, id: string): StateNodeInfo | undefined {
  return allNodes(graph).find((n) => n.id === id);
}

/**
 * Resolves user-supplied state references to node ids: full ids (`deployment.live`),
 * ids relative to the root (`live`, `parent.child`), or a JSON state value.
 */
export function resolveStateIds(graph: MachineGraph, refs: readonly string[]): string[] {
  const ids = new Set(allNodes(graph).map((n) => n.id));
  const out = new Set<string>();
  for (const ref of refs) {
    if (ids.has(ref)) out.add(ref);
    else if (ids.has(`${graph.id}.${ref}`)) out.add(`${graph.id}.${ref}`);
  }
  return [...out];
}

/**
 * The ids of all active state nodes (leaves and their ancestors, root included) for an XState
 * state value: `'in_review'`, `{ parent: 'child' }`, or `{ p: { r1: 'a', r2: 'b' } }`.
 */
export function stateValueToIds(graph: MachineGraph, value: unknown): string[] {
  const out: string[] = [graph.root.id];
  const walk = (node: StateNodeInfo, v: unknown): void => {
    if (typeof v === 'string') {
      const child = node.children.find((c) => c.key === v);
      if (child) out.push(child.id);
      return;
    }
    if (v && typeof v === 'object') {
      for (const [k, sub] of Object.entries(v as Record<string, unknown>)) {
        const child = node.children.find((c) => c.key === k);
        if (!child) continue;
        out.push(child.id);
        walk(child, sub);
      }
    }
  };
  // A string with dots may be a flattened path (`parent.child`).
  if (typeof value === 'string' && value.includes('.') && !graph.root.children.some((c) => c.key === value)) {
    const parts = value.split('.');
    let node: StateNodeInfo | undefined = graph.root;
    for (const p of parts) {
      node = node?.children.find((c) => c.key === p);
      if (!node) break;
      out.push(node.id);
    }
    return out;
  }
  walk(graph.root, value);
  return out;
}

// ---------------------------------------------------------------------------------------
// Mermaid

/**
 * Renders the graph as Mermaid `stateDiagram-v2` text. Nested states become composite states,
 * parallel regions are separated by `--`, final states get an edge to `[*]`, and labels read
 * `EVENT [guard]`. Root-level transitions (e.g. `RUNTIME_ABORT` on the run machine) are drawn
 * from every top-level state that does not forbid or handle the event itself and is not final,
 * since Mermaid cannot draw an edge out of the diagram's own frame.
 */
export function graphToMermaid(graph: MachineGraph): string {
  const nodes = allNodes(graph);
  const keyCount = new Map<string, number>();
  for (const n of nodes) if (n !== graph.root) keyCount.set(n.key, (keyCount.get(n.key) ?? 0) + 1);
  const mid = new Map<string, string>();
  const declared = new Map<string, string>(); // mermaid id -> display label
  for (const n of nodes) {
    if (n === graph.root) continue;
    const display = n.type === 'history' ? (n.history === 'deep' ? 'H*' : 'H') : n.key;
    const plain = /^[A-Za-z_][A-Za-z0-9_]*$/.test(n.key) && (keyCount.get(n.key) ?? 0) === 1 && n.type !== 'history';
    const id = plain ? n.key : n.path.join('__').replace(/[^A-Za-z0-9_]/g, '_');
    mid.set(n.id, id);
    if (!plain) declared.set(id, display);
  }
  const ref = (id: string): string => mid.get(id) ?? '[*]';
  const lines: string[] = ['stateDiagram-v2'];

  const label = (t: TransitionInfo): string => {
    const text = t.guard ? `${t.label} [${t.guard}]` : t.label;
    return text.replace(/[\r\n;]/g, ' ');
  };
  const edge = (indent: string, from: string, t: TransitionInfo): void => {
    const targets = t.targets.length > 0 ? t.targets : [t.source];
    for (const target of targets) lines.push(`${indent}${from} --> ${ref(target)} : ${label(t)}`);
  };

  const emitTransitions = (node: StateNodeInfo, indent: string): void => {
    for (const t of node.transitions) edge(indent, ref(node.id), t);
    if (node.type === 'final') lines.push(`${indent}${ref(node.id)} --> [*]`);
  };
  /** Emits the body of a compound or parallel node (or of the root). */
  const emitBody = (node: StateNodeInfo, indent: string): void => {
    for (const c of node.children) {
      const id = ref(c.id);
      const disp = declared.get(id);
      if (disp !== undefined) lines.push(`${indent}state "${disp}" as ${id}`);
    }
    if (node.type === 'compound' && node.initial) lines.push(`${indent}[*] --> ${ref(node.initial)}`);
    node.children.forEach((c, i) => {
      const id = ref(c.id);
      if (c.children.length > 0) {
        lines.push(`${indent}state ${id} {`);
        emitBody(c, `${indent}  `);
        lines.push(`${indent}}`);
      } else {
        lines.push(`${indent}${id}`);
      }
      if (node.type === 'parallel') {
        emitTransitions(c, indent);
        if (i < node.children.length - 1) lines.push(`${indent}--`);
      }
    });
    if (node.type !== 'parallel') for (const c of node.children) emitTransitions(c, indent);
  };
  const handlesUnguarded = (n: StateNodeInfo, event: string): boolean =>
    n.forbidden.includes(event) || n.transitions.some((t) => t.event === event && t.guard === undefined);

  emitBody(graph.root, '  ');
  for (const t of graph.root.transitions) {
    lines.push(`  %% ${t.label} is handled by the machine root (${graph.id})`);
    for (const c of graph.root.children) {
      if (c.type === 'final' || c.type === 'history' || handlesUnguarded(c, t.event)) continue;
      edge('  ', ref(c.id), { ...t, targets: t.targets.length > 0 ? t.targets : [c.id] });
    }
  }
  return lines.join('\n') + '\n';
}

export { layoutGraph } from './layout.js';
export type { GraphLayout, LayoutNode, LayoutEdge, LayoutOptions, Point } from './layout.js';
export { renderSvg, graphToSvg } from './svg.js';
export type { SvgOptions } from './svg.js';

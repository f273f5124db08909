import elkModule from 'elkjs';
import type { ELK as ElkApi, ELKConstructorArguments, ElkExtendedEdge, ElkLabel, ElkNode } from 'elkjs';
import type { MachineGraph, StateNodeInfo, StateNodeType, TransitionInfo } from './machine-graph.js';

/**
 * Lays a {@link MachineGraph} out with elkjs (layered algorithm, compound nodes for nesting,
 * hierarchical edges) and returns absolute coordinates, so the same layout can be drawn on
 * the server (./svg.ts) or shipped as JSON to the browser.
 */

export interface Point {
  x: number;
  y: number;
}

export interface LayoutNode {
  /** State id (dotted path), or `${parentId}.__initial` for an initial pseudo-state. */
  id: string;
  kind: 'state' | 'initial';
  /** Undefined for initial pseudo-states. */
  type?: StateNodeType;
  label: string;
  tags: string[];
  parent?: string;
  depth: number;
  /** Absolute coordinates of the top-left corner. */
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface LayoutEdge {
  /** The transition id, or `${initialId}->${target}` for the initial edge of a compound state. */
  id: string;
  kind: 'transition' | 'initial';
  source: string;
  target: string;
  event?: string;
  guard?: string;
  actions?: string[];
  internal?: boolean;
  /** Label text, one entry per line: the trigger, then `[guard]` if any. */
  labelLines: string[];
  /** Polylines in absolute coordinates (one per ELK edge section). */
  sections: Point[][];
  /** Absolute label box, when the edge has a label. */
  labelBox?: { x: number; y: number; width: number; height: number };
}

export interface GraphLayout {
  machineId: string;
  width: number;
  height: number;
  nodes: LayoutNode[];
  edges: LayoutEdge[];
}

export interface LayoutOptions {
  /** Main flow direction. Default `DOWN`. */
  direction?: 'DOWN' | 'RIGHT';
}

// elkjs is CommonJS: depending on the loader the constructor is the module or its `default`.
type ElkConstructor = new (args?: ELKConstructorArguments) => ElkApi;
const ELK: ElkConstructor = ((elkModule as unknown as { default?: ElkConstructor }).default ?? elkModule) as unknown as ElkConstructor;

/** Approximate glyph metrics of the monospace font the SVG uses. */
export const METRICS = {
  charWidth: 7.4,
  stateFont: 13,
  labelFont: 11,
  labelCharWidth: 6.7,
  labelLineHeight: 14,
  stateHeight: 38,
  tagLineHeight: 14,
  statePadX: 14,
  compoundHeader: 30,
  initialSize: 12,
} as const;

function stateLabel(n: StateNodeInfo): string {
  if (n.type === 'history') return n.history === 'deep' ? 'H*' : 'H';
  return n.key;
}

function textWidth(text: string, charWidth: number): number {
  return Math.ceil(text.length * charWidth);
}

export function transitionLabelLines(t: TransitionInfo): string[] {
  const lines = [t.label];
  if (t.guard !== undefined) lines.push(`[${t.guard}]`);
  return lines;
}

interface Meta {
  node?: StateNodeInfo;
  parent?: string;
  depth: number;
  kind: 'state' | 'initial';
}

function isFiniteNumber(n: unknown): n is number {
  return typeof n === 'number' && Number.isFinite(n);
}

export async function layoutGraph(graph: MachineGraph, options: LayoutOptions = {}): Promise<GraphLayout> {
  const direction = options.direction ?? 'DOWN';
  const meta = new Map<string, Meta>();
  const parentOf = new Map<string, string | undefined>();

  const buildNode = (n: StateNodeInfo, parent: string | undefined, depth: number): ElkNode => {
    meta.set(n.id, { node: n, parent, depth, kind: 'state' });
    parentOf.set(n.id, parent);
    const label = stateLabel(n);
    if (n.children.length === 0) {
      const tagText = n.tags.map((t) => `#${t}`).join(' ');
      const width = Math.max(
        n.type === 'history' ? 36 : 96,
        textWidth(label, METRICS.charWidth) + 2 * METRICS.statePadX + (n.type === 'final' ? 8 : 0),
        tagText ? textWidth(tagText, METRICS.labelCharWidth) + 2 * METRICS.statePadX : 0,
      );
      const height = n.type === 'history' ? 36 : METRICS.stateHeight + (tagText ? METRICS.tagLineHeight : 0);
      return { id: n.id, width, height };
    }
    const children: ElkNode[] = [];
    if (n.type === 'compound' && n.initial) {
      const iid = `${n.id}.__initial`;
      meta.set(iid, { parent: n.id, depth: depth + 1, kind: 'initial' });
      parentOf.set(iid, n.id);
      children.push({ id: iid, width: METRICS.initialSize, height: METRICS.initialSize });
    }
    for (const c of n.children) children.push(buildNode(c, n.id, depth + 1));
    const tagText = n.tags.map((t) => `#${t}`).join(' ');
    const header = METRICS.compoundHeader + (tagText ? METRICS.tagLineHeight : 0);
    const minWidth = textWidth(label + (tagText ? '  ' + tagText : ''), METRICS.charWidth) + 2 * METRICS.statePadX;
    return {
      id: n.id,
      children,
      layoutOptions: {
        'elk.padding': `[top=${header},left=18,bottom=18,right=18]`,
        'elk.nodeSize.constraints': 'MINIMUM_SIZE',
        'elk.nodeSize.minimum': `(${minWidth}, ${header + 20})`,
      },
    };
  };

  const rootElk = buildNode(graph.root, undefined, 0);

  // Ancestor chains, to place each edge in the lowest common ancestor of its endpoints.
  const ancestors = (id: string): string[] => {
    const chain: string[] = [];
    let cur: string | undefined = id;
    while (cur !== undefined) {
      chain.push(cur);
      cur = parentOf.get(cur);
    }
    return chain;
  };
  const lca = (a: string, b: string): string => {
    const aa = ancestors(a);
    const bb = new Set(ancestors(b));
    // An edge whose endpoint is the container itself is placed in that container's parent if
    // it has one, so that ELK routes it as a hierarchical edge.
    for (const x of aa) if (bb.has(x)) return x;
    return graph.root.id;
  };
  const elkById = new Map<string, ElkNode>();
  const index = (n: ElkNode): void => {
    elkById.set(n.id, n);
    n.children?.forEach(index);
  };
  index(rootElk);

  interface EdgeInfo {
    kind: 'transition' | 'initial';
    source: string;
    target: string;
    transition?: TransitionInfo;
    labelLines: string[];
  }
  const edgeInfo = new Map<string, EdgeInfo>();
  const addEdge = (id: string, info: EdgeInfo): void => {
    const labels: ElkLabel[] = [];
    if (info.labelLines.length > 0) {
      const width = Math.max(...info.labelLines.map((l) => textWidth(l, METRICS.labelCharWidth))) + 8;
      labels.push({
        id: `${id}::label`,
        text: info.labelLines.join('\n'),
        width,
        height: info.labelLines.length * METRICS.labelLineHeight + 4,
      });
    }
    const edge: ElkExtendedEdge = { id, sources: [info.source], targets: [info.target], labels };
    let container = lca(info.source, info.target);
    if (!elkById.get(container)?.children) container = parentOf.get(container) ?? graph.root.id;
    const holder = elkById.get(container) ?? rootElk;
    (holder.edges ??= []).push(edge);
    edgeInfo.set(id, info);
  };

  const walk = (n: StateNodeInfo): void => {
    if (n.type === 'compound' && n.initial) {
      const iid = `${n.id}.__initial`;
      addEdge(`${iid}->${n.initial}`, { kind: 'initial', source: iid, target: n.initial, labelLines: [] });
    }
    for (const t of n.transitions) {
      const targets = t.targets.length > 0 ? t.targets : [t.source];
      targets.forEach((target, i) => {
        const id = targets.length > 1 ? `${t.id}@${i}` : t.id;
        addEdge(id, { kind: 'transition', source: t.source, target, transition: t, labelLines: transitionLabelLines(t) });
      });
    }
    n.children.forEach(walk);
  };
  walk(graph.root);

  const elkGraph: ElkNode = {
    id: '__ice_layout_root',
    layoutOptions: {
      'elk.algorithm': 'layered',
      'elk.direction': direction,
      'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
      'elk.edgeRouting': 'ORTHOGONAL',
      'elk.layered.spacing.nodeNodeBetweenLayers': '46',
      'elk.spacing.nodeNode': '34',
      'elk.spacing.edgeNode': '16',
      'elk.spacing.edgeEdge': '12',
      'elk.spacing.edgeLabel': '4',
      'elk.layered.spacing.edgeNodeBetweenLayers': '16',
      'elk.edgeLabels.placement': 'CENTER',
      'elk.layered.nodePlacement.strategy': 'BRANDES_KOEPF',
      'elk.layered.considerModelOrder.strategy': 'NODES_AND_EDGES',
      'elk.padding': '[top=12,left=12,bottom=12,right=12]',
    },
    children: [rootElk],
  };

  const elk = new ELK();
  const laid = await elk.layout(elkGraph);

  // Absolute positions of every node; ELK gives children relative to their parent.
  const abs = new Map<string, Point>();
  const nodes: LayoutNode[] = [];
  const place = (n: ElkNode, ox: number, oy: number): void => {
    const x = ox + (n.x ?? 0);
    const y = oy + (n.y ?? 0);
    abs.set(n.id, { x, y });
    const m = meta.get(n.id);
    if (m) {
      const ln: LayoutNode = {
        id: n.id,
        kind: m.kind,
        label: m.node ? stateLabel(m.node) : '',
        tags: m.node ? [...m.node.tags] : [],
        depth: m.depth,
        x,
        y,
        width: n.width ?? 0,
        height: n.height ?? 0,
      };
      if (m.node) ln.type = m.node.type;
      if (m.parent !== undefined) ln.parent = m.parent;
      nodes.push(ln);
    }
    n.children?.forEach((c) => place(c, x, y));
  };
  abs.set(laid.id, { x: 0, y: 0 });
  laid.children?.forEach((c: ElkNode) => place(c, 0, 0));

  const edges: LayoutEdge[] = [];
  const collectEdges = (n: ElkNode): void => {
    for (const e of n.edges ?? []) {
      const info = edgeInfo.get(e.id);
      if (!info) continue;
      const containerId = (e as ElkExtendedEdge & { container?: string }).container ?? n.id;
      const origin = abs.get(containerId) ?? abs.get(n.id) ?? { x: 0, y: 0 };
      const sections: Point[][] = (e.sections ?? []).map((s) =>
        [s.startPoint, ...(s.bendPoints ?? []), s.endPoint].map((p) => ({ x: origin.x + p.x, y: origin.y + p.y })),
      );
      const le: LayoutEdge = {
        id: e.id,
        kind: info.kind,
        source: info.source,
        target: info.target,
        labelLines: info.labelLines,
        sections,
      };
      const t = info.transition;
      if (t) {
        le.event = t.event;
        if (t.guard !== undefined) le.guard = t.guard;
        if (t.actions) le.actions = [...t.actions];
        le.internal = t.internal;
      }
      const label = e.labels?.[0];
      if (label && isFiniteNumber(label.x) && isFiniteNumber(label.y)) {
        le.labelBox = { x: origin.x + label.x, y: origin.y + label.y, width: label.width ?? 0, height: label.height ?? 0 };
      } else if (info.labelLines.length > 0 && sections[0] && sections[0].length > 0) {
        // Fallback: put the label at the middle of the first section.
        const pts = sections[0];
        const mid = pts[Math.floor(pts.length / 2)] ?? pts[0]!;
        le.labelBox = { x: mid.x + 4, y: mid.y - 8, width: label?.width ?? 40, height: label?.height ?? 14 };
      }
      edges.push(le);
    }
    n.children?.forEach(collectEdges);
  };
  collectEdges(laid);

  // Guard against ELK returning NaN/undefined for degenerate inputs.
  for (const n of nodes) {
    if (!isFiniteNumber(n.x)) n.x = 0;
    if (!isFiniteNumber(n.y)) n.y = 0;
  }
  for (const e of edges) e.sections = e.sections.map((s) => s.filter((p) => isFiniteNumber(p.x) && isFiniteNumber(p.y)));

  return {
    machineId: graph.id,
    width: Math.ceil(laid.width ?? 0),
    height: Math.ceil(laid.height ?? 0),
    nodes,
    edges,
  };
}

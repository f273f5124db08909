import { layoutGraph, METRICS } from './layout.js';
import type { GraphLayout, LayoutEdge, LayoutNode, LayoutOptions, Point } from './layout.js';
import { resolveStateIds } from './machine-graph.js';
import type { MachineGraph } from './machine-graph.js';

export interface SvgOptions extends LayoutOptions {
  /** Ids of active state nodes (full `deployment.live` or relative `live`); drawn with class `active`. */
  highlight?: readonly string[];
  /** Embed the default stylesheet (default true). */
  style?: boolean;
}

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

const n2 = (v: number): string => {
  const r = Math.round(v * 10) / 10;
  return Number.isFinite(r) ? String(r) : '0';
};

/** CSS used inside the SVG; the page reuses the class names (`state`, `active`, `edge`, ...). */
export const SVG_STYLE = `
.ice-machine { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace; }
.ice-machine .state > rect.box { fill: #ffffff; stroke: #64748b; stroke-width: 1.4; }
.ice-machine .state.compound > rect.box, .ice-machine .state.parallel > rect.box { fill: #f8fafc; }
.ice-machine .state.root > rect.box { fill: #f1f5f9; stroke: #94a3b8; }
.ice-machine .state.parallel > rect.box { stroke-dasharray: 6 4; }
.ice-machine .state.final > rect.inner { fill: none; stroke: #64748b; stroke-width: 1.2; }
.ice-machine .state.history > circle { fill: #ffffff; stroke: #64748b; stroke-width: 1.4; }
.ice-machine .state text.name { font-size: ${METRICS.stateFont}px; font-weight: 600; fill: #0f172a; }
.ice-machine .state text.tags { font-size: ${METRICS.labelFont}px; fill: #7c3aed; }
.ice-machine .state.active > rect.box, .ice-machine .state.active > circle { fill: #dbeafe; stroke: #2563eb; stroke-width: 2.6; }
.ice-machine .state.active > rect.inner { stroke: #2563eb; }
.ice-machine .state.active > text.name { fill: #1d4ed8; }
.ice-machine .state.compound.active > rect.box, .ice-machine .state.parallel.active > rect.box { fill: #f5f9ff; }
.ice-machine .state.root.active > rect.box { fill: #f1f5f9; stroke: #94a3b8; stroke-width: 1.4; }
.ice-machine .initial { fill: #0f172a; }
.ice-machine .edge path { fill: none; stroke: #475569; stroke-width: 1.3; }
.ice-machine .edge.initial-edge path { stroke: #0f172a; }
.ice-machine .edge.internal path { stroke-dasharray: 4 3; }
.ice-machine .edge.taken path { stroke: #16a34a; stroke-width: 2.2; }
.ice-machine .edge rect.label-bg { fill: #ffffff; fill-opacity: 0.92; stroke: #e2e8f0; rx: 3; }
.ice-machine .edge text { font-size: ${METRICS.labelFont}px; fill: #0f172a; }
.ice-machine .edge text .guard { fill: #b45309; }
`;

function roundedPath(points: Point[], radius = 6): string {
  if (points.length === 0) return '';
  const first = points[0]!;
  let d = `M${n2(first.x)},${n2(first.y)}`;
  for (let i = 1; i < points.length; i++) {
    const p = points[i]!;
    const prev = points[i - 1]!;
    const next = points[i + 1];
    if (!next) {
      d += ` L${n2(p.x)},${n2(p.y)}`;
      break;
    }
    const d1 = Math.hypot(p.x - prev.x, p.y - prev.y);
    const d2 = Math.hypot(next.x - p.x, next.y - p.y);
    const r = Math.min(radius, d1 / 2, d2 / 2);
    if (r <= 0.5 || d1 === 0 || d2 === 0) {
      d += ` L${n2(p.x)},${n2(p.y)}`;
      continue;
    }
    const ax = p.x - ((p.x - prev.x) / d1) * r;
    const ay = p.y - ((p.y - prev.y) / d1) * r;
    const bx = p.x + ((next.x - p.x) / d2) * r;
    const by = p.y + ((next.y - p.y) / d2) * r;
    d += ` L${n2(ax)},${n2(ay)} Q${n2(p.x)},${n2(p.y)} ${n2(bx)},${n2(by)}`;
  }
  return d;
}

function renderNode(n: LayoutNode, active: Set<string>, rootId: string): string {
  const attrs = `data-state-id="${escapeXml(n.id)}" data-testid="state-${escapeXml(n.id)}"`;
  if (n.kind === 'initial') {
    const r = n.width / 2;
    return `<circle class="initial" data-initial-of="${escapeXml(n.parent ?? '')}" cx="${n2(n.x + r)}" cy="${n2(n.y + r)}" r="${n2(r - 1)}"/>`;
  }
  const classes = ['state', n.type ?? 'atomic'];
  if (n.id === rootId) classes.push('root');
  if (active.has(n.id)) classes.push('active');
  const title = `<title>${escapeXml(n.id)}${n.tags.length ? ' ' + escapeXml(n.tags.map((t) => '#' + t).join(' ')) : ''}</title>`;
  const tagText = n.tags.map((t) => `#${t}`).join(' ');
  if (n.type === 'history') {
    const r = Math.min(n.width, n.height) / 2;
    return (
      `<g class="${classes.join(' ')}" ${attrs}>${title}` +
      `<circle cx="${n2(n.x + n.width / 2)}" cy="${n2(n.y + n.height / 2)}" r="${n2(r)}"/>` +
      `<text class="name" x="${n2(n.x + n.width / 2)}" y="${n2(n.y + n.height / 2 + 4)}" text-anchor="middle">${escapeXml(n.label)}</text></g>`
    );
  }
  const isContainer = n.type === 'compound' || n.type === 'parallel';
  let s = `<g class="${classes.join(' ')}" ${attrs}>${title}`;
  s += `<rect class="box" x="${n2(n.x)}" y="${n2(n.y)}" width="${n2(n.width)}" height="${n2(n.height)}" rx="${isContainer ? 10 : 8}" ry="${isContainer ? 10 : 8}"/>`;
  if (n.type === 'final') {
    s += `<rect class="inner" x="${n2(n.x + 4)}" y="${n2(n.y + 4)}" width="${n2(Math.max(0, n.width - 8))}" height="${n2(Math.max(0, n.height - 8))}" rx="5" ry="5"/>`;
  }
  if (isContainer) {
    s += `<text class="name" x="${n2(n.x + 12)}" y="${n2(n.y + 19)}">${escapeXml(n.label)}</text>`;
    if (tagText) s += `<text class="tags" x="${n2(n.x + 12)}" y="${n2(n.y + 34)}">${escapeXml(tagText)}</text>`;
  } else {
    const cx = n.x + n.width / 2;
    const nameY = tagText ? n.y + METRICS.stateHeight / 2 + 3 : n.y + n.height / 2 + 4.5;
    s += `<text class="name" x="${n2(cx)}" y="${n2(nameY)}" text-anchor="middle">${escapeXml(n.label)}</text>`;
    if (tagText)
      s += `<text class="tags" x="${n2(cx)}" y="${n2(nameY + METRICS.tagLineHeight)}" text-anchor="middle">${escapeXml(tagText)}</text>`;
  }
  return s + '</g>';
}

function renderEdge(e: LayoutEdge, markerId: string): string {
  const classes = ['edge'];
  if (e.kind === 'initial') classes.push('initial-edge');
  if (e.internal) classes.push('internal');
  const data = [`data-edge-id="${escapeXml(e.id)}"`, `data-source="${escapeXml(e.source)}"`, `data-target="${escapeXml(e.target)}"`];
  if (e.event !== undefined) data.push(`data-event="${escapeXml(e.event)}"`);
  if (e.guard !== undefined) data.push(`data-guard="${escapeXml(e.guard)}"`);
  let s = `<g class="${classes.join(' ')}" ${data.join(' ')}>`;
  if (e.kind === 'transition') {
    const tip = [e.labelLines.join(' '), e.actions?.length ? `actions: ${e.actions.join(', ')}` : ''].filter(Boolean).join('\n');
    s += `<title>${escapeXml(tip)}</title>`;
  }
  for (const sec of e.sections) {
    if (sec.length < 2) continue;
    s += `<path d="${roundedPath(sec)}" marker-end="url(#${markerId})"/>`;
  }
  if (e.labelBox && e.labelLines.length > 0) {
    const b = e.labelBox;
    s += `<rect class="label-bg" x="${n2(b.x - 1)}" y="${n2(b.y - 1)}" width="${n2(b.width + 2)}" height="${n2(b.height + 2)}"/>`;
    s += `<text x="${n2(b.x + b.width / 2)}" y="${n2(b.y + 12)}" text-anchor="middle">`;
    e.labelLines.forEach((line, i) => {
      const cls = i > 0 && line.startsWith('[') ? ' class="guard"' : ' class="event"';
      s += `<tspan${cls} x="${n2(b.x + b.width / 2)}" dy="${i === 0 ? 0 : METRICS.labelLineHeight}">${escapeXml(line)}</tspan>`;
    });
    s += '</text>';
  }
  return s + '</g>';
}

/** Draws a laid-out graph as a standalone SVG document string. */
export function renderSvg(
  layout: GraphLayout,
  options: { highlight?: readonly string[]; style?: boolean; graph?: MachineGraph } = {},
): string {
  const ids = new Set(layout.nodes.map((n) => n.id));
  const active = new Set<string>();
  for (const h of options.highlight ?? []) {
    if (ids.has(h)) active.add(h);
    else if (ids.has(`${layout.machineId}.${h}`)) active.add(`${layout.machineId}.${h}`);
  }
  if (options.graph) for (const id of resolveStateIds(options.graph, options.highlight ?? [])) active.add(id);
  const markerId = `ice-arrow-${layout.machineId.replace(/[^A-Za-z0-9_-]/g, '_')}`;
  const w = Math.max(1, layout.width);
  const h = Math.max(1, layout.height);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="ice-machine" data-machine="${escapeXml(layout.machineId)}" ` +
      `width="${n2(w)}" height="${n2(h)}" viewBox="0 0 ${n2(w)} ${n2(h)}" role="img" aria-label="${escapeXml(layout.machineId)} state machine">`,
  );
  if (options.style !== false) out.push(`<style>${SVG_STYLE}</style>`);
  out.push(
    `<defs><marker id="${markerId}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse">` +
      `<path d="M0,0 L10,5 L0,10 z" fill="#475569"/></marker></defs>`,
  );
  const containers = layout.nodes
    .filter((n) => n.kind === 'state' && (n.type === 'compound' || n.type === 'parallel'))
    .sort((a, b) => a.depth - b.depth);
  const leaves = layout.nodes.filter((n) => !containers.includes(n));
  out.push('<g class="containers">');
  for (const n of containers) out.push(renderNode(n, active, layout.machineId));
  out.push('</g><g class="leaves">');
  for (const n of leaves) out.push(renderNode(n, active, layout.machineId));
  out.push('</g><g class="edges">');
  for (const e of layout.edges) out.push(renderEdge(e, markerId));
  out.push('</g></svg>');
  return out.join('\n');
}

/** Lays out the graph with elkjs and draws it as a standalone SVG string. */
export async function graphToSvg(graph: MachineGraph, options: SvgOptions = {}): Promise<string> {
  const layout = await layoutGraph(graph, options.direction ? { direction: options.direction } : {});
  const opts: { highlight?: readonly string[]; style?: boolean; graph: MachineGraph } = { graph };
  if (options.highlight) opts.highlight = options.highlight;
  if (options.style !== undefined) opts.style = options.style;
  return renderSvg(layout, opts);
}

import { SVG_STYLE } from '../svg.js';

export const APP_CSS = `
:root {
  --bg: #f8fafc; --panel: #ffffff; --line: #e2e8f0; --text: #0f172a; --muted: #64748b;
  --accent: #2563eb; --ok: #16a34a; --bad: #dc2626; --warn: #d97706; --violet: #7c3aed;
  font-family: system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif;
  font-size: 13px; color: var(--text); background: var(--bg);
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; height: 100vh; display: flex; flex-direction: column; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace; }
.topbar { display: flex; align-items: center; gap: 12px; padding: 8px 14px; background: #0f172a; color: #e2e8f0; }
.topbar h1 { font-size: 15px; margin: 0 12px 0 0; letter-spacing: .04em; }
.topbar h1 span { font-weight: 400; color: #94a3b8; }
.status { padding: 2px 8px; border-radius: 10px; background: #1e293b; font-size: 12px; }
.status[data-ok="true"] { background: #14532d; color: #bbf7d0; }
.status[data-ok="false"] { background: #7f1d1d; color: #fecaca; font-weight: 600; }
.status[data-state="open"] { color: #bbf7d0; }
.status[data-state="closed"] { color: #fecaca; }
.stately-link { margin-left: auto; color: #94a3b8; text-decoration: none; font-size: 12px; }
.layout { flex: 1; display: grid; grid-template-columns: minmax(300px, 26%) 1fr minmax(340px, 30%); min-height: 0; }
.pane { display: flex; flex-direction: column; min-height: 0; border-right: 1px solid var(--line); background: var(--panel); }
.pane-head { display: flex; align-items: center; gap: 8px; padding: 10px 12px; border-bottom: 1px solid var(--line); flex-wrap: wrap; }
.pane-head h2 { font-size: 13px; margin: 0; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); }
.center-pane .pane-head h2 { text-transform: none; letter-spacing: 0; color: var(--text); font-size: 15px; }
.count { background: var(--line); border-radius: 8px; padding: 0 6px; color: var(--text); }
.pane-head input[type=search] { flex: 1 1 100%; padding: 6px 8px; border: 1px solid var(--line); border-radius: 6px; font: inherit; }
.scroll { overflow: auto; flex: 1; min-height: 0; }
.scroll.short { max-height: 260px; }
.center-pane { overflow: hidden; }
.center-pane > .pane-head, .center-pane > .position-banner { flex: 0 0 auto; }
.center-pane > .machine { flex: 0 0 52%; }
.center-pane > .detail { flex: 1 1 auto; overflow: auto; min-height: 0; }
table { border-collapse: collapse; width: 100%; }
th { text-align: left; font-weight: 600; color: var(--muted); font-size: 11px; text-transform: uppercase; padding: 6px 8px; border-bottom: 1px solid var(--line); position: sticky; top: 0; background: var(--panel); }
td { padding: 6px 8px; border-bottom: 1px solid #f1f5f9; vertical-align: top; }
tr.actor { cursor: pointer; }
tr.actor:hover, tr.pos:hover { background: #f1f5f9; }
tr.actor.selected { background: #dbeafe; }
tr.actor td.state { word-break: break-all; }
tr.actor td.state, .history td.state { font-family: ui-monospace, Menlo, Consolas, 'DejaVu Sans Mono', monospace; }
.badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 11px; background: #e2e8f0; }
.badge.active { background: #dcfce7; color: #166534; }
.badge.done { background: #e0e7ff; color: #3730a3; }
.badge.stopped { background: #f1f5f9; color: #475569; }
.badge.failed { background: #fee2e2; color: #991b1b; }
.badge.executed, .badge.done { background: #dcfce7; color: #166534; }
.badge.denied, .badge.rejected, .badge.cancelled { background: #fee2e2; color: #991b1b; }
.badge.pending, .badge.running, .badge.retrying { background: #fef9c3; color: #854d0e; }
.acting-list { list-style: none; margin: 0; padding: 0; font-size: 12px; }
.acting-list li { padding: 3px 0; border-bottom: 1px solid #f1f5f9; }
.acting-list .arrow { color: #2563eb; font-weight: 600; }
.empty { color: var(--muted); padding: 12px; }
.state-pill { font-family: ui-monospace, Menlo, monospace; background: #dbeafe; color: #1d4ed8; border-radius: 10px; padding: 1px 8px; }
.machine { padding: 12px; overflow: auto; border-bottom: 1px solid var(--line); min-height: 120px; background: #fff; }
.machine { text-align: center; }
.machine svg { max-width: 100%; max-height: 100%; width: auto; height: auto; }
.position-banner { background: #fef3c7; padding: 6px 12px; display: flex; gap: 10px; align-items: center; border-bottom: 1px solid #fde68a; }
.detail { padding: 8px 12px 16px; }
.detail h3 { font-size: 12px; text-transform: uppercase; color: var(--muted); margin: 12px 0 6px; }
.detail h3 small { text-transform: none; font-weight: 400; }
.cols { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
pre.json { background: #0f172a; color: #e2e8f0; padding: 8px 10px; border-radius: 6px; font-size: 12px; max-height: 260px; overflow: auto; margin: 0; white-space: pre-wrap; word-break: break-word; }
tr.pos { cursor: pointer; }
tr.pos.current { background: #fef3c7; }
.timeline { list-style: none; margin: 0; padding: 0; }
.fact { padding: 7px 12px; border-bottom: 1px solid #f1f5f9; cursor: pointer; border-left: 3px solid transparent; }
.fact:hover { background: #f8fafc; }
.fact.selected { background: #eff6ff; border-left-color: var(--accent); }
.fact .meta { display: flex; gap: 8px; color: var(--muted); font-size: 11px; }
.fact .meta .seq { font-family: ui-monospace, Menlo, monospace; color: var(--text); }
.fact .type { font-weight: 600; }
.fact .summary { margin-top: 2px; word-break: break-word; }
.fact[data-type="transition"] { border-left-color: #93c5fd; }
.fact[data-verdict="granted"] { border-left-color: var(--ok); }
.fact[data-verdict="denied"], .fact[data-type="decision.refused"], .fact[data-type="intent.failed"], .fact[data-type="intent.rejected"], .fact[data-type="actor.failed"] { border-left-color: var(--bad); }
.fact[data-verdict="pending"] { border-left-color: var(--warn); }
.verdict { font-weight: 700; text-transform: uppercase; font-size: 11px; }
.verdict.granted { color: var(--ok); } .verdict.denied { color: var(--bad); } .verdict.pending { color: var(--warn); }
.reasons { margin: 3px 0 0 0; padding-left: 16px; color: #334155; }
.reasons code { color: var(--violet); }
.fact.fresh { animation: fresh 1.2s ease-out; }
@keyframes fresh { from { background: #fef9c3; } to { background: transparent; } }
.fact-detail { border-bottom: 2px solid var(--accent); padding: 8px 12px; background: #f8fafc; max-height: 50%; overflow: auto; }
.fact-detail h4 { margin: 8px 0 4px; font-size: 12px; text-transform: uppercase; color: var(--muted); }
.fact-detail .card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 6px 8px; margin-bottom: 6px; }
.fact-detail dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 10px; margin: 0; }
.fact-detail dt { color: var(--muted); }
.fact-detail dd { margin: 0; word-break: break-word; }
.fact-detail .close { float: right; }
.toggle { margin-left: auto; color: var(--muted); }
button { font: inherit; border: 1px solid var(--line); background: #fff; border-radius: 6px; padding: 3px 10px; cursor: pointer; }
button.more { margin: 10px 12px; }
${SVG_STYLE}
.approvals { flex: 0 0 auto; max-height: 45%; overflow: auto; border-top: 2px solid var(--line); }
.approvals .approver { display: flex; align-items: center; gap: 6px; flex: 1 1 100%; color: var(--muted); }
.approvals .approver input { flex: 1; padding: 4px 6px; border: 1px solid #94a3b8; border-radius: 6px; font: inherit; }
.approvals-status { margin: 6px 12px; min-height: 1em; color: var(--text); }
.approvals-status[data-ok="false"] { color: #991b1b; }
.pending-list { list-style: none; margin: 0; padding: 0 12px 8px; }
.pending { border: 1px solid var(--line); border-radius: 8px; padding: 8px; margin-top: 8px; }
.pending .what { margin: 0 0 4px; }
.pending .progress { margin: 0 0 6px; color: #334155; }
.pending label { display: block; color: #334155; margin-bottom: 6px; }
.pending label input { display: block; width: 100%; margin-top: 2px; padding: 4px 6px; border: 1px solid #94a3b8; border-radius: 6px; font: inherit; }
.pending .buttons { display: flex; gap: 8px; }
.pending button { padding: 4px 12px; border-radius: 6px; border: 1px solid #1e3a8a; background: #1d4ed8; color: #fff; font: inherit; cursor: pointer; }
.pending button.deny { background: #fff; color: #991b1b; border-color: #991b1b; }
`;

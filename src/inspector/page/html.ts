/** The inspector's single page. Assets are served from the same server; nothing external. */
export const INDEX_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ICE inspector</title>
<link rel="stylesheet" href="/app.css">
</head>
<body>
<header class="topbar">
  <h1>ICE <span>inspector</span></h1>
  <span class="status" data-testid="journal-status" data-ok="">journal: …</span>
  <span class="status" data-testid="ws-status" data-state="connecting">connecting…</span>
  <a class="stately-link" href="/stately" target="_blank" rel="noopener" title="Open Stately's inspector (online) attached to this runtime">Stately ↗</a>
</header>
<main class="layout">
  <aside class="pane actors-pane">
    <div class="pane-head">
      <h2>Actors <span class="count" data-testid="actor-count">0</span></h2>
      <input type="search" data-testid="actor-filter" placeholder="filter: kind, id, state, status" autocomplete="off">
    </div>
    <div class="scroll">
      <table class="actors" data-testid="actors-table">
        <thead><tr><th>kind</th><th>id</th><th>state</th><th>status</th><th>owner</th></tr></thead>
        <tbody data-testid="actors-list"></tbody>
      </table>
      <p class="empty" data-testid="actors-empty" hidden>No actors yet.</p>
    </div>
    <section class="approvals" data-testid="approvals" aria-labelledby="approvals-title" hidden>
      <div class="pane-head">
        <h2 id="approvals-title">Pending approvals <span class="count" data-testid="approvals-count">0</span></h2>
        <label class="approver">approve as <input type="text" data-testid="approver" autocomplete="off" spellcheck="false"></label>
      </div>
      <p class="approvals-status" data-testid="approvals-status" role="status" aria-live="polite"></p>
      <ul class="pending-list" data-testid="approvals-list"></ul>
      <p class="empty" data-testid="approvals-empty">Nothing waits for an approval.</p>
    </section>
    <section class="acting" data-testid="acting" aria-labelledby="acting-title">
      <div class="pane-head"><h2 id="acting-title">Between actors</h2></div>
      <ul class="acting-list" data-testid="acting-intents"></ul>
      <p class="empty" data-testid="acting-intents-empty">No actor has proposed to another yet.</p>
      <h3>Effects</h3>
      <ul class="acting-list" data-testid="acting-effects"></ul>
      <p class="empty" data-testid="acting-effects-empty">No effect started yet.</p>
    </section>
  </aside>
  <section class="pane center-pane">
    <div class="pane-head">
      <h2 data-testid="actor-title">Select an actor</h2>
      <span class="state-pill" data-testid="actor-state-pill" hidden></span>
    </div>
    <div class="position-banner" data-testid="position-banner" hidden>
      <span data-testid="position-text"></span>
      <button type="button" data-testid="back-to-live">back to live</button>
    </div>
    <div class="machine" data-testid="machine-view"><p class="empty">The machine of the selected actor is drawn here.</p></div>
    <div class="detail" data-testid="actor-detail" hidden>
      <div class="cols">
        <section>
          <h3>Context <small data-testid="context-label">(live)</small></h3>
          <pre class="json" data-testid="actor-context"></pre>
        </section>
        <section>
          <h3>Snapshot</h3>
          <pre class="json" data-testid="actor-snapshot"></pre>
        </section>
      </div>
      <section>
        <h3>Journal of this actor <small>(state after each fact; click to see the machine at that position)</small></h3>
        <div class="scroll short">
          <table class="history" data-testid="actor-history">
            <thead><tr><th>seq</th><th>time</th><th>fact</th><th>state after</th></tr></thead>
            <tbody></tbody>
          </table>
        </div>
      </section>
    </div>
  </section>
  <section class="pane timeline-pane">
    <div class="pane-head">
      <h2>Timeline</h2>
      <label class="toggle"><input type="checkbox" data-testid="timeline-all"> all actors</label>
    </div>
    <div class="fact-detail" data-testid="fact-detail" hidden></div>
    <div class="scroll">
      <ol class="timeline" data-testid="timeline"></ol>
      <button type="button" class="more" data-testid="timeline-more" hidden>older facts</button>
    </div>
  </section>
</main>
<script src="/app.js"></script>
</body>
</html>
`;

/**
 * A bridge to Stately's hosted inspector (needs internet, opened only on demand): it embeds the
 * Stately UI and forwards the messages of this server's `/stately` WebSocket to it, the way
 * `@statelyai/inspect/server` does.
 */
export function STATELY_BRIDGE_HTML(inspectorUrl: string): string {
  const safeUrl = JSON.stringify(inspectorUrl).replace(/</g, '\\u003c');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>ICE → Stately inspector</title>
<style>html,body{height:100%;margin:0}iframe{width:100%;height:100%;border:0}</style></head>
<body><iframe id="inspector"></iframe>
<script>
(function () {
  var url = ${safeUrl};
  var iframe = document.getElementById('inspector');
  var buffer = [];
  var connected = false;
  window.addEventListener('message', function (e) {
    if (e.data && e.data.type === '@statelyai.connected') {
      connected = true;
      buffer.forEach(function (m) { iframe.contentWindow.postMessage(m, '*'); });
      buffer.length = 0;
    }
  });
  iframe.src = url;
  var proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  var ws = new WebSocket(proto + '//' + location.host + '/stately');
  ws.onmessage = function (ev) {
    var data = JSON.parse(ev.data);
    if (connected) iframe.contentWindow.postMessage(data, '*'); else buffer.push(data);
  };
})();
</script></body></html>
`;
}

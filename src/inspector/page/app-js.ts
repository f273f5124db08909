/**
 * The inspector page's script (plain browser JavaScript, no build step, no dependencies).
 * Kept as a string so the compiled package serves it without copying asset files.
 * It must not contain backticks or dollar-brace sequences (it lives in a String.raw literal).
 */
export const APP_JS = String.raw`
(function () {
  'use strict';

  var S = {
    actors: new Map(),      // address -> ActorView
    selected: null,         // address
    machines: new Map(),    // kind -> Promise<MachineView>
    filter: '',
    timelineAll: false,
    facts: [],              // currently shown facts, newest first
    factKeys: {},           // chain#seq -> true, for the shown facts
    selectedKey: null,      // chain#seq of the fact whose causes are shown
    position: null,         // seq of the history position being viewed, or null for live
    positions: [],
    verify: null,
    ws: null,
    retry: 0
  };

  // ---------------------------------------------------------------- helpers
  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function tid(id) { return $('[data-testid="' + id + '"]'); }
  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === undefined || v === null || v === false) return;
        if (k === 'class') el.className = v;
        else if (k === 'text') el.textContent = v;
        else if (k === 'onclick') el.addEventListener('click', v);
        else if (k === 'dataset') Object.keys(v).forEach(function (d) { if (v[d] !== undefined) el.dataset[d] = v[d]; });
        else el.setAttribute(k, v === true ? '' : String(v));
      });
    }
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }
  function append(el, c) {
    if (c === undefined || c === null || c === false) return;
    if (Array.isArray(c)) { c.forEach(function (x) { append(el, x); }); return; }
    el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }
  function api(path) {
    return fetch(path, { headers: { accept: 'application/json' } }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) throw new Error(body && body.error ? body.error : r.statusText);
        return body;
      });
    });
  }
  function json(v) { try { return JSON.stringify(v, null, 2); } catch (e) { return String(v); } }
  function short(v, n) { var s = typeof v === 'string' ? v : JSON.stringify(v); n = n || 120; return s && s.length > n ? s.slice(0, n - 1) + '…' : (s || ''); }
  function time(iso) { try { return new Date(iso).toLocaleTimeString(); } catch (e) { return iso; } }
  function splitAddr(a) { var i = a.indexOf('/'); return { kind: a.slice(0, i), id: a.slice(i + 1) }; }
  function debounce(fn, ms) { var t = null; return function () { clearTimeout(t); t = setTimeout(fn, ms); }; }
  function decisionOf(f) { var d = f.data || {}; return d.decision && typeof d.decision === 'object' ? d.decision : d; }
  function eventType(e) { return e && typeof e === 'object' ? e.type : e; }
  // A fact is identified by its chain (an actor, or a runtime chain) and its position there.
  function factKey(f) { return (f.actor || '') + '#' + f.seq; }
  function chainPath(chain) { var p = splitAddr(chain); return encodeURIComponent(p.kind) + '/' + encodeURIComponent(p.id); }

  // ---------------------------------------------------------------- journal status
  function renderVerify() {
    var el = tid('journal-status');
    var v = S.verify;
    if (!v) { el.textContent = 'journal: …'; el.dataset.ok = ''; return; }
    el.dataset.ok = v.ok ? 'true' : 'false';
    if (v.ok) {
      el.textContent = 'journal verified · ' + v.count + ' facts' + (typeof v.chains === 'number' ? ' in ' + v.chains + (v.chains === 1 ? ' chain' : ' chains') : '');
      el.removeAttribute('data-broken-at');
      el.removeAttribute('data-broken-chain');
    } else {
      var where = v.brokenChain ? v.brokenChain + '#' + v.brokenAt : 'seq ' + v.brokenAt;
      el.textContent = 'journal BROKEN at ' + where + (v.reason ? ': ' + v.reason : '');
      el.dataset.brokenAt = String(v.brokenAt);
      if (v.brokenChain) el.dataset.brokenChain = v.brokenChain; else el.removeAttribute('data-broken-chain');
    }
  }

  // ---------------------------------------------------------------- actors list
  function actorMatches(a) {
    if (!S.filter) return true;
    var hay = (a.kind + ' ' + a.id + ' ' + a.address + ' ' + a.state + ' ' + a.status + ' ' + a.owner).toLowerCase();
    return S.filter.toLowerCase().split(/\s+/).every(function (w) { return !w || hay.indexOf(w) >= 0; });
  }
  function renderActors() {
    var body = tid('actors-list');
    clear(body);
    var list = Array.from(S.actors.values()).sort(function (a, b) { return a.address < b.address ? -1 : a.address > b.address ? 1 : 0; });
    var shown = 0;
    list.forEach(function (a) {
      if (!actorMatches(a)) return;
      shown++;
      body.appendChild(h('tr', {
        class: 'actor' + (a.address === S.selected ? ' selected' : ''),
        'data-testid': 'actor-row', 'data-address': a.address, 'data-state': a.state, 'data-status': a.status,
        onclick: function () { select(a.address); }
      },
        h('td', { class: 'kind', 'data-testid': 'actor-kind' }, a.kind),
        h('td', { class: 'id', 'data-testid': 'actor-id' }, a.id),
        h('td', { class: 'state', 'data-testid': 'actor-state' }, a.state),
        h('td', { 'data-testid': 'actor-status' }, h('span', { class: 'badge ' + a.status }, a.status)),
        h('td', { class: 'owner', 'data-testid': 'actor-owner' }, a.owner)));
    });
    tid('actor-count').textContent = String(list.length);
    tid('actors-empty').hidden = shown > 0;
    tid('actors-empty').textContent = list.length === 0 ? 'No actors yet.' : 'No actor matches the filter.';
  }
  function upsertActor(a) {
    S.actors.set(a.address, a);
    renderActorsSoon();
    if (a.address === S.selected) {
      renderHeader();
      if (S.position === null) highlight(a.stateIds);
    }
  }
  var renderActorsSoon = debounce(renderActors, 30);

  // ---------------------------------------------------------------- machine view
  function machine(kind) {
    if (!S.machines.has(kind)) {
      var p = api('/api/machines/' + encodeURIComponent(kind));
      p.catch(function () { S.machines.delete(kind); });
      S.machines.set(kind, p);
    }
    return S.machines.get(kind);
  }
  function highlight(ids) {
    var root = tid('machine-view');
    var set = {};
    (ids || []).forEach(function (id) { set[id] = true; });
    $$('g.state', root).forEach(function (g) {
      g.classList.toggle('active', !!set[g.getAttribute('data-state-id')]);
    });
    root.dataset.activeStates = (ids || []).join(' ');
  }
  function markTaken(fromIds, evType) {
    var root = tid('machine-view');
    $$('g.edge.taken', root).forEach(function (g) { g.classList.remove('taken'); });
    if (!evType) return;
    var from = {};
    (fromIds || []).forEach(function (id) { from[id] = true; });
    $$('g.edge', root).forEach(function (g) {
      if (g.getAttribute('data-event') === evType && from[g.getAttribute('data-source')]) g.classList.add('taken');
    });
  }
  function renderHeader() {
    var a = S.selected ? S.actors.get(S.selected) : null;
    tid('actor-title').textContent = a ? a.address : (S.selected || 'Select an actor');
    var pill = tid('actor-state-pill');
    if (a) { pill.hidden = false; pill.textContent = a.state + ' · ' + a.status; pill.dataset.state = a.state; } else pill.hidden = true;
  }

  // ---------------------------------------------------------------- selection & detail
  function select(address) {
    if (S.selected === address) return;
    S.selected = address;
    S.position = null;
    S.selectedKey = null;
    tid('position-banner').hidden = true;
    tid('fact-detail').hidden = true;
    if (location.hash !== '#/actor/' + address) history.replaceState(null, '', '#/actor/' + address);
    renderActors();
    renderHeader();
    var view = tid('machine-view');
    clear(view).appendChild(h('p', { class: 'empty' }, 'loading machine…'));
    var kind = splitAddr(address).kind;
    machine(kind).then(function (mv) {
      if (S.selected !== address) return;
      view.innerHTML = mv.svg; // server-rendered; all text is XML-escaped
      view.dataset.kind = kind;
      var a = S.actors.get(address);
      highlight(a ? a.stateIds : []);
    }).catch(function (e) { clear(view).appendChild(h('p', { class: 'empty' }, 'cannot draw machine: ' + e.message)); });
    loadDetail();
    loadHistory();
    loadTimeline();
  }
  function loadDetail() {
    var address = S.selected;
    if (!address) return;
    var parts = splitAddr(address);
    api('/api/actors/' + encodeURIComponent(parts.kind) + '/' + encodeURIComponent(parts.id)).then(function (d) {
      if (S.selected !== address) return;
      tid('actor-detail').hidden = false;
      if (S.position === null) {
        tid('actor-context').textContent = json(d.context);
        tid('context-label').textContent = '(live)';
      }
      tid('actor-snapshot').textContent = json(d.snapshot);
      var a = S.actors.get(address);
      S.actors.set(address, Object.assign({}, a || {}, {
        address: d.address, kind: d.kind, id: d.id, state: d.state, status: d.status, seq: d.seq, owner: d.owner, stateIds: d.stateIds
      }));
      renderHeader();
      renderActorsSoon();
      if (S.position === null) highlight(d.stateIds);
    }).catch(function () {});
  }
  function loadHistory() {
    var address = S.selected;
    if (!address) return;
    var parts = splitAddr(address);
    api('/api/actors/' + encodeURIComponent(parts.kind) + '/' + encodeURIComponent(parts.id) + '/history?limit=500').then(function (hst) {
      if (S.selected !== address) return;
      S.positions = hst.positions;
      var body = $('tbody', tid('actor-history'));
      clear(body);
      hst.positions.forEach(function (p) {
        body.appendChild(h('tr', {
          class: 'pos' + (S.position === p.seq ? ' current' : ''), 'data-testid': 'history-row', 'data-seq': p.seq, 'data-state': p.state,
          onclick: function () { showPosition(p); }
        },
          h('td', { class: 'mono' }, String(p.seq)),
          h('td', null, time(p.at)),
          h('td', null, p.type + (p.type === 'transition' && p.fact.data ? ' ' + eventType(p.fact.data.event) : '')),
          h('td', { class: 'state' }, p.state)));
      });
    }).catch(function () {});
  }
  function showPosition(p) {
    S.position = p.seq;
    highlight(p.stateIds);
    markTaken(null, null);
    var banner = tid('position-banner');
    banner.hidden = false;
    tid('position-text').textContent = 'Showing ' + S.selected + ' at seq ' + p.seq + ' (' + p.type + '): ' + p.state;
    tid('actor-context').textContent = p.context === undefined ? '(context not available for this position)' : json(p.context);
    tid('context-label').textContent = '(at seq ' + p.seq + ')';
    $$('tr.pos', tid('actor-history')).forEach(function (tr) { tr.classList.toggle('current', Number(tr.dataset.seq) === p.seq); });
  }
  function backToLive() {
    S.position = null;
    tid('position-banner').hidden = true;
    $$('tr.pos.current', tid('actor-history')).forEach(function (tr) { tr.classList.remove('current'); });
    var a = S.selected && S.actors.get(S.selected);
    if (a) highlight(a.stateIds);
    loadDetail();
  }
  var refreshSelected = debounce(function () { loadDetail(); loadHistory(); }, 80);

  // ---------------------------------------------------------------- timeline
  function factRelevant(f) {
    return S.timelineAll || !S.selected || f.actor === S.selected || (f.type === 'actor.failed' && f.data && f.data.actor === S.selected);
  }
  function chainView() { return !S.timelineAll && S.selected; }
  // One actor's chain is paged by seq; every chain (ordered by time) by offset.
  function loadTimeline(more) {
    var q = '/api/facts?limit=100';
    if (chainView()) {
      q += '&actor=' + encodeURIComponent(S.selected);
      if (more) {
        var oldest = null;
        S.facts.forEach(function (f) { if (f.actor === S.selected && (oldest === null || f.seq < oldest)) oldest = f.seq; });
        if (oldest === null) return;
        q += '&beforeSeq=' + oldest;
      }
    } else if (more) q += '&offset=' + S.facts.length;
    var key = S.timelineAll + '|' + S.selected;
    api(q).then(function (res) {
      if (key !== S.timelineAll + '|' + S.selected) return;
      if (!more) { S.facts = []; S.factKeys = {}; clear(tid('timeline')); }
      res.facts.forEach(function (f) {
        if (S.factKeys[factKey(f)]) return;
        S.factKeys[factKey(f)] = true;
        S.facts.push(f);
        tid('timeline').appendChild(factItem(f, false));
      });
      tid('timeline-more').hidden = res.facts.length < 100;
    }).catch(function () {});
  }
  function summary(f) {
    var d = f.data || {};
    switch (f.type) {
      case 'intent.proposed': {
        var it = d.intent || {};
        return [h('span', { class: 'mono' }, it.proposer || '?'), ' proposes ', h('b', null, it.action || '?'), ' ', h('span', { class: 'mono' }, short(it.params || {}, 80)),
          it.rationale ? h('div', { class: 'rationale' }, '“' + short(it.rationale, 160) + '”') : null];
      }
      case 'decision': {
        var dec = decisionOf(f);
        var reasons = dec.reasons || [];
        return [h('span', { class: 'verdict ' + dec.verdict, 'data-testid': 'verdict' }, dec.verdict || '?'),
          dec.grantId ? h('span', { class: 'mono' }, ' via ' + dec.grantId) : null,
          dec.policyRule ? h('span', { class: 'mono' }, ' rule ' + dec.policyRule) : null,
          reasons.length ? h('ul', { class: 'reasons', 'data-testid': 'decision-reasons' }, reasons.map(function (r) {
            return h('li', { 'data-code': r.code }, h('code', null, r.code), ': ', r.message);
          })) : null];
      }
      case 'decision.refused':
        return [h('span', { class: 'verdict denied' }, 'refused'), ' ', d.reason || '', d.message ? ': ' + d.message : ''];
      case 'intent.rejected':
        return ['rejected: ', h('ul', { class: 'reasons', 'data-testid': 'decision-reasons' }, (d.issues || []).map(function (i) {
          return h('li', null, h('code', null, i.path || '' ), ' ', i.code + ': ' + i.message);
        }))];
      case 'intent.failed':
        return [h('code', null, d.code || ''), ' ', d.message || ''];
      case 'transition':
        return [h('span', { class: 'mono' }, d.from), ' → ', h('span', { class: 'mono' }, d.to), ' on ', h('b', null, eventType(d.event) || '?'), d.reason ? ' (' + d.reason + ')' : ''];
      case 'actor.started':
        return ['started in ', h('span', { class: 'mono' }, d.state || ''), d.input ? ' input ' + short(d.input, 80) : ''];
      case 'actor.restored':
        return ['restored in ', h('span', { class: 'mono' }, d.state || ''), ' (replayed ' + (d.replayed || 0) + ')'];
      case 'actor.migrated':
        return ['migrated from version ' + d.from + ' to ' + d.to + ' (machine ', h('span', { class: 'mono' }, d.machine || ''), ')'];
      case 'actor.stopped':
        return ['stopped: ', d.reason || ''];
      case 'actor.failed':
        return ['failed: ', d.message || ''];
      case 'grant.issued': {
        var g = d.grant || d;
        return ['grant ', h('span', { class: 'mono' }, g.id || ''), ': ', h('span', { class: 'mono' }, (g.subject || '?') + ' → ' + (g.scope || '?'))];
      }
      case 'grant.revoked':
        return ['revoked ', h('span', { class: 'mono' }, d.id || d.grantId || ''), d.reason ? ': ' + d.reason : ''];
      case 'approval':
        return [d.approved ? 'approved by ' : 'refused by ', h('b', null, d.by || '?'), d.quorum ? ' (' + d.count + ' of ' + d.quorum + ')' : '', d.reason ? ': ' + d.reason : '', d.note ? ' — ' + d.note : ''];
      case 'approval.refused':
        return [(d.attempt || 'approval') + ' by ', h('b', null, d.by || '?'), ' refused: ', h('code', null, d.refusal || '?'), d.message ? ' — ' + d.message : ''];
      case 'approval.expired':
        return ['approval window closed at ' + (d.expiresAt || '?') + ' with ' + ((d.approvals || []).length) + ' of ' + (d.quorum || '?') + ' approvals: denied'];
      default:
        return short(d, 160);
    }
  }
  function factItem(f, fresh) {
    var verdict = f.type === 'decision' ? decisionOf(f).verdict : undefined;
    return h('li', {
      class: 'fact' + (fresh ? ' fresh' : '') + (S.selectedKey === factKey(f) ? ' selected' : ''),
      'data-testid': 'timeline-item', 'data-seq': f.seq, 'data-chain': f.actor, 'data-key': factKey(f), 'data-type': f.type, 'data-verdict': verdict, 'data-actor': f.actor,
      onclick: function () { openFact(f.actor, f.seq); }
    },
      h('div', { class: 'meta' }, h('span', { class: 'seq', title: 'chain #position' }, factKey(f)), h('span', { class: 'type' }, f.type), h('span', null, time(f.at)), h('span', null, f.origin)),
      h('div', { class: 'summary' }, summary(f)));
  }
  // Newest first by time, then by arrival: a fact goes before the first shown fact that is not newer.
  function addLiveFact(f) {
    if (!factRelevant(f) || S.factKeys[factKey(f)]) return;
    S.factKeys[factKey(f)] = true;
    var i = 0;
    if (chainView()) { while (i < S.facts.length && S.facts[i].actor === f.actor && S.facts[i].seq > f.seq) i++; }
    else { while (i < S.facts.length && S.facts[i].at > f.at) i++; }
    var list = tid('timeline');
    var before = list.children[i] || null; // the list shows S.facts, in order
    S.facts.splice(i, 0, f);
    list.insertBefore(factItem(f, true), before);
  }

  // ---------------------------------------------------------------- fact detail (the causal chain)
  function dl(pairs) {
    return h('dl', null, pairs.filter(function (p) { return p[1] !== undefined && p[1] !== null && p[1] !== ''; }).map(function (p) {
      return [h('dt', null, p[0]), h('dd', null, typeof p[1] === 'string' || typeof p[1] === 'number' ? String(p[1]) : p[1])];
    }));
  }
  // The fact and what caused it: causes are seqs of the fact's own chain.
  function openFact(chain, seq) {
    var key = chain + '#' + seq;
    S.selectedKey = key;
    $$('.fact', tid('timeline')).forEach(function (li) { li.classList.toggle('selected', li.dataset.key === key); });
    var box = tid('fact-detail');
    box.hidden = false;
    clear(box).appendChild(h('p', { class: 'empty' }, 'loading ' + key + '…'));
    api('/api/facts/' + chainPath(chain) + '/' + seq).then(function (c) {
      if (S.selectedKey !== key) return;
      clear(box);
      box.dataset.seq = String(seq);
      box.dataset.chain = chain;
      box.appendChild(h('button', { type: 'button', class: 'close', 'data-testid': 'fact-detail-close', onclick: function () { box.hidden = true; S.selectedKey = null; } }, 'close'));
      box.appendChild(h('h4', null, 'Fact ' + c.fact.actor + ' #' + c.fact.seq + ' · ' + c.fact.type));
      if (c.transition) {
        var t = c.transition.data || {};
        box.appendChild(h('div', { class: 'card', 'data-testid': 'chain-transition', 'data-seq': c.transition.seq, 'data-chain': c.transition.actor },
          h('h4', null, 'Transition #' + c.transition.seq),
          dl([['from', t.from], ['to', t.to], ['event', h('code', null, short(t.event, 300))], ['actor', c.transition.actor], ['at', c.transition.at]])));
      }
      if (c.decision) {
        var dd = decisionOf(c.decision);
        box.appendChild(h('div', { class: 'card', 'data-testid': 'chain-decision', 'data-seq': c.decision.seq, 'data-chain': c.decision.actor, 'data-verdict': dd.verdict },
          h('h4', null, 'Decision #' + c.decision.seq + ' (' + c.decision.type + ')'),
          dl([
            ['verdict', h('span', { class: 'verdict ' + dd.verdict }, dd.verdict || (c.decision.data && c.decision.data.reason) || '?')],
            ['reasons', (dd.reasons || []).length ? h('ul', { class: 'reasons' }, dd.reasons.map(function (r) { return h('li', null, h('code', null, r.code), ': ', r.message); })) : (c.decision.data && c.decision.data.message)],
            ['grant', dd.grantId], ['policy', dd.policyRule], ['actor state', dd.actorState], ['approved by', dd.approvedBy],
            ['authority', dd.authority], ['expires', dd.expiresAt], ['id', dd.id]
          ])));
      }
      if (c.intent) {
        var d = c.intent.data || {};
        var it = d.intent || {};
        box.appendChild(h('div', { class: 'card', 'data-testid': 'chain-intent', 'data-seq': c.intent.seq, 'data-chain': c.intent.actor, 'data-intent-id': c.intent.intentId },
          h('h4', null, (c.intent.type === 'approval' ? 'Approval #' : 'Intent #') + c.intent.seq),
          c.intent.type === 'approval' ? dl([['approved', String(d.approved)], ['by', d.by], ['note', d.note], ['reason', d.reason]]) :
          dl([
            ['id', it.id || c.intent.intentId], ['proposer', it.proposer], ['target', it.target], ['action', it.action],
            ['params', h('code', null, short(it.params || {}, 400))], ['run', it.runId], ['rationale', it.rationale], ['digest', d.digest]
          ])));
      }
      var others = (c.related || []).concat(c.causes || []).filter(function (f) {
        return [c.intent, c.decision, c.transition].every(function (x) { return !x || factKey(x) !== factKey(f); });
      });
      if (others.length) {
        box.appendChild(h('h4', null, 'Related facts'));
        others.forEach(function (f) { box.appendChild(h('div', { class: 'card mono', 'data-testid': 'chain-related', 'data-key': factKey(f) }, f.actor + ' #' + f.seq + ' ' + f.type)); });
      }
      box.appendChild(h('details', null, h('summary', null, 'raw fact'), h('pre', { class: 'json', 'data-testid': 'fact-json' }, json(c.fact))));
    }).catch(function (e) { clear(box).appendChild(h('p', { class: 'empty' }, 'cannot load fact: ' + e.message)); });
  }

  // ---------------------------------------------------------------- approvals
  // Pending intents with approve / deny buttons, when the inspector was started with them
  // (GET /api/approvals says enabled). The buttons POST with the token of the page's address.
  var approvalToken = new URLSearchParams(location.search).get('token') || sessionStorage.getItem('ice-inspector-token') || '';
  if (approvalToken) sessionStorage.setItem('ice-inspector-token', approvalToken);
  function approvalsStatus(text, ok) {
    var el = tid('approvals-status');
    el.textContent = text;
    el.dataset.ok = ok === false ? 'false' : 'true';
  }
  function loadApprovals() {
    return api('/api/approvals').then(function (res) {
      var box = tid('approvals');
      box.hidden = !res.enabled;
      if (!res.enabled) return;
      var who = tid('approver');
      if (!who.value && res.operator) who.value = res.operator;
      var list = clear(tid('approvals-list'));
      tid('approvals-count').textContent = String(res.pending.length);
      tid('approvals-empty').hidden = res.pending.length > 0;
      res.pending.forEach(function (p) { list.appendChild(pendingItem(p)); });
    }).catch(function (e) { approvalsStatus('cannot list pending intents: ' + e.message, false); });
  }
  var loadApprovalsSoon = debounce(loadApprovals, 100);
  // ---------------------------------------------------------------- between actors
  // Intents actors proposed to each other (from → to, the action, its outcome) and effects
  // with their attempts, from GET /api/acting, again whenever such a fact arrives.
  function loadActing() {
    return api('/api/acting').then(function (res) {
      var list = clear(tid('acting-intents'));
      tid('acting-intents-empty').hidden = res.intents.length > 0;
      res.intents.forEach(function (i) {
        list.appendChild(h('li', { 'data-testid': 'acting-intent', 'data-from': i.from, 'data-to': i.to, 'data-status': i.status, title: i.id + ' · ' + i.at },
          h('span', { class: 'addr' }, i.from), ' ', h('span', { class: 'arrow' }, '─' + i.action + '→'), ' ', h('span', { class: 'addr' }, i.to), ' ',
          h('span', { class: 'badge ' + i.status }, i.status)));
      });
      var eff = clear(tid('acting-effects'));
      tid('acting-effects-empty').hidden = res.effects.length > 0;
      res.effects.forEach(function (x) {
        eff.appendChild(h('li', { 'data-testid': 'acting-effect', 'data-actor': x.actor, 'data-status': x.status, 'data-attempts': String(x.attempts), title: x.id + ' · ' + x.at },
          h('span', { class: 'addr' }, x.actor), ' ', h('b', {}, x.name), ' ', h('span', { class: 'badge ' + x.status }, x.status),
          ' ', h('small', {}, x.attempts + ' attempt' + (x.attempts === 1 ? '' : 's') + (x.detail ? ' · ' + x.detail : ''))));
      });
    }).catch(function () {});
  }
  var loadActingSoon = debounce(loadActing, 500); // a burst of such facts, one request
  function pendingItem(p) {
    var r = p.requirement || {};
    var it = p.intent || {};
    var noteId = 'note-' + p.intentId;
    var got = (p.approvals || []).map(function (a) { return a.by + ' at ' + time(a.at) + (a.note ? ' (' + a.note + ')' : ''); });
    var note = h('input', { type: 'text', id: noteId, 'data-testid': 'approval-note', autocomplete: 'off' });
    function act(kind) {
      var by = tid('approver').value.trim();
      var text = note.value.trim();
      var body = kind === 'approve' ? { by: by } : { by: by, reason: text };
      if (kind === 'approve' && text) body.note = text;
      approvalsStatus(kind + ' ' + p.intentId + '…');
      fetch('/api/approvals/' + encodeURIComponent(p.intentId) + '/' + kind, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json', authorization: 'Bearer ' + approvalToken },
        body: JSON.stringify(body)
      }).then(function (r) { return r.json(); }).then(function (res) {
        if (res.error) { approvalsStatus(p.intentId + ': refused — ' + res.error.code + ': ' + res.error.message, false); return; }
        var o = res.result || {};
        var why = (o.reasons || []).filter(function (x) { return x.code !== 'grant' && x.code !== 'state' && x.code !== 'approved'; })
          .map(function (x) { return x.message; }).join('; ');
        approvalsStatus(p.intentId + ': ' + (o.status === 'pending' ? why : o.status + (why ? ' — ' + why : '')), o.status !== 'denied' && o.status !== 'failed');
      }).catch(function (e) { approvalsStatus(p.intentId + ': ' + e.message, false); }).then(loadApprovals);
    }
    return h('li', { class: 'pending', 'data-testid': 'pending-intent', 'data-intent-id': p.intentId, 'data-remaining': p.remaining },
      h('p', { class: 'what' }, h('b', null, it.action || '?'), ' on ', h('span', { class: 'mono' }, p.actor), ' by ', h('span', { class: 'mono' }, it.proposer || '?'),
        ' ', h('span', { class: 'mono' }, short(it.params || {}, 80))),
      h('p', { class: 'progress', 'data-testid': 'approval-progress' },
        (p.approvals || []).length + ' of ' + r.quorum + ' approvals from ' + (r.approvers || []).join(', ') +
        (got.length ? ' (' + got.join(', ') + ')' : '') + '; ' + p.remaining + ' more before ' + new Date(p.expiresAt).toLocaleString() +
        (r.reason ? '. ' + r.reason : '')),
      h('label', { for: noteId }, 'note, or reason to deny', note),
      h('div', { class: 'buttons' },
        h('button', { type: 'button', class: 'approve', 'data-testid': 'approve-button', onclick: function () { act('approve'); } }, 'Approve'),
        h('button', { type: 'button', class: 'deny', 'data-testid': 'deny-button', onclick: function () { act('deny'); } }, 'Deny')));
  }

  // ---------------------------------------------------------------- live connection
  function connect() {
    var proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    var ws = new WebSocket(proto + '//' + location.host + '/ws');
    S.ws = ws;
    var status = tid('ws-status');
    status.dataset.state = 'connecting';
    status.textContent = 'connecting…';
    ws.onopen = function () { S.retry = 0; status.dataset.state = 'open'; status.textContent = 'live'; };
    ws.onclose = function () {
      status.dataset.state = 'closed';
      status.textContent = 'disconnected — retrying';
      S.retry = Math.min(S.retry + 1, 6);
      setTimeout(connect, 250 * Math.pow(2, S.retry));
    };
    ws.onmessage = function (ev) {
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      onMessage(msg);
    };
  }
  function onMessage(msg) {
    switch (msg.type) {
      case 'hello': {
        var seen = {};
        msg.actors.forEach(function (a) { seen[a.address] = true; S.actors.set(a.address, a); });
        Array.from(S.actors.keys()).forEach(function (k) { if (!seen[k]) S.actors.delete(k); });
        S.verify = msg.verify;
        renderVerify();
        renderActors();
        if (S.selected) { refreshSelected(); loadTimeline(); } else if (!S.facts.length) loadTimeline();
        var m = /^#\/actor\/(.+)$/.exec(location.hash);
        if (m && !S.selected) select(decodeURIComponent(m[1]));
        break;
      }
      case 'fact': {
        var f = msg.fact;
        addLiveFact(f);
        if (f.type === 'decision' || f.type.indexOf('approval') === 0) loadApprovalsSoon();
        if (f.type === 'intent.emitted' || f.type.indexOf('effect.') === 0 || (f.data && (f.data.outcomeOf || f.data.effectOf))) loadActingSoon();
        if (f.actor && f.actor === S.selected) {
          if (f.type === 'transition' && S.position === null) {
            markTaken(msg.fromIds || [], eventType(f.data && f.data.event));
          }
          refreshSelected();
        }
        break;
      }
      case 'actor': {
        upsertActor(msg.actor);
        if (msg.actor.address === S.selected && msg.context !== undefined && S.position === null) {
          tid('actor-context').textContent = json(msg.context);
        }
        break;
      }
      case 'verify':
        S.verify = msg.verify;
        renderVerify();
        break;
      default:
        break;
    }
  }

  // ---------------------------------------------------------------- wiring
  tid('actor-filter').addEventListener('input', function (e) { S.filter = e.target.value.trim(); renderActors(); });
  tid('timeline-all').addEventListener('change', function (e) { S.timelineAll = e.target.checked; loadTimeline(); });
  tid('timeline-more').addEventListener('click', function () { if (S.facts.length) loadTimeline(true); });
  tid('back-to-live').addEventListener('click', backToLive);
  api('/api/verify').then(function (v) { S.verify = v; renderVerify(); }).catch(function () {});
  loadApprovals();
  loadActing();
  connect();
  window.__iceInspector = S;
})();
`;

import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/index.js';
import { startInspector, type Inspector, type InspectorRuntime } from '../../src/inspector/server.js';
import { iid, tempRuntime } from '../helpers/runtime.js';
import { runAdminOp } from '../../src/admin/index.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = join(process.cwd(), 'test-artifacts');
// `npm test` installs chromium first (scripts/ensure-deps.sh); a missing browser is a failure, not a skip.
if (!existsSync(CHROMIUM)) throw new Error(`no chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)`);

async function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

const row = (address: string) => `[data-testid="actor-row"][data-address="${address}"]`;
const activeState = (id: string) => `[data-testid="machine-view"] g.state.active[data-state-id="${id}"]`;

describe('inspector page', () => {
  let rt: Runtime;
  let closeRuntime: () => Promise<void>;
  let inspector: Inspector;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    ({ rt, close: closeRuntime } = await tempRuntime());
    inspector = await startInspector({ runtime: rt, port: 0 });
    browser = await launch();
    page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    page.setDefaultTimeout(10_000);
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') pageErrors.push(m.text());
    });
    // Nothing may be fetched from outside the inspector (works offline, no CDN).
    await page.route('**/*', (route) => {
      const u = new URL(route.request().url());
      return u.host === new URL(inspector.url).host ? route.continue() : route.abort();
    });
    await page.goto(inspector.url);
    await page.waitForSelector('[data-testid="ws-status"][data-state="open"]');
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await inspector?.close();
    await closeRuntime?.();
  });

  it('lists actors live as they are spawned, and filters them', async () => {
    await rt.spawn('deployment/web', { service: 'web' });
    await rt.spawn('run/r1', { goal: 'ship it' });
    const web = page.locator(row('deployment/web'));
    await web.waitFor();
    await expect(web.locator('[data-testid="actor-kind"]').textContent()).resolves.toBe('deployment');
    await expect(web.locator('[data-testid="actor-id"]').textContent()).resolves.toBe('web');
    await expect(web.locator('[data-testid="actor-state"]').textContent()).resolves.toBe('draft');
    await expect(web.locator('[data-testid="actor-status"]').textContent()).resolves.toBe('active');
    await expect(web.locator('[data-testid="actor-owner"]').textContent()).resolves.toBe(rt.node);
    await page.locator(row('run/r1')).waitFor();

    await page.fill('[data-testid="actor-filter"]', 'run');
    await page.locator(row('deployment/web')).waitFor({ state: 'detached' });
    expect(await page.locator('[data-testid="actor-row"]').count()).toBe(1);
    await page.fill('[data-testid="actor-filter"]', '');
    await page.locator(row('deployment/web')).waitFor();
    expect(await page.locator('[data-testid="actor-row"]').count()).toBe(2);
  });

  it('draws the machine with the current state highlighted, and follows executed intents', async () => {
    await page.click(row('deployment/web'));
    await page.waitForSelector(activeState('deployment.draft'));
    const svg = page.locator('[data-testid="machine-view"] svg');
    await expect(svg.getAttribute('data-machine')).resolves.toBe('deployment');
    expect(await page.locator('[data-testid="machine-view"] g.state.active:not(.root)').count()).toBe(1);
    await page.screenshot({ path: join(ARTIFACTS, 'inspector-1-draft.png') });

    await rt.grants.issue({ subject: 'agent:bot', scope: 'deployment/web:*' });
    const configured = await rt.propose({
      id: iid(),
      proposer: 'agent:bot',
      target: 'deployment/web',
      action: 'CONFIGURE',
      params: { version: '1.2.3', replicas: 3 },
    });
    expect(configured.status).toBe('executed');
    const submitted = await rt.propose({
      id: iid('submit'),
      proposer: 'agent:bot',
      target: 'deployment/web',
      action: 'SUBMIT',
      params: { author: 'bot' },
      rationale: 'config looks good',
    });
    expect(submitted.status).toBe('executed');

    await page.waitForSelector(activeState('deployment.in_review'));
    await page.waitForSelector(`[data-testid="machine-view"] g.state[data-state-id="deployment.draft"]:not(.active)`);
    expect(await page.locator('[data-testid="machine-view"] g.state.active:not(.root)').count()).toBe(1);
    await page.waitForSelector(`${row('deployment/web')}[data-state="in_review"]`);
    await page.waitForSelector('[data-testid="actor-state-pill"][data-state="in_review"]');
    // the context panel follows the committed state
    await page.waitForFunction(() => document.querySelector('[data-testid="actor-context"]')?.textContent?.includes('"1.2.3"'));
    // the transition just taken is marked on the drawing
    await page.waitForSelector('[data-testid="machine-view"] g.edge.taken[data-event="SUBMIT"]');
    await page.screenshot({ path: join(ARTIFACTS, 'inspector-2-in-review.png') });
  });

  it('shows a denied intent with its reasons', async () => {
    const denied = await rt.propose({
      id: iid('deny'),
      proposer: 'agent:eve',
      target: 'deployment/web',
      action: 'APPROVE',
      params: { reviewer: 'eve' },
    });
    expect(denied.status).toBe('denied');
    const item = page.locator('[data-testid="timeline-item"][data-type="decision"][data-verdict="denied"]').first();
    await item.waitFor();
    const reasons = item.locator('[data-testid="decision-reasons"]');
    await expect(reasons.textContent()).resolves.toContain('no_grant');
    await expect(reasons.textContent()).resolves.toContain('agent:eve holds no grant for deployment/web:APPROVE');
    await expect(item.locator('[data-testid="verdict"]').textContent()).resolves.toBe('denied');
    // a denied intent does not move the actor
    expect(await page.locator(activeState('deployment.in_review')).count()).toBe(1);
    // newest first
    const first = page.locator('[data-testid="timeline-item"]').first();
    await expect(first.getAttribute('data-type')).resolves.toBe('decision');
    await page.screenshot({ path: join(ARTIFACTS, 'inspector-3-denied.png') });
  });

  it('clicking a transition reveals its decision and intent', async () => {
    const transition = page.locator('[data-testid="timeline-item"][data-type="transition"]').first();
    await expect(transition.textContent()).resolves.toContain('SUBMIT');
    await transition.click();
    const detail = page.locator('[data-testid="fact-detail"]');
    await detail.locator('[data-testid="chain-intent"]').waitFor();
    const intent = await detail.locator('[data-testid="chain-intent"]').textContent();
    expect(intent).toContain('SUBMIT');
    expect(intent).toContain('agent:bot');
    expect(intent).toContain('config looks good');
    await expect(detail.locator('[data-testid="chain-intent"]').getAttribute('data-intent-id')).resolves.toMatch(/^submit-/);
    const decision = detail.locator('[data-testid="chain-decision"]');
    await expect(decision.getAttribute('data-verdict')).resolves.toBe('granted');
    await expect(decision.textContent()).resolves.toContain('grant');
    const t = await detail.locator('[data-testid="chain-transition"]').textContent();
    expect(t).toContain('draft');
    expect(t).toContain('in_review');
    // causes are positions in the actor's own chain: the transition's decision is the fact
    // before it, the intent the one before that
    await expect(transition.getAttribute('data-chain')).resolves.toBe('deployment/web');
    const tSeq = Number(await transition.getAttribute('data-seq'));
    await expect(decision.getAttribute('data-seq')).resolves.toBe(String(tSeq - 1));
    await expect(detail.locator('[data-testid="chain-intent"]').getAttribute('data-seq')).resolves.toBe(String(tSeq - 2));
    for (const card of ['chain-transition', 'chain-decision', 'chain-intent']) {
      await expect(detail.locator(`[data-testid="${card}"]`).getAttribute('data-chain')).resolves.toBe('deployment/web');
    }
    await expect(detail.getAttribute('data-chain')).resolves.toBe('deployment/web');
    await page.screenshot({ path: join(ARTIFACTS, 'inspector-4-transition-chain.png') });
  });

  it('shows the actor context, snapshot, journal, and the state at each journal position', async () => {
    await page.waitForFunction(() => document.querySelector('[data-testid="actor-snapshot"]')?.textContent?.includes('"in_review"'));
    const rows = page.locator('[data-testid="history-row"]');
    await rows.first().waitFor();
    const started = page.locator('[data-testid="history-row"]', { hasText: 'actor.started' });
    await expect(started.getAttribute('data-state')).resolves.toBe('draft');
    await started.click();
    await page.waitForSelector(activeState('deployment.draft'));
    await expect(page.locator('[data-testid="position-banner"]').isVisible()).resolves.toBe(true);
    // context as it was right after spawning: not configured yet
    const ctx = await page.locator('[data-testid="actor-context"]').textContent();
    expect(ctx).toContain('"replicas": 1');
    await page.screenshot({ path: join(ARTIFACTS, 'inspector-5-history-position.png') });
    await page.click('[data-testid="back-to-live"]');
    await page.waitForSelector(activeState('deployment.in_review'));
    await expect(page.locator('[data-testid="position-banner"]').isVisible()).resolves.toBe(false);
  });

  it('shows a pending decision, then the approved transition', async () => {
    await page.click('[data-testid="fact-detail-close"]');
    const approved = await rt.propose({
      id: iid(),
      proposer: 'agent:bot',
      target: 'deployment/web',
      action: 'APPROVE',
      params: { reviewer: 'alice' },
    });
    expect(approved.status).toBe('executed');
    await page.waitForSelector(activeState('deployment.approved'));
    const deployId = iid('deploy');
    const pending = await rt.propose({
      id: deployId,
      proposer: 'agent:bot',
      target: 'deployment/web',
      action: 'DEPLOY',
      params: { environment: 'production' },
    });
    expect(pending.status).toBe('pending');
    const item = page.locator('[data-testid="timeline-item"][data-type="decision"][data-verdict="pending"]').first();
    await item.waitFor();
    await expect(item.locator('[data-testid="decision-reasons"]').textContent()).resolves.toContain('approval_required');
    expect(await page.locator(activeState('deployment.approved')).count()).toBe(1);

    const done = await rt.approvals.approve(deployId, 'human:ops', 'looks fine');
    expect(done.status).toBe('executed');
    await page.waitForSelector(activeState('deployment.rolling_out'));
    const t = page.locator('[data-testid="timeline-item"][data-type="transition"]').first();
    await expect(t.textContent()).resolves.toContain('DEPLOY');
    await t.click();
    const detail = page.locator('[data-testid="fact-detail"]');
    // the original proposal, and the decision taken with the human's approval
    await expect(detail.locator('[data-testid="chain-intent"]').textContent()).resolves.toContain('DEPLOY');
    await expect(detail.locator('[data-testid="chain-decision"]').getAttribute('data-verdict')).resolves.toBe('granted');
    await expect(detail.locator('[data-testid="chain-decision"]').textContent()).resolves.toContain('human:ops');
    await page.screenshot({ path: join(ARTIFACTS, 'inspector-7-approved-deploy.png') });
  });

  it('follows a runtime-only transition of a run (no intent behind it)', async () => {
    await page.click(row('run/r1'));
    await page.waitForSelector(activeState('run.CREATED'));
    await page.waitForSelector(
      '[data-testid="machine-view"] svg[data-machine="run"] g.edge[data-event="RUNTIME_ABORT"][data-source="run.CREATED"]',
    );
    await rt.signal('run/r1', { type: 'RUNTIME_ABORT', reason: 'budget exhausted' }, 'operator abort');
    await page.waitForSelector(activeState('run.TERMINATED_BY_RUNTIME'));
    await page.waitForSelector(`${row('run/r1')}[data-status="done"]`);
    const t = page.locator('[data-testid="timeline-item"][data-type="transition"]').first();
    await expect(t.textContent()).resolves.toContain('RUNTIME_ABORT');
    await t.click();
    const detail = page.locator('[data-testid="fact-detail"]');
    await detail.locator('[data-testid="chain-transition"]').waitFor();
    expect(await detail.locator('[data-testid="chain-intent"]').count()).toBe(0);
    expect(await detail.locator('[data-testid="chain-decision"]').count()).toBe(0);
    await page.screenshot({ path: join(ARTIFACTS, 'inspector-8-run-aborted.png') });
  });

  it('shows every chain in time order, the runtime chain included, and opens its facts', async () => {
    await page.check('[data-testid="timeline-all"]');
    const grant = page.locator(`[data-testid="timeline-item"][data-type="grant.issued"][data-chain="${rt.runtimeChain}"]`).first();
    await grant.waitFor();
    await page.locator('[data-testid="timeline-item"][data-chain="run/r1"]').first().waitFor();
    const items = await page.locator('[data-testid="timeline-item"]').evaluateAll((els) =>
      els.map((e) => ({
        key: e.getAttribute('data-key')!,
        chain: e.getAttribute('data-chain')!,
        seq: Number(e.getAttribute('data-seq')),
      })),
    );
    // keys are unique, and each chain's facts appear newest first
    expect(new Set(items.map((i) => i.key)).size).toBe(items.length);
    for (const chain of new Set(items.map((i) => i.chain))) {
      const seqs = items.filter((i) => i.chain === chain).map((i) => i.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => b - a));
    }
    expect(new Set(items.map((i) => i.chain))).toEqual(new Set(['deployment/web', 'run/r1', rt.runtimeChain]));
    // a live fact of another actor shows up at the top
    await rt.grants.issue({ subject: 'agent:bot', scope: 'run/r2:*' });
    await page.waitForSelector(
      `[data-testid="timeline-item"]:first-child[data-type="grant.issued"][data-chain="${rt.runtimeChain}"][data-seq="2"]`,
    );
    await grant.click();
    const detail = page.locator('[data-testid="fact-detail"]');
    await page.waitForSelector(`[data-testid="fact-detail"][data-chain="${rt.runtimeChain}"]`);
    await expect(detail.locator('[data-testid="fact-json"]').textContent()).resolves.toContain('"grant.issued"');
    expect(await detail.locator('[data-testid="chain-transition"]').count()).toBe(0);
    await page.screenshot({ path: join(ARTIFACTS, 'inspector-9-all-chains.png') });
    await page.uncheck('[data-testid="timeline-all"]');
  });

  it('shows the journal status', async () => {
    const status = page.locator('[data-testid="journal-status"]');
    await page.waitForSelector('[data-testid="journal-status"][data-ok="true"]');
    await expect(status.textContent()).resolves.toMatch(/journal verified · \d+ facts in \d+ chains/);
    const v = await rt.journal.verify();
    expect(v).toMatchObject({ ok: true, chains: 3 });
    await page.waitForFunction(
      (n) => document.querySelector('[data-testid="journal-status"]')?.textContent?.includes(`${n} facts in 3 chains`),
      v.count,
    );
  });

  it('shows intents between actors as arrows with their outcome, and effects with their attempts', async () => {
    await rt.spawn('run/act', { goal: 'roll out' });
    await rt.spawn('deployment/act', { service: 'act', autoRollout: true });
    await rt.grants.issue({ subject: 'agent:ui', scope: 'run/act:*' });
    await rt.grants.issue({ subject: 'agent:ui', scope: 'deployment/act:*' });
    await rt.grants.issue({ subject: 'human:rev', scope: 'deployment/act:APPROVE' });
    await rt.grants.issue({ subject: 'actor:run.act', scope: 'deployment/act:DEPLOY', runId: 'act' });
    const go = async (proposer: string, target: string, action: string, params: Record<string, unknown> = {}) =>
      expect((await rt.propose({ id: iid(), proposer, target, action, params })).status).toBe('executed');
    await go('agent:ui', 'run/act', 'PROVISION', { resources: [] });
    await go('agent:ui', 'run/act', 'LOAD_CONTEXT', { sources: [] });
    await go('agent:ui', 'deployment/act', 'CONFIGURE', { version: '1.0.0', replicas: 2 });
    await go('agent:ui', 'deployment/act', 'SUBMIT', { author: 'agent:ui' });
    await go('human:rev', 'deployment/act', 'APPROVE', { reviewer: 'rev' });
    // the run itself proposes DEPLOY: denied before EXECUTING, executed after
    await go('agent:ui', 'run/act', 'ORCHESTRATE', { deployment: 'deployment/act', environment: 'staging' });
    const arrow = '[data-testid="acting-intent"][data-from="run/act"][data-to="deployment/act"]';
    await page.waitForSelector(`${arrow}[data-status="denied"]`);
    await go('agent:ui', 'run/act', 'EXECUTE');
    await go('agent:ui', 'run/act', 'ORCHESTRATE', { deployment: 'deployment/act', environment: 'staging' });
    await page.waitForSelector(`${arrow}[data-status="executed"]`);
    // the deployment's rollout effect, with its attempts
    await page.waitForSelector('[data-testid="acting-effect"][data-actor="deployment/act"][data-status="done"]', { timeout: 20_000 });
    const attempts = Number(await page.getAttribute('[data-testid="acting-effect"][data-actor="deployment/act"]', 'data-attempts'));
    expect(attempts).toBeGreaterThanOrEqual(1);
    await expect(page.locator(arrow).first().textContent()).resolves.toContain('DEPLOY');
    await page.screenshot({ path: join(ARTIFACTS, 'inspector-9-between-actors.png') });
  });

  it('loaded nothing from outside and logged no errors', () => {
    expect(pageErrors).toEqual([]);
  });
});

describe('inspector page: broken journal', () => {
  it('shows the chain and seq where it breaks', async () => {
    const { rt, close } = await tempRuntime();
    await rt.spawn('deployment/x');
    const tampered: InspectorRuntime = {
      definitions: () => rt.definitions(),
      listActors: () => rt.listActors(),
      actor: (a) => rt.actor(a),
      onFact: (l) => rt.onFact(l),
      onInspect: (l) => rt.onInspect(l),
      journal: {
        tail: (o) => rt.journal.tail(o),
        chain: (c, from, limit) => rt.journal.chain(c, from, limit),
        fact: (c, s) => rt.journal.fact(c, s),
        factsOfIntent: (id) => rt.journal.factsOfIntent(id),
        verify: () =>
          Promise.resolve({
            ok: false,
            count: 3,
            chains: 1,
            lastPos: 3,
            brokenChain: 'deployment/x',
            brokenAt: 2,
            brokenPos: 2,
            reason: 'hash mismatch',
          }),
      },
    };
    const ins = await startInspector({ runtime: tampered, port: 0 });
    const browser = await launch();
    try {
      const page = await browser.newPage();
      await page.goto(ins.url);
      const status = page.locator('[data-testid="journal-status"][data-ok="false"]');
      await status.waitFor({ timeout: 10_000 });
      await expect(status.textContent()).resolves.toBe('journal BROKEN at deployment/x#2: hash mismatch');
      await expect(status.getAttribute('data-broken-at')).resolves.toBe('2');
      await expect(status.getAttribute('data-broken-chain')).resolves.toBe('deployment/x');
      await page.screenshot({ path: join(ARTIFACTS, 'inspector-6-broken-journal.png') });
    } finally {
      await browser.close();
      await ins.close();
      await close();
    }
  }, 60_000);
});

describe('inspector page: approvals', () => {
  it('lists a pending intent with its requirement; approve clicks count towards the quorum and settle it; the panel passes axe', async () => {
    const { rt, close } = await tempRuntime({
      policies: [
        {
          id: 'big-needs-two',
          effect: 'require_approval',
          scope: 'deployment/*:CONFIGURE',
          when: ({ intent }) => (intent.params.replicas as number) > 50,
          reason: 'big changes need two people',
          approval: { quorum: 2, approvers: ['human:*'], ttlMs: 3_600_000 },
        },
      ],
    });
    const ins = await startInspector({
      runtime: rt,
      port: 0,
      approvals: { run: (op, args) => runAdminOp(rt, op, args), operator: 'human:alice' },
    });
    const browser = await launch();
    try {
      expect(ins.operatorUrl).toMatch(/\/\?token=[0-9a-f]{48}$/);
      await rt.spawn('deployment/web');
      await rt.grants.issue({ subject: 'agent:bot', scope: 'deployment/web:*' });
      const id = iid('inspect-approve');
      const p = await rt.propose({
        id,
        proposer: 'agent:bot',
        target: 'deployment/web',
        action: 'CONFIGURE',
        params: { version: '2.0.0', replicas: 80 },
      });
      expect(p.status).toBe('pending');

      // without the token the endpoint refuses, and nothing is recorded
      const anon = await fetch(`${ins.url}/api/approvals/${id}/approve`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ by: 'human:mallory' }),
      });
      expect(anon.status).toBe(401);

      // bypassCSP: only so the test can inject axe-core; the page itself runs under its CSP
      const page = await (await browser.newContext({ bypassCSP: true, viewport: { width: 1600, height: 1000 } })).newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(ins.operatorUrl!);
      const item = page.locator(`[data-testid="pending-intent"][data-intent-id="${id}"]`);
      await item.waitFor();
      await expect(item.getAttribute('data-remaining')).resolves.toBe('2');
      await expect(item.locator('[data-testid="approval-progress"]').textContent()).resolves.toContain('0 of 2 approvals from human:*');
      await expect(page.locator('[data-testid="approver"]').inputValue()).resolves.toBe('human:alice');

      // accessibility of the approvals panel (axe-core, WCAG 2 A/AA rules)
      await page.addScriptTag({ path: join(process.cwd(), 'node_modules/axe-core/axe.min.js') });
      const axeResult = await page.evaluate(async () => {
        const axe = (
          window as unknown as {
            axe: { run(ctx: unknown, o: unknown): Promise<{ violations: Array<{ id: string; help: string }>; passes: unknown[] }> };
          }
        ).axe;
        const r = await axe.run({ include: [['[data-testid="approvals"]']] }, { runOnly: ['wcag2a', 'wcag2aa'] });
        return { violations: r.violations.map((v) => `${v.id}: ${v.help}`), passed: r.passes.length };
      });
      expect(axeResult.passed).toBeGreaterThan(0); // it checked the panel (labels, names, contrast)
      expect(axeResult.violations).toEqual([]);

      await item.locator('[data-testid="approval-note"]').fill('first look');
      await item.locator('[data-testid="approve-button"]').click();
      await page.waitForFunction(() =>
        document.querySelector('[data-testid="approvals-status"]')?.textContent?.includes('approval recorded, 1 of 2'),
      );
      await page.locator(`[data-testid="pending-intent"][data-intent-id="${id}"][data-remaining="1"]`).waitFor();

      // the same approver again is refused, with why
      await page.locator(`[data-testid="pending-intent"][data-intent-id="${id}"] [data-testid="approve-button"]`).click();
      await page.waitForFunction(() =>
        document.querySelector('[data-testid="approvals-status"]')?.textContent?.includes('E_APPROVAL_REPEAT'),
      );

      await page.fill('[data-testid="approver"]', 'human:bob');
      await page.locator(`[data-testid="pending-intent"][data-intent-id="${id}"] [data-testid="approve-button"]`).click();
      await page.waitForFunction(() => document.querySelector('[data-testid="approvals-status"]')?.textContent?.includes('executed'));
      await page.locator('[data-testid="pending-intent"]').first().waitFor({ state: 'detached' });
      await expect(page.locator('[data-testid="approvals-empty"]').isVisible()).resolves.toBe(true);
      await page.screenshot({ path: join(ARTIFACTS, 'inspector-8-approvals.png') });

      const facts = await rt.journal.factsOfIntent(id);
      expect(facts.map((f) => f.type)).toEqual([
        'intent.proposed',
        'decision',
        'approval',
        'approval.refused',
        'approval',
        'decision',
        'transition',
      ]);
      expect(facts.filter((f) => f.type === 'approval').map((f) => [f.data.by, f.data.note ?? null])).toEqual([
        ['human:alice', 'first look'],
        ['human:bob', null],
      ]);
      expect(((await rt.actor('deployment/web'))!.context as { replicas: number }).replicas).toBe(80);
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
      await ins.close();
      await close();
    }
  }, 60_000);

  it('an inspector started without approvals shows no approvals panel and refuses POSTs', async () => {
    const { rt, close } = await tempRuntime();
    const ins = await startInspector({ runtime: rt, port: 0 });
    try {
      expect(ins.operatorUrl).toBeUndefined();
      await expect((await fetch(`${ins.url}/api/approvals`)).json()).resolves.toEqual({ enabled: false, pending: [] });
      const r = await fetch(`${ins.url}/api/approvals/i-1/approve`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      expect(r.status).toBe(405);
      await expect(
        startInspector({ runtime: rt, port: 0, host: '0.0.0.0', approvals: { run: () => Promise.resolve([]), operator: 'human:a' } }),
      ).rejects.toMatchObject({
        code: 'E_CONFIG',
      });
    } finally {
      await ins.close();
      await close();
    }
  });
});

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Decision, IntentInput, Outcome } from '../protocol/index.js';
import type { Runtime } from '../runtime.js';
import { compilePolicySet, parsePolicyCases, readPolicySource, runPolicyCases } from '../policy/index.js';
import { readFileSync } from 'node:fs';
import { c, formatOutcome } from './format.js';
import { actorPrincipal } from '../host/outbox.js';

/** The demo's Cedar policy set: `policies/` of the package (deployments.cedar, groups.yaml, cases.yaml). */
export const DEMO_POLICIES = fileURLToPath(new URL('../../../policies', import.meta.url));

export interface DemoResult {
  counts: Record<Outcome['status'], number>;
  facts: number;
  verified: boolean;
}

/**
 * The scripted agent of `ice demo`: a release bot drives a run and a deployment; some of
 * its proposals are granted, some denied (no grant, wrong state, run not executing, a
 * revoked grant), some rejected (bad params, a forbidden key, a runtime-only action), one
 * waits for a human. Actor ids carry a per-run tag so the demo can run again on the same dir.
 */
export async function runDemo(rt: Runtime, out: (line: string) => void = (l) => process.stdout.write(l + '\n')): Promise<DemoResult> {
  const tag = Date.now().toString(36).slice(-6);
  const run = `run/r-${tag}`;
  const runId = `r-${tag}`;
  const dep = `deployment/checkout-${tag}`;
  const bot = 'agent:release-bot';
  const counts: DemoResult['counts'] = { executed: 0, denied: 0, pending: 0, rejected: 0, failed: 0 };
  let n = 0;
  let heldForApproval = 0;

  out(c.bold(`ICE runtime demo`) + c.dim(`  node ${rt.node} · data ${rt.dataDir} · authority key ${rt.authorityKeyId}`));
  out('');
  out(c.cyan('▸ operator spawns the actors'));
  for (const [addr, input] of [
    [run, { goal: 'ship checkout 2.4.1' }],
    [dep, { service: 'checkout', requiredApprovals: 1 }],
  ] as const) {
    const a = await rt.spawn(addr, input);
    out(`  ${addr.padEnd(28)} ${c.dim('state')} ${a.state}`);
  }
  out(c.cyan('▸ operator issues grants'));
  const gRun = await rt.grants.issue({ subject: bot, scope: `${run}:*`, note: 'the bot drives its own run' });
  const gDep = await rt.grants.issue({
    subject: bot,
    scope: `${dep}:*`,
    runId,
    maxUses: 10,
    ttlMs: 3_600_000,
    note: 'only inside its run',
  });
  const gAlice = await rt.grants.issue({ subject: 'human:alice', scope: 'deployment/*:APPROVE' });
  for (const g of [gRun, gDep, gAlice]) {
    out(`  ${g.id}  ${g.subject} → ${g.scope}${g.runId ? c.dim(` (run ${g.runId}, ${g.maxUses} uses, 1h)`) : ''}`);
  }
  const hasPolicies = existsSync(DEMO_POLICIES);
  if (hasPolicies) {
    out(c.cyan('▸ operator applies the Cedar policy set policies/ (no restart; every decision names its version)'));
    const source = readPolicySource(DEMO_POLICIES);
    const applied = await rt.policies.apply(source, 'operator:demo');
    out(
      `  version ${applied.version}${applied.unchanged ? ' (already in force)' : ''} · ${applied.count} policies · hash ${applied.hash.slice(0, 12)}`,
    );
    const casesFile = `${DEMO_POLICIES}/cases.yaml`;
    if (existsSync(casesFile)) {
      // The time-dependent policies (the change window) shown at fixed times, decided offline.
      const set = compilePolicySet(source, rt.definitions());
      for (const r of runPolicyCases(set, rt.definitions(), parsePolicyCases('cases.yaml', readFileSync(casesFile, 'utf8'))).slice(0, 3))
        out(`  ${r.pass ? c.green('✔') : c.red('✘')} ${c.dim('policy test:')} ${r.name} ${c.dim(`→ ${r.got}`)}`);
    }
  }
  out('');

  const propose = async (label: string, intent: (Omit<IntentInput, 'id'> & { id?: string }) | Record<string, unknown>) => {
    const id = (intent as { id?: string }).id ?? `demo-${tag}-${++n}`;
    const full = { id, ...intent } as Record<string, unknown>;
    const params = full.params === undefined ? '' : JSON.stringify(full.params);
    out(
      `${c.cyan(`[${String(n).padStart(2)}]`)} ${String(full.proposer)} → ${String(full.target)} ${c.bold(String(full.action))} ${c.dim(params)}  ${c.dim(`— ${label}`)}`,
    );
    const o = await rt.propose(full);
    counts[o.status]++;
    out(`     ${formatOutcome(o)}`);
    const chain = (await rt.journal.factsOfIntent(id)).map((f) => `#${f.seq} ${f.type}`);
    if (chain.length) out(c.dim(`     facts: ${chain.join(' → ')}`));
    return { id, outcome: o };
  };

  await propose('provision the run', {
    proposer: bot,
    target: run,
    action: 'PROVISION',
    params: { resources: ['k8s:staging', 'k8s:production'] },
  });
  await propose('too early: its run is not EXECUTING yet', {
    proposer: bot,
    target: dep,
    runId,
    action: 'CONFIGURE',
    params: { version: '2.4.1', replicas: 3 },
  });
  await propose('load context', { proposer: bot, target: run, action: 'LOAD_CONTEXT', params: { sources: ['git:checkout@2.4.1'] } });
  await propose('start executing', { proposer: bot, target: run, action: 'EXECUTE' });
  await propose('configure inside the run', {
    proposer: bot,
    target: dep,
    runId,
    action: 'CONFIGURE',
    params: { version: '2.4.1', replicas: 3 },
  });
  await propose('bad params from a confused model', {
    proposer: bot,
    target: dep,
    runId,
    action: 'CONFIGURE',
    params: { version: 'latest', replicas: 0 },
  });
  await propose('wrong state: not approved yet', {
    proposer: bot,
    target: dep,
    runId,
    action: 'DEPLOY',
    params: { environment: 'staging' },
  });
  await propose('submit for review', { proposer: bot, target: dep, runId, action: 'SUBMIT', params: { author: bot } });
  await propose('self-approval: the machine guard refuses', {
    proposer: bot,
    target: dep,
    runId,
    action: 'APPROVE',
    params: { reviewer: bot },
  });
  await propose('a human reviewer approves', { proposer: 'human:alice', target: dep, action: 'APPROVE', params: { reviewer: 'alice' } });
  const deploy = await propose('production needs a human (and, with the policies, two of ops, in the change window)', {
    proposer: bot,
    target: dep,
    runId,
    action: 'DEPLOY',
    params: { environment: 'production' },
  });
  const shownPolicies = async (id: string) => {
    const f = (await rt.journal.factsOfIntent(id)).filter((x) => x.type === 'decision').at(-1);
    const d = (f?.data as { decision?: Decision } | undefined)?.decision;
    if (d?.policies)
      out(
        c.dim(
          `     policies v${d.policies.version}: ${d.policies.ids.join(', ') || '(none applied)'}${d.requirement ? ` · needs ${d.requirement.quorum} of ${d.requirement.approvers.join(', ')} within ${d.requirement.ttlMs / 60_000} min` : ''}`,
        ),
      );
  };
  await shownPolicies(deploy.id);
  if (deploy.outcome.status === 'denied') {
    // Outside the change window the forbid holds, whatever the grant: ship to staging instead.
    await propose('outside the change window: staging instead', {
      proposer: bot,
      target: dep,
      runId,
      action: 'DEPLOY',
      params: { environment: 'staging' },
    });
  }
  if (deploy.outcome.status === 'pending') {
    // Refused approvals are facts too: the proposer itself, and someone outside the approvers.
    const refusedApprovers: Array<[string, string]> = [[bot, 'the proposer approves its own intent']];
    if (hasPolicies) refusedApprovers.push(['human:carol', 'a reviewer who is not in ops']);
    for (const [by, why] of refusedApprovers) {
      out(c.cyan(`▸ ${by} tries to approve intent ${deploy.id} (${why})`));
      try {
        await rt.approvals.approve(deploy.id, by);
        out(c.red('     accepted (it should not have been)'));
      } catch (e) {
        const err = e as { code?: string; message?: string };
        out(`     ${c.red('refused')}  ${err.message ?? String(e)}`);
      }
    }
    let o: Outcome = deploy.outcome;
    for (const by of ['human:bob', 'human:alice']) {
      if (o.status !== 'pending') break;
      out(c.cyan(`▸ ${by} approves intent ${deploy.id}`));
      o = await rt.approvals.approve(deploy.id, by, 'change window open');
      out(`     ${formatOutcome(o)}`);
    }
    counts.pending--;
    heldForApproval++;
    counts[o.status]++;
    out(c.dim(`     facts: ${(await rt.journal.factsOfIntent(deploy.id)).map((f) => `#${f.seq} ${f.type}`).join(' → ')}`));
  }
  const healthy = await propose('report health', { proposer: bot, target: dep, runId, action: 'MARK_HEALTHY' });
  out(c.cyan(`▸ the bot retries intent ${healthy.id} (a network blip)`));
  const again = await rt.propose({ id: healthy.id, proposer: bot, target: dep, runId, action: 'MARK_HEALTHY' });
  out(
    `     ${formatOutcome(again)}  ${c.dim(again.status === healthy.outcome.status && again.seq === (healthy.outcome as { seq?: number }).seq ? '(same outcome, not executed twice)' : '(DIFFERENT outcome!)')}`,
  );
  if (hasPolicies) {
    const cap = await propose('the grant allows it, the policy caps it', {
      proposer: bot,
      target: dep,
      runId,
      action: 'SCALE',
      params: { replicas: 60 },
    });
    await shownPolicies(cap.id);
    const big = await propose('past 20 replicas: one of ops must approve', {
      proposer: bot,
      target: dep,
      runId,
      action: 'SCALE',
      params: { replicas: 30 },
    });
    await shownPolicies(big.id);
    if (big.outcome.status === 'pending') out(c.dim(`     left pending: \`ice approvals\` lists it`));
  }
  await propose(
    'prototype pollution attempt',
    JSON.parse(`{"proposer":"${bot}","target":"${dep}","action":"SCALE","params":{"__proto__":{"admin":true},"replicas":5}}`) as Record<
      string,
      unknown
    >,
  );
  await propose('a runtime-only event', { proposer: bot, target: run, action: 'RUNTIME_ABORT', params: { reason: 'x' } });
  await propose('finish the work', {
    proposer: bot,
    target: run,
    action: 'SUBMIT',
    params: { summary: 'checkout 2.4.1 live on production' },
  });
  await propose('commit the run', { proposer: bot, target: run, action: 'COMMIT' });
  out(c.cyan(`▸ operator revokes ${gDep.id}`));
  await rt.grants.revoke(gDep.id, 'operator', 'run is over');
  await propose('after revocation', { proposer: bot, target: dep, runId, action: 'SCALE', params: { replicas: 5 } });
  await propose('close the run', { proposer: bot, target: run, action: 'TERMINATE' });

  const acting = await actorsThatAct(rt, out, { tag, bot, propose });

  out('');
  out(c.cyan('▸ final states'));
  for (const a of [run, dep, ...acting]) {
    const d = (await rt.actor(a))!;
    out(`  ${a.padEnd(28)} ${c.bold(d.state)} ${c.dim(`(${d.status}, seq ${d.seq})`)}`);
  }
  const v = await rt.journal.verify();
  out('');
  out(
    `${Object.entries(counts)
      .map(([k, v]) => `${k} ${v}`)
      .join(' · ')}${heldForApproval ? ` (${heldForApproval} held for a human first)` : ''}\n` +
      (v.ok
        ? c.green(`journal verified: ${v.count} facts in ${v.chains} chains, every chain intact`)
        : c.red(`journal BROKEN at ${v.brokenChain ?? ''} #${v.brokenAt ?? '?'}: ${v.reason}`)),
  );
  return { counts, facts: v.count, verified: v.ok };
}

/**
 * The second act: a run that orchestrates a deployment itself. The run proposes DEPLOY as
 * `actor:run.<id>` under a grant bound to its run (denied while the run is not EXECUTING,
 * executed once it is); the deployment's rolling_out starts its `rollout` effect (simulated,
 * its API flaky on some first attempts), whose result takes it live or failed.
 */
async function actorsThatAct(
  rt: Runtime,
  out: (line: string) => void,
  o: {
    tag: string;
    bot: string;
    propose: (label: string, intent: Record<string, unknown>) => Promise<{ id: string; outcome: Outcome }>;
  },
): Promise<string[]> {
  const runId = `o-${o.tag}`;
  const run = `run/${runId}`;
  const dep = `deployment/cart-${o.tag}`;
  const runPrincipal = actorPrincipal(run);
  out('');
  out(c.cyan(`▸ actors that act: ${run} orchestrates ${dep}, whose rollout is an effect`));
  await rt.spawn(run, { goal: 'roll out cart 1.2.0' });
  await rt.spawn(dep, { service: 'cart', requiredApprovals: 1, autoRollout: true });
  await rt.grants.issue({ subject: o.bot, scope: `${run}:*`, note: 'the bot drives the run' });
  await rt.grants.issue({ subject: o.bot, scope: `${dep}:*`, note: 'and prepares the deployment' });
  const g = await rt.grants.issue({ subject: runPrincipal, scope: `${dep}:DEPLOY`, runId, note: 'the run deploys, inside itself' });
  out(`  ${g.id}  ${g.subject} → ${g.scope}${c.dim(` (run ${runId})`)}`);
  await o.propose('provision', { proposer: o.bot, target: run, action: 'PROVISION', params: { resources: ['k8s:staging'] } });
  await o.propose('load context', { proposer: o.bot, target: run, action: 'LOAD_CONTEXT', params: { sources: ['git:cart@1.2.0'] } });
  await o.propose('configure', { proposer: o.bot, target: dep, action: 'CONFIGURE', params: { version: '1.2.0', replicas: 4 } });
  await o.propose('submit', { proposer: o.bot, target: dep, action: 'SUBMIT', params: { author: o.bot } });
  await o.propose('a human approves', { proposer: 'human:alice', target: dep, action: 'APPROVE', params: { reviewer: 'alice' } });

  const answers = async () => (await rt.journal.chain(run)).filter((f) => typeof f.data.outcomeOf === 'string');
  const orchestrated = async (label: string) => {
    const before = (await answers()).length;
    await o.propose(label, { proposer: o.bot, target: run, action: 'ORCHESTRATE', params: { deployment: dep, environment: 'staging' } });
    // the run's own intent, committed with that turn, is answered back to it: wait for the answer
    const answer = await waitFor(async () => (await answers())[before]);
    const intentId = String(answer.data.outcomeOf);
    const status = (answer.data.event as { outcome: Outcome }).outcome.status;
    const decision = (await rt.journal.factsOfIntent(intentId)).find((f) => f.type === 'decision');
    const reasons = ((decision?.data.decision as Decision | undefined)?.reasons ?? []).map((x) => x.code).join(', ');
    out(
      `     ${c.dim('the run proposed')} ${runPrincipal} → ${dep} ${c.bold('DEPLOY')} ${c.dim(`(${intentId})`)}: ${status === 'executed' ? c.green(status) : c.red(status)}${reasons ? c.dim(` — ${reasons}`) : ''}`,
    );
    out(
      c.dim(
        `     facts: ${(await rt.journal.factsOfIntent(intentId)).map((f) => `${f.actor === run ? 'run' : 'deployment'}#${f.seq} ${f.type}`).join(' → ')}`,
      ),
    );
    return status;
  };
  await orchestrated('orchestrate before EXECUTING: the run itself is refused');
  await o.propose('start executing', { proposer: o.bot, target: run, action: 'EXECUTE' });
  if ((await orchestrated('orchestrate while EXECUTING')) === 'executed') {
    // the rollout effect runs after the DEPLOY commits; its result is a fact of the deployment
    const result = await waitFor(async () => (await rt.journal.chain(dep)).find((f) => typeof f.data.effectOf === 'string'));
    const ev = result.data.event as { type: string; output?: { detail?: string }; error?: { message?: string } };
    const to = String(result.data.to);
    out(
      `     ${c.dim('rollout effect')} ${String(result.data.effectOf)}: ${String(result.data.attempts)} attempt(s), ${ev.type} → ${to === 'live' ? c.green(to) : c.red(to)}${c.dim(` — ${ev.output?.detail ?? ev.error?.message ?? ''}`)}`,
    );
  }
  await o.propose('finish', { proposer: o.bot, target: run, action: 'SUBMIT', params: { summary: 'cart 1.2.0 on staging' } });
  return [run, dep];
}

/** Polls `fn` until it gives a value (the run's answers and the effect come back asynchronously). */
async function waitFor<T>(fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('the demo waited too long for an actor to act');
    await new Promise((r) => setTimeout(r, 20));
  }
}

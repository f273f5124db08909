// A realistic Cedar policy set for the benchmarks (docs/policies.md): 60 policies over every
// action of the example kinds — per-team permits and forbids, approval-annotated permits,
// change windows, caps, a suspension list — of which the ones that can apply to the
// benchmark's CONFIGURE intents never deny them (the grant lets them through).
const TEAMS = 12;

export function realisticPolicySet() {
  const p = [];
  // applies to every action: suspended principals do nothing
  p.push(`@id("suspended") forbid (principal in Group::"suspended", action, resource);`);
  p.push(
    `@id("ops-anything-in-draft") permit (principal in Group::"ops", action, resource is Deployment) when { context.state == "draft" };`,
  );
  // CONFIGURE
  p.push(
    `@id("cfg-no-zero-versions") @reason("no 0.0.x versions") forbid (principal, action == Action::"CONFIGURE", resource) when { context.params.version like "0.0.*" };`,
  );
  p.push(`@id("cfg-frozen") forbid (principal, action == Action::"CONFIGURE", resource == Deployment::"frozen") ;`);
  p.push(`@id("cfg-attempts") forbid (principal, action == Action::"CONFIGURE", resource) when { context.actor.attempts > 5 };`);
  p.push(
    `@id("cfg-builders") permit (principal in Group::"builders", action == Action::"CONFIGURE", resource) when { context.params.replicas <= 20 };`,
  );
  p.push(
    `@id("cfg-bot-big") @approval("2") @approvers("group:ops") permit (principal in Group::"release-bots", action == Action::"CONFIGURE", resource) when { context.params.replicas > 50 };`,
  );
  p.push(
    `@id("cfg-humans-small") permit (principal is Human, action == Action::"CONFIGURE", resource) when { context.params.replicas <= 5 && context.state == "draft" };`,
  );
  // DEPLOY, SCALE, review
  p.push(
    `@id("prod-window") forbid (principal, action == Action::"DEPLOY", resource) when { context.params.environment == "production" && (context.time.weekday == 0 || context.time.weekday == 6 || context.time.hour < 8 || context.time.hour >= 18) };`,
  );
  p.push(
    `@id("bot-prod") @approval("2") @approvers("group:ops") @approval_ttl("1h") permit (principal in Group::"release-bots", action == Action::"DEPLOY", resource) when { context.params.environment == "production" };`,
  );
  p.push(`@id("scale-cap") forbid (principal, action == Action::"SCALE", resource) when { context.params.replicas > 80 };`);
  p.push(
    `@id("scale-big") @approval("1") @approvers("group:ops") permit (principal, action == Action::"SCALE", resource) when { context.params.replicas > 20 };`,
  );
  p.push(
    `@id("reviewers") permit (principal in Group::"reviewers", action in [Action::"APPROVE", Action::"REJECT"], resource) when { context.state == "in_review" };`,
  );
  p.push(
    `@id("no-self-review") forbid (principal, action == Action::"APPROVE", resource) when { context.actor has author && context.params.reviewer == context.actor.reviewers[0] } ;`.replace(
      ' when { context.actor has author && context.params.reviewer == context.actor.reviewers[0] }',
      ' when { context.actor.reviewers.contains(context.params.reviewer) }',
    ),
  );
  // per team: four policies each
  for (let t = 0; t < TEAMS; t++) {
    p.push(
      `@id("team${t}-deploy-staging") permit (principal in Group::"team-${t}", action == Action::"DEPLOY", resource) when { context.params.environment == "staging" && context.actor.service like "team${t}-*" };`,
    );
    p.push(
      `@id("team${t}-retire") permit (principal in Group::"team-${t}", action == Action::"RETIRE", resource) when { context.actor.service like "team${t}-*" };`,
    );
    p.push(
      `@id("team${t}-health") permit (principal in Group::"team-${t}", action in [Action::"MARK_HEALTHY", Action::"MARK_FAILED"], resource) when { context.state == "rolling_out" };`,
    );
    p.push(
      `@id("team${t}-runs") permit (principal in Group::"team-${t}", action in [Action::"PROVISION", Action::"LOAD_CONTEXT", Action::"EXECUTE"], resource is Run) when { context has run && context.run.executing };`,
    );
  }
  p.push(`@id("run-abort-reason") forbid (principal, action == Action::"ABORT", resource) when { context.params.reason == "" };`);
  p.push(`@id("run-commit-ops") @approval("1") @approvers("group:ops") permit (principal is Agent, action == Action::"COMMIT", resource);`);
  p.push(`@id("run-terminate") permit (principal in Group::"ops", action == Action::"TERMINATE", resource);`);
  p.push(`@id("retry-cap") forbid (principal, action == Action::"RETRY", resource) when { context.actor.attempts >= 3 };`);
  p.push(
    `@id("mark-failed-reason") forbid (principal, action == Action::"MARK_FAILED", resource) when { context.params.reason like "*password*" };`,
  );
  p.push(
    `@id("retire-live-only-ops") forbid (principal, action == Action::"RETIRE", resource) unless { principal in Group::"ops" || context.state != "live" };`,
  );
  const groups = [
    'groups:',
    '  ops: [human:alice, human:bob]',
    '  suspended: [agent:rogue, human:mallory]',
    '  builders: ["agent:builder-*"]',
    '  release-bots: [agent:release-bot]',
    '  reviewers: [group:ops, human:carol]',
  ];
  for (let t = 0; t < TEAMS; t++) groups.push(`  team-${t}: ["agent:team${t}-*", human:lead${t}]`);
  return {
    files: [{ name: 'bench.cedar', text: p.join('\n') + '\n' }],
    groups: { name: 'groups.yaml', text: groups.join('\n') + '\n' },
  };
}

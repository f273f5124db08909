import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { ValidationError, ensureError } from '../errors.js';
import { Authority, AuthorityKey, GrantBook, buildGrant, zodIssues } from '../authority/index.js';
import { IntentSchema, PrincipalSchema, intentDigest, isAddress, type Decision } from '../protocol/index.js';
import type { ActorDefinition } from '../host/definition.js';
import { sequentialIds } from '../util/ids.js';
import type { CompiledPolicySet } from './policy-set.js';

/** One row of a policy table test (`ice policy test`): a request and the decision expected. */
export const PolicyCaseSchema = z.strictObject({
  name: z.string().min(1).max(200),
  principal: PrincipalSchema,
  target: z.string().refine(isAddress, 'expected an actor address kind/id'),
  action: z.string().min(1),
  params: z.record(z.string(), z.unknown()).default({}),
  /** The actor's state; default: any state takes the action. */
  state: z.string().optional(),
  /** The actor's context (`context.actor` in policies). */
  context: z.record(z.string(), z.unknown()).optional(),
  run: z.strictObject({ id: z.string(), state: z.string(), executing: z.boolean() }).optional(),
  /** When the request is decided (ISO 8601); default now. */
  time: z.union([z.iso.datetime({ offset: true }), z.date()]).optional(),
  /** The proposer holds a grant for exactly this target and action. */
  grant: z.boolean().default(false),
  approvedBy: z.string().optional(),
  expect: z.enum(['granted', 'denied', 'pending']),
  /** The ids of the policies expected to determine it (exactly these, any order). */
  policies: z.array(z.string()).optional(),
});
export type PolicyCase = z.infer<typeof PolicyCaseSchema>;
export const PolicyCasesSchema = z.strictObject({ cases: z.array(PolicyCaseSchema).min(1) });

export interface PolicyCaseResult {
  name: string;
  pass: boolean;
  expected: string;
  got: string;
  /** The determining policies and the decision's reasons. */
  detail: string;
}

/** Reads a cases file (YAML or JSON). @throws ValidationError naming the case and field. */
export function parsePolicyCases(name: string, text: string): PolicyCase[] {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new ValidationError(`${name} is not YAML`, [
      { path: name, code: 'cases_parse', message: ensureError(e).message.split('\n')[0]! },
    ]);
  }
  const p = PolicyCasesSchema.safeParse(doc);
  if (!p.success) throw new ValidationError(`${name}: invalid cases`, zodIssues(p.error, name));
  return p.data.cases;
}

/**
 * Decides each case offline with the real Authority: the kind's code rules and the Cedar
 * set, a grant where the case says so, the actor in `state` (or any state), at `time`.
 */
export function runPolicyCases(set: CompiledPolicySet, defs: readonly ActorDefinition[], cases: readonly PolicyCase[]): PolicyCaseResult[] {
  const key = AuthorityKey.generate();
  return cases.map((c) => {
    const fail = (got: string, detail: string): PolicyCaseResult => ({ name: c.name, pass: false, expected: c.expect, got, detail });
    const kind = c.target.slice(0, c.target.indexOf('/'));
    const def = defs.find((d) => d.kind === kind);
    if (!def) return fail('error', `no registered kind ${kind}`);
    const schema = def.events[c.action];
    if (!schema) return fail('error', `${kind} has no action ${c.action} (it has ${Object.keys(def.events).join(', ')})`);
    const params = schema.safeParse(c.params);
    if (!params.success)
      return fail(
        'error',
        `params: ${zodIssues(params.error)
          .map((i) => `${i.path}: ${i.message}`)
          .join('; ')}`,
      );
    const now = c.time === undefined ? Date.now() : new Date(c.time).getTime();
    const clock = { now: () => now };
    const ids = sequentialIds();
    const grants = c.grant ? [buildGrant({ subject: c.principal, scope: `${c.target}:${c.action}`, by: 'operator:test' }, ids, clock)] : [];
    const authority = new Authority({
      key,
      grants: new GrantBook(grants, () => Promise.resolve(), clock, ids),
      clock,
      ids,
      policySet: () => set,
    });
    const intent = IntentSchema.parse({
      v: 1,
      id: `case-${ids.next('c')}`,
      proposer: c.principal,
      target: c.target,
      action: c.action,
      params: c.params,
      ...(c.run ? { runId: c.run.id } : {}),
    });
    let d: Decision;
    try {
      d = authority.decide({
        intent,
        digest: intentDigest(intent),
        event: { type: c.action, ...(params.data as Record<string, unknown>) },
        actor: {
          exists: true,
          status: 'active',
          state: c.state ?? '(any)',
          context: c.context ?? {},
          can: () => true,
        },
        run: c.run ? { exists: true, state: c.run.state, executing: c.run.executing } : undefined,
        kindPolicies: def.policies,
        ...(c.approvedBy !== undefined ? { approvedBy: c.approvedBy } : {}),
        sign: false,
      });
    } catch (e) {
      return fail('error', ensureError(e).message);
    }
    const determining = d.policies?.ids ?? [];
    const idsOk =
      c.policies === undefined || (c.policies.length === determining.length && c.policies.every((p) => determining.includes(p)));
    const detail = `${determining.length ? `policies ${determining.join(', ')}` : 'no policy'}; ${d.reasons.map((r) => r.message).join('; ')}`;
    const got = d.verdict + (idsOk ? '' : ` by [${determining.join(', ')}], expected [${(c.policies ?? []).join(', ')}]`);
    return { name: c.name, pass: d.verdict === c.expect && idsOk, expected: c.expect, got, detail };
  });
}

// First: turns off the V8 optimization that crashes Node 20 around calls into Cedar.
import './v8-wasm-inlining.js';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { DetailedError, EntityJson, PolicyJson, SchemaJson, Type } from '@cedar-policy/cedar-wasm/nodejs';
import { parse as parseYaml } from 'yaml';
import { ValidationError, ensureError, type IssueDetail } from '../errors.js';
import { canonicalJson, sha256Hex } from '../protocol/index.js';
import { principalMatches } from '../authority/scope.js';
import { GROUP_TYPE, actionIds, principalEntity, resourceEntity, toCedarValue } from './cedar-mapping.js';
import { buildCedarSchema, type SchemaKind } from './cedar-schema.js';
import { approvalOf, type ApprovalRequirement } from './approval-annotations.js';
import { contextPaths, mergePaths, pick, type ContextPaths, type PathTree } from './context-paths.js';

/**
 * A policy set as data: Cedar policies (`.cedar` files) and a groups file, compiled against
 * the schema of the registered kinds. Compiling refuses, naming file, line and reason: a
 * parse error, a policy the schema refuses (unknown action, entity type or attribute, a type
 * error), a bad annotation, a bad groups file, and a set that locks every operator out — a
 * `forbid` with no conditions whose scope covers every `Operator` principal, every action and
 * every resource. Evaluating a request is one Cedar call on the policies whose scope
 * (principal, action, resource) holds for it — the others cannot apply, as Cedar tests the
 * scope before any condition — or no call when there are none.
 */

export interface PolicyFile {
  /** The file's name as given (shown in problems and in `ice policy show`). */
  name: string;
  text: string;
}

export interface PolicySource {
  files: PolicyFile[];
  /** The groups file (YAML or JSON): `groups: { <name>: [<principal pattern> | group:<name>, …] }`. */
  groups?: PolicyFile | undefined;
}

export interface PolicyInfo {
  id: string;
  file: string;
  line: number;
  effect: 'permit' | 'forbid';
  reason?: string;
  approval?: ApprovalRequirement;
}

/** What the policies say about one request. `ids`: the policies that determined it. */
export type PolicyVerdict =
  | { effect: 'forbid'; ids: string[]; reason?: string }
  | { effect: 'permit'; ids: string[]; approval?: ApprovalRequirement }
  | { effect: 'none'; ids: [] };

export interface PolicyRequest {
  principal: string;
  /** Actor address `kind/id`. */
  target: string;
  action: string;
  params: Record<string, unknown>;
  state: string;
  actorContext?: unknown;
  run?: { id: string; state: string; executing: boolean } | undefined;
  now: number;
}

const GROUP_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const PATTERN = /^[a-z*][a-z0-9*-]*:[A-Za-z0-9*][A-Za-z0-9*._@-]{0,127}$/;

/** Where an offset of a text is, 1-based. */
function lineCol(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let last = -1;
  for (let i = 0; i < Math.min(offset, text.length); i++)
    if (text.charCodeAt(i) === 10) {
      line++;
      last = i;
    }
  return { line, col: offset - last };
}

function cedarIssues(file: PolicyFile, errors: DetailedError[], code: string, offsetBase = 0): IssueDetail[] {
  return errors.map((e) => {
    const loc = e.sourceLocations?.[0];
    const at = loc ? lineCol(file.text, offsetBase + loc.start) : undefined;
    const label = loc?.label ? ` (${loc.label})` : '';
    return {
      path: at ? `${file.name}:${at.line}:${at.col}` : file.name,
      code,
      message: `${e.message}${label}`,
      ...(e.help ? { expected: e.help } : {}),
    };
  });
}

/** `groups` → each group's direct members (patterns) and parents (groups that list it). */
export function parseGroups(file: PolicyFile | undefined): {
  issues: IssueDetail[];
  members: Map<string, string[]>;
  parents: Map<string, string[]>;
} {
  const members = new Map<string, string[]>();
  const parents = new Map<string, string[]>();
  const issues: IssueDetail[] = [];
  if (!file) return { issues, members, parents };
  let doc: unknown;
  try {
    doc = parseYaml(file.text);
  } catch (e) {
    const err = e as { linePos?: Array<{ line: number; col: number }> };
    const at = err.linePos?.[0];
    issues.push({
      path: at ? `${file.name}:${at.line}:${at.col}` : file.name,
      code: 'groups_parse',
      message: ensureError(e).message.split('\n')[0]!,
    });
    return { issues, members, parents };
  }
  const lineOf = (needle: string) => {
    const i = file.text.indexOf(needle);
    return i < 0 ? file.name : `${file.name}:${lineCol(file.text, i).line}`;
  };
  const groups = (doc as { groups?: unknown } | null)?.groups;
  if (typeof groups !== 'object' || groups === null || Array.isArray(groups)) {
    issues.push({
      path: file.name,
      code: 'groups_invalid',
      message: 'no `groups:` mapping',
      expected: 'groups: { ops: [human:alice, "agent:*", group:other] }',
    });
    return { issues, members, parents };
  }
  for (const [name, list] of Object.entries(groups as Record<string, unknown>)) {
    if (!GROUP_NAME.test(name))
      issues.push({
        path: lineOf(name),
        code: 'groups_invalid',
        message: `group name ${JSON.stringify(name)}`,
        expected: 'A-Z a-z 0-9 _ . -',
      });
    if (!Array.isArray(list) || list.some((m) => typeof m !== 'string')) {
      issues.push({ path: lineOf(name), code: 'groups_invalid', message: `group ${name}: members must be a list of strings` });
      continue;
    }
    members.set(name, list as string[]);
  }
  for (const [name, list] of members) {
    for (const m of list) {
      if (m.startsWith('group:')) {
        const child = m.slice(6);
        if (!members.has(child))
          issues.push({ path: lineOf(m), code: 'groups_invalid', message: `group ${name} lists ${m}, which is not declared` });
        else parents.set(child, [...(parents.get(child) ?? []), name]);
      } else if (!PATTERN.test(m)) {
        issues.push({
          path: lineOf(m),
          code: 'groups_invalid',
          message: `group ${name}: member ${JSON.stringify(m)}`,
          expected: 'a principal "type:name" (wildcards *) or group:<name>',
        });
      }
    }
  }
  // No cycles: Cedar's hierarchy is a DAG.
  const visiting = new Set<string>();
  const done = new Set<string>();
  const visit = (g: string): boolean => {
    if (done.has(g)) return true;
    if (visiting.has(g)) return false;
    visiting.add(g);
    for (const p of parents.get(g) ?? []) if (!visit(p)) return false;
    visiting.delete(g);
    done.add(g);
    return true;
  };
  for (const g of members.keys())
    if (!visit(g)) {
      issues.push({ path: lineOf(g), code: 'groups_invalid', message: `group ${g} is its own member (a cycle)` });
      break;
    }
  return { issues, members, parents };
}

/** True for a forbid that applies to every Operator on every action and resource, unconditionally. */
function locksOperatorsOut(p: PolicyJson): boolean {
  if (p.effect !== 'forbid' || p.conditions.length > 0) return false;
  const pr = p.principal as { op: string; entity_type?: string; in?: unknown };
  const everyOperator = pr.op === 'All' || (pr.op === 'is' && pr.entity_type === 'Operator' && pr.in === undefined);
  return everyOperator && p.action.op === 'All' && p.resource.op === 'All';
}

/** The actions a policy's action scope can match: `all`, or the ids it names. */
function actionsOf(p: PolicyJson): 'all' | Set<string> {
  const a = p.action as {
    op: string;
    entity?: { id?: string; __entity?: { id: string } };
    entities?: Array<{ id?: string; __entity?: { id: string } }>;
  };
  const idOf = (e: { id?: string; __entity?: { id: string } }) => e.id ?? e.__entity?.id ?? '';
  if (a.op === 'All') return 'all';
  if (a.entity) return new Set([idOf(a.entity)]);
  return new Set((a.entities ?? []).map(idOf));
}

type Uid = { type: string; id: string };
type ScopeConstraint = { op: string; entity?: Uid | { __entity: Uid }; entity_type?: string; in?: { entity: Uid | { __entity: Uid } } };
const uidOf = (e: Uid | { __entity: Uid }): Uid => ('__entity' in e ? e.__entity : e);

/**
 * Whether a policy's principal or resource scope can hold for this entity, whose ancestors
 * are `ancestors` (groups, `Group::"<name>"` ids). The same test Cedar makes first; a policy
 * whose scope fails is never evaluated further, so leaving it out of the call changes nothing.
 */
function scopeHolds(c: ScopeConstraint, e: Uid, ancestors: ReadonlySet<string>): boolean {
  const isIn = (x: Uid) => (x.type === e.type && x.id === e.id) || (x.type === GROUP_TYPE && ancestors.has(x.id));
  switch (c.op) {
    case 'All':
      return true;
    case '==': {
      const x = c.entity ? uidOf(c.entity) : undefined;
      return x !== undefined && x.type === e.type && x.id === e.id;
    }
    case 'in':
      return c.entity !== undefined && isIn(uidOf(c.entity));
    case 'is':
      return c.entity_type === e.type && (c.in === undefined || isIn(uidOf(c.in.entity)));
    default:
      return true; // a form this version does not know: let Cedar decide
  }
}

interface Scope {
  principal: ScopeConstraint;
  resource: ScopeConstraint;
  /** What the policy's conditions read of the context. */
  reads: ContextPaths;
  /** Whether its conditions name `principal`, `action` or `resource` (else the answer depends on the context alone). */
  readsEntities: boolean;
}

let setCounter = 0;
const NO_GROUPS: ReadonlySet<string> = new Set();

export class CompiledPolicySet {
  readonly version: number;
  readonly hash: string;
  readonly source: PolicySource;
  readonly policies: ReadonlyMap<string, PolicyInfo>;
  readonly warnings: IssueDetail[];
  readonly #texts: Map<string, string>;
  readonly #actions: Map<string, 'all' | Set<string>>;
  readonly #scopes: Map<string, Scope>;
  readonly #groupParents: Map<string, string[]>;
  /** Per principal and action: the policies whose principal and action scopes hold. */
  readonly #candidates = new Map<string, string[]>();
  readonly #actionIds: Map<string, string>;
  readonly #paramTypes: Map<string, Type<string>>;
  readonly #actorTypes: Map<string, Type<string>>;
  readonly #groupMembers: Map<string, string[]>;
  readonly #groupEntities: Map<string, EntityJson>;
  readonly #prepared = new Map<string, { id: string; reads: ContextPaths; readsEntities: boolean }>();
  /** Cedar's answers by (candidate set, entities if read, narrowed context): the same question is not asked twice. */
  readonly #answers = new Map<string, PolicyVerdict>();
  readonly #principals = new Map<string, { parents: Uid[]; ancestors: Set<string>; entities: EntityJson[] }>();
  readonly #key = `ps${++setCounter}`;

  /** @internal use {@link compilePolicySet} */
  constructor(parts: {
    version: number;
    hash: string;
    source: PolicySource;
    policies: Map<string, PolicyInfo>;
    texts: Map<string, string>;
    actions: Map<string, 'all' | Set<string>>;
    scopes: Map<string, Scope>;
    actionIds: Map<string, string>;
    schema: SchemaJson<string>;
    groups: { members: Map<string, string[]>; parents: Map<string, string[]> };
    warnings: IssueDetail[];
  }) {
    this.version = parts.version;
    this.hash = parts.hash;
    this.source = parts.source;
    this.policies = parts.policies;
    this.warnings = parts.warnings;
    this.#texts = parts.texts;
    this.#actions = parts.actions;
    this.#scopes = parts.scopes;
    this.#groupParents = parts.groups.parents;
    this.#actionIds = parts.actionIds;
    this.#paramTypes = new Map();
    this.#actorTypes = new Map();
    const ns = parts.schema['']!;
    for (const [id, a] of Object.entries(ns.actions)) {
      const ctx = a.appliesTo?.context as { attributes?: Record<string, Type<string>> } | undefined;
      if (ctx?.attributes?.params) this.#paramTypes.set(id, ctx.attributes.params);
      if (ctx?.attributes?.actor) this.#actorTypes.set(id, ctx.attributes.actor);
    }
    this.#groupMembers = parts.groups.members;
    this.#groupEntities = new Map(
      [...parts.groups.members.keys()].map((g) => [
        g,
        {
          uid: { type: GROUP_TYPE, id: g },
          attrs: {},
          parents: (parts.groups.parents.get(g) ?? []).map((p) => ({ type: GROUP_TYPE, id: p })),
        },
      ]),
    );
  }

  get count(): number {
    return this.policies.size;
  }

  /** A policy's Cedar text, as it stands in its file. */
  policyText(id: string): string | undefined {
    return this.#texts.get(id);
  }

  /** The Cedar action id of `kind/EVENT`. */
  actionId(kind: string, event: string): string | undefined {
    return this.#actionIds.get(`${kind}/${event}`);
  }

  /** The preparsed Cedar set of exactly these policies (made once per distinct list). */
  #setFor(ids: readonly string[]): { id: string; reads: ContextPaths; readsEntities: boolean } {
    const key = ids.join('\n');
    let set = this.#prepared.get(key);
    if (set !== undefined) return set;
    const id = `${this.#key}:${this.#prepared.size}`;
    const r = cedar.preparsePolicySet(id, { staticPolicies: Object.fromEntries(ids.map((p) => [p, this.#texts.get(p)!])) });
    if (r.type !== 'success') throw new Error(`cedar refused a compiled set: ${r.errors.map((e) => e.message).join('; ')}`);
    set = {
      id,
      reads: mergePaths(ids.map((p) => this.#scopes.get(p)!.reads)),
      readsEntities: ids.some((p) => this.#scopes.get(p)!.readsEntities),
    };
    this.#prepared.set(key, set);
    return set;
  }

  /** The request context, with only what the policies of the call read (all of it for `'all'`). */
  #context(req: PolicyRequest, actionId: string, reads: ContextPaths): Record<string, cedar.CedarValueJson> {
    const want = (k: string): PathTree | undefined => (reads === 'all' ? {} : reads[k]);
    const cut = (v: unknown, tree: PathTree) => (Object.keys(tree).length === 0 ? v : pick(v, tree));
    const context: Record<string, cedar.CedarValueJson> = {};
    const params = want('params');
    if (params) context.params = toCedarValue(cut(req.params, params), this.#paramTypes.get(actionId)) ?? {};
    if (want('state')) context.state = req.state;
    const time = want('time');
    if (time) {
      const d = new Date(req.now);
      const all = Object.keys(time).length === 0;
      const t: Record<string, cedar.CedarValueJson> = {};
      if (all || time.epochMs) t.epochMs = req.now;
      if (all || time.iso) t.iso = d.toISOString();
      if (all || time.hour) t.hour = d.getUTCHours();
      if (all || time.minute) t.minute = d.getUTCMinutes();
      if (all || time.weekday) t.weekday = d.getUTCDay();
      context.time = t;
    }
    const actorType = this.#actorTypes.get(actionId);
    const actor = want('actor');
    if (actorType && actor) context.actor = toCedarValue(cut(req.actorContext ?? {}, actor), actorType) ?? {};
    if (req.run && want('run')) context.run = { id: req.run.id, state: req.run.state, executing: req.run.executing };
    return context;
  }

  /**
   * Whether `principal` is in group `group` of this set's groups file, directly or through a
   * nested group: what a `group:<name>` approver pattern of an approval requirement asks.
   */
  isMember(principal: string, group: string): boolean {
    return this.#principal(principal, principalEntity(principal)).ancestors.has(group);
  }

  /** A principal's groups (direct and inherited) and the entities Cedar needs for it. */
  #principal(principal: string, uid: Uid): { ancestors: Set<string>; entities: EntityJson[] } {
    let p = this.#principals.get(principal);
    if (!p) {
      const parents: Uid[] = [];
      for (const [g, members] of this.#groupMembers)
        if (members.some((m) => !m.startsWith('group:') && principalMatches(m, principal))) parents.push({ type: GROUP_TYPE, id: g });
      const ancestors = new Set<string>();
      const walk = (g: string) => {
        if (ancestors.has(g)) return;
        ancestors.add(g);
        for (const up of this.#groupParents.get(g) ?? []) walk(up);
      };
      for (const g of parents) walk(g.id);
      const entities: EntityJson[] = [{ uid, attrs: {}, parents }, ...[...ancestors].map((g) => this.#groupEntities.get(g)!)];
      p = { parents, ancestors, entities };
      if (this.#principals.size > 10_000) this.#principals.clear();
      this.#principals.set(principal, p);
    }
    return p;
  }

  /** The policies whose action and principal scopes hold for this principal and action. */
  #candidatesFor(principal: string, uid: Uid, ancestors: ReadonlySet<string>, actionId: string): string[] {
    const key = `${principal}\u0000${actionId}`;
    let c = this.#candidates.get(key);
    if (!c) {
      c = [];
      for (const [pid, acts] of this.#actions)
        if ((acts === 'all' || acts.has(actionId)) && scopeHolds(this.#scopes.get(pid)!.principal, uid, ancestors)) c.push(pid);
      if (this.#candidates.size > 10_000) this.#candidates.clear();
      this.#candidates.set(key, c);
    }
    return c;
  }

  /** Asks Cedar. Forbid overrides permit; a forbid that fails to evaluate counts as applying (fail closed). */
  evaluate(req: PolicyRequest): PolicyVerdict {
    const kind = req.target.slice(0, req.target.indexOf('/'));
    const actionId = this.actionId(kind, req.action) ?? req.action;
    const principal = principalEntity(req.principal);
    const who = this.#principal(req.principal, principal);
    const resource = resourceEntity(req.target);
    // Plain loops on the hot path.
    const ids: string[] = [];
    for (const pid of this.#candidatesFor(req.principal, principal, who.ancestors, actionId))
      if (scopeHolds(this.#scopes.get(pid)!.resource, resource, NO_GROUPS)) ids.push(pid);
    // No policy can apply: no Cedar call.
    if (ids.length === 0) return { effect: 'none', ids: [] };
    const set = this.#setFor(ids);
    const context = this.#context(req, actionId, set.reads);
    // Every candidate's scope holds; what else the answer depends on is in the key.
    const key = `${set.id}\u0000${set.readsEntities ? `${req.principal}\u0000${actionId}\u0000${req.target}` : ''}\u0000${JSON.stringify(context)}`;
    const known = this.#answers.get(key);
    if (known) return known;
    const verdict = this.#ask(principal, actionId, resource, context, set.id, who.entities);
    if (this.#answers.size >= 10_000) this.#answers.clear();
    this.#answers.set(key, verdict);
    return verdict;
  }

  #ask(
    principal: Uid,
    actionId: string,
    resource: Uid,
    context: Record<string, cedar.CedarValueJson>,
    set: string,
    entities: EntityJson[],
  ): PolicyVerdict {
    const answer = cedar.statefulIsAuthorized({
      principal,
      action: { type: 'Action', id: actionId },
      resource,
      context,
      preparsedPolicySetId: set,
      validateRequest: false,
      entities,
    });
    if (answer.type !== 'success') {
      // The request itself could not be evaluated: no permit can stand (fail closed).
      return {
        effect: 'forbid',
        ids: [],
        reason: `policies could not be evaluated: ${answer.errors.map((e) => e.message).join('; ')}`,
      };
    }
    const { decision, diagnostics } = answer.response;
    const satisfied: string[] = [...diagnostics.reason];
    const erroredForbids: string[] = [];
    for (const e of diagnostics.errors) if (this.policies.get(e.policyId)?.effect === 'forbid') erroredForbids.push(e.policyId);
    if (decision === 'deny' && (satisfied.length > 0 || erroredForbids.length > 0)) {
      const ids = [...satisfied];
      for (const id of erroredForbids) if (!ids.includes(id)) ids.push(id);
      const reason =
        satisfied.length === 0
          ? `policy ${ids[0]} failed to evaluate (${diagnostics.errors[0]?.error.message ?? ''}); a forbid that fails applies`
          : this.policies.get(ids[0]!)?.reason;
      return { effect: 'forbid', ids, ...(reason ? { reason } : {}) };
    }
    if (decision === 'allow') {
      if (erroredForbids.length > 0)
        return {
          effect: 'forbid',
          ids: erroredForbids,
          reason: `policy ${erroredForbids[0]} failed to evaluate; a forbid that fails applies`,
        };
      let approval: ApprovalRequirement | undefined;
      for (const id of satisfied) {
        approval = this.policies.get(id)?.approval;
        if (approval) break;
      }
      return { effect: 'permit', ids: satisfied, ...(approval ? { approval } : {}) };
    }
    return { effect: 'none', ids: [] };
  }
}

/** sha256 over the canonical JSON of the files (sorted by name) and the groups file. */
export function policySourceHash(source: PolicySource): string {
  const files = [...source.files].sort((a, b) => a.name.localeCompare(b.name));
  return sha256Hex(canonicalJson({ files, groups: source.groups ?? null }));
}

/**
 * Parses, validates and indexes a policy set against the kinds' schema.
 * @throws ValidationError whose issues name `file:line:col`, what is wrong and, where Cedar
 *   knows, what would be right (`expected`).
 */
export function compilePolicySet(source: PolicySource, kinds: readonly SchemaKind[], version = 0): CompiledPolicySet {
  const issues: IssueDetail[] = [];
  const warnings: IssueDetail[] = [];
  const schema = buildCedarSchema(kinds);
  const groups = parseGroups(source.groups);
  issues.push(...groups.issues);
  const policies = new Map<string, PolicyInfo>();
  const texts = new Map<string, string>();
  const actions = new Map<string, 'all' | Set<string>>();
  const scopes = new Map<string, Scope>();
  if (source.files.length === 0) issues.push({ path: '', code: 'policy_empty', message: 'no .cedar files given' });
  const names = new Set<string>();
  for (const file of source.files) {
    if (names.has(file.name)) issues.push({ path: file.name, code: 'policy_duplicate', message: 'the same file name twice' });
    names.add(file.name);
    const parsed = cedar.checkParsePolicySet({ staticPolicies: file.text });
    if (parsed.type === 'failure') {
      issues.push(...cedarIssues(file, parsed.errors, 'policy_parse'));
      continue;
    }
    const parts = cedar.policySetTextToParts(file.text);
    if (parts.type === 'failure') {
      issues.push(...cedarIssues(file, parts.errors, 'policy_parse'));
      continue;
    }
    if (parts.policy_templates.length > 0)
      issues.push({
        path: file.name,
        code: 'policy_template',
        message: 'templates (policies with ?principal or ?resource) are not supported',
      });
    // Cedar names the policies of a text policy0, policy1, … and returns them sorted by that name.
    const n = parts.policies.length;
    const order = Array.from({ length: n }, (_, i) => `policy${i}`).sort();
    const inFileOrder: string[] = new Array<string>(n);
    order.forEach((name, k) => (inFileOrder[Number(name.slice(6))] = parts.policies[k]!));
    let cursor = 0;
    const localIds = new Map<string, string>();
    inFileOrder.forEach((text, i) => {
      const at = file.text.indexOf(text, cursor);
      const offset = at < 0 ? cursor : at;
      cursor = offset + text.length;
      const { line } = lineCol(file.text, offset);
      const where = `${file.name}:${line}`;
      const json = cedar.policyToJson(text);
      if (json.type !== 'success') {
        issues.push(...cedarIssues(file, json.errors, 'policy_parse', offset));
        return;
      }
      const p = json.json;
      const ann = p.annotations ?? {};
      const id = ann.id ?? `${file.name}#${i + 1}`;
      localIds.set(`policy${i}`, id);
      if (policies.has(id)) {
        issues.push({
          path: where,
          code: 'policy_duplicate',
          message: `policy id ${JSON.stringify(id)} is used twice (also at ${policies.get(id)!.file}:${policies.get(id)!.line})`,
        });
        return;
      }
      if (locksOperatorsOut(p))
        issues.push({
          path: where,
          code: 'policy_lockout',
          message: `policy ${id} forbids every operator every action on every resource, unconditionally: it would lock every operator out`,
          expected: 'a narrower scope (principal, action or resource) or a when/unless condition',
        });
      const approval = approvalOf(id, p.effect, ann, groups.members);
      if ('issue' in approval) issues.push({ path: where, ...approval.issue });
      const info: PolicyInfo = {
        id,
        file: file.name,
        line,
        effect: p.effect,
        ...(ann.reason !== undefined ? { reason: ann.reason } : {}),
        ...('approval' in approval && approval.approval ? { approval: approval.approval } : {}),
      };
      policies.set(id, info);
      texts.set(id, text);
      actions.set(id, actionsOf(p));
      scopes.set(id, {
        principal: p.principal as ScopeConstraint,
        resource: p.resource as ScopeConstraint,
        reads: contextPaths(p.conditions.map((c) => c.body)),
        readsEntities: /"Var":"(principal|action|resource)"/.test(JSON.stringify(p.conditions)),
      });
    });
    const v = cedar.validate({ schema, policies: { staticPolicies: file.text }, validationSettings: { mode: 'strict' } });
    if (v.type === 'failure') {
      issues.push(...cedarIssues(file, v.errors, 'policy_schema'));
      continue;
    }
    for (const e of v.validationErrors) issues.push(...relabel(cedarIssues(file, [e.error], 'policy_invalid'), localIds));
    for (const e of v.validationWarnings) warnings.push(...relabel(cedarIssues(file, [e.error], 'policy_warning'), localIds));
  }
  if (issues.length)
    throw new ValidationError(`the policy set is refused: ${issues.length} problem${issues.length === 1 ? '' : 's'}`, issues);
  return new CompiledPolicySet({
    version,
    hash: policySourceHash(source),
    source,
    policies,
    texts,
    actions,
    scopes,
    actionIds: actionIds(kinds),
    schema,
    groups,
    warnings,
  });
}

/** Cedar's messages say `policy3`; say the policy's id instead. */
function relabel(issues: IssueDetail[], ids: Map<string, string>): IssueDetail[] {
  return issues.map((i) => ({
    ...i,
    message: i.message.replace(/`(policy\d+)`/g, (m, p: string) => (ids.has(p) ? `\`${ids.get(p)}\`` : m)),
  }));
}

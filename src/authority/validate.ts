import type { ZodError } from 'zod';
import type { IssueDetail } from '../errors.js';
import {
  checkJsonShape,
  intentDigest,
  IntentSchema,
  isAddress,
  isWellFormed,
  jsonByteLength,
  splitAddress,
  type Intent,
  type JsonLimits,
} from '../protocol/index.js';
import type { ActorDefinition, ActorRegistry } from '../host/definition.js';

export type ValidatedIntent = {
  ok: true;
  intent: Intent;
  digest: string;
  def: ActorDefinition;
  event: { type: string } & Record<string, unknown>;
};
export type InvalidIntent = { ok: false; issues: IssueDetail[]; intentId?: string; target?: string };

/** Zod issues → our issue details (dotted path, what was expected). */
export function zodIssues(err: ZodError, prefix = ''): IssueDetail[] {
  return err.issues.map((i) => {
    const path = [prefix, ...i.path.map(String)].filter((p) => p !== '').join('.');
    const detail: IssueDetail = { path, code: i.code, message: i.message };
    const x = i as {
      expected?: string;
      minimum?: number | bigint;
      maximum?: number | bigint;
      inclusive?: boolean;
      format?: string;
      values?: unknown[];
      keys?: string[];
    };
    if (x.expected !== undefined) detail.expected = String(x.expected);
    else if (i.code === 'too_small') detail.expected = `${x.inclusive === false ? '>' : '>='} ${String(x.minimum)}`;
    else if (i.code === 'too_big') detail.expected = `${x.inclusive === false ? '<' : '<='} ${String(x.maximum)}`;
    else if (i.code === 'invalid_format')
      detail.expected =
        x.format === 'regex' && (x as { pattern?: string }).pattern
          ? `to match ${(x as { pattern?: string }).pattern}`
          : `format ${x.format ?? 'string'}`;
    else if (i.code === 'invalid_value' && x.values) detail.expected = `one of ${x.values.map((v) => JSON.stringify(v)).join(', ')}`;
    else if (i.code === 'unrecognized_keys') detail.expected = `no keys ${(x.keys ?? []).join(', ')}`;
    return detail;
  });
}

/**
 * Everything about an intent that can be checked without knowing who may do what:
 * size and depth bounds, forbidden keys, the envelope schema, a known kind, a known action
 * (runtime-only events are refused), and params valid for that action's schema.
 */
export function validateIntent(raw: unknown, registry: ActorRegistry, limits: JsonLimits): ValidatedIntent | InvalidIntent {
  const rawObj = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>) : undefined;
  const hint = {
    ...(typeof rawObj?.id === 'string' && rawObj.id.length <= 128 && isWellFormed(rawObj.id) ? { intentId: rawObj.id } : {}),
    ...(typeof rawObj?.target === 'string' && isAddress(rawObj.target) ? { target: rawObj.target } : {}),
  };
  const shape = checkJsonShape(raw, limits);
  if (shape) return { ok: false, issues: [shape], ...hint };
  const bytes = jsonByteLength(raw);
  if (bytes > limits.maxBytes) {
    return {
      ok: false,
      issues: [{ path: '', code: 'too_large', message: `${bytes} bytes exceeds the limit`, expected: `at most ${limits.maxBytes} bytes` }],
      ...hint,
    };
  }
  const withVersion = rawObj && rawObj.v === undefined ? { ...rawObj, v: 1 } : raw;
  const parsed = IntentSchema.safeParse(withVersion);
  if (!parsed.success) return { ok: false, issues: zodIssues(parsed.error), ...hint };
  // zod copies the envelope and the params record but keeps nested param values by
  // reference; detach them, so that what is validated, vouched for (and frozen by LocalTrust)
  // and journaled is never an object the caller still holds and can change.
  const intent: Intent = { ...parsed.data, params: JSON.parse(JSON.stringify(parsed.data.params)) as Intent['params'] };
  const { kind } = splitAddress(intent.target);
  const def = registry.get(kind);
  if (!def) {
    return {
      ok: false,
      issues: [
        {
          path: 'target',
          code: 'unknown_kind',
          message: `no actor kind "${kind}"`,
          expected: `one of: ${registry
            .list()
            .map((d) => d.kind)
            .join(', ')}`,
        },
      ],
      ...hint,
    };
  }
  const schema = def.events[intent.action];
  if (!schema) {
    const runtimeOnly = intent.action in def.runtimeEvents;
    return {
      ok: false,
      issues: [
        {
          path: 'action',
          code: runtimeOnly ? 'runtime_only_action' : 'unknown_action',
          message: runtimeOnly ? `${intent.action} can only be sent by the runtime` : `${kind} has no action "${intent.action}"`,
          expected: `one of: ${Object.keys(def.events).join(', ')}`,
        },
      ],
      ...hint,
    };
  }
  const params = schema.safeParse(intent.params);
  if (!params.success) return { ok: false, issues: zodIssues(params.error, 'params'), ...hint };
  const p = params.data as Record<string, unknown>;
  if (typeof p !== 'object' || p === null || Array.isArray(p) || 'type' in p) {
    return {
      ok: false,
      issues: [{ path: 'params', code: 'invalid_params', message: 'params must be an object without a "type" key', expected: 'object' }],
      ...hint,
    };
  }
  return { ok: true, intent, digest: intentDigest(intent), def, event: { ...p, type: intent.action } };
}

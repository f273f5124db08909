import type { CedarValueJson, EntityUidJson, Type } from '@cedar-policy/cedar-wasm/nodejs';

/**
 * How ICE names map to Cedar (docs/policies.md):
 *
 * - a principal `type:name` → `<Type>::"name"`: `agent` → `Agent`, `human` → `Human`,
 *   `service` and `svc` → `Service`, `operator` → `Operator`, `actor` → `Actor` (an actor
 *   proposing, `actor:<kind>.<id>` → `Actor::"<kind>.<id>"`); any other type in PascalCase
 *   (`ci-bot:x` → `CiBot::"x"`, not in the schema: only unconstrained policies see it);
 * - a group → `Group::"<name>"`, a parent of the principals it lists (groups file);
 * - an actor `kind/id` → `<Kind>::"id"` (`deployment/web` → `Deployment::"web"`);
 * - an event → `Action::"<EVENT>"`, or `Action::"<kind>/<EVENT>"` when two registered kinds
 *   have an event of that name (`run/SUBMIT`, `deployment/SUBMIT`).
 */
export const PRINCIPAL_TYPES: Readonly<Record<string, string>> = Object.freeze({
  agent: 'Agent',
  human: 'Human',
  service: 'Service',
  svc: 'Service',
  operator: 'Operator',
  actor: 'Actor',
});
/** The principal entity types every schema declares (each may be `in` groups). */
export const DECLARED_PRINCIPAL_TYPES = ['Agent', 'Human', 'Service', 'Operator', 'Actor'] as const;
export const GROUP_TYPE = 'Group';

/** `ci-bot` → `CiBot`. */
export function pascal(word: string): string {
  return word
    .split(/[-_]/)
    .filter((p) => p !== '')
    .map((p) => p[0]!.toUpperCase() + p.slice(1))
    .join('');
}

export function principalEntity(principal: string): { type: string; id: string } {
  const i = principal.indexOf(':');
  const type = principal.slice(0, i);
  return { type: PRINCIPAL_TYPES[type] ?? pascal(type), id: principal.slice(i + 1) };
}

export const resourceType = (kind: string): string => pascal(kind);

export function resourceEntity(address: string): { type: string; id: string } {
  const i = address.indexOf('/');
  return { type: resourceType(address.slice(0, i)), id: address.slice(i + 1) };
}

/** Action ids of every registered kind: `EVENT`, or `kind/EVENT` where names collide. */
export function actionIds(kinds: ReadonlyArray<{ kind: string; events: Readonly<Record<string, unknown>> }>): Map<string, string> {
  const count = new Map<string, number>();
  for (const k of kinds) for (const e of Object.keys(k.events)) count.set(e, (count.get(e) ?? 0) + 1);
  const ids = new Map<string, string>();
  for (const k of kinds) for (const e of Object.keys(k.events)) ids.set(`${k.kind}/${e}`, count.get(e)! > 1 ? `${k.kind}/${e}` : e);
  return ids;
}

const RESERVED_KEYS = new Set(['__entity', '__extn', '__expr']);
const MAX_DEPTH = 16;

/** A number as a Cedar `decimal` (4 fraction digits), or undefined outside its range. */
export function toDecimal(n: number): CedarValueJson | undefined {
  if (!Number.isFinite(n) || Math.abs(n) >= 922_337_203_685_477) return undefined;
  return { __extn: { fn: 'decimal', arg: n.toFixed(4) } };
}

/**
 * Any JSON value as a Cedar value (typed by the schema where given): safe integers → Long,
 * other numbers and numbers typed `decimal` → decimal, arrays →
 * sets, objects → records; `null`, non-finite numbers and the keys Cedar's JSON reads as
 * escapes (`__entity`, `__extn`, `__expr`: a proposer must not forge an entity reference)
 * are left out.
 */
export function toCedarValue(v: unknown, type?: Type<string>, depth = 0): CedarValueJson | undefined {
  const t = type as { type?: string; name?: string; element?: Type<string>; attributes?: Record<string, Type<string>> } | undefined;
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      return Number.isSafeInteger(v) && t?.name !== 'decimal' ? v : toDecimal(v);
    case 'object': {
      if (v === null || depth > MAX_DEPTH) return undefined;
      if (Array.isArray(v)) {
        const out: CedarValueJson[] = [];
        for (const x of v) {
          const c = toCedarValue(x, t?.element, depth + 1);
          if (c !== undefined) out.push(c);
        }
        return out;
      }
      const out: Record<string, CedarValueJson> = {};
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (RESERVED_KEYS.has(k)) continue;
        const c = toCedarValue(x, t?.attributes?.[k], depth + 1);
        if (c !== undefined) out[k] = c;
      }
      return out;
    }
    default:
      return undefined;
  }
}

export type EntityUid = EntityUidJson;

import { z, type ZodType } from 'zod';
import type { SchemaJson, Type, TypeOfAttribute } from '@cedar-policy/cedar-wasm/nodejs';
import { DECLARED_PRINCIPAL_TYPES, GROUP_TYPE, actionIds, resourceType } from './cedar-mapping.js';

/** What the schema needs of a kind (an ActorDefinition has it). */
export interface SchemaKind {
  kind: string;
  events: Readonly<Record<string, ZodType>>;
  /** Schema of the actor's context: typed as `context.actor` (absent: not available to policies). */
  contextSchema?: ZodType | undefined;
}

type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
};

/**
 * A JSON Schema (from `z.toJSONSchema`) as a Cedar type, or undefined for what Cedar cannot
 * type (unions of different types, `unknown`, maps): those attributes are left out of the
 * schema, so a policy that reads them is refused by validation, and out of the request.
 */
export function jsonSchemaToCedar(s: JsonSchema): { type: Type<string>; nullable: boolean } | undefined {
  let types = Array.isArray(s.type) ? s.type : s.type !== undefined ? [s.type] : [];
  let nullable = types.includes('null');
  let schema = s;
  if (s.anyOf) {
    const nonNull = s.anyOf.filter((x) => x.type !== 'null');
    if (nonNull.length !== 1) return undefined;
    nullable = nonNull.length < s.anyOf.length;
    schema = nonNull[0]!;
    types = Array.isArray(schema.type) ? schema.type : schema.type !== undefined ? [schema.type] : [];
  }
  types = types.filter((t) => t !== 'null');
  if (types.length === 0 && schema.const !== undefined) types = [typeof schema.const === 'number' ? 'number' : typeof schema.const];
  if (types.length !== 1) return undefined;
  const t = types[0]!;
  const of = (type: Type<string>) => ({ type, nullable });
  switch (t) {
    case 'string':
      return of({ type: 'String' });
    case 'boolean':
      return of({ type: 'Boolean' });
    case 'integer':
      return of({ type: 'Long' });
    case 'number':
      return of({ type: 'Extension', name: 'decimal' });
    case 'array': {
      const el = schema.items ? jsonSchemaToCedar(schema.items) : undefined;
      return el && !el.nullable ? of({ type: 'Set', element: el.type }) : undefined;
    }
    case 'object':
      return of(recordOf(schema));
    default:
      return undefined;
  }
}

function recordOf(s: JsonSchema): Type<string> {
  const attributes: Record<string, TypeOfAttribute<string>> = {};
  const required = new Set(s.required ?? []);
  for (const [k, p] of Object.entries(s.properties ?? {})) {
    const c = jsonSchemaToCedar(p);
    if (!c) continue;
    attributes[k] = { ...c.type, required: required.has(k) && !c.nullable };
  }
  return { type: 'Record', attributes };
}

/** A zod schema as a Cedar record type (`{}` when it is no object). */
export function zodToCedarRecord(schema: ZodType): Type<string> {
  let js: JsonSchema;
  try {
    js = z.toJSONSchema(schema, { io: 'output', unrepresentable: 'any' }) as JsonSchema;
  } catch {
    return { type: 'Record', attributes: {} };
  }
  const c = jsonSchemaToCedar(js);
  return c && (c.type as { type?: string }).type === 'Record' ? c.type : { type: 'Record', attributes: {} };
}

const TIME: Type<string> = {
  type: 'Record',
  attributes: {
    epochMs: { type: 'Long', required: true },
    iso: { type: 'String', required: true },
    hour: { type: 'Long', required: true },
    minute: { type: 'Long', required: true },
    weekday: { type: 'Long', required: true },
  },
};
const RUN: Type<string> = {
  type: 'Record',
  attributes: {
    id: { type: 'String', required: true },
    state: { type: 'String', required: true },
    executing: { type: 'Boolean', required: true },
  },
};

/**
 * The Cedar schema of the registered kinds (docs/policies.md): principal types `Agent`,
 * `Human`, `Service`, `Operator`, each `in [Group]`; `Group in [Group]`; one resource type
 * per kind; one action per proposable event, whose context is
 * `{ params, state, actor?, run?, time }` with `params` typed from the event's zod schema.
 */
export function buildCedarSchema(kinds: readonly SchemaKind[]): SchemaJson<string> {
  const entityTypes: Record<string, object> = { [GROUP_TYPE]: { memberOfTypes: [GROUP_TYPE] } };
  for (const p of DECLARED_PRINCIPAL_TYPES) entityTypes[p] = { memberOfTypes: [GROUP_TYPE] };
  const ids = actionIds(kinds);
  const actions: Record<string, object> = {};
  for (const k of kinds) {
    const rt = resourceType(k.kind);
    entityTypes[rt] ??= {};
    const actor = k.contextSchema ? zodToCedarRecord(k.contextSchema) : undefined;
    for (const [event, schema] of Object.entries(k.events)) {
      actions[ids.get(`${k.kind}/${event}`)!] = {
        appliesTo: {
          principalTypes: [...DECLARED_PRINCIPAL_TYPES],
          resourceTypes: [rt],
          context: {
            type: 'Record',
            attributes: {
              params: { ...zodToCedarRecord(schema), required: true },
              state: { type: 'String', required: true },
              ...(actor ? { actor: { ...actor, required: true } } : {}),
              run: { ...RUN, required: false },
              time: { ...TIME, required: true },
            },
          },
        },
      };
    }
  }
  return { '': { entityTypes, actions } };
}

import type { StateValue } from 'xstate';

/** `"a"`, `{ a: "b" }` → `"a.b"`, parallel regions joined with `,`. */
export function stateToString(value: StateValue): string {
  if (typeof value === 'string') return value;
  const parts: string[] = [];
  for (const [k, v] of Object.entries(value)) {
    if (v === undefined) continue;
    const inner = stateToString(v);
    parts.push(inner === '' || (typeof v === 'object' && Object.keys(v).length === 0) ? k : `${k}.${inner}`);
  }
  return parts.join(',');
}

/**
 * Which parts of the request context a set of policies reads. Cedar reads a context only
 * through attribute access and `has` (`context.params.replicas`, `context.actor has x`), so a
 * context holding just those paths — each with its whole value — decides exactly as the full
 * one. Building and handing over less is most of what a Cedar call costs here (the request
 * is converted into Cedar values on every call). A policy that uses `context` as a whole
 * value needs all of it (`'all'`).
 */
export type ContextPaths = 'all' | PathTree;
/** Keys read; an empty tree under a key: its whole value. */
export interface PathTree {
  [key: string]: PathTree;
}

type Expr = Record<string, unknown>;

/** The chain of attributes from `context` that `e` is, or undefined. */
function chainOf(e: unknown): string[] | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const x = e as Expr;
  if (x.Var === 'context') return [];
  const dot = x['.'] as { left: unknown; attr: string } | undefined;
  if (dot) {
    const left = chainOf(dot.left);
    return left ? [...left, dot.attr] : undefined;
  }
  return undefined;
}

function add(tree: PathTree, path: string[]): void {
  let t = tree;
  for (let i = 0; i < path.length; i++) {
    const k = path[i]!;
    const isLast = i === path.length - 1;
    if (t[k] !== undefined && Object.keys(t[k]).length === 0 && !isLast) return; // already whole
    if (isLast) {
      t[k] = {};
      return;
    }
    t[k] ??= {};
    t = t[k];
  }
}

/** Adds to `tree` what one policy condition reads; false if it needs the whole context. */
function walk(e: unknown, tree: PathTree): boolean {
  if (typeof e !== 'object' || e === null) return true;
  if (Array.isArray(e)) return e.every((x) => walk(x, tree));
  const x = e as Expr;
  if (x.Var === 'context') return false; // the whole context as a value
  const dot = x['.'] as { left: unknown; attr: string } | undefined;
  if (dot) {
    const chain = chainOf(e);
    if (chain) {
      add(tree, chain);
      return true;
    }
    return walk(dot.left, tree);
  }
  const has = x.has as { left: unknown; attr: string | string[] } | undefined;
  if (has) {
    const chain = chainOf(has.left);
    if (chain) {
      add(tree, [...chain, ...(Array.isArray(has.attr) ? has.attr : [has.attr])]);
      return true;
    }
    return walk(has.left, tree);
  }
  return Object.values(x).every((v) => walk(v, tree));
}

/** What the conditions of these policies (Cedar JSON form) read of the context. */
export function contextPaths(conditions: readonly unknown[]): ContextPaths {
  const tree: PathTree = {};
  for (const c of conditions) if (!walk(c, tree)) return 'all';
  return tree;
}

/** Merges the trees of several policies. */
export function mergePaths(all: readonly ContextPaths[]): ContextPaths {
  const out: PathTree = {};
  const merge = (into: PathTree, from: PathTree) => {
    for (const [k, sub] of Object.entries(from)) {
      const cur = into[k];
      if (cur !== undefined && Object.keys(cur).length === 0) continue; // whole already
      if (Object.keys(sub).length === 0) into[k] = {};
      else merge((into[k] ??= {}), sub);
    }
  };
  for (const p of all) {
    if (p === 'all') return 'all';
    merge(out, p);
  }
  return out;
}

/** `value` cut down to the paths of `tree` (objects only; anything else is kept whole). */
export function pick(value: unknown, tree: PathTree): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, sub] of Object.entries(tree)) {
    if (!Object.hasOwn(value, k)) continue;
    const v = (value as Record<string, unknown>)[k];
    out[k] = Object.keys(sub).length === 0 ? v : pick(v, sub);
  }
  return out;
}

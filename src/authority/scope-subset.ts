/**
 * Pattern containment for scopes (`kind/id:ACTION`, `*` wildcards inside a part, or `*` for
 * everything): does every intent a child scope allows fall inside the parent scope? This is
 * what delegation checks — a delegated grant may only be narrower than the grant it comes from.
 *
 * The algorithm. A scope matches `kind/id:ACTION` strings part by part, and a `*` never crosses
 * `/` or `:` (see scope.ts), so `child ⊆ parent` exactly when each part of the child is
 * contained in the same part of the parent; the whole-pattern `*` is taken as `*\/*:*` (the
 * same set of targets). For one part, both are globs whose only metacharacter is `*`, and
 *
 *   L(c) ⊆ L(p)  ⇔  p matches c read literally, where each `*` of c is a symbol that only a
 *                    `*` of p may consume (a literal of p never matches a `*` of c).
 *
 * ⇐: replace each star-symbol of c by any string w; the star of p that consumed the symbol
 * consumes w instead. ⇒: fill each `*` of c with a long run of a letter that p does not
 * contain; p's literals cannot match that run, so each run lies inside what one of p's stars
 * consumes — the same match with the run read as the star-symbol. So the check is exact, not
 * a safe approximation. It is a dynamic program over (position in c, position in p),
 * O(|c|·|p|) per part.
 */

const SEPARATORS = /([/:])/;

/** The three parts of a scope, `*` being `*`, `*`, `*`. */
function parts(scope: string): string[] {
  if (scope === '*') return ['*', '*', '*'];
  return scope.split(SEPARATORS).filter((p) => p !== '/' && p !== ':');
}

/**
 * Whether glob `parent` matches every string glob `child` matches (both: literal characters and
 * `*` for any run of characters).
 */
export function globCovers(parent: string, child: string): boolean {
  const p = parent.replace(/\*+/g, '*');
  const c = child.replace(/\*+/g, '*');
  // ok[i][j]: p[j..] covers c[i..]
  const rows = c.length + 1;
  const cols = p.length + 1;
  const ok: boolean[] = new Array<boolean>(rows * cols).fill(false);
  const at = (i: number, j: number) => ok[i * cols + j] === true;
  ok[c.length * cols + p.length] = true;
  for (let i = c.length; i >= 0; i--) {
    for (let j = p.length - 1; j >= 0; j--) {
      let v: boolean;
      if (p[j] === '*') {
        // the star consumes nothing more, or one more symbol of c (a literal or a star)
        v = at(i, j + 1) || (i < c.length && at(i + 1, j));
      } else {
        v = i < c.length && c[i] !== '*' && c[i] === p[j] && at(i + 1, j + 1);
      }
      ok[i * cols + j] = v;
    }
  }
  return at(0, 0);
}

/**
 * Whether scope `parent` allows every `kind/id:ACTION` that scope `child` allows.
 * @example
 * scopeCovers('*', 'deployment/*:*')               // true
 * scopeCovers('deployment/*:*', 'deployment/*:DEPLOY') // true
 * scopeCovers('deployment/web-*:*', 'deployment/*:*')  // false
 */
export function scopeCovers(parent: string, child: string): boolean {
  if (parent === '*') return true;
  const p = parts(parent);
  const c = parts(child);
  if (p.length !== 3 || c.length !== 3) return false;
  return p.every((part, i) => globCovers(part, c[i]!));
}

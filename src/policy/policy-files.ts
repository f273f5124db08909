import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ValidationError } from '../errors.js';
import type { PolicySource } from './policy-set.js';

const GROUPS_FILES = ['groups.yaml', 'groups.yml', 'groups.json'];

/**
 * A policy set from disk: a directory's `*.cedar` files (sorted) and its groups file
 * (`groups.yaml`, `groups.yml` or `groups.json`), or one `.cedar` file and the groups file
 * beside it; `groups` names another groups file. Names are kept as given, as problems are
 * reported against them.
 * @throws ValidationError naming a path that is missing or holds no .cedar file.
 */
export function readPolicySource(path: string, groups?: string): PolicySource {
  const st = statSync(path, { throwIfNoEntry: false });
  const refuse = (message: string, expected: string): never => {
    throw new ValidationError(`cannot read policies from ${path}`, [{ path, code: 'policy_path', message, expected }]);
  };
  if (!st) return refuse('no such file or directory', 'a .cedar file or a directory of them');
  const dir = st.isDirectory() ? path : dirname(path);
  const cedarPaths = st.isDirectory()
    ? readdirSync(path)
        .filter((f) => f.endsWith('.cedar'))
        .sort()
        .map((f) => join(path, f))
    : [path];
  if (cedarPaths.length === 0) refuse('no .cedar file in this directory', 'a directory with *.cedar files');
  const name = (p: string) => p;
  const groupsPath = groups ?? GROUPS_FILES.map((f) => join(dir, f)).find((p) => statSync(p, { throwIfNoEntry: false })?.isFile());
  if (groups !== undefined && !statSync(groups, { throwIfNoEntry: false })?.isFile())
    refuse(`no groups file ${groups}`, 'a YAML or JSON file');
  return {
    files: cedarPaths.map((p) => ({ name: name(p), text: readFileSync(p, 'utf8') })),
    ...(groupsPath ? { groups: { name: name(groupsPath), text: readFileSync(groupsPath, 'utf8') } } : {}),
  };
}

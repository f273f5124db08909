import { readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import { ValidationError, ensureError, type IssueDetail } from '../errors.js';

/**
 * The project config, so `--actors` is not repeated on every command: `ice.config.json`, or an
 * `"ice"` field in package.json, in the current directory or the nearest one above it, up to
 * the nearest directory with a package.json (the project root).
 *
 * @example
 * // ice.config.json
 * { "actors": ["./dist/actors/index.js"], "data": "./.ice" }
 *
 * Paths are relative to the file. A value given on the command line wins, then the
 * environment (ICE_DATA), then the config, then the default.
 */
export const CONFIG_FILE = 'ice.config.json';

export const ProjectConfigSchema = z.strictObject({
  /** ES modules exporting `actors` or defineActor results, as `--actors`. */
  actors: z.array(z.string().min(1)).optional(),
  /** The data directory, as `--data`. */
  data: z.string().min(1).optional(),
});

export interface ProjectConfig {
  /** The file it was read from: ice.config.json, or package.json (its `"ice"` field). */
  file: string;
  /** Absolute module paths. */
  actors?: string[];
  /** Absolute path. */
  data?: string;
}

const exists = (path: string): boolean => statSync(path, { throwIfNoEntry: false })?.isFile() === true;

function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ValidationError(`invalid config ${file}`, [
      { path: basename(file), code: 'invalid_json', message: ensureError(e).message, expected: 'JSON text' },
    ]);
  }
}

const hasIceField = (pkg: unknown): pkg is { ice: unknown } => typeof pkg === 'object' && pkg !== null && 'ice' in pkg;

/**
 * The project config that applies in `from` (default: the current directory), or undefined.
 * @throws ValidationError naming the file and the field when the config is not valid.
 */
export function findProjectConfig(from = process.cwd()): ProjectConfig | undefined {
  for (let dir = resolve(from); ;) {
    const configFile = join(dir, CONFIG_FILE);
    const pkgFile = join(dir, 'package.json');
    const pkg = exists(pkgFile) ? readJson(pkgFile) : undefined;
    if (exists(configFile)) {
      if (hasIceField(pkg)) {
        throw new ValidationError(`two project configs in ${dir}`, [
          { path: 'ice', code: 'ambiguous', message: `${pkgFile} has an "ice" field and ${configFile} exists`, expected: 'one of them' },
        ]);
      }
      return loadConfig(readJson(configFile), configFile, '');
    }
    if (pkg !== undefined) return hasIceField(pkg) ? loadConfig(pkg.ice, pkgFile, 'ice') : undefined;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** What each field takes, for messages. */
const FIELDS: Record<keyof z.infer<typeof ProjectConfigSchema>, string> = {
  actors: 'a list of ES module paths, e.g. ["./dist/actors/index.js"]',
  data: 'a directory path, e.g. "./.ice"',
};

function loadConfig(raw: unknown, file: string, prefix: string): ProjectConfig {
  const at = (path: PropertyKey[]) => [prefix, ...path.map(String)].filter(Boolean).join('.');
  const parsed = ProjectConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issues: IssueDetail[] = parsed.error.issues.flatMap((i): IssueDetail[] =>
      i.code === 'unrecognized_keys'
        ? i.keys.map((k) => ({
            path: at([...i.path, k]),
            code: 'unknown_key',
            message: 'not a config field',
            expected: `one of ${Object.keys(FIELDS).join(', ')}`,
          }))
        : [
            {
              path: at(i.path) || basename(file),
              code: i.code,
              message: i.message,
              expected: i.path.length === 0 ? 'an object with actors and/or data' : FIELDS[i.path[0] as keyof typeof FIELDS],
            },
          ],
    );
    throw new ValidationError(`invalid config ${file}`, issues);
  }
  const dir = dirname(file);
  const issues: IssueDetail[] = [];
  const actors = parsed.data.actors?.map((m, i) => {
    const abs = resolve(dir, m);
    if (!exists(abs)) {
      issues.push({
        path: at(['actors', i]),
        code: 'no_file',
        message: `no such file: ${abs}`,
        expected: `an ES module path, relative to ${dir}`,
      });
    }
    return abs;
  });
  if (issues.length) throw new ValidationError(`invalid config ${file}`, issues);
  return {
    file,
    ...(actors ? { actors } : {}),
    ...(parsed.data.data !== undefined ? { data: resolve(dir, parsed.data.data) } : {}),
  };
}

/** Gives `cmd` the config's values for the options not set on the command line or in the environment. */
export function applyProjectConfig(cmd: Command, config: ProjectConfig): void {
  const has = (key: string) => cmd.options.some((o) => o.attributeName() === key);
  if (config.data !== undefined && has('data') && cmd.getOptionValueSource('data') === 'default') {
    cmd.setOptionValueWithSource('data', config.data, 'config');
  }
  if (config.actors !== undefined && has('actors') && cmd.getOptionValue('actors') === undefined) {
    cmd.setOptionValueWithSource('actors', config.actors, 'config');
  }
}

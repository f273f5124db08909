import { readFileSync } from 'node:fs';
import type { Command, Option } from 'commander';
import { ValidationError } from '../errors.js';
import type { ActorDefinition } from '../host/index.js';
import {
  compilePolicySet,
  parsePolicyCases,
  readPolicySource,
  runPolicyCases,
  type PolicySetRecord,
  type PolicySource,
} from '../policy/index.js';
import type { Opts } from './options.js';
import { c } from './format.js';

type Common = Opts<'data'>;

/** What the policy commands borrow from main.ts. */
export interface PolicyCommandDeps {
  common(cmd: Command): Command;
  natsOption(description: string): Option;
  loadActors(modules: string[] | undefined): Promise<ActorDefinition[]>;
  change(o: Common, op: string, args: unknown): Promise<unknown>;
  read<T>(o: Common, op: string, args?: Record<string, unknown>): Promise<T>;
  print(s: string): void;
  printJson(v: unknown): void;
}

type Summary = Pick<PolicySetRecord, 'version' | 'hash' | 'appliedBy' | 'appliedAt' | 'count'> & { files: string[] };

/**
 * `ice policy check | test | apply | ls | show`: Cedar policy sets (docs/policies.md). `check`
 * and `test` run offline against the kinds of `--actors` (default the examples); `apply`,
 * `ls` and `show` go through the admin API, to the data dir's owner or over NATS to a cluster.
 */
export function registerPolicyCommands(program: Command, d: PolicyCommandDeps): void {
  const policy = program.command('policy').description('Cedar policy sets: check, test, apply (no restart), list, show');
  const source = (path: string, o: { groups?: string }): PolicySource => readPolicySource(path, o.groups);
  const problems = (e: ValidationError) => {
    for (const i of e.issues) d.print(`${c.red(i.path || '(set)')}  ${i.message}${i.expected ? c.dim(`  (${i.expected})`) : ''}`);
  };

  d.common(policy.command('check <path>'))
    .description('validate a .cedar file or a directory of them (and its groups file) against the schema of the registered kinds')
    .option('--groups <file>', 'the groups file (default: groups.yaml|yml|json beside the policies)')
    .action(async (path: string, o: Common & { groups?: string }) => {
      const defs = await d.loadActors(o.actors);
      try {
        const set = compilePolicySet(source(path, o), defs);
        for (const w of set.warnings) d.print(`${c.yellow(w.path)}  warning: ${w.message}`);
        d.print(
          `${c.green('ok')}  ${set.count} polic${set.count === 1 ? 'y' : 'ies'} in ${set.source.files.length} file(s), hash ${set.hash.slice(0, 12)}`,
        );
      } catch (e) {
        if (!(e instanceof ValidationError)) throw e;
        problems(e);
        d.print(c.red(e.message));
        process.exitCode = 1;
      }
    });

  d.common(policy.command('test <path> <cases>'))
    .description('decide table-test cases (YAML: cases: [{ name, principal, target, action, params, expect, … }]) offline')
    .option('--groups <file>', 'the groups file (default: groups.yaml|yml|json beside the policies)')
    .action(async (path: string, casesFile: string, o: Common & { groups?: string }) => {
      const defs = await d.loadActors(o.actors);
      let text: string;
      try {
        text = readFileSync(casesFile, 'utf8');
      } catch {
        throw new ValidationError(`cannot read ${casesFile}`, [
          { path: casesFile, code: 'cases_path', message: 'no such file', expected: 'a YAML file of cases' },
        ]);
      }
      const cases = parsePolicyCases(casesFile, text);
      const set = compilePolicySet(source(path, o), defs);
      const results = runPolicyCases(set, defs, cases);
      for (const r of results) {
        d.print(`${r.pass ? c.green('pass') : c.red('FAIL')}  ${r.name}  ${c.dim(`expected ${r.expected}, got ${r.got}`)}`);
        if (!r.pass) d.print(c.dim(`      ${r.detail}`));
      }
      const failed = results.filter((r) => !r.pass).length;
      d.print(`${results.length - failed} passed, ${failed} failed`);
      if (failed > 0) process.exitCode = 1;
    });

  d.common(policy.command('apply <path>'))
    .description('install a policy set as the next version on every node, without a restart (an invalid set is refused; the old one stays)')
    .option('--groups <file>', 'the groups file (default: groups.yaml|yml|json beside the policies)')
    .option('--by <who>', 'who applies it', process.env.USER ? `operator:${process.env.USER}` : 'operator')
    .option('--json', 'print the stored version as JSON')
    .addOption(d.natsOption('send it to the cluster nodes on NATS instead of the local data dir'))
    .action(async (path: string, o: Opts<'data'> & { groups?: string }) => {
      const r = (await d.change(o, 'policy.apply', {
        ...source(path, o),
        ...(o.by !== undefined ? { by: o.by } : {}),
      })) as PolicySetRecord & {
        unchanged?: boolean;
      };
      if (o.json) return d.printJson(r);
      d.print(
        r.unchanged
          ? `unchanged: version ${r.version} (hash ${r.hash.slice(0, 12)}) is the set in force`
          : `applied version ${r.version}  ${r.count} policies  hash ${r.hash.slice(0, 12)}  by ${r.appliedBy}`,
      );
    });

  d.common(policy.command('ls'))
    .description('list the policy set versions')
    .option('--json', 'JSON output')
    .addOption(d.natsOption('read the cluster over NATS instead of the local data dir'))
    .action(async (o: Common) => {
      const rows = await d.read<Summary[]>(o, 'policy.ls');
      if (o.json) return d.printJson(rows);
      if (rows.length === 0) return d.print(c.dim('(no policy set applied)'));
      for (const r of rows)
        d.print(
          `v${r.version}  ${r.hash.slice(0, 12)}  ${String(r.count).padStart(3)} policies  ${r.appliedBy}  ${c.dim(r.appliedAt)}  ${c.dim(r.files.join(', '))}`,
        );
    });

  d.common(policy.command('show [version]'))
    .description('print a policy set version (default: the newest): its files and groups')
    .option('--json', 'JSON output')
    .addOption(d.natsOption('read the cluster over NATS instead of the local data dir'))
    .action(async (version: string | undefined, o: Common) => {
      if (version !== undefined && !/^[1-9]\d{0,8}$/.test(version))
        throw new ValidationError('bad version', [
          { path: 'version', code: 'invalid_argument', message: `got ${JSON.stringify(version)}`, expected: 'a version number, e.g. 3' },
        ]);
      const r = await d.read<PolicySetRecord>(o, 'policy.show', version !== undefined ? { version: Number(version) } : {});
      if (o.json) return d.printJson(r);
      d.print(c.bold(`version ${r.version}`) + c.dim(`  hash ${r.hash}  by ${r.appliedBy} at ${r.appliedAt}  ${r.count} policies`));
      for (const f of [...r.files, ...(r.groups ? [r.groups] : [])]) {
        d.print(c.cyan(`── ${f.name}`));
        d.print(f.text.replace(/\n$/, ''));
      }
    });
}

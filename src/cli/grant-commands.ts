import { Option, type Command } from 'commander';
import type { GrantLine, GrantView } from '../authority/grant-view.js';
import type { Grant } from '../protocol/index.js';
import { c, formatGrants, grantTerms, paintStatus } from './format.js';
import type { Opts } from './options.js';

/** What the grant commands need from the CLI's main module. */
export interface GrantCommandDeps {
  /** Adds --data and --actors. */
  common(cmd: Command): Command;
  natsOption(description: string): Option;
  change(o: Opts<'data'>, op: string, args: unknown): Promise<unknown>;
  read<T>(o: Opts<'data'>, op: string, args?: Record<string, unknown>): Promise<T>;
  print(s: string): void;
  printJson(v: unknown): void;
}

/** Commands with their own `--as` (who acts), not the operator identity option of other commands. */
export const GRANT_COMMANDS_WITH_AS = new Set(['delegate']);

function line(l: GrantLine, indent: string): string {
  const g = l.grant;
  const left = l.usesLeft !== undefined ? ` · ${l.usesLeft} left` : '';
  return `${indent}${g.id}  ${paintStatus(l.status)}  ${g.subject} → ${g.scope}  ${c.dim(grantTerms(g).join(' · ') + left)}`;
}

/** `ice grant show` as text: the chain root → … → the grant, then its delegated children. */
export function formatGrantView(v: GrantView): string {
  const out: string[] = [];
  out.push(line(v, ''));
  const g = v.grant;
  out.push(c.dim(`  issued ${g.issuedAt} by ${g.issuedBy}${g.note ? ` · ${g.note}` : ''}`));
  if (g.revokedAt)
    out.push(c.dim(`  revoked ${g.revokedAt}${g.revokedBy ? ` by ${g.revokedBy}` : ''}${g.revokedWith ? ` with ${g.revokedWith}` : ''}`));
  out.push('chain');
  v.chain.forEach((l, i) => out.push(line(l, `  ${i === 0 ? '' : '└─ '.padStart(3 * i + 3)}`)));
  out.push(`delegated (${v.children.length})`);
  for (const ch of v.children) out.push(line(ch, '  '));
  return out.join('\n');
}

/** Registers `ice grant delegate` and `ice grant show` on the `grant` command. */
export function registerGrantCommands(grant: Command, d: GrantCommandDeps): void {
  d.common(grant.command('delegate <parentId>'))
    .description('delegate a narrower grant from one you hold to another principal (never wider: scope, expiry, uses, run)')
    .requiredOption('--to <principal>', 'who gets it, e.g. agent:deployer (one principal, no wildcards)')
    .requiredOption('--as <principal>', 'who delegates: a holder of the parent grant (over --nats, the principal the request is sent as)')
    .option('--scope <pattern>', "a scope within the parent's (default: the parent's)")
    .addOption(
      new Option('--ttl <duration>', "expires after, e.g. 30m; no later than the parent (default: the parent's expiry)").conflicts(
        'expires',
      ),
    )
    .option('--expires <iso>', "expires at (ISO 8601), no later than the parent's expiry")
    .option('--uses <n>', 'number of executions; needed when the parent has maxUses, at most its uses left (they are taken from it)')
    .option('--run <runId>', "only for intents of this run (must be the parent's run if it has one)")
    .option('--id <id>', 'the new grant id (default: a fresh one)')
    .option('--note <text>', 'why')
    .option('--json', 'print the grant as JSON')
    .addOption(
      d.natsOption('send it to the nodes on NATS (as --as, on ice.admin.as.<principal>.grant.delegate) instead of the local data dir'),
    )
    .action(async (parentId: string, o: Opts<'data' | 'to' | 'as'>) => {
      const g = (await d.change(o, 'grant.delegate', {
        parentId,
        subject: o.to,
        by: o.as,
        ...(o.scope ? { scope: o.scope } : {}),
        ...(o.ttl !== undefined ? { ttlMs: o.ttl } : {}),
        ...(o.expires ? { expiresAt: o.expires } : {}),
        ...(o.uses !== undefined ? { maxUses: o.uses } : {}),
        ...(o.run ? { runId: o.run } : {}),
        ...(o.id ? { id: o.id } : {}),
        ...(o.note ? { note: o.note } : {}),
      })) as Grant;
      if (o.json) d.printJson(g);
      else d.print(`delegated ${formatGrants([g])}`);
    });

  d.common(grant.command('show <id>'))
    .description('a grant, its chain (root → … → it) and the grants delegated from it, with their status')
    .option('--json', 'JSON output')
    .addOption(d.natsOption('read the cluster over NATS instead of the local data dir'))
    .action(async (id: string, o: Opts<'data'>) => {
      const v = await d.read<GrantView>(o, 'grant.show', { id });
      if (o.json) d.printJson(v);
      else d.print(formatGrantView(v));
    });
}

import { existsSync, readFileSync, createReadStream } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { Command, Option } from 'commander';
import { AuthorityKey, type AuthorityPublicKey } from '../authority/index.js';
import { IceError, ValidationError } from '../errors.js';
import { exportJournal, type ExportSource } from '../journal/export.js';
import type { ExportPage, ExportPageArgs } from '../journal/export-format.js';
import { parseTrustedKeys, verifyExport, type ExportVerifyResult } from '../journal/verify-export.js';
import type { Runtime } from '../runtime.js';
import { sqliteExportPage } from '../store/sqlite/journal-export.js';
import type { SqliteStore } from '../store/index.js';
import { c } from './format.js';
import type { Opts } from './options.js';

/**
 * The audit commands: `ice authority keys` (the public keys that sign decisions and the
 * journal), `ice journal export` (facts, the signed checkpoints or turns covering them, and the
 * keys, as JSON Lines) and `ice journal verify --file` (checks such a file offline, with
 * nothing but the authority's public key). Registered from main.ts.
 */
export interface AuditCliContext {
  common(cmd: Command): Command;
  natsOption(description: string): Option;
  readStore(o: Opts<'data'>): SqliteStore;
  /** A connection to the nodes' admin operations over NATS, kept for several requests. */
  adminSession(o: Opts<'data'>): Promise<{ call(op: string, args: unknown): Promise<unknown>; close(): Promise<void> }>;
  print(s: string): void;
}

/** Metadata and an endpoint for the node's NATS micro service: the authority key, so `nats micro info` shows it. */
export async function authorityServiceInfo(rt: Runtime): Promise<{
  metadata: Record<string, string>;
  endpoints: Array<{ name: string; subject: string; description: string; answer: () => Promise<unknown> }>;
}> {
  const [own] = await rt.authorityKeys();
  return {
    metadata: own ? { authority_key_id: own.keyId, authority_alg: own.alg, authority_public_key: own.publicKey } : {},
    endpoints: [
      {
        name: 'authority-keys',
        subject: `ice.node.${rt.node}.authority.keys`,
        description: 'the public keys that sign decisions and the journal ([{keyId, alg, publicKey (base64url), publicKeyPem}])',
        answer: () => rt.authorityKeys(),
      },
    ],
  };
}

export function registerAuditCommands(program: Command, journal: Command, ctx: AuditCliContext): void {
  const authority = program.command('authority').description("the authority's identity");
  ctx
    .common(authority.command('keys'))
    .description('the public keys that sign decisions and the journal (key id, ed25519 raw key in base64url, PEM)')
    .option(
      '--json',
      'JSON output: [{keyId, alg, publicKey, publicKeyPem, node?}] (a file of it is a --key for `ice journal verify --file`)',
    )
    .addOption(ctx.natsOption('ask the nodes over NATS (a cluster: every node key) instead of reading the local data dir'))
    .action(async (o: Opts<'data'>) => {
      let keys: AuthorityPublicKey[];
      if (o.nats) {
        const s = await ctx.adminSession(o);
        try {
          keys = (await s.call('authority.keys', {})) as AuthorityPublicKey[];
        } finally {
          await s.close();
        }
      } else {
        const key = AuthorityKey.loadPublic(resolve(o.data));
        if (!key)
          throw new IceError(
            'E_NOT_FOUND',
            `no authority key in ${resolve(o.data)} (authority.pub or authority.key); pass --data`,
            'reject',
          );
        keys = [key.publicInfo()];
      }
      if (o.json) return ctx.print(JSON.stringify(keys, null, 2));
      for (const k of keys) {
        ctx.print(`${c.bold(k.keyId)}  ${k.alg}  ${k.publicKey}${k.node ? c.dim(`  node ${k.node}`) : ''}`);
        ctx.print(k.publicKeyPem.trimEnd());
      }
    });

  ctx
    .common(journal.command('export'))
    .description('write the journal as JSON Lines: header, authority keys, facts with the signed checkpoints/turns covering them, end')
    .option('--actor <address>', 'only the chain of this actor (or runtime chain)')
    .option('--since <seq|time>', 'only from here: a journal position (with --actor: a seq of its chain), or an ISO 8601 time')
    .addOption(ctx.natsOption('export from the nodes over NATS (a cluster: its JetStream journal) instead of the local data dir'))
    .action(async (o: Opts<'data'>) => {
      const opts = { ...(o.actor !== undefined ? { actor: o.actor } : {}), ...(o.since !== undefined ? { since: o.since } : {}) };
      if (o.nats) {
        const s = await ctx.adminSession(o);
        try {
          const keys = (await s.call('authority.keys', {})) as AuthorityPublicKey[];
          const src: ExportSource = {
            mode: keys.some((k) => k.node !== undefined) ? 'cluster' : 'embedded',
            keys: () => Promise.resolve(keys),
            page: (a: ExportPageArgs) => s.call('journal.export', a) as Promise<ExportPage>,
          };
          await writeRecords(src, opts);
        } finally {
          await s.close();
        }
        return;
      }
      const store = ctx.readStore(o);
      try {
        const key = AuthorityKey.loadPublic(resolve(o.data));
        const src: ExportSource = {
          mode: 'embedded',
          keys: () => Promise.resolve(key ? [key.publicInfo()] : []),
          page: (a) => Promise.resolve(sqliteExportPage(store, a)),
        };
        await writeRecords(src, opts);
      } finally {
        await store.close();
      }
    });
}

async function writeRecords(src: ExportSource, opts: { actor?: string; since?: number | string }): Promise<void> {
  let buf = '';
  for await (const rec of exportJournal(src, opts)) {
    buf += JSON.stringify(rec) + '\n';
    if (buf.length > 1 << 16) {
      await write(buf);
      buf = '';
    }
  }
  if (buf) await write(buf);
}

function write(s: string): Promise<void> {
  return new Promise((res, rej) => {
    process.stdout.write(s, (e) => (e ? rej(e) : res()));
  });
}

/** One `--key`: a file (PEM, or the JSON of `ice authority keys --json`) or a raw ed25519 key in base64url. */
export function loadKeyOption(value: string): AuthorityKey[] {
  const path = resolve(value);
  const isFile = existsSync(path);
  let keys: AuthorityKey[] = [];
  if (isFile || Buffer.from(value, 'base64url').length === 32) {
    try {
      keys = parseTrustedKeys([isFile ? readFileSync(path, 'utf8') : value]);
    } catch {
      // no key in it: refused below
    }
  }
  if (keys.length === 0)
    throw new ValidationError('--key is no public key', [
      {
        path: '--key',
        code: 'invalid_option',
        message: isFile ? `${path} holds no public key` : `${JSON.stringify(value)} is no file and no raw ed25519 key`,
        expected:
          'a PEM public key file (authority.pub), a file written by `ice authority keys --json`, or the 43-character base64url key `ice authority keys` prints',
      },
    ]);
  return keys;
}

/** `ice journal verify --file f --key k`: exit 0 when the export verifies, 1 naming the first broken entry. */
export async function verifyFileCommand(o: Opts<'data'>, print: (s: string) => void): Promise<void> {
  if (o.nats)
    throw new ValidationError('--file with --nats', [
      {
        path: '--nats',
        code: 'conflicting_options',
        message: 'an export file is checked offline; --nats would verify the live cluster journal instead',
        expected: 'either --file <export.jsonl> --key <key>, or --nats <url> without --file',
      },
    ]);
  if (!o.key)
    throw new ValidationError('--file needs --key', [
      {
        path: '--key',
        code: 'needs_option',
        message: 'a journal export is checked against the public key you trust, not the keys the file carries',
        expected: '--key <authority.pub, a file from `ice authority keys --json`, or the base64url key>',
      },
    ]);
  const keys = o.key.flatMap(loadKeyOption);
  const t0 = performance.now();
  const rl = createInterface({ input: createReadStream(o.file!, 'utf8'), crlfDelay: Infinity });
  const r = await verifyExport(rl, keys);
  const ms = performance.now() - t0;
  if (o.json) print(JSON.stringify({ ...r, ms: Math.round(ms) }, null, 2));
  else print(describeExportResult(r, ms));
  process.exitCode = r.ok ? 0 : 1;
}

export function describeExportResult(r: ExportVerifyResult, ms: number): string {
  if (!r.ok && r.broken) {
    const where = r.broken.chain !== undefined ? ` (${r.broken.chain}${r.broken.seq !== undefined ? ` #${r.broken.seq}` : ''})` : '';
    return c.red(`BROKEN at line ${r.broken.line}${where}: ${r.broken.reason}`);
  }
  return [
    c.green(`ok: ${r.facts} facts in ${r.chains} chains verified in ${ms.toFixed(0)} ms`),
    `   signed: ${r.checkpoints} checkpoints, ${r.turns} turns; decisions: ${r.decisions.signed} signed, ${r.decisions.attested} attested by a signed head; ${r.transitions} transitions each with a granted decision`,
    ...(r.outsideExport > 0 ? [c.yellow(`   ${r.outsideExport} causes name facts before the export's start (not checked)`)] : []),
  ].join('\n');
}

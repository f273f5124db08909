/**
 * `ice journal export` and its offline verification, in both modes (an embedded data dir; a
 * cluster over a real nats-server): the TypeScript verifier (`ice journal verify --file`) and
 * an independent one in Python's standard library (tools/verify_journal.py, ed25519 through
 * openssl) both accept the export, and both name the first broken entry (line, chain, seq)
 * of a copy with one byte changed.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntime, factBodyText, sha256Hex, type Fact, type Runtime } from '../../src/index.js';
import { NatsTransport } from '../../src/transport/index.js';
import { AuthorityKey } from '../../src/authority/index.js';
import { exportJournal, type ExportOptions, type ExportSource } from '../../src/journal/export.js';
import { parseTrustedKeys, verifyExport } from '../../src/journal/verify-export.js';
import { startNatsServer } from '../helpers/nats-server.js';
import { ice } from '../helpers/ice-cli.js';
import { MODES, iid, tempDir, tempRuntime, type TempRuntime } from '../helpers/runtime.js';

const PY = join(import.meta.dirname, '../../tools/verify_journal.py');
const execFileP = promisify(execFile);

async function python(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await execFileP('python3', [PY, ...args], { timeout: 120_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

/** Executed, denied, pending then approved, a rejection on the runtime chain. */
async function workload(rt: Runtime): Promise<void> {
  await rt.spawn('deployment/web', { service: 'web' });
  await rt.spawn('deployment/api', { service: 'api' });
  await rt.grants.issue({ subject: 'agent:bot', scope: 'deployment/*:*' });
  await rt.grants.issue({ subject: 'human:alice', scope: 'deployment/*:APPROVE' });
  const p = (target: string, action: string, params: Record<string, unknown>, proposer = 'agent:bot') =>
    rt.propose({ id: iid('x'), proposer, target, action, params });
  for (const t of ['deployment/web', 'deployment/api']) {
    expect((await p(t, 'CONFIGURE', { version: '1.0.0', replicas: 2 })).status).toBe('executed');
    expect((await p(t, 'SUBMIT', { author: 'agent:bot' })).status).toBe('executed');
  }
  expect((await p('deployment/web', 'APPROVE', { reviewer: 'alice' }, 'agent:nobody')).status).toBe('denied');
  expect((await p('deployment/web', 'APPROVE', { reviewer: 'alice' }, 'human:alice')).status).toBe('executed');
  const deploy = await p('deployment/web', 'DEPLOY', { environment: 'production' });
  expect(deploy.status).toBe('pending');
  expect((await rt.approvals.approve(deploy.intentId!, 'human:bob')).status).toBe('executed');
  expect((await p('deployment/nope', 'CONFIGURE', {})).status).toBe('rejected');
}

/** The export with one byte changed: the first digit of `replicas` in the first CONFIGURE transition. */
/** An object with its keys in another (reversed) order, nested: v1 hashes follow the order as written. */
function reorder<T>(v: T): T {
  if (Array.isArray(v)) return v.map(reorder) as T;
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(
    Object.entries(v)
      .reverse()
      .map(([k, x]) => [k, reorder(x)]),
  ) as T;
}

function flipFactByte(text: string): { text: string; line: number; chain: string; seq: number } {
  const lines = text.split('\n');
  const i = lines.findIndex((l) => l.includes('"type":"transition"') && l.includes('"replicas":2'));
  const rec = JSON.parse(lines[i]!) as { fact: { actor: string; seq: number } };
  lines[i] = lines[i]!.replace('"replicas":2', '"replicas":3');
  return { text: lines.join('\n'), line: i + 1, chain: rec.fact.actor, seq: rec.fact.seq };
}

/** The export with one byte of the first signed record's signature changed. */
function flipSignatureByte(text: string): { text: string; line: number } {
  const lines = text.split('\n');
  const i = lines.findIndex((l) => l.startsWith('{"type":"checkpoint"') || l.startsWith('{"type":"turn"'));
  lines[i] = lines[i]!.replace(/"sig":"(.)/, (_m, ch: string) => `"sig":"${ch === 'A' ? 'B' : 'A'}`);
  return { text: lines.join('\n'), line: i + 1 };
}

describe.each(MODES)('journal export and offline verification (%s)', (mode) => {
  let h: TempRuntime;
  const out = tempDir('ice-export-');
  let from: string[];
  let keyFile: string;
  let exported: string;

  beforeAll(async () => {
    h = await tempRuntime({ mode });
    await workload(h.rt);
    from = mode === 'cluster' ? ['--nats', h.server!.url] : ['--data', h.dir];
    const keys = await ice(['authority', 'keys', '--json', ...from]);
    expect(keys.code, keys.stderr).toBe(0);
    keyFile = join(out.dir, 'keys.json');
    writeFileSync(keyFile, keys.stdout);
    const r = await ice(['journal', 'export', ...from]);
    expect(r.code, r.stderr).toBe(0);
    exported = join(out.dir, 'journal.jsonl');
    writeFileSync(exported, r.stdout);
  }, 60_000);
  afterAll(async () => {
    await h?.close();
    out.cleanup();
  });

  it('the export: header, the keys, facts with the signed records covering them, end', () => {
    const recs = readFileSync(exported, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string } & Record<string, unknown>);
    expect(recs[0]).toMatchObject({ type: 'header', format: 'ice-journal-export', version: 1, mode });
    expect(recs[1]).toMatchObject({ type: 'key', keyId: h.rt.authorityKeyId, alg: 'ed25519' });
    expect(recs.at(-1)).toMatchObject({ type: 'end', facts: recs.filter((r) => r.type === 'fact').length });
    const facts = recs.filter((r) => r.type === 'fact').map((r) => r.fact as { v: number; type: string });
    expect(facts.every((f) => f.v === 2)).toBe(true);
    expect(facts.filter((f) => f.type === 'transition').length).toBeGreaterThanOrEqual(6);
    expect(recs.some((r) => r.type === (mode === 'cluster' ? 'turn' : 'checkpoint'))).toBe(true);
  });

  it('ice journal verify --file accepts it; one byte changed in a fact is named by line, chain and seq (exit 1)', async () => {
    const ok = await ice(['journal', 'verify', '--file', exported, '--key', keyFile, '--json']);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    const r = JSON.parse(ok.stdout) as { ok: boolean; facts: number; transitions: number; decisions: { attested: number } };
    expect(r).toMatchObject({ ok: true });
    expect(r.transitions).toBeGreaterThanOrEqual(6);
    expect(r.decisions.attested).toBeGreaterThanOrEqual(8);

    const bad = flipFactByte(readFileSync(exported, 'utf8'));
    const badFile = join(out.dir, 'bad-fact.jsonl');
    writeFileSync(badFile, bad.text);
    const v = await ice(['journal', 'verify', '--file', badFile, '--key', keyFile]);
    expect(v.code).toBe(1);
    expect(v.stdout).toContain(`BROKEN at line ${bad.line} (${bad.chain} #${bad.seq}): hash does not match`);

    const sig = flipSignatureByte(readFileSync(exported, 'utf8'));
    writeFileSync(badFile, sig.text);
    const s = await ice(['journal', 'verify', '--file', badFile, '--key', keyFile]);
    expect(s.code).toBe(1);
    expect(s.stdout).toContain(`BROKEN at line ${sig.line}`);
    expect(s.stdout).toContain('signature does not verify');
  });

  it('one byte changed anywhere in a fact, checkpoint or turn line is found, at that line or after it', async () => {
    const buf = readFileSync(exported);
    const keys = parseTrustedKeys([readFileSync(keyFile, 'utf8')]);
    let flips = 0;
    let lineStart = 0;
    let line = 1;
    for (let i = 0; i < buf.length; i++) {
      if (buf[i] === 10) {
        lineStart = i + 1;
        line++;
        continue;
      }
      if (i % 11 !== 0 || !/^\{"type":"(fact|checkpoint|turn)"/.test(buf.subarray(lineStart, lineStart + 30).toString())) continue;
      const b = Buffer.from(buf);
      b[i]! ^= 1;
      const r = await verifyExport(b.toString('utf8').split('\n'), keys);
      expect(
        r.ok,
        `byte ${i} (line ${line}) changed, not found: ${JSON.stringify(b.subarray(Math.max(lineStart, i - 40), i + 20).toString())}`,
      ).toBe(false);
      expect(r.broken!.line).toBeGreaterThanOrEqual(line);
      flips++;
    }
    expect(flips).toBeGreaterThan(200);
  }, 120_000);

  it('tools/verify_journal.py (Python stdlib, openssl for ed25519) accepts it and names the same broken entries', async () => {
    const ok = await python(['--file', exported, '--key', keyFile, '--json']);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    const r = JSON.parse(ok.stdout) as { ok: boolean; signatures: string; signatures_checked: number; facts: number; transitions: number };
    expect(r).toMatchObject({ ok: true, signatures: 'verified' });
    expect(r.signatures_checked).toBeGreaterThan(0);
    const ts = JSON.parse((await ice(['journal', 'verify', '--file', exported, '--key', keyFile, '--json'])).stdout) as {
      facts: number;
      transitions: number;
    };
    expect([r.facts, r.transitions]).toEqual([ts.facts, ts.transitions]);

    const bad = flipFactByte(readFileSync(exported, 'utf8'));
    const badFile = join(out.dir, 'bad-py.jsonl');
    writeFileSync(badFile, bad.text);
    const v = await python(['--file', badFile, '--key', keyFile]);
    expect(v.code).toBe(1);
    expect(v.stdout).toContain(`BROKEN at line ${bad.line} (${bad.chain} #${bad.seq}): hash does not match`);

    const sig = flipSignatureByte(readFileSync(exported, 'utf8'));
    writeFileSync(badFile, sig.text);
    const s = await python(['--file', badFile, '--key', keyFile]);
    expect(s.code).toBe(1);
    expect(s.stdout).toContain(`BROKEN at line ${sig.line}`);
    expect(s.stdout).toContain('signature does not verify');
  }, 120_000);

  it('read in pages of 3 or cut by bytes, the same records; from a time, from the first fact at or after it, and it verifies', async () => {
    const src: ExportSource = { mode, keys: () => h.rt.authorityKeys(), page: (a) => h.rt.journal.exportPage(a) };
    const all = async (opts: ExportOptions) => {
      const out: string[] = [];
      for await (const rec of exportJournal(src, { ...opts, now: () => new Date(0) })) out.push(JSON.stringify(rec));
      return out;
    };
    const whole = await all({});
    expect(await all({ pageSize: 3 })).toEqual(whole);
    // pages cut by bytes (as over NATS): one fact or one turn each, the same records
    let pages = 0;
    const byBytes: ExportSource = {
      ...src,
      page: (a) => {
        pages++;
        return h.rt.journal.exportPage({ ...a, maxBytes: 1 });
      },
    };
    const cut: string[] = [];
    for await (const rec of exportJournal(byBytes, { now: () => new Date(0) })) cut.push(JSON.stringify(rec));
    expect(cut).toEqual(whole);
    expect(pages).toBeGreaterThan(10); // the pages really were cut
    const facts = whole.map((l) => JSON.parse(l) as { type: string; fact?: Fact }).filter((r) => r.type === 'fact');
    const mid = facts[Math.floor(facts.length / 2)]!.fact!;
    const from = await all({ since: mid.at, pageSize: 4 });
    const first = from.map((l) => JSON.parse(l) as { type: string; fact?: Fact }).find((r) => r.type === 'fact')!.fact!;
    expect(first.at >= mid.at).toBe(true);
    expect(facts.filter((r) => r.fact!.at < mid.at).every((r) => !from.some((l) => l.includes(`"hash":"${r.fact!.hash}"`)))).toBe(true);
    const keys = parseTrustedKeys([readFileSync(keyFile, 'utf8')]);
    expect(await verifyExport(from, keys)).toMatchObject({ ok: true });
    expect(await verifyExport(whole, keys)).toMatchObject({ ok: true });
  });

  if (mode === 'embedded')
    it('v1 facts (journals written before) still verify, in both verifiers: their JSON in their own key order', async () => {
      // the export rewritten as an older runtime wrote it: v1 facts (key order v, seq, at, type,
      // origin, actor, intentId, causes, data; nothing sorted), checkpoints re-signed over the new heads
      const key = AuthorityKey.loadOrCreate(join(h.dir, 'authority.key'));
      const heads = new Map<string, { seq: number; hash: string }>();
      const byPos = new Map<string, string>();
      let cpPrev = '';
      const lines = readFileSync(exported, 'utf8')
        .trimEnd()
        .split('\n')
        .map((l) => {
          const rec = JSON.parse(l) as { type: string; fact?: Fact } & Record<string, unknown>;
          if (rec.type === 'fact') {
            const f = rec.fact!;
            const chain = f.actor!;
            const head = heads.get(chain) ?? { seq: 0, hash: '' };
            const body = {
              v: 1 as const,
              seq: f.seq,
              at: f.at,
              type: f.type,
              origin: f.origin,
              actor: f.actor,
              ...(f.intentId !== undefined ? { intentId: f.intentId } : {}),
              causes: f.causes,
              data: reorder(f.data),
            };
            const hash = sha256Hex(head.hash + JSON.stringify(body));
            heads.set(chain, { seq: f.seq, hash });
            byPos.set(`${chain}#${f.seq}`, hash);
            return JSON.stringify({ ...rec, fact: { ...body, prev: head.hash, hash } });
          }
          if (rec.type === 'checkpoint') {
            const cpHeads = (rec.heads as Array<[string, number, string]>).map(([c, seq]) => [c, seq, byPos.get(`${c}#${seq}`)!]);
            const hash = sha256Hex(cpPrev + JSON.stringify(cpHeads));
            const out = { ...rec, heads: cpHeads, prev: cpPrev, hash, sig: key.signCheckpoint(hash) };
            cpPrev = hash;
            return JSON.stringify(out);
          }
          return l;
        });
      const file = join(out.dir, 'v1.jsonl');
      writeFileSync(file, lines.join('\n') + '\n');
      expect(lines.some((l) => l.includes('"fact":{"v":1,"seq":'))).toBe(true);
      const ts = await ice(['journal', 'verify', '--file', file, '--key', keyFile]);
      expect(ts.code, ts.stdout).toBe(0);
      const py = await python(['--file', file, '--key', keyFile]);
      expect(py.code, py.stdout + py.stderr).toBe(0);
      // and one byte changed in a v1 fact is found by both
      const i = lines.findIndex((l) => l.includes('"type":"transition"'));
      lines[i] = lines[i]!.replace('"from":"', '"from":"x');
      writeFileSync(file, lines.join('\n') + '\n');
      expect((await ice(['journal', 'verify', '--file', file, '--key', keyFile])).stdout).toContain(`BROKEN at line ${i + 1}`);
      expect((await python(['--file', file, '--key', keyFile])).stdout).toContain(`BROKEN at line ${i + 1}`);
    });

  it('an export of one actor from a seq verifies, and a key not trusted is refused', async () => {
    const r = await ice(['journal', 'export', '--actor', 'deployment/web', '--since', '3', ...from]);
    expect(r.code, r.stderr).toBe(0);
    const file = join(out.dir, 'web.jsonl');
    writeFileSync(file, r.stdout);
    const facts = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('{"type":"fact"'))
      .map((l) => (JSON.parse(l) as { fact: { actor: string; seq: number } }).fact);
    expect(facts[0]).toMatchObject({ actor: 'deployment/web', seq: 3 });
    expect(facts.every((f) => f.actor === 'deployment/web')).toBe(true);
    expect((await ice(['journal', 'verify', '--file', file, '--key', keyFile])).code).toBe(0);
    expect((await python(['--file', file, '--key', keyFile])).code).toBe(0);
    // another authority's key: the signatures are not trusted
    const other = 'MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=';
    const pem = join(out.dir, 'other.pem');
    writeFileSync(pem, `-----BEGIN PUBLIC KEY-----\n${other}\n-----END PUBLIC KEY-----\n`);
    const v = await ice(['journal', 'verify', '--file', file, '--key', pem]);
    expect(v.code).toBe(1);
    expect(v.stdout).toContain('which is not a trusted key');
    expect((await python(['--file', file, '--key', pem])).stdout).toContain('which is not a trusted key');
    // several keys (a cluster's nodes): each one given is trusted, in both verifiers
    expect((await ice(['journal', 'verify', '--file', file, '--key', pem, keyFile])).code).toBe(0);
    expect((await ice(['journal', 'verify', '--file', file, '--key', pem, '--key', keyFile])).code).toBe(0);
    expect((await python(['--file', file, '--key', pem, '--key', keyFile])).code).toBe(0);
  }, 60_000);
});

describe('journal export with a signature on every decision (signDecisions: each)', () => {
  it('each decision verifies on its own, in both verifiers', async () => {
    const h = await tempRuntime({ signDecisions: 'each' });
    const out = tempDir('ice-export-');
    try {
      await workload(h.rt);
      const r = await ice(['journal', 'export', '--data', h.dir]);
      const file = join(out.dir, 'j.jsonl');
      writeFileSync(file, r.stdout);
      const key = join(h.dir, 'authority.pub');
      const ts = await ice(['journal', 'verify', '--file', file, '--key', key, '--json']);
      expect(ts.code, ts.stdout).toBe(0);
      const tsr = JSON.parse(ts.stdout) as { decisions: { signed: number; attested: number } };
      expect(tsr.decisions.signed).toBeGreaterThanOrEqual(8);
      expect(tsr.decisions.attested).toBe(0);
      const py = JSON.parse((await python(['--file', file, '--key', key, '--json'])).stdout) as { ok: boolean; decisions_signed: number };
      expect(py).toMatchObject({ ok: true, decisions_signed: tsr.decisions.signed });
      // one byte of a decision's signature changed, and (to get past the hash chain) every hash
      // of its chain recomputed from there: the signature itself is named, by both
      const lines = readFileSync(file, 'utf8').split('\n');
      const i = lines.findIndex((l) => l.includes('"type":"decision"'));
      const chain = (JSON.parse(lines[i]!) as { fact: { actor: string } }).fact.actor;
      let prev: string | undefined;
      for (let j = i; j < lines.length; j++) {
        const rec = JSON.parse(lines[j]! || '{}') as { type?: string; fact?: Fact };
        if (rec.type !== 'fact' || rec.fact!.actor !== chain) continue;
        const f = rec.fact!;
        if (j === i) {
          const d = f.data.decision as { sig: string };
          d.sig = (d.sig.startsWith('A') ? 'B' : 'A') + d.sig.slice(1);
        }
        if (prev !== undefined) f.prev = prev;
        f.hash = sha256Hex(f.prev + factBodyText(f));
        prev = f.hash;
        lines[j] = JSON.stringify(rec);
      }
      writeFileSync(file, lines.join('\n'));
      const bad = await ice(['journal', 'verify', '--file', file, '--key', key]);
      expect(bad.code).toBe(1);
      expect(bad.stdout).toContain(`BROKEN at line ${i + 1}`);
      expect(bad.stdout).toContain('the decision signature does not verify');
      expect((await python(['--file', file, '--key', key])).stdout).toContain(`BROKEN at line ${i + 1}`);
    } finally {
      await h.close();
      out.cleanup();
    }
  }, 60_000);
});

describe('journal export and verify --file: wrong options are refused at once (exit 2)', () => {
  it('names the option and what it expects', async () => {
    const d = tempDir('ice-export-opts-');
    try {
      const f = join(d.dir, 'f.jsonl');
      writeFileSync(f, '');
      const cases: Array<[string[], string]> = [
        [['journal', 'export', '--data', d.dir, '--since', 'yesterday'], '--since'],
        [['journal', 'export', '--data', d.dir, '--since', '0'], '--since'],
        [['journal', 'verify', '--file', join(d.dir, 'missing.jsonl'), '--key', f], '--file'],
        [['journal', 'verify', '--file', f], '--key'],
        [['journal', 'verify', '--file', f, '--key', f, '--nats', 'nats://127.0.0.1:1'], '--nats'],
        [['journal', 'verify', '--file', f, '--key', 'not-a-key'], '--key'],
        [['journal', 'verify', '--data', d.dir, '--key', 'AAAA'], '--key'],
      ];
      for (const [args, option] of cases) {
        const r = await ice(args);
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
        expect(r.stderr).toContain(option);
      }
    } finally {
      d.cleanup();
    }
  });
});

describe('journal export over NATS from an embedded node', () => {
  it('is read through the admin operation and verifies with the key from the same node', async () => {
    const srv = await startNatsServer({ jetstream: false });
    const d = tempDir('ice-export-nats-');
    const t = await NatsTransport.connect({ servers: srv.url });
    const rt = await createRuntime({ dataDir: d.dir, transport: t, node: 'e1' });
    try {
      await workload(rt);
      const nats = ['--nats', srv.url];
      writeFileSync(join(d.dir, 'keys.json'), (await ice(['authority', 'keys', '--json', ...nats])).stdout);
      const r = await ice(['journal', 'export', ...nats]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.split('\n')[0]).toContain('"mode":"embedded"');
      writeFileSync(join(d.dir, 'e.jsonl'), r.stdout);
      // through the admin operation, the same records as from the data dir
      const local = await ice(['journal', 'export', '--data', d.dir]);
      const body = (s: string) => s.split('\n').slice(1).join('\n');
      expect(body(r.stdout)).toBe(body(local.stdout));
      const v = await ice(['journal', 'verify', '--file', join(d.dir, 'e.jsonl'), '--key', join(d.dir, 'keys.json')]);
      expect(v.code, v.stdout).toBe(0);
      expect((await python(['--file', join(d.dir, 'e.jsonl'), '--key', join(d.dir, 'keys.json')])).code).toBe(0);
    } finally {
      await rt.stop();
      await t.close();
      await srv.stop();
      d.cleanup();
    }
  }, 60_000);
});

describe('journal export of a cluster stream with an orphan turn', () => {
  it('leaves out the whole orphan message (all its facts and its turn), as verify decides, and keeps the turn after it', async () => {
    const fact = (seq: number) => ({ v: 2, seq, actor: 'deployment/web' }) as unknown as Fact;
    const turn = (pos: number, seq: number) => ({
      type: 'turn' as const,
      pos,
      chain: 'deployment/web',
      seq,
      hash: `h${pos}`,
      keyId: 'k',
      sig: 's',
    });
    // pos 3: another writer's turn claiming #2 (held by pos 2) and #3; pos 4 holds #3 for real
    const messages = [
      [1, [1]],
      [2, [2]],
      [3, [2, 3]],
      [4, [3]],
    ] as const;
    const src: ExportSource = {
      mode: 'cluster',
      keys: () => Promise.resolve([]),
      page: () =>
        Promise.resolve({
          records: messages.flatMap(([pos, seqs]) => [
            ...seqs.map((seq) => ({ type: 'fact' as const, pos, fact: fact(seq) })),
            turn(pos, seqs[seqs.length - 1]!),
          ]),
          next: 4,
          done: true,
        }),
    };
    const out: Array<{ type: string; pos?: number; fact?: Fact; orphans?: number }> = [];
    for await (const rec of exportJournal(src, { now: () => new Date(0) })) out.push(rec as never);
    expect(out.filter((r) => r.type === 'fact').map((r) => [r.pos, r.fact!.seq])).toEqual([
      [1, 1],
      [2, 2],
      [4, 3],
    ]);
    expect(out.filter((r) => r.type === 'turn').map((r) => r.pos)).toEqual([1, 2, 4]);
    expect(out.at(-1)).toMatchObject({ type: 'end', facts: 3, turns: 3, orphans: 1 });
  });
});

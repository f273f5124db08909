/**
 * The worked example of docs/protocol.md ("Hashes and signatures, exactly") is checked against
 * the code: the numbers on the page are read from the page, and recomputed by the runtime's
 * functions and, independently, by the RFC 8785 code of tools/verify_journal.py.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  checkChain,
  factBodyText,
  FactSchema,
  intentDigest,
  IntentSchema,
  sha256Hex,
  type Fact,
} from '../../src/protocol/index.js';

const ROOT = join(import.meta.dirname, '../..');
const doc = readFileSync(join(ROOT, 'docs/protocol.md'), 'utf8');
const section = doc.slice(doc.indexOf('### Worked example: digest and fact hash'), doc.indexOf('## The authority'));
const blocks = [...section.matchAll(/```(json|text)\n([\s\S]*?)\n```/g)].map((m) => m[2]!);
const [intentJson, intentJcs, factJson, bodyJcs] = blocks;
const digest = /digest = `([0-9a-f]{64})`/.exec(section)?.[1];
const hash = /hash = sha256\(.*\) = `([0-9a-f]{64})`/.exec(section)?.[1];

describe('the worked example of docs/protocol.md', () => {
  it('is on the page: four blocks, a digest and a hash', () => {
    expect(blocks).toHaveLength(4);
    expect(digest).toMatch(/^[0-9a-f]{64}$/);
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('intent digest = sha256(JCS(intent)), as the runtime computes it', () => {
    const intent = IntentSchema.parse(JSON.parse(intentJson!));
    expect(canonicalJson(intent)).toBe(intentJcs);
    expect(intentDigest(intent)).toBe(digest);
    expect(sha256Hex(Buffer.from(intentJcs!, 'utf8'))).toBe(digest);
  });

  it('fact hash = sha256(prev + JCS(body)), as the runtime computes and checks it', () => {
    const fact = FactSchema.parse(JSON.parse(factJson!)) as Fact;
    expect(fact.v).toBe(2);
    expect(factBodyText(fact)).toBe(bodyJcs);
    expect(sha256Hex(fact.prev + bodyJcs)).toBe(hash);
    expect(fact.hash).toBe(hash);
    expect(checkChain([fact], { seq: 41, hash: fact.prev }).ok).toBe(true);
    expect((fact.data as { digest: string }).digest).toBe(digest);
    // one byte more in the body breaks it
    expect(checkChain([{ ...fact, at: '2025-01-31T12:00:00.124Z' }], { seq: 41, hash: fact.prev }).ok).toBe(false);
  });

  it('tools/verify_journal.py computes the same JCS texts and hashes (Python standard library)', () => {
    const script = [
      'import sys, json, hashlib',
      `sys.path.insert(0, ${JSON.stringify(join(ROOT, 'tools'))})`,
      'from verify_journal import jcs, sha256_hex',
      'i, f = json.loads(sys.argv[1]), json.loads(sys.argv[2])',
      'body = {k: v for k, v in f.items() if k not in ("prev", "hash")}',
      'print(json.dumps([jcs(i), sha256_hex(jcs(i)), jcs(body), sha256_hex(f["prev"] + jcs(body))]))',
    ].join('\n');
    const out = JSON.parse(
      execFileSync('python3', ['-c', script, JSON.stringify(IntentSchema.parse(JSON.parse(intentJson!))), factJson!], { encoding: 'utf8' }),
    ) as string[];
    expect(out).toEqual([intentJcs, digest, bodyJcs, hash]);
  });

  it('JCS per RFC 8785: keys by UTF-16 code units, ECMAScript numbers, lone surrogates refused', () => {
    expect(canonicalJson({ '\ue000': 1, '\ud83d\ude00': 2, a: 3, b: [1e21, 1e-7, 0.5, -0, 100] })).toBe(
      '{"a":3,"b":[1e+21,1e-7,0.5,0,100],"\ud83d\ude00":2,"\ue000":1}',
    );
    expect(() => canonicalJson({ s: '\ud800' })).toThrow(TypeError);
    expect(() => canonicalJson({ n: Number.NaN })).toThrow(TypeError);
  });

  it('a v1 fact (written before) still verifies by its own rule: its JSON in its own key order', () => {
    const { prev: _p, hash: _h, ...body } = JSON.parse(factJson!) as Fact;
    const v1 = { ...body, v: 1 as const };
    const text = JSON.stringify(v1);
    const f = { ...v1, prev: '', hash: sha256Hex(text) } as Fact;
    expect(factBodyText(f)).toBe(text);
    expect(checkChain([{ ...f, seq: 1 }], { seq: 0, hash: '' }).ok).toBe(false); // seq is hashed
    expect(checkChain([f], { seq: 41, hash: '' }).ok).toBe(true);
  });
});

/**
 * Property-based fuzzing of the intent doors of a runtime serving over a real nats-server
 * (max_payload 64 KiB), in both modes: an embedded node (SQLite store) and a cluster node
 * (JetStream store). Per door, FUZZ_MESSAGES generated malformed messages (default 10 000) in
 * concurrent batches: malformed envelopes, wrong types, unknown keys, huge strings, deep
 * nesting, `__proto__`/`constructor`/`prototype` keys, wrong and malformed subjects, raw payloads.
 *
 * Properties: every request is answered within a bounded wait with a `rejected` outcome;
 * afterwards nothing changed (actors, chains, grants), the only facts added are
 * `intent.rejected`, the journal verifies and a valid intent executes.
 *
 * Node forwards (`ice.node.<node>.intent`) and the other doors are in fuzz-doors-ops.test.ts, raw bytes against a runtime process in
 * fuzz-raw-bytes.test.ts. Seed: ICE_FUZZ_SEED (printed); messages per door: ICE_FUZZ_MESSAGES.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { asSubject, badIntentBody, enc, fuzzDoor, intentSubject, rawMsg, rawPayload } from '../helpers/fuzz.js';
import { describeMsg, expectNothingChanged, fuzzSuite, outcomeStatus } from '../helpers/fuzz-node.js';
import { MODES } from '../helpers/runtime.js';

const encodePrincipal = (p: string) => p.replaceAll('%', '%25').replaceAll('.', '%2E');

/** An intent door's messages: generated bodies on fitting or broken subjects, and raw payloads. */
const intentDoor = (subjects: fc.Arbitrary<string>, fitting: (b: { proposer: string; target: string }) => string) =>
  fc.oneof(
    {
      weight: 3,
      arbitrary: fc
        .tuple(badIntentBody, fc.oneof(fc.constant(undefined), subjects))
        .map(([b, s]) => rawMsg(s ?? fitting(b), enc.encode(b.text), b.what)),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(subjects, rawPayload).map(([subject, p]) => rawMsg(subject, p.bytes, p.what)),
    },
  );

describe.each(MODES)('fuzzing the intent doors (%s)', (mode) => {
  const suite = fuzzSuite(mode, 'intent doors');
  const { counts, request } = suite;

  it('ice.as.<principal>.<kind>.<id>: every message rejected', async () => {
    const c = await fuzzDoor({
      door: 'ice.as.<p>.<kind>.<id>',
      arb: intentDoor(asSubject, (b) => `ice.as.${encodePrincipal(b.proposer)}.${b.target.replace('/', '.')}`),
      send: request,
      classify: outcomeStatus,
      describe: describeMsg,
    });
    counts.push(c);
    expect(c.rejected).toBe(c.messages);
  });

  it('ice.intent.<kind>.<id>: every message rejected', async () => {
    const c = await fuzzDoor({
      door: 'ice.intent.<kind>.<id>',
      arb: intentDoor(intentSubject, (b) => `ice.intent.${b.target.replace('/', '.')}`),
      send: request,
      classify: outcomeStatus,
      describe: describeMsg,
    });
    counts.push(c);
    expect(c.rejected).toBe(c.messages);
  });

  it('afterwards: no actor changed, no grant changed, only intent.rejected facts were added, and a valid intent still executes', async () => {
    await expectNothingChanged(suite.rt, suite.before, counts, `intent doors ${mode}`);
  });
});

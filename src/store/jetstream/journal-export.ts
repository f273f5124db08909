import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ExportFact, ExportPage, ExportPageArgs, ExportTurn } from '../../journal/export-format.js';
import { ValidationError } from '../../errors.js';
import type { Fact } from '../../protocol/index.js';

interface TurnMessage {
  chain: string;
  facts: Fact[];
  attestation?: { keyId: string; sig: string };
}

const CHAIN_RE = /^([^\s.*>/]+)\/([^\s.*>/]+)$/;

function chainSubject(chain: string): string {
  const m = CHAIN_RE.exec(chain);
  if (!m)
    throw new ValidationError(`not a chain address: ${JSON.stringify(chain)}`, [
      { path: 'actor', code: 'invalid_chain', message: 'expected "kind/id" (or "_runtime/<node>")', expected: 'kind/id' },
    ]);
  return `ice.journal.${m[1]}.${m[2]}`;
}

/**
 * One page of a journal export from the cluster's `ICE_JOURNAL` stream: the turn messages
 * after stream sequence `after` (up to `limit`), each as its facts and then its signature
 * (`turn`, the head it left). Orphans (a turn claiming a position another turn holds) are
 * passed on as they are: the export's writer leaves them out, as it knows where each chain
 * stands across pages.
 */
export async function jetStreamExportPage(nc: NatsConnection, a: ExportPageArgs, stream = 'ICE_JOURNAL'): Promise<ExportPage> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream);
  const last = info.state.last_seq;
  if (last === 0 || info.state.messages === 0 || last <= a.after) return { records: [], next: a.after, done: true };
  const consumer = await jetstream(nc).consumers.get(stream, {
    // one chain: only its subject is read
    filter_subjects: a.actor === undefined ? 'ice.journal.>' : chainSubject(a.actor),
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: Math.max(info.state.first_seq, a.after + 1),
  });
  const records: ExportPage['records'] = [];
  let next = a.after;
  let done = false;
  let read = 0;
  let bytes = 0;
  let startPos = a.sinceTime === undefined ? 0 : Number.MAX_SAFE_INTEGER;
  if ((await consumer.info()).num_pending === 0) {
    await consumer.delete().catch(() => {});
    return { records, next, done: true };
  }
  const messages = await consumer.consume();
  try {
    for await (const m of messages) {
      done = m.seq >= last || m.info.pending === 0;
      next = m.seq;
      read++;
      bytes += m.data.length;
      const body = m.json<TurnMessage>();
      const first = body.facts[0];
      const lastFact = body.facts.at(-1);
      if (startPos === Number.MAX_SAFE_INTEGER && first && first.at >= a.sinceTime!) startPos = m.seq;
      const wanted = m.seq >= startPos && (a.actor === undefined || (body.chain === a.actor && (lastFact?.seq ?? 0) >= (a.sinceSeq ?? 0)));
      if (wanted && lastFact) {
        for (const f of body.facts) {
          if (a.actor !== undefined && f.seq < (a.sinceSeq ?? 0)) continue;
          const rec: ExportFact = { type: 'fact', pos: m.seq, fact: f };
          records.push(rec);
        }
        if (body.attestation) {
          const t: ExportTurn = {
            type: 'turn',
            pos: m.seq,
            chain: body.chain,
            seq: lastFact.seq,
            hash: lastFact.hash,
            keyId: body.attestation.keyId,
            sig: body.attestation.sig,
          };
          records.push(t);
        }
      }
      if (done || read >= a.limit || (a.maxBytes !== undefined && bytes > a.maxBytes)) break;
    }
  } finally {
    await messages.close().catch(() => {});
    await consumer.delete().catch(() => {});
  }
  return { records, next, done, ...(startPos !== Number.MAX_SAFE_INTEGER && a.sinceTime ? { startedAt: startPos } : {}) };
}

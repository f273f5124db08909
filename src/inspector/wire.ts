import type { InspectionEvent } from 'xstate';
import { isAddress } from '../protocol/index.js';
import type { Runtime } from '../runtime.js';
import type { Transport } from '../transport/index.js';
import { isStatelyMessage, toStatelyMessage, type StatelyMessage } from './stately.js';

/**
 * XState inspection events across processes: a node started with `--publish-inspection`
 * publishes the events of its hosted actors that the inspector uses (`@xstate.actor`,
 * `@xstate.event`, `@xstate.snapshot`), and `ice inspect --nats` subscribes to them.
 *
 * - Subject: `ice.inspect.<node>.<kind>.<id>` (the hosted actor `kind/id` on `node`).
 * - Body (JSON): `{ actor, node, event }`, where `event` is the event in the form
 *   @statelyai/inspect sends it (see stately.ts): no actor refs, contexts and snapshots made
 *   JSON-safe, the actor's address as its session id. The inspector server takes it as it
 *   takes a live `InspectionEvent`.
 *
 * Publishing is off the hot path: XState reports events synchronously from inside the actor
 * (even from its constructor); they are queued and converted on the next turn.
 */

/** Every inspection subject: `ice.inspect.>`. */
export const INSPECT_SUBJECT_ALL = 'ice.inspect.>';

/** The subject a node publishes the inspection events of one hosted actor on. */
export function inspectSubject(node: string, address: string): string {
  return `ice.inspect.${node}.${address.replace('/', '.')}`;
}

/** An inspection record as it arrives from another process. */
export interface WireInspectRecord {
  actor: string;
  node: string;
  event: StatelyMessage;
}

const INSPECTED = new Set(['@xstate.actor', '@xstate.event', '@xstate.snapshot']);
const NODE_RE = /^[A-Za-z0-9_-]{1,64}$/;
/** Queued events above this are dropped (oldest first) rather than holding memory. */
const MAX_QUEUE = 10_000;

/**
 * Publishes the inspection events of `rt`'s hosted actors on `transport`. Returns a function
 * that stops publishing (events still queued are dropped).
 */
export function publishInspection(rt: { node: string; onInspect: Runtime['onInspect'] }, transport: Transport): () => void {
  const node = rt.node;
  if (!NODE_RE.test(node)) throw new TypeError(`node name ${JSON.stringify(node)} is not a subject token`);
  let queue: Array<{ actor: string; event: InspectionEvent }> = [];
  let stopped = false;
  const flush = (): void => {
    const batch = queue;
    queue = [];
    if (stopped) return;
    for (const { actor, event } of batch) {
      try {
        const msg = toStatelyMessage(actor, event);
        if (msg) transport.publish(inspectSubject(node, actor), { actor, node, event: msg } satisfies WireInspectRecord);
      } catch {
        // an unserializable snapshot or a closing transport must not disturb the runtime
      }
    }
  };
  const off = rt.onInspect((r) => {
    if (stopped || !INSPECTED.has(r.event.type) || !isAddress(r.actor)) return;
    queue.push({ actor: r.actor, event: r.event });
    if (queue.length === 1) setImmediate(flush);
    if (queue.length > MAX_QUEUE) queue.splice(0, queue.length - MAX_QUEUE);
  });
  return () => {
    stopped = true;
    queue = [];
    off();
  };
}

/**
 * Receives the inspection events nodes publish, as records the inspector server takes
 * (`InspectorRuntime.onInspect`). Messages that do not have the published shape are ignored.
 */
export function subscribeInspection(transport: Transport, listener: (rec: WireInspectRecord) => void): () => void {
  const sub = transport.subscribe(INSPECT_SUBJECT_ALL, (msg) => {
    const parts = msg.subject.split('.');
    if (parts.length !== 5) return;
    const node = parts[2]!;
    const actor = `${parts[3]}/${parts[4]}`;
    const body = msg.data as Partial<WireInspectRecord> | null;
    if (!body || typeof body !== 'object' || !isStatelyMessage(body.event)) return;
    if (body.actor !== actor || body.node !== node || !isAddress(actor)) return;
    try {
      listener({ actor, node, event: body.event });
    } catch {
      // a listener's failure is its own
    }
  });
  return () => sub.unsubscribe();
}

import { IceError, ValidationError, ensureError } from '../errors.js';
import type { Runtime } from '../runtime.js';
import type { Subscription, Transport } from '../transport/transport.js';
import { ADMIN_OPS, runAdminOp } from './ops.js';

/**
 * Operator requests over NATS, for every node with a NATS transport: `ice.admin.<op>` (queue
 * group `ice.admin`, any node answers; an operation on an actor owned elsewhere is forwarded
 * by the runtime) and `ice.node.<node>.admin.<op>` (the forwards of other nodes). The reply is
 * `{ result }` or `{ error: { code, message, issues? } }`. These requests carry no identity of
 * their own: restrict `ice.admin.>` and `ice.node.>` with NATS permissions.
 */
export function serveAdminOverNats(rt: Runtime, transport: Transport): () => void {
  const subs: Subscription[] = [];
  for (const op of ADMIN_OPS) {
    const handler = async (msg: { data: unknown; respond(d: unknown): void }) => {
      try {
        msg.respond({ result: await runAdminOp(rt, op, msg.data) });
      } catch (e) {
        msg.respond({ error: errorBody(e) });
      }
    };
    subs.push(transport.subscribe(`ice.admin.${op}`, handler, { queue: 'ice.admin' }));
    subs.push(transport.subscribe(`ice.node.${rt.node}.admin.${op}`, handler));
  }
  return () => {
    for (const s of subs) s.unsubscribe();
  };
}

function errorBody(e: unknown): { code: string; message: string; issues?: unknown } {
  const err = ensureError(e);
  return {
    code: err instanceof IceError ? err.code : 'E_INTERNAL',
    message: err.message,
    ...(err instanceof ValidationError ? { issues: err.issues } : {}),
  };
}

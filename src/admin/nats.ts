import { IceError, ValidationError, ensureError, type IssueDetail } from '../errors.js';
import { PrincipalSchema, principalToken } from '../protocol/index.js';
import type { Runtime } from '../runtime.js';
import type { Msg, Subscription, Transport } from '../transport/transport.js';
import type { Logger } from '../util/logger.js';
import { ADMIN_OPS, runAdminOp, type AdminOp } from './ops.js';

/**
 * Operator requests over NATS are bound to who sends them, like intents:
 * `ice.admin.as.<principal>.<op>`, e.g. `ice.admin.as.operator:alice.grant.issue`
 * (`<principal>` as one subject token: `%` → `%25`, `.` → `%2E`). NATS permissions then
 * allow each operator only its own subjects (publish `ice.admin.as.operator:alice.>`), and the
 * node records that principal as the one who acted: the `by` of a grant, a revocation, an
 * approval or a refusal is the subject's principal (a request naming someone else is
 * refused), and an intent proposed through `propose` must have it as its proposer.
 */
export const adminSubject = (principal: string, op: string): string => `ice.admin.as.${principalToken(principal)}.${op}`;

const ADMIN_FORM = 'ice.admin.as.<principal>.<op>, e.g. ice.admin.as.operator:alice.grant.ls';

/** Operations whose `by` names who acted: the bound principal. */
const BY_OPS: ReadonlySet<AdminOp> = new Set(['grant.issue', 'grant.revoke', 'grant.delegate', 'approve', 'deny', 'policy.apply']);

export interface AdminOverNatsOptions {
  /** Refuse `ice.admin.<op>` (no identity in the subject): nodes started with --require-principal-subjects. */
  requireIdentity?: boolean;
  logger?: Logger;
}

/** The typed refusal every request under `ice.admin.>` gets when it cannot be served. */
export class AdminSubjectError extends IceError {
  constructor(code: string, message: string) {
    super(code, message, 'reject');
  }
}

interface Parsed {
  op: AdminOp;
  /** The principal of `ice.admin.as.<principal>.<op>`; undefined on the unbound subject. */
  principal?: string;
}

/** What a subject under `ice.admin.>` asks for, or the error that answers it. */
export function parseAdminSubject(subject: string): Parsed {
  const parts = subject.split('.');
  const known = `the operations are ${ADMIN_OPS.join(', ')}`;
  if (parts[2] === 'as') {
    const token = parts[3];
    const op = parts.slice(4).join('.');
    const principal = token?.replaceAll('%2E', '.').replaceAll('%25', '%');
    if (!principal || !PrincipalSchema.safeParse(principal).success)
      throw new AdminSubjectError(
        'E_BAD_SUBJECT',
        `${subject}: ${JSON.stringify(token ?? '')} is not a principal "type:name"; send to ${ADMIN_FORM}`,
      );
    if (!(ADMIN_OPS as string[]).includes(op))
      throw new AdminSubjectError(
        'E_UNKNOWN_OP',
        `${subject}: ${op ? `no admin operation ${JSON.stringify(op)}` : 'no operation'}; send to ${adminSubject(principal, '<op>')}; ${known}`,
      );
    return { op: op as AdminOp, principal };
  }
  const op = parts.slice(2).join('.');
  if (!(ADMIN_OPS as string[]).includes(op))
    throw new AdminSubjectError('E_UNKNOWN_OP', `${subject}: no admin operation ${JSON.stringify(op)}; send to ${ADMIN_FORM}; ${known}`);
  return { op: op as AdminOp };
}

/** The arguments with the bound principal as who acted; refuses a request naming another. */
function bindIdentity(op: AdminOp, principal: string, raw: unknown): unknown {
  const args = raw === undefined ? {} : raw;
  if (typeof args !== 'object' || args === null || Array.isArray(args)) return args; // the op's schema refuses it
  const a = args as Record<string, unknown>;
  const mismatch = (path: string, given: unknown): never => {
    const issue: IssueDetail = {
      path,
      code: 'identity_mismatch',
      message: `${JSON.stringify(given)} is not ${principal}, who sent this request`,
      expected: `${principal} (or leave it out: the subject's principal is recorded)`,
    };
    throw new ValidationError(`${op} as ${principal} names someone else`, [issue]);
  };
  if (BY_OPS.has(op)) {
    if (a.by !== undefined && a.by !== principal) mismatch('by', a.by);
    return { ...a, by: principal };
  }
  if (op === 'propose') {
    const proposer = (a.intent as { proposer?: unknown } | undefined)?.proposer;
    if (proposer !== principal) mismatch('intent.proposer', proposer);
  }
  return a;
}

/**
 * Operator requests over NATS, for every node with a NATS transport: everything under
 * `ice.admin.>` (queue group `ice.admin`, any node answers; an operation on an actor owned
 * elsewhere is forwarded by the runtime) and `ice.node.<node>.admin.<op>` (the forwards of
 * other nodes, which carry the identity already bound). The reply is `{ result }` or
 * `{ error: { code, message, issues? } }` — also for an unknown operation or a malformed
 * subject, naming the subject to use.
 */
export function serveAdminOverNats(rt: Runtime, transport: Transport, opts: AdminOverNatsOptions = {}): () => void {
  const subs: Subscription[] = [];
  let warned = false;
  const answer = async (msg: Msg, run: () => Promise<unknown>) => {
    try {
      msg.respond({ result: await run() });
    } catch (e) {
      msg.respond({ error: errorBody(e) });
    }
  };
  subs.push(
    transport.subscribe(
      'ice.admin.>',
      (msg) =>
        answer(msg, () => {
          const { op, principal } = parseAdminSubject(msg.subject);
          if (principal !== undefined) return runAdminOp(rt, op, bindIdentity(op, principal, msg.data));
          if (opts.requireIdentity)
            throw new AdminSubjectError(
              'E_UNBOUND_SUBJECT',
              `${msg.subject} carries no identity and this node requires one; send to ice.admin.as.<principal>.${op}, e.g. ${adminSubject('operator:alice', op)}`,
            );
          if (!warned) {
            warned = true;
            opts.logger?.warn(
              { subject: msg.subject },
              `admin request on ${msg.subject}, which carries no identity (deprecated): use ice.admin.as.<principal>.${op}`,
            );
          }
          return runAdminOp(rt, op, msg.data);
        }),
      { queue: 'ice.admin' },
    ),
  );
  for (const op of ADMIN_OPS) {
    subs.push(transport.subscribe(`ice.node.${rt.node}.admin.${op}`, (msg) => answer(msg, () => runAdminOp(rt, op, msg.data))));
  }
  return () => {
    for (const s of subs) s.unsubscribe();
  };
}

function errorBody(e: unknown): { code: string; message: string; action?: string; issues?: unknown } {
  const err = ensureError(e);
  return {
    code: err instanceof IceError ? err.code : 'E_INTERNAL',
    ...(err instanceof IceError ? { action: err.action } : {}),
    message: err.message,
    ...(err instanceof ValidationError ? { issues: err.issues } : {}),
  };
}

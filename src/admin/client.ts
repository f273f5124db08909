import { ConfigError, IceError, ValidationError, type IssueDetail } from '../errors.js';
import { DataDirLock } from '../store/index.js';
import type { Transport } from '../transport/transport.js';
import { adminSubject } from './nats.js';

/** An admin reply, `{ result }` or `{ error }`, as the result or the typed error it carries. */
function adminResult(reply: { result?: unknown; error?: { code: string; message: string; issues?: IssueDetail[] } }): unknown {
  if (reply.error?.issues) throw new ValidationError(reply.error.message, reply.error.issues);
  if (reply.error) throw new IceError(reply.error.code, reply.error.message.replace(/^E_[A-Z_]+: /, ''), 'reject');
  return reply.result;
}

/** Sends one admin operation over NATS as `principal` (`ice.admin.as.<principal>.<op>`). */
export async function requestAdmin(t: Transport, principal: string, op: string, args: unknown, timeoutMs = 15_000): Promise<unknown> {
  return adminResult((await t.request(adminSubject(principal, op), args, { timeoutMs })).data as Parameters<typeof adminResult>[0]);
}

/** Sends one admin operation to the process that owns `dataDir`. */
export async function callAdmin(dataDir: string, op: string, args: unknown): Promise<unknown> {
  const owner = DataDirLock.readOwner(dataDir);
  if (!owner?.adminUrl || !owner.adminToken) {
    throw new ConfigError(
      `data dir ${dataDir} is owned by pid ${owner?.pid ?? '?'}, which serves no admin endpoint; stop it or use another --data dir`,
    );
  }
  let res: Response;
  try {
    res = await fetch(`${owner.adminUrl}/admin/${op}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${owner.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(args ?? {}),
    });
  } catch (e) {
    throw new ConfigError(`the owner of ${dataDir} (pid ${owner.pid}) does not answer at ${owner.adminUrl}`, { cause: e });
  }
  return adminResult((await res.json()) as Parameters<typeof adminResult>[0]);
}

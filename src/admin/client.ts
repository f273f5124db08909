import { ConfigError, IceError, ValidationError, type IssueDetail } from '../errors.js';
import { DataDirLock } from '../store/index.js';

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
  const body = (await res.json()) as { result?: unknown; error?: { code: string; message: string; issues?: IssueDetail[] } };
  if (body.error) {
    if (body.error.issues) throw new ValidationError(body.error.message, body.error.issues);
    throw new IceError(body.error.code, body.error.message.replace(/^E_[A-Z_]+: /, ''), 'reject');
  }
  return body.result;
}

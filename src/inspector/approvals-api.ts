import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { IceError, ValidationError, ensureError } from '../errors.js';

/**
 * What the inspector needs to offer approve / deny buttons: the admin operations runner
 * (`runAdminOp` bound to the runtime: the same operations, checks and facts as `ice approve`,
 * `ice deny`, `ice approvals` and `POST /admin/<op>`), and who the page approves as by default.
 */
export interface InspectorApprovals {
  run(op: 'approvals' | 'approve' | 'deny', args: unknown): Promise<unknown>;
  /** The approver identity the page fills in (editable there), e.g. `human:alice`. */
  operator: string;
}

const MAX_BODY = 64 * 1024;

/**
 * The inspector's approvals endpoints:
 * - `GET /api/approvals` → `{ enabled, operator?, pending }` (pending as `rt.approvals.list()`);
 * - `POST /api/approvals/<intentId>/approve` `{ by, note? }` and `…/deny` `{ by, reason }` →
 *   `{ result: Outcome }` or `{ error: { code, message } }`.
 *
 * A POST must carry `authorization: Bearer <token>` — the token of this inspector, which the
 * page takes from its own address (`/?token=…`, printed at start to whoever started the node,
 * like the admin endpoint's token in owner.json) — and a JSON body; a browser on another site
 * can neither read the token nor send that header without a preflight, which is never granted.
 */
export function approvalsApi(approvals: InspectorApprovals | undefined): {
  token: string | undefined;
  handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void>;
} {
  const token = approvals ? randomBytes(24).toString('hex') : undefined;
  const expected = token ? Buffer.from(`Bearer ${token}`) : undefined;
  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  };
  const fail = (res: ServerResponse, e: unknown) => {
    const err = ensureError(e);
    const status = err instanceof IceError ? (err.action === 'reject' ? 400 : err.action === 'retry' ? 503 : 500) : 500;
    send(res, status, {
      error: {
        code: err instanceof IceError ? err.code : 'E_INTERNAL',
        message: err.message,
        ...(err instanceof ValidationError ? { issues: err.issues } : {}),
      },
    });
  };
  return {
    token,
    async handle(req, res, path) {
      if (!approvals) {
        if (req.method === 'GET' && path === '/api/approvals') return send(res, 200, { enabled: false, pending: [] });
        return send(res, 405, { error: { code: 'E_READ_ONLY', message: 'this inspector was started without approvals' } });
      }
      try {
        if (path === '/api/approvals') {
          if (req.method !== 'GET') return send(res, 405, { error: { code: 'E_METHOD', message: 'GET /api/approvals' } });
          return send(res, 200, { enabled: true, operator: approvals.operator, pending: await approvals.run('approvals', {}) });
        }
        const m = /^\/api\/approvals\/([^/]+)\/(approve|deny)$/.exec(path);
        if (!m || req.method !== 'POST')
          return send(res, 404, { error: { code: 'E_NOT_FOUND', message: 'POST /api/approvals/<intentId>/approve|deny' } });
        const auth = Buffer.from(req.headers.authorization ?? '');
        if (!expected || auth.length !== expected.length || !timingSafeEqual(auth, expected))
          return send(res, 401, {
            error: { code: 'E_UNAUTHORIZED', message: 'missing or wrong inspector token: open the inspector at the address it printed' },
          });
        if (!/^application\/json\b/.test(req.headers['content-type'] ?? ''))
          return send(res, 415, { error: { code: 'E_VALIDATION', message: 'the body must be application/json' } });
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const c of req) {
          size += (c as Buffer).length;
          if (size > MAX_BODY) return send(res, 413, { error: { code: 'E_TOO_LARGE', message: `body over ${MAX_BODY} bytes` } });
          chunks.push(c as Buffer);
        }
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
        } catch (e) {
          throw new ValidationError(`body is not JSON: ${ensureError(e).message}`, [
            { path: '', code: 'invalid_json', message: 'not JSON' },
          ]);
        }
        if (typeof body !== 'object' || body === null || Array.isArray(body))
          throw new ValidationError('body must be a JSON object', [{ path: '', code: 'invalid_type', message: 'not an object' }]);
        const result = await approvals.run(m[2] as 'approve' | 'deny', { ...body, intentId: decodeURIComponent(m[1]!) });
        return send(res, 200, { result });
      } catch (e) {
        return fail(res, e);
      }
    },
  };
}

/**
 * Approvals for an inspector over a cluster (`ice inspect --nats … --approve-as <principal>`):
 * the operations go to the nodes as admin requests on `ice.admin.as.<principal>.<op>`, so the
 * nodes record `principal` as who approved (a page asking to act as someone else is refused).
 */
export function natsInspectorApprovals(
  request: (principal: string, op: string, args: unknown) => Promise<unknown>,
  principal: string,
): InspectorApprovals {
  return { run: (op, args) => request(principal, op, args), operator: principal };
}

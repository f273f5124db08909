import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { IceError, ValidationError, ensureError } from '../errors.js';
import type { Runtime } from '../runtime.js';
import { runAdminOp } from './ops.js';

export interface AdminServer {
  url: string;
  token: string;
  close(): Promise<void>;
}

const MAX_BODY = 1024 * 1024;

/**
 * The local admin endpoint of a node: `POST /admin/<op>` with a JSON body, answered with
 * JSON. Bound to loopback; every request must carry the bearer token that the node writes,
 * mode 0600, into `<dataDir>/owner.json`, so only users who can read the data dir can act.
 */
export async function startAdminServer(rt: Runtime, opts: { host?: string; port?: number } = {}): Promise<AdminServer> {
  const token = randomBytes(24).toString('hex');
  const expected = Buffer.from(`Bearer ${token}`);
  const server = createServer((req, res) => {
    void handle(req, res);
  });
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    try {
      const auth = Buffer.from(req.headers.authorization ?? '');
      if (auth.length !== expected.length || !timingSafeEqual(auth, expected))
        return send(401, { error: { code: 'E_UNAUTHORIZED', message: 'missing or wrong admin token' } });
      const m = /^\/admin\/([a-z.]+)$/.exec(req.url ?? '');
      if (req.method !== 'POST' || !m) return send(404, { error: { code: 'E_NOT_FOUND', message: 'POST /admin/<op>' } });
      let size = 0;
      const chunks: Buffer[] = [];
      for await (const c of req) {
        size += (c as Buffer).length;
        if (size > MAX_BODY) return send(413, { error: { code: 'E_TOO_LARGE', message: `body over ${MAX_BODY} bytes` } });
        chunks.push(c as Buffer);
      }
      let args: unknown;
      try {
        args = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {};
      } catch (e) {
        return send(400, { error: { code: 'E_VALIDATION', message: `body is not JSON: ${ensureError(e).message}` } });
      }
      const result = await runAdminOp(rt, m[1]!, args);
      send(200, { result });
    } catch (e) {
      const err = ensureError(e);
      const status = err instanceof IceError ? (err.action === 'reject' ? 400 : err.action === 'retry' ? 503 : 500) : 500;
      send(status, {
        error: {
          code: err instanceof IceError ? err.code : 'E_INTERNAL',
          message: err.message,
          ...(err instanceof ValidationError ? { issues: err.issues } : {}),
        },
      });
    }
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    url: `http://${addr.address}:${addr.port}`,
    token,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

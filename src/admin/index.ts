export { runAdminOp, ADMIN_OPS } from './ops.js';
export type { AdminOp } from './ops.js';
export { startAdminServer } from './server.js';
export type { AdminServer } from './server.js';
export { callAdmin, requestAdmin } from './client.js';
export { serveAdminOverNats, adminSubject, parseAdminSubject, AdminSubjectError } from './nats.js';
export type { AdminOverNatsOptions } from './nats.js';

export { LocalOwnership } from './local-ownership.js';
export { LeaseOwnership } from './lease-ownership.js';

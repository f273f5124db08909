export { LeaseManager } from './lease.js';
export type { LeaseRecord, LeaseOptions } from './lease.js';
export { WatchedBucket, kvCompareAndSet } from './kv-stores.js';
export type { WatchedEntry } from './kv-stores.js';
export { JetStreamStore } from './jetstream-store.js';
export type { JetStreamStoreOptions } from './jetstream-store.js';

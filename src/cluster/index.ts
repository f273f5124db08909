export { startCluster } from './cluster.js';
export type { ClusterOptions, ClusterParts } from './cluster.js';
export { ClusterGrants } from './cluster-grants.js';

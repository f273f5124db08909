export { startClusterNode, verifyActorChain } from './cluster-node.js';
export type { ClusterNode, ClusterNodeOptions, ClusterActorView, ClusterSnapshotRecord } from './cluster-node.js';
export { ClusterGrants } from './cluster-grants.js';

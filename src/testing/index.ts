/**
 * The testing kit: real nats-server processes (single and clustered), real `ice` processes
 * to SIGKILL and restart, and the invariants a crash must never break.
 */
export { startNatsServer, startNatsCluster, resolveNatsServerBin, freePort } from './nats-server.js';
export type { NatsServer, NatsCluster, StartNatsServerOptions, StartNatsClusterOptions } from './nats-server.js';
export { startIceProcess, ICE_BIN } from './ice-process.js';
export type { IceProcess, StartIceOptions } from './ice-process.js';
export { checkInvariants } from './invariants.js';
export type { InvariantReport, CheckInvariantsOptions } from './invariants.js';
export { runClusterChaos, faultSchedule, seededRandom, FAULT_KINDS } from './cluster-chaos.js';
export type { ClusterChaosOptions, ClusterChaosReport, FaultKind, ScheduledFault } from './cluster-chaos.js';

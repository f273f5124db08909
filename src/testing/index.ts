/**
 * The testing kit: real nats-server processes (single and clustered), real `ice` processes
 * to SIGKILL and restart, and the invariants a crash must never break.
 */
export { startNatsServer, startNatsCluster, resolveNatsServerBin, freePort } from './nats-server.js';
export type { NatsServer, NatsCluster, StartNatsServerOptions, StartNatsClusterOptions } from './nats-server.js';
export { startIceProcess, ICE_BIN } from './ice-process.js';
export type { IceProcess, StartIceOptions } from './ice-process.js';
export { checkInvariants, openJournal } from './invariants.js';
export type { InvariantReport, CheckInvariantsOptions, JournalView } from './invariants.js';
export { runChaos, faultSchedule, formatSchedule, seededRandom, ledgerWorkload, FAULT_KINDS, MODE_FAULTS } from './chaos.js';
export type { ChaosMode, ChaosOptions, ChaosReport, ChaosWorkload, FaultKind, ScheduledFault } from './chaos.js';
export { ledgerActor } from './chaos-actors.js';
export { startTcpProxy } from './tcp-proxy.js';
export type { TcpProxy } from './tcp-proxy.js';

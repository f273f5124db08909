export {
  machineToGraph,
  graphToMermaid,
  graphToSvg,
  layoutGraph,
  renderSvg,
  allNodes,
  allTransitions,
  findNode,
  resolveStateIds,
  stateValueToIds,
  guardName,
  actionName,
} from './machine-graph.js';
export type {
  MachineGraph,
  StateNodeInfo,
  StateNodeType,
  TransitionInfo,
  TransitionKind,
  GraphLayout,
  LayoutNode,
  LayoutEdge,
  LayoutOptions,
  Point,
  SvgOptions,
} from './machine-graph.js';
export { startInspector, stateStringToIds, factKey } from './server.js';
export type { Inspector, InspectorOptions, InspectorRuntime, InspectorRecord, ActorView } from './server.js';
export { natsInspectorApprovals } from './approvals-api.js';
export type { InspectorApprovals } from './approvals-api.js';
export { toStatelyMessage, statelyActorRegistration, STATELY_INSPECT_VERSION } from './stately.js';
export type { StatelyMessage, StatelyActorMessage, StatelyEventMessage, StatelySnapshotMessage } from './stately.js';
export { clusterInspectorSource } from './cluster-source.js';
export type { ClusterInspectorSource } from './cluster-source.js';
export { publishInspection, subscribeInspection, inspectSubject, INSPECT_SUBJECT_ALL } from './wire.js';
export type { WireInspectRecord } from './wire.js';

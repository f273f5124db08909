export { runMachine, runEvents, runRuntimeEvents } from './run.machine.js';
export type { RunContext, RunEvent } from './run.machine.js';
export { deploymentMachine, deploymentEvents } from './deployment.machine.js';
export type { DeploymentContext, DeploymentEvent } from './deployment.machine.js';

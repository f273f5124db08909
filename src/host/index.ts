export { defineActor, ActorRegistry, definitionsFromModule } from './definition.js';
export type { ActorDefinition, DefineActorOptions } from './definition.js';
export { Host, eventOf } from './host.js';
export type { ActorInfo, ActorDetail, Applied, InspectRecord, HostOptions, Spawned } from './host.js';
export { Intake } from './intake.js';
export type { IntakeOptions } from './intake.js';
export { stateToString } from './state-value.js';
export { replayActor } from './replay.js';

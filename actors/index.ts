import { deploymentActor } from './deployment.actor.js';
import { runActor } from './run.actor.js';

export { deploymentActor } from './deployment.actor.js';
export { runActor } from './run.actor.js';

/** The example kinds `ice demo` and `ice dev` host by default. */
export const exampleActors = [runActor, deploymentActor];

import { z } from 'zod';
import { defineActor } from '../src/host/definition.js';
import { runEvents, runMachine, runRuntimeEvents } from '../machines/run.machine.js';

/** An ICE run: the frame an agent acts in. Grants bound to a run work only while it executes. */
export const runActor = defineActor({
  kind: 'run',
  machine: runMachine,
  events: runEvents,
  runtimeEvents: runRuntimeEvents,
  input: z.strictObject({ goal: z.string().max(2000).optional() }).optional(),
  description: 'The ICE run lifecycle: CREATED → … → COMMITTED | ABORTED → TERMINATED',
});

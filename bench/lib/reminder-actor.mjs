// The actor kind of the timer measurements: ARM starts a wait (`after` delayMs) that rings.
import { importDist } from './common.mjs';

export function reminderMachineConfig(delayMs) {
  return {
    id: 'reminder',
    initial: 'idle',
    states: { idle: { on: { ARM: 'waiting' } }, waiting: { after: { [delayMs]: 'rung' } }, rung: {} },
  };
}

export async function reminderActor(delayMs) {
  const { createMachine } = await import('xstate');
  const { z } = await import('zod');
  const { defineActor } = await importDist('src/index.js');
  return defineActor({ kind: 'reminder', machine: createMachine(reminderMachineConfig(delayMs)), events: { ARM: z.strictObject({}) } });
}

import { assign, emit, setup } from 'xstate';
import { z } from 'zod';

/**
 * The ICE run lifecycle. A run is the frame in which an agent acts: grants can be bound to
 * a run, and they only take effect while the run is EXECUTING.
 *
 * CREATED → PROVISIONED → CONTEXT_READY → EXECUTING → VALIDATING → COMMITTED | ABORTED → TERMINATED
 * Any live state → TERMINATED_BY_RUNTIME on RUNTIME_ABORT, which only the runtime sends.
 * Forward-only: no transition leads back to an earlier state.
 *
 * ORCHESTRATE (in CONTEXT_READY or EXECUTING) has the run itself propose DEPLOY to a
 * deployment, as `actor:run.<id>` in its own run: a grant bound to the run lets it through only
 * while the run is EXECUTING. The outcome comes back as `ice.outcome.<status>` and is kept in
 * `orchestrated` (deployment → status).
 */
export const runEvents = {
  PROVISION: z.strictObject({ resources: z.array(z.string().min(1).max(200)).max(64).default([]) }),
  LOAD_CONTEXT: z.strictObject({ sources: z.array(z.string().min(1).max(500)).max(64).default([]) }),
  EXECUTE: z.strictObject({}),
  SUBMIT: z.strictObject({ summary: z.string().max(4000).optional() }),
  COMMIT: z.strictObject({}),
  ABORT: z.strictObject({ reason: z.string().min(1).max(2000) }),
  TERMINATE: z.strictObject({}),
  ORCHESTRATE: z.strictObject({
    deployment: z.string().regex(/^deployment\/[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/, 'expected a deployment address "deployment/<id>"'),
    environment: z.enum(['staging', 'production']),
  }),
} as const;

/** Events only the runtime may send (never accepted from a proposer). */
export const runRuntimeEvents = {
  RUNTIME_ABORT: z.strictObject({ reason: z.string().min(1).max(2000) }),
} as const;

export type RunEvent =
  | ({ type: 'PROVISION' } & z.infer<typeof runEvents.PROVISION>)
  | ({ type: 'LOAD_CONTEXT' } & z.infer<typeof runEvents.LOAD_CONTEXT>)
  | { type: 'EXECUTE' }
  | ({ type: 'SUBMIT' } & z.infer<typeof runEvents.SUBMIT>)
  | { type: 'COMMIT' }
  | ({ type: 'ABORT' } & z.infer<typeof runEvents.ABORT>)
  | { type: 'TERMINATE' }
  | ({ type: 'ORCHESTRATE' } & z.infer<typeof runEvents.ORCHESTRATE>)
  | { type: `ice.outcome.${string}`; intentId: string; target: string; outcome: { status: string } }
  | ({ type: 'RUNTIME_ABORT' } & z.infer<typeof runRuntimeEvents.RUNTIME_ABORT>);

export interface RunContext {
  goal: string;
  resources: string[];
  sources: string[];
  summary: string | undefined;
  abortReason: string | undefined;
  /** Deployments this run proposed DEPLOY to, with the last outcome of each. */
  orchestrated: Record<string, string>;
}

export const runMachine = setup({
  types: {
    context: {} as RunContext,
    events: {} as RunEvent,
    input: {} as { goal?: string } | undefined,
    /** A proposed intent (README, "Actors that act"). */
    emitted: {} as { type: 'ice.propose'; target: string; action: string; params: Record<string, unknown>; runId: string },
  },
  actions: {
    // `ice.propose` is how a machine proposes an intent (README, "Actors that act"; the runtime's
    // proposeIntent builds the same event): here in its own run, `self.id` being run/<runId>
    orchestrate: emit(({ event, self }) => {
      const e = event as Extract<RunEvent, { type: 'ORCHESTRATE' }>;
      return {
        type: 'ice.propose',
        target: e.deployment,
        action: 'DEPLOY',
        params: { environment: e.environment },
        runId: self.id.slice(self.id.indexOf('/') + 1),
      };
    }),
    keepOutcome: assign({
      orchestrated: ({ context, event }) => {
        const e = event as Extract<RunEvent, { intentId: string }>;
        return { ...context.orchestrated, [e.target]: e.outcome.status };
      },
    }),
    recordAbort: ({ context, event }) => {
      if (event.type === 'ABORT' || event.type === 'RUNTIME_ABORT') context.abortReason = event.reason;
    },
  },
}).createMachine({
  id: 'run',
  context: ({ input }) => ({
    goal: input?.goal ?? '',
    resources: [],
    sources: [],
    summary: undefined,
    abortReason: undefined,
    orchestrated: {},
  }),
  initial: 'CREATED',
  states: {
    CREATED: {
      tags: ['live'],
      on: {
        PROVISION: {
          target: 'PROVISIONED',
          actions: ({ context, event }) => {
            context.resources = event.resources;
          },
        },
        ABORT: { target: 'ABORTED', actions: 'recordAbort' },
        RUNTIME_ABORT: { target: 'TERMINATED_BY_RUNTIME', actions: 'recordAbort' },
      },
    },
    PROVISIONED: {
      tags: ['live'],
      on: {
        LOAD_CONTEXT: {
          target: 'CONTEXT_READY',
          actions: ({ context, event }) => {
            context.sources = event.sources;
          },
        },
        ABORT: { target: 'ABORTED', actions: 'recordAbort' },
        RUNTIME_ABORT: { target: 'TERMINATED_BY_RUNTIME', actions: 'recordAbort' },
      },
    },
    CONTEXT_READY: {
      tags: ['live'],
      on: {
        EXECUTE: 'EXECUTING',
        ORCHESTRATE: { actions: 'orchestrate' },
        'ice.outcome.*': { actions: 'keepOutcome' },
        ABORT: { target: 'ABORTED', actions: 'recordAbort' },
        RUNTIME_ABORT: { target: 'TERMINATED_BY_RUNTIME', actions: 'recordAbort' },
      },
    },
    EXECUTING: {
      tags: ['live', 'executing'],
      on: {
        SUBMIT: {
          target: 'VALIDATING',
          actions: ({ context, event }) => {
            context.summary = event.summary;
          },
        },
        ORCHESTRATE: { actions: 'orchestrate' },
        'ice.outcome.*': { actions: 'keepOutcome' },
        ABORT: { target: 'ABORTED', actions: 'recordAbort' },
        RUNTIME_ABORT: { target: 'TERMINATED_BY_RUNTIME', actions: 'recordAbort' },
      },
    },
    VALIDATING: {
      tags: ['live'],
      on: {
        COMMIT: 'COMMITTED',
        ABORT: { target: 'ABORTED', actions: 'recordAbort' },
        RUNTIME_ABORT: { target: 'TERMINATED_BY_RUNTIME', actions: 'recordAbort' },
      },
    },
    COMMITTED: { on: { TERMINATE: 'TERMINATED' } },
    ABORTED: { on: { TERMINATE: 'TERMINATED' } },
    TERMINATED: { type: 'final' },
    TERMINATED_BY_RUNTIME: { type: 'final' },
  },
});

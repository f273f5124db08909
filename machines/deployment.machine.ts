import { and, assign, enqueueActions, setup } from 'xstate';
import { z } from 'zod';

/**
 * A service deployment that agents drive and humans review.
 *
 * draft ──SUBMIT──▶ in_review ──APPROVE (enough distinct reviewers, none the author)──▶ approved
 *   ▲ CONFIGURE         │ REJECT ─▶ rejected (final)
 * approved ──DEPLOY──▶ rolling_out ──MARK_HEALTHY──▶ live ──SCALE / RETIRE
 *                          │ MARK_FAILED ─▶ failed ──RETRY (attempts < 3)──▶ rolling_out
 *                                                   └─RETIRE─▶ retired (final)
 * Forward-only: a failed rollout is retried or retired, never silently rolled back.
 *
 * With `autoRollout` (input), entering rolling_out starts the kind's `rollout` effect
 * (actors/deployment.actor.ts), whose result moves it on by itself: healthy → live, unhealthy
 * or failed → failed. Without it, MARK_HEALTHY / MARK_FAILED do (an operator or an agent).
 */
export const deploymentEvents = {
  CONFIGURE: z.strictObject({
    version: z.string().regex(/^\d+\.\d+\.\d+$/, 'expected a semver version like 1.2.3'),
    replicas: z.int().min(1).max(100),
  }),
  SUBMIT: z.strictObject({ author: z.string().min(1).max(200) }),
  APPROVE: z.strictObject({ reviewer: z.string().min(1).max(200) }),
  REJECT: z.strictObject({ reviewer: z.string().min(1).max(200), reason: z.string().min(1).max(2000) }),
  DEPLOY: z.strictObject({ environment: z.enum(['staging', 'production']) }),
  MARK_HEALTHY: z.strictObject({}),
  MARK_FAILED: z.strictObject({ reason: z.string().min(1).max(2000) }),
  RETRY: z.strictObject({}),
  SCALE: z.strictObject({ replicas: z.int().min(1).max(100) }),
  RETIRE: z.strictObject({}),
} as const;

type Payload<K extends keyof typeof deploymentEvents> = z.infer<(typeof deploymentEvents)[K]>;
export type DeploymentEvent =
  | {
      [K in keyof typeof deploymentEvents]: { type: K } & Payload<K>;
    }[keyof typeof deploymentEvents]
  | { type: 'ice.effect.done.rollout'; id: string; output: { healthy: boolean; detail: string } }
  | { type: 'ice.effect.failed.rollout'; id: string; error: { message: string; attempts: number } };

export interface DeploymentContext {
  service: string;
  version: string | undefined;
  replicas: number;
  author: string | undefined;
  reviewers: string[];
  requiredApprovals: number;
  environment: 'staging' | 'production' | undefined;
  attempts: number;
  lastFailure: string | undefined;
  /** Start the rollout effect on entering rolling_out (see above). */
  autoRollout: boolean;
}

export const deploymentMachine = setup({
  types: {
    context: {} as DeploymentContext,
    events: {} as DeploymentEvent,
    input: {} as { service?: string; requiredApprovals?: number; autoRollout?: boolean } | undefined,
    /** A started effect (README, "Actors that act"). */
    emitted: {} as { type: 'ice.effect'; name: string; params: unknown },
  },
  guards: {
    isConfigured: ({ context }) => context.version !== undefined,
    reviewerIsNotAuthor: ({ context, event }) =>
      event.type === 'APPROVE' && event.reviewer !== context.author && !context.reviewers.includes(event.reviewer),
    approvalCompletesReview: ({ context, event }) => event.type === 'APPROVE' && context.reviewers.length + 1 >= context.requiredApprovals,
    canRetry: ({ context }) => context.attempts < 3,
  },
}).createMachine({
  id: 'deployment',
  context: ({ input }) => ({
    service: input?.service ?? 'service',
    version: undefined,
    replicas: 1,
    author: undefined,
    reviewers: [],
    requiredApprovals: input?.requiredApprovals ?? 1,
    environment: undefined,
    attempts: 0,
    lastFailure: undefined,
    autoRollout: input?.autoRollout === true,
  }),
  initial: 'draft',
  states: {
    draft: {
      on: {
        CONFIGURE: {
          actions: assign(({ event }) => ({ version: event.version, replicas: event.replicas })),
        },
        SUBMIT: {
          guard: 'isConfigured',
          target: 'in_review',
          actions: assign(({ event }) => ({ author: event.author })),
        },
      },
    },
    in_review: {
      on: {
        APPROVE: [
          {
            guard: and(['reviewerIsNotAuthor', 'approvalCompletesReview']),
            target: 'approved',
            actions: assign(({ context, event }) => ({ reviewers: [...context.reviewers, event.reviewer] })),
          },
          {
            guard: 'reviewerIsNotAuthor',
            actions: assign(({ context, event }) => ({ reviewers: [...context.reviewers, event.reviewer] })),
          },
        ],
        REJECT: { target: 'rejected' },
      },
    },
    approved: {
      on: {
        DEPLOY: {
          target: 'rolling_out',
          actions: assign(({ context, event }) => ({ environment: event.environment, attempts: context.attempts + 1 })),
        },
      },
    },
    rolling_out: {
      // `ice.effect` starts one of the kind's effects (README, "Actors that act"; the runtime's
      // startEffect builds the same event)
      entry: enqueueActions(({ context, enqueue }) => {
        if (!context.autoRollout) return;
        enqueue.emit({
          type: 'ice.effect',
          name: 'rollout',
          params: {
            service: context.service,
            version: context.version,
            replicas: context.replicas,
            environment: context.environment,
            attempt: context.attempts,
          },
        });
      }),
      on: {
        MARK_HEALTHY: 'live',
        MARK_FAILED: { target: 'failed', actions: assign(({ event }) => ({ lastFailure: event.reason })) },
        'ice.effect.done.rollout': [
          { guard: ({ event }) => event.output.healthy, target: 'live' },
          { target: 'failed', actions: assign(({ event }) => ({ lastFailure: event.output.detail })) },
        ],
        'ice.effect.failed.rollout': { target: 'failed', actions: assign(({ event }) => ({ lastFailure: event.error.message })) },
      },
    },
    live: {
      on: {
        SCALE: { actions: assign(({ event }) => ({ replicas: event.replicas })) },
        RETIRE: 'retired',
      },
    },
    failed: {
      on: {
        RETRY: {
          guard: 'canRetry',
          target: 'rolling_out',
          actions: assign(({ context }) => ({ attempts: context.attempts + 1 })),
        },
        RETIRE: 'retired',
      },
    },
    rejected: { type: 'final' },
    retired: { type: 'final' },
  },
});

import { z } from 'zod';
import { defineActor } from '../src/host/definition.js';
import { deploymentEvents, deploymentMachine } from '../machines/deployment.machine.js';

/** A deployment agents drive and humans review; production deploys wait for a human. */
export const deploymentActor = defineActor({
  kind: 'deployment',
  machine: deploymentMachine,
  events: deploymentEvents,
  input: z
    .strictObject({
      service: z.string().min(1).max(200).optional(),
      requiredApprovals: z.int().min(1).max(5).optional(),
      // start the rollout effect on entering rolling_out (machines/deployment.machine.ts)
      autoRollout: z.boolean().optional(),
    })
    .optional(),
  effects: {
    /**
     * A simulated rollout: a moment of work, then healthy unless asked for more replicas than
     * the (pretend) cluster has. The first attempt of every other rollout fails on a flaky
     * API (by its key, so the same rollout always behaves the same): the retry succeeds.
     */
    rollout: {
      params: z.object({ service: z.string(), version: z.string().optional(), replicas: z.int(), attempt: z.int() }),
      result: z.strictObject({ healthy: z.boolean(), detail: z.string() }),
      timeoutMs: 10_000,
      retry: { maxAttempts: 3, backoffMs: 200, maxBackoffMs: 2000 },
      run: async (params, ctx) => {
        const p = params as { service: string; version?: string; replicas: number };
        await new Promise((r) => setTimeout(r, 150));
        if (ctx.attempt === 1 && flaky(ctx.key)) throw new Error('rollout API: 503 Service Unavailable');
        return p.replicas > 20
          ? { healthy: false, detail: `${p.service} ${p.version ?? ''}: ${p.replicas} replicas do not fit the cluster (20 at most)` }
          : { healthy: true, detail: `${p.service} ${p.version ?? ''} serving on ${p.replicas} replicas` };
      },
    },
  },
  policies: [
    {
      id: 'production-deploy-needs-human',
      effect: 'require_approval',
      scope: 'deployment/*:DEPLOY',
      proposer: 'agent:*',
      when: ({ intent }) => intent.params.environment === 'production',
      reason: 'an agent may not deploy to production without a human approval',
    },
  ],
  // What Cedar policies see as `context.actor` (docs/policies.md).
  contextSchema: z.object({
    service: z.string(),
    version: z.string().optional(),
    replicas: z.int(),
    reviewers: z.array(z.string()),
    requiredApprovals: z.int(),
    environment: z.enum(['staging', 'production']).optional(),
    attempts: z.int(),
  }),
  description: 'A service deployment: draft → in_review → approved → rolling_out → live | failed → retired',
});

/** Every other rollout key (stable per rollout): its first attempt meets a flaky API. */
function flaky(key: string): boolean {
  let h = 0;
  for (let i = 0; i < key.length; i++) h = (h * 31 + key.charCodeAt(i)) | 0;
  return (h & 1) === 1;
}

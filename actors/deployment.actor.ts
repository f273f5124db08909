import { z } from 'zod';
import { defineActor } from '../src/host/definition.js';
import { deploymentEvents, deploymentMachine } from '../machines/deployment.machine.js';

/** A deployment agents drive and humans review; production deploys wait for a human. */
export const deploymentActor = defineActor({
  kind: 'deployment',
  machine: deploymentMachine,
  events: deploymentEvents,
  input: z.strictObject({ service: z.string().min(1).max(200).optional(), requiredApprovals: z.int().min(1).max(5).optional() }).optional(),
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

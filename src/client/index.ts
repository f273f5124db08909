/**
 * The ICE client: propose intents to a runtime and watch its facts over NATS, with nothing
 * but the wire protocol of docs/protocol.md. Only src/transport talks to NATS itself.
 * @example
 * import { connect, TimeoutError } from 'ice-runtime/client';
 * const ice = await connect({ servers: 'nats://127.0.0.1:4222', name: 'planner' });
 * const out = await ice.propose({ proposer: 'agent:planner', target: 'deployment/web', action: 'CONFIGURE',
 *   params: { version: '1.2.0', replicas: 2 } }, { timeoutMs: 5000, retries: 2 });
 */
export { IceClient, connect, checkIntent, newIntentId } from './client.js';
export type { ClientOptions, ConnectOptions, ProposeOptions, ProposeInput, FactWatch, FactHandler, CheckedIntent } from './client.js';
export { IntentRejectedError, ProtocolError } from './errors.js';
export type { DelegateInput } from './grant-requests.js';
export type { GrantView, GrantLine } from '../authority/grant-view.js';
export {
  IceError,
  ErrorAction,
  ValidationError,
  DelegationRefusedError,
  TimeoutError,
  NoRespondersError,
  PermissionDeniedError,
  ClosedError,
} from '../errors.js';
export type { IssueDetail } from '../errors.js';
export { FactType, OutcomeSchema, FactSchema, IntentSchema } from '../protocol/index.js';
export type { Intent, IntentInput, Outcome, OutcomeStatus, Fact, Issue, Reason, Grant } from '../protocol/index.js';

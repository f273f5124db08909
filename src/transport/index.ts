export { EmbeddedTransport } from './embedded-transport.js';
export type { EmbeddedTransportOptions } from './embedded-transport.js';
export { subjectMatches, isValidPublishSubject, isValidSubscribeSubject } from './transport.js';
export type { Transport, Msg, MsgHandler, Headers, PublishOptions, RequestOptions, SubscribeOptions, Subscription } from './transport.js';
export { NatsTransport } from './nats-transport.js';
export type { NatsTransportOptions, NatsTransportConnectOptions } from './nats-transport.js';
export { registerNodeService } from './nats-service.js';
export type { NodeServiceOptions } from './nats-service.js';
export { jetStreamVersionWarning } from './server-version.js';

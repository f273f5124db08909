import { Svcm } from '@nats-io/services';
import type { NatsTransport } from './nats-transport.js';

export interface NodeServiceOptions {
  node: string;
  version: string;
  description?: string;
  /** Answers the `status` endpoint. */
  status: () => unknown;
}

/**
 * Registers a runtime node as a NATS micro service (`ice-runtime`), so `nats micro ls/info/
 * stats` list the nodes, their endpoints and request stats. Endpoint `status` answers on
 * `ice.node.<node>.status`.
 */
export async function registerNodeService(transport: NatsTransport, opts: NodeServiceOptions): Promise<{ stop(): Promise<void> }> {
  const svcm = new Svcm(transport.connection as never);
  const svc = await svcm.add({
    name: 'ice-runtime',
    version: opts.version,
    description: opts.description ?? 'ICE runtime node',
    metadata: { node: opts.node },
  });
  svc.addEndpoint('status', {
    subject: `ice.node.${opts.node}.status`,
    handler: (err, msg) => {
      if (err) return;
      msg.respond(JSON.stringify(opts.status()));
    },
    metadata: { description: 'node status: actors, journal head, group-commit stats' },
  });
  return {
    stop: async () => {
      await svc.stop();
    },
  };
}

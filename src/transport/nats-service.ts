import { Svcm } from '@nats-io/services';
import type { NatsTransport } from './nats-transport.js';

export interface NodeServiceOptions {
  node: string;
  version: string;
  description?: string;
  /** Answers the `status` endpoint. */
  status: () => unknown;
  /** More service metadata (`nats micro info ice-runtime`), e.g. the authority's key. */
  metadata?: Record<string, string>;
  /** More endpoints: `name` answers on `subject` with the JSON of what `answer` gives. */
  endpoints?: Array<{ name: string; subject: string; description: string; answer: () => Promise<unknown> }>;
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
    metadata: { ...opts.metadata, node: opts.node },
  });
  svc.addEndpoint('status', {
    subject: `ice.node.${opts.node}.status`,
    handler: (err, msg) => {
      if (err) return;
      msg.respond(JSON.stringify(opts.status()));
    },
    metadata: { description: 'node status: actors, journal head, group-commit stats' },
  });
  for (const ep of opts.endpoints ?? []) {
    svc.addEndpoint(ep.name, {
      subject: ep.subject,
      handler: (err, msg) => {
        if (err) return;
        ep.answer().then(
          (v) => msg.respond(JSON.stringify(v)),
          (e: unknown) => msg.respond(JSON.stringify({ error: { code: 'E_INTERNAL', message: String((e as Error)?.message ?? e) } })),
        );
      },
      metadata: { description: ep.description },
    });
  }
  return {
    stop: async () => {
      await svc.stop();
    },
  };
}

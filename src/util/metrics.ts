import { Counter, Gauge, Registry } from 'prom-client';
import type { Fact } from '../protocol/index.js';

/**
 * A runtime's Prometheus metrics (prom-client), served as text by the inspector at `/metrics`.
 * Counted from the facts this node commits, so they say what the journal says:
 * - `ice_facts_total{type}`: facts committed here, by type;
 * - `ice_actor_failures_total{kind}`: actors that failed outside an intent (`actor.failed` on their chain);
 * - `ice_actor_restarts_total{kind,origin}`: restarts, by supervision (`runtime`) or by hand (`operator`);
 * - `ice_timers_fired_total{kind}`: durable timers fired;
 * - `ice_actors_in_memory`, `ice_actors_failed_in_memory`, `ice_wakeups_scheduled`: now.
 */
export class RuntimeMetrics {
  readonly registry = new Registry();
  readonly #facts: Counter<'type'>;
  readonly #failures: Counter<'kind'>;
  readonly #restarts: Counter<'kind' | 'origin'>;
  readonly #timers: Counter<'kind'>;

  constructor(node: string, gauges: { inMemory: () => number; failedInMemory: () => number; wakeups: () => number }) {
    this.registry.setDefaultLabels({ node });
    const r = [this.registry];
    this.#facts = new Counter({
      name: 'ice_facts_total',
      help: 'Facts committed by this node, by type',
      labelNames: ['type'],
      registers: r,
    });
    this.#failures = new Counter({
      name: 'ice_actor_failures_total',
      help: 'Actors that failed outside an intent (actor.failed on their own chain)',
      labelNames: ['kind'],
      registers: r,
    });
    this.#restarts = new Counter({
      name: 'ice_actor_restarts_total',
      help: 'Failed actors restarted, by supervision (runtime) or an operator',
      labelNames: ['kind', 'origin'],
      registers: r,
    });
    this.#timers = new Counter({ name: 'ice_timers_fired_total', help: 'Durable timers fired', labelNames: ['kind'], registers: r });
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers: r,
        collect() {
          this.set(read());
        },
      });
    gauge('ice_actors_in_memory', 'Actors active in memory on this node', gauges.inMemory);
    gauge('ice_actors_failed_in_memory', 'Actors in memory here whose status is failed', gauges.failedInMemory);
    gauge('ice_wakeups_scheduled', 'Actors this node will wake for a durable timer or a restart', gauges.wakeups);
  }

  /** Counts the facts of one committed turn. */
  count(facts: readonly Fact[]): void {
    for (const f of facts) {
      this.#facts.inc({ type: f.type });
      const kind = f.actor && f.actor.includes('/') ? f.actor.slice(0, f.actor.indexOf('/')) : '';
      if (f.type === 'actor.failed' && f.actor && !f.actor.startsWith('_runtime/')) this.#failures.inc({ kind });
      else if (f.type === 'actor.restarted') this.#restarts.inc({ kind, origin: f.origin });
      else if (f.type === 'transition' && f.data.timer !== undefined) this.#timers.inc({ kind });
    }
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

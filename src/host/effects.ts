import { emit, type EventObject, type MachineContext } from 'xstate';
import type { ZodType } from 'zod';
import { ConfigError, ensureError } from '../errors.js';

/**
 * Durable effects: named async functions of an actor kind that touch the world (an HTTP call,
 * a job, a message to another system), started by a transition and run by the runtime.
 *
 * A machine's action `startEffect(name, params)` emits `ice.effect`; the Host commits it in
 * the same turn as an `effect.started` fact (id `e:<kind>:<id>:<seq>:<n>`, the idempotency key)
 * and an entry of the actor's snapshot record, and runs it only after that commit. Each
 * attempt gets the key, the attempt number and an AbortSignal; a throw, a timeout or a result
 * that does not match the declared schema is a failed attempt, retried with backoff up to
 * `maxAttempts`. The result comes back as the event `ice.effect.done.<name>` (`output`) or
 * `ice.effect.failed.<name>` (`error`) in a turn of the actor's own (a `transition` fact with
 * `effectOf`), which removes the entry: after a SIGKILL or a failover the owner runs what was
 * started and not finished again (at least once), and applies one result (exactly once).
 * Leaving the state that started it cancels it (`effect.cancelled`; its signal aborts).
 */

export interface EffectContext {
  /** Stable for every attempt of this start of the effect: hand it to the world as an idempotency key. */
  key: string;
  /** 1, 2, … (after a restart the count starts again: at least once). */
  attempt: number;
  /** Aborted on timeout, cancellation (the actor left the state) and shutdown. */
  signal: AbortSignal;
  /** The actor that started it. */
  actor: string;
}

export interface EffectDefinition {
  run: (params: unknown, ctx: EffectContext) => Promise<unknown>;
  /** Schema of the params (checked before the first attempt; a mismatch fails it at once). */
  params?: ZodType;
  /** Schema of the result (a mismatch is a failed attempt). */
  result?: ZodType;
  /** Per attempt, default 30 s. */
  timeoutMs?: number;
  /** Default 3 attempts, backoff 500 ms doubling up to 30 s. */
  retry?: { maxAttempts?: number; backoffMs?: number; maxBackoffMs?: number };
}

export interface ResolvedEffect extends EffectDefinition {
  timeoutMs: number;
  retry: { maxAttempts: number; backoffMs: number; maxBackoffMs: number };
}

export function resolveEffects(
  kind: string,
  effects: Record<string, EffectDefinition> | undefined,
): Readonly<Record<string, ResolvedEffect>> {
  const out: Record<string, ResolvedEffect> = {};
  for (const [name, d] of Object.entries(effects ?? {})) {
    if (!/^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(name))
      throw new ConfigError(`${kind}: effect name ${JSON.stringify(name)} must match [A-Za-z][A-Za-z0-9_]{0,63}`);
    if (typeof d?.run !== 'function')
      throw new ConfigError(`${kind}: effects.${name}.run must be an async function (params, ctx) => result`);
    const r = {
      timeoutMs: d.timeoutMs ?? 30_000,
      maxAttempts: d.retry?.maxAttempts ?? 3,
      backoffMs: d.retry?.backoffMs ?? 500,
      maxBackoffMs: d.retry?.maxBackoffMs ?? 30_000,
    };
    for (const [k, v] of Object.entries(r)) {
      if (!Number.isSafeInteger(v) || v < (k === 'maxAttempts' || k === 'timeoutMs' ? 1 : 0))
        throw new ConfigError(
          `${kind}: effects.${name}: ${k} must be an integer ≥ ${k === 'maxAttempts' || k === 'timeoutMs' ? 1 : 0}, not ${v}`,
        );
    }
    out[name] = {
      ...d,
      timeoutMs: r.timeoutMs,
      retry: { maxAttempts: r.maxAttempts, backoffMs: r.backoffMs, maxBackoffMs: r.maxBackoffMs },
    };
  }
  return Object.freeze(out);
}

/** The event the action emits; the Host turns it into a started effect. */
export interface EffectEmitted {
  type: 'ice.effect';
  name: string;
  params?: unknown;
}

export function isEffectEmitted(ev: unknown): ev is EffectEmitted {
  return (
    typeof ev === 'object' &&
    ev !== null &&
    (ev as { type?: unknown }).type === 'ice.effect' &&
    typeof (ev as { name?: unknown }).name === 'string'
  );
}

/**
 * An action that starts an effect of the actor's kind, for `setup({ actions })` or inline.
 * @example
 * rolling_out: { entry: startEffect('rollout', ({ context }) => ({ version: context.version })),
 *                on: { 'ice.effect.done.rollout': 'healthy', 'ice.effect.failed.rollout': 'failed' } }
 */
export function startEffect<TContext extends MachineContext = MachineContext, TEvent extends EventObject = EventObject>(
  name: string,
  /** JSON params, or a function of `{ context, event }` returning them. */
  params?: unknown,
) {
  // the machine's own emitted-event types do not mention ice.effect: typed as any event
  return emit<TContext, TEvent, undefined, TEvent, EventObject>(({ context, event }) => ({
    type: 'ice.effect' as const,
    name,
    params: typeof params === 'function' ? (params as (x: { context: TContext; event: TEvent }) => unknown)({ context, event }) : params,
  }));
}

/** An effect started and not finished, as the snapshot record keeps it. */
export interface EffectEntry {
  id: string;
  name: string;
  params: unknown;
  /** Seq of its `effect.started` fact. */
  seq: number;
  /** The state it was started in: leaving it cancels the effect. */
  state: string;
  /** Attempts made so far (by this owner since it restored the actor). */
  attempts: number;
  /** When the next attempt may start (epoch ms). */
  retryAt: number;
  /** The last attempt's error, while retrying. */
  lastError?: string;
}

export function effectId(address: string, seq: number, n: number): string {
  return `e:${address.replace('/', ':')}:${seq}:${n}`.slice(0, 128);
}

/** One attempt: the result (checked), or the error that failed it. */
export async function attemptEffect(
  def: ResolvedEffect,
  params: unknown,
  ctx: Omit<EffectContext, 'signal'>,
  cancel: AbortSignal,
): Promise<{ ok: true; output: unknown } | { ok: false; error: string; final: boolean }> {
  if (def.params) {
    const p = def.params.safeParse(params);
    if (!p.success)
      return {
        ok: false,
        error: `invalid params: ${p.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
        final: true,
      };
    params = p.data;
  }
  const ac = new AbortController();
  const onCancel = () => ac.abort(cancel.reason);
  cancel.addEventListener('abort', onCancel, { once: true });
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new Error(`timed out after ${def.timeoutMs} ms`);
        ac.abort(err);
        reject(err);
      }, def.timeoutMs);
    });
    const output = await Promise.race([Promise.resolve().then(() => def.run(params, { ...ctx, signal: ac.signal })), timeout]);
    if (def.result) {
      const r = def.result.safeParse(output);
      if (!r.success)
        return {
          ok: false,
          error: `result does not match its schema: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
          final: false,
        };
      return { ok: true, output: JSON.parse(JSON.stringify(r.data ?? null)) as unknown };
    }
    return { ok: true, output: output === undefined ? null : (JSON.parse(JSON.stringify(output)) as unknown) };
  } catch (e) {
    return { ok: false, error: ensureError(e).message, final: false };
  } finally {
    clearTimeout(timer);
    cancel.removeEventListener('abort', onCancel);
  }
}

/** The state an effect was started in still holds: the same state or one inside it. */
export function stillIn(current: string, started: string): boolean {
  return current === started || current.startsWith(`${started}.`);
}

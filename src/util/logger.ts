import pino, { type Logger } from 'pino';
import pinoPretty from 'pino-pretty';

export type { Logger } from 'pino';

export interface LoggerOptions {
  /** pino level; default from ICE_LOG_LEVEL, else `silent` under a test runner, else `info`. */
  level?: string;
  /** Pretty-print for humans; default when stderr is a terminal. */
  pretty?: boolean;
  /** Fields on every line (e.g. `{ node }`). */
  base?: Record<string, unknown>;
}

/**
 * Structured logs on stderr (stdout stays free for command output). Child loggers carry
 * `node`, `actor` and `intent` so every line can be traced to what it is about.
 */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const underTest = process.env.VITEST !== undefined || process.env.NODE_ENV === 'test';
  const level = opts.level ?? process.env.ICE_LOG_LEVEL ?? (underTest ? 'silent' : 'info');
  const pretty = opts.pretty ?? (process.stderr.isTTY === true && process.env.ICE_LOG_FORMAT !== 'json');
  const stream = pretty
    ? pinoPretty({ destination: 2, sync: true, colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' })
    : pino.destination({ fd: 2, sync: false });
  return pino({ level, base: opts.base ?? {}, timestamp: pino.stdTimeFunctions.isoTime }, stream);
}

/** A logger that drops everything (library default when none is injected). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

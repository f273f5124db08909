/**
 * Every error ICE raises, grouped by what the caller should do next:
 * - `reject`: the request itself is wrong; retrying it unchanged fails the same way;
 * - `retry`: a passing condition (timeout, no responders, busy); retry with the SAME intent id;
 * - `terminal`: the runtime or its data is in a state the caller cannot fix.
 * Each class has a stable `code` that appears in messages, logs and wire outcomes.
 */

export const ErrorAction = { reject: 'reject', retry: 'retry', terminal: 'terminal' } as const;
export type ErrorAction = (typeof ErrorAction)[keyof typeof ErrorAction];

export interface IssueDetail {
  /** Dotted path of the offending field, `""` for the whole value. */
  path: string;
  code: string;
  message: string;
  expected?: string;
}

export class IceError extends Error {
  override name = 'IceError';
  readonly code: string;
  readonly action: ErrorAction;
  constructor(code: string, message: string, action: ErrorAction, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.code = code;
    this.action = action;
  }
}

export class ValidationError extends IceError {
  override name = 'ValidationError';
  readonly issues: IssueDetail[];
  constructor(message: string, issues: IssueDetail[], options?: { cause?: unknown }) {
    super('E_VALIDATION', message, ErrorAction.reject, options);
    this.issues = issues;
  }
}

/**
 * A delegation asked for more than the parent grant allows, or was made by someone who does
 * not hold it, or from a grant that delegates nothing now. `field` names what is wrong
 * (`scope`, `expiresAt`, `maxUses`, `runId`, `by`, `parentId`) and `expected` what would do;
 * `issues` carries the same, so over the wire it reads like any validation error.
 */
export class DelegationRefusedError extends ValidationError {
  override name = 'DelegationRefusedError';
  readonly parentId: string;
  readonly field: string;
  readonly expected: string;
  constructor(parentId: string, field: string, code: string, message: string, expected: string) {
    super(`delegation from grant ${parentId} refused: ${field}: ${message}`, [{ path: field, code, message, expected }]);
    this.parentId = parentId;
    this.field = field;
    this.expected = expected;
  }
}

export class NotFoundError extends IceError {
  override name = 'NotFoundError';
  constructor(what: string, options?: { cause?: unknown }) {
    super('E_NOT_FOUND', what, ErrorAction.reject, options);
  }
}

export class ConflictError extends IceError {
  override name = 'ConflictError';
  constructor(message: string, options?: { cause?: unknown }, code = 'E_CONFLICT') {
    super(code, message, ErrorAction.reject, options);
  }
}

/** What the create-or-return forms create: a grant (by id) or an actor (by address). */
export type ExistingKind = 'grant' | 'actor';

/**
 * A create found what it creates already there: a grant id issued before, an actor address
 * spawned before (`E_CONFLICT`, as before). The idempotent forms answer with the existing one
 * instead: `rt.grants.ensure(req)`, `rt.spawn(address, input, { ifAbsent: true })`.
 */
export class AlreadyExistsError extends ConflictError {
  override name = 'AlreadyExistsError';
  readonly kind: ExistingKind;
  /** The grant id or actor address. */
  readonly id: string;
  constructor(kind: ExistingKind, id: string, message: string) {
    super(message);
    this.kind = kind;
    this.id = id;
  }
}

/**
 * An idempotent create found the grant or actor already there, but not as requested: a grant
 * with other terms or revoked, an actor spawned with another input. Nothing was changed (the
 * idempotent forms never rewrite what exists); `field` names the first difference.
 */
export class ExistingDiffersError extends ConflictError {
  override name = 'ExistingDiffersError';
  readonly kind: ExistingKind;
  readonly id: string;
  /** Dotted path of the first differing field: `maxUses`, `revokedAt`, `input.replicas`, … */
  readonly field: string;
  readonly existing: unknown;
  readonly requested: unknown;
  constructor(kind: ExistingKind, id: string, diff: { field: string; existing: unknown; requested: unknown }, message: string) {
    super(message, undefined, 'E_EXISTS_DIFFERENT');
    this.kind = kind;
    this.id = id;
    this.field = diff.field;
    this.existing = diff.existing;
    this.requested = diff.requested;
  }
}

export class DecisionVerificationError extends IceError {
  override name = 'DecisionVerificationError';
  readonly reason: string;
  constructor(reason: string, message: string) {
    super('E_DECISION_INVALID', message, ErrorAction.reject);
    this.reason = reason;
  }
}

export class TimeoutError extends IceError {
  override name = 'TimeoutError';
  readonly subject: string;
  readonly timeoutMs: number;
  constructor(subject: string, timeoutMs: number) {
    super('E_TIMEOUT', `no reply on ${subject} within ${timeoutMs} ms`, ErrorAction.retry);
    this.subject = subject;
    this.timeoutMs = timeoutMs;
  }
}

export class NoRespondersError extends IceError {
  override name = 'NoRespondersError';
  readonly subject: string;
  constructor(subject: string) {
    super('E_NO_RESPONDERS', `no responders on ${subject}`, ErrorAction.retry);
    this.subject = subject;
  }
}

/**
 * The NATS server refused to let this connection publish on `subject` (`-ERR 'Permissions
 * Violation for Publish to "<subject>"'`). Nothing was delivered: no runtime saw the request.
 * Not worth retrying unchanged; the connection's permissions or the subject are wrong.
 */
export class PermissionDeniedError extends IceError {
  override name = 'PermissionDeniedError';
  readonly subject: string;
  constructor(subject: string, serverMessage: string, options?: { cause?: unknown }) {
    super('E_PERMISSION', `the NATS server refused to publish on ${subject}: ${serverMessage}`, ErrorAction.terminal, options);
    this.subject = subject;
  }
}

export class ClosedError extends IceError {
  override name = 'ClosedError';
  constructor(what: string) {
    super('E_CLOSED', `${what} is closed`, ErrorAction.terminal);
  }
}

export class DataDirLockedError extends IceError {
  override name = 'DataDirLockedError';
  readonly dataDir: string;
  readonly ownerPid: number | undefined;
  constructor(dataDir: string, ownerPid: number | undefined) {
    super(
      'E_DATA_DIR_LOCKED',
      `data dir ${dataDir} is owned by another process${ownerPid ? ` (pid ${ownerPid})` : ''}; ` +
        'send changes through its admin endpoint or stop it first',
      ErrorAction.terminal,
    );
    this.dataDir = dataDir;
    this.ownerPid = ownerPid;
  }
}

export class JournalError extends IceError {
  override name = 'JournalError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_JOURNAL', message, ErrorAction.terminal, options);
  }
}

/**
 * A chain that does not link: a fork (two facts claim one position) or a gap (a position is
 * missing). The actor is stopped loudly, never silently skipped; see docs/distributed.md,
 * "Repairing a broken chain".
 */
export class JournalBrokenError extends IceError {
  override name = 'JournalBrokenError';
  readonly chain: string;
  readonly seq: number;
  readonly problem: 'fork' | 'gap' | 'hash';
  /** Store positions involved (JetStream stream sequences, SQLite row positions). */
  readonly positions: number[];
  constructor(chain: string, seq: number, problem: 'fork' | 'gap' | 'hash', detail: string, positions: number[] = []) {
    super('E_JOURNAL_BROKEN', `chain ${chain} breaks at seq ${seq} (${problem}): ${detail}`, ErrorAction.terminal);
    this.chain = chain;
    this.seq = seq;
    this.problem = problem;
    this.positions = positions;
  }
}

/** Why a stored actor cannot be restored by the running definition of its kind. */
export const VersionProblem = {
  /** No migration from some version on the way to the running one. */
  noPath: 'no_path',
  /** Stored by a later version than the one running here. */
  newer: 'newer',
  /** A migration threw. */
  migrationThrew: 'migration_threw',
  /** The (migrated) snapshot is not one the running machine can restore. */
  snapshotInvalid: 'snapshot_invalid',
  /** The stored record's `version` or `machine` is not of the right type. */
  badRecord: 'bad_record',
} as const;
export type VersionProblem = (typeof VersionProblem)[keyof typeof VersionProblem];

/**
 * A stored actor's snapshot was written by another version of its kind's definition and
 * cannot be brought to the running one (`E_VERSION`). Its stored data is left as it was; the
 * actor is not served until a definition with a path to it runs (other actors are).
 */
export class VersionError extends IceError {
  override name = 'VersionError';
  readonly actor: string;
  /** The version the stored snapshot was written by (1 when the record has none). */
  readonly stored: number;
  /** The version of the definition running here. */
  readonly running: number;
  readonly problem: VersionProblem;
  constructor(actor: string, stored: number, running: number, problem: VersionProblem, detail: string, options?: { cause?: unknown }) {
    super('E_VERSION', `${actor} stored at version ${stored}, running version ${running}: ${detail}`, ErrorAction.terminal, options);
    this.actor = actor;
    this.stored = stored;
    this.running = running;
    this.problem = problem;
  }
}

/**
 * The store file itself cannot be used: missing next to its log, empty, not an ICE store,
 * corrupt, or unreadable. Names the file, what is wrong and how to recover; a node never
 * starts a fresh store over a file that exists.
 */
export class StoreDamagedError extends IceError {
  override name = 'StoreDamagedError';
  readonly path: string;
  readonly problem: string;
  readonly recovery: string;
  constructor(path: string, problem: string, recovery: string, options?: { cause?: unknown }) {
    super('E_STORE_DAMAGED', `store ${path}: ${problem}. ${recovery}`, ErrorAction.terminal, options);
    this.path = path;
    this.problem = problem;
    this.recovery = recovery;
  }
}

/**
 * The start-up check found the journal broken: the node refuses to serve (and to append to
 * the broken history) unless its operator says to serve anyway.
 */
export class JournalBrokenAtStartError extends IceError {
  override name = 'JournalBrokenAtStartError';
  readonly chain: string | undefined;
  readonly seq: number | undefined;
  readonly pos: number | undefined;
  readonly reason: string;
  constructor(where: { chain?: string; seq?: number; pos?: number }, reason: string, journal: string, verifyCommand: string) {
    const at = where.chain
      ? `chain ${where.chain} at seq ${where.seq ?? '?'} (position ${where.pos ?? '?'})`
      : `checkpoint position ${where.pos ?? '?'}`;
    super(
      'E_JOURNAL_BROKEN',
      `${journal} is broken at ${at}: ${reason}. Not serving. ` +
        `See \`${verifyCommand}\`; restore from a backup, or start with --serve-broken-journal ` +
        '(library: serveBrokenJournal: true) to serve anyway: that is recorded as a journal.broken fact, and the broken chain is still never appended to',
      ErrorAction.terminal,
    );
    this.chain = where.chain;
    this.seq = where.seq;
    this.pos = where.pos;
    this.reason = reason;
  }
}

/** The stable code of each approval refusal (see `ApprovalRefusedError`). */
export const APPROVAL_REFUSAL_CODES = {
  self_approval: 'E_APPROVAL_SELF',
  repeat: 'E_APPROVAL_REPEAT',
  not_allowed: 'E_APPROVAL_NOT_ALLOWED',
  expired: 'E_APPROVAL_EXPIRED',
  unknown_intent: 'E_APPROVAL_UNKNOWN_INTENT',
  not_pending: 'E_APPROVAL_NOT_PENDING',
} as const;
export type ApprovalRefusalKind = keyof typeof APPROVAL_REFUSAL_CODES;

/**
 * An approval or denial of a pending intent was refused (and recorded as an `approval.refused`
 * fact): the proposer approving itself (`E_APPROVAL_SELF`), an approver counted already
 * (`E_APPROVAL_REPEAT`), someone the requirement does not admit (`E_APPROVAL_NOT_ALLOWED`),
 * after the deadline (`E_APPROVAL_EXPIRED`: the intent is denied `approval_expired`), an
 * intent id never pending (`E_APPROVAL_UNKNOWN_INTENT`) or settled already (`E_APPROVAL_NOT_PENDING`).
 */
export class ApprovalRefusedError extends IceError {
  override name = 'ApprovalRefusedError';
  readonly refusal: ApprovalRefusalKind;
  readonly intentId: string;
  constructor(refusal: ApprovalRefusalKind, intentId: string, message: string) {
    super(APPROVAL_REFUSAL_CODES[refusal], `intent ${intentId}: ${message}`, ErrorAction.reject);
    this.refusal = refusal;
    this.intentId = intentId;
  }
}

export class ConfigError extends IceError {
  override name = 'ConfigError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_CONFIG', message, ErrorAction.reject, options);
  }
}

/** Turns anything thrown into an Error, so every catch can log and wrap it uniformly. */
export function ensureError(e: unknown): Error {
  if (e instanceof Error) return e;
  return new Error(typeof e === 'string' ? e : JSON.stringify(e));
}

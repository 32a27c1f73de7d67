import { ErrorCode } from '../protocol/index.ts';

/** A Failure response: `code` is the SQLite (extended) result code, e.g. 2067 for a UNIQUE violation. */
export class DqliteError extends Error {
  override readonly name = 'DqliteError';
  readonly code: number;
  constructor(code: number, message: string) {
    super(`${message} (code ${code})`);
    this.code = code;
  }
  /** The node is not (or no longer) the leader: the statement was not applied. */
  get isNotLeader(): boolean {
    return isNotLeaderCode(this.code);
  }
  /** Leadership was lost while the statement was in flight: it may or may not have been applied. */
  get isLeadershipLost(): boolean {
    return this.code === ErrorCode.SQLITE_IOERR_LEADERSHIP_LOST || this.code === ErrorCode.SQLITE_IOERR_LEADERSHIP_LOST_LEGACY;
  }
}

export function isNotLeaderCode(code: number): boolean {
  return code === ErrorCode.SQLITE_IOERR_NOT_LEADER || code === ErrorCode.SQLITE_IOERR_NOT_LEADER_LEGACY;
}

/** The connection failed, closed, or timed out. `sent` says whether the request had been written. */
export class ConnectionError extends Error {
  override readonly name = 'ConnectionError';
  readonly code = 'connection';
  readonly address: string;
  readonly sent: boolean;
  constructor(address: string, message: string, sent: boolean, options?: { cause?: unknown }) {
    super(`${address}: ${message}`, options);
    this.address = address;
    this.sent = sent;
  }
}

/** No server named a leader that accepted us before the deadline. */
export class NoLeaderError extends Error {
  override readonly name = 'NoLeaderError';
  readonly code = 'no_leader';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * A write may or may not have been applied (the connection dropped or leadership was lost after
 * it was sent). It is not retried: check the database state before repeating it.
 */
export class IndeterminateError extends Error {
  override readonly name = 'IndeterminateError';
  readonly code = 'indeterminate';
  readonly sql: string;
  constructor(sql: string, options: { cause: unknown }) {
    const reason = options.cause instanceof Error ? options.cause.message : String(options.cause);
    super(`the outcome of "${sql.length > 80 ? `${sql.slice(0, 77)}...` : sql}" is unknown: ${reason}`, options);
    this.sql = sql;
  }
}

/** The client was used wrongly (closed handle, bad argument count, result too large). */
export class ClientError extends Error {
  override readonly name = 'ClientError';
  readonly code: 'closed' | 'bad_argument' | 'too_large' | 'protocol';
  constructor(code: ClientError['code'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

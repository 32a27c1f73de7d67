/** Failures the node answers clients with: a SQLite (extended) code and a message a person can act on. */

export const SQLITE_ERROR = 1;
export const SQLITE_BUSY = 5;
export const SQLITE_NOTFOUND = 12;
export const SQLITE_TOOBIG = 18;
export const SQLITE_FULL = 13;
export const SQLITE_PROTOCOL = 15;
export const SQLITE_MISUSE = 21;
export const SQLITE_RANGE = 25;
export const SQLITE_IOERR_NOT_LEADER = 10250;
export const SQLITE_IOERR_LEADERSHIP_LOST = 10506;

export class NodeError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = 'NodeError';
  }
}

export function notLeader(leaderAddress: string | undefined, detail?: string): NodeError {
  // go-dqlite matches on the code; the text helps people reading a shell session.
  const where = leaderAddress ? `the leader is ${leaderAddress}` : (detail ?? 'no leader is known yet, retry shortly');
  return new NodeError(SQLITE_IOERR_NOT_LEADER, `not leader: ${where}`);
}

export function leadershipLost(detail: string): NodeError {
  return new NodeError(
    SQLITE_IOERR_LEADERSHIP_LOST,
    `leadership lost: ${detail}; the statement may or may not have been applied, check before retrying`,
  );
}

/** An internal invariant: failing it is a bug in this node, never a client's or a peer's fault. */
export function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(`invariant violated: ${message}`);
}

/**
 * A committed entry this node cannot apply. Skipping it would leave this replica different from
 * the others, so the node stops; `cause` is the original failure (a codec or engine error).
 */
export class ApplyError extends Error {
  readonly code = 'APPLY_FAILED';
  constructor(
    readonly index: number,
    readonly term: number,
    readonly reason: string,
    cause: unknown,
  ) {
    super(`failed to apply entry ${index} of term ${term}, which is committed: ${reason}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'ApplyError';
  }
}

import { ClientError, ConnectionError, DqliteError, ErrorCode, IndeterminateError, NoLeaderError } from '../client/index.ts';

/** What the shell prints for a failure: the message with its code, and what to do about it. */
export interface ErrorAdvice {
  message: string;
  hint: string;
}

const CODE_NAMES = new Map<number, string>(Object.entries(ErrorCode).map(([name, code]) => [code, name]));

const PRIMARY_NAMES: Record<number, string> = {
  1: 'SQLITE_ERROR',
  5: 'SQLITE_BUSY',
  6: 'SQLITE_LOCKED',
  10: 'SQLITE_IOERR',
  11: 'SQLITE_CORRUPT',
  12: 'SQLITE_NOTFOUND',
  13: 'SQLITE_FULL',
  18: 'SQLITE_TOOBIG',
  19: 'SQLITE_CONSTRAINT',
  20: 'SQLITE_MISMATCH',
  21: 'SQLITE_MISUSE',
  25: 'SQLITE_RANGE',
};

/** SQLite's name for a result code, e.g. 2067 → SQLITE_CONSTRAINT_UNIQUE. */
export function codeName(code: number): string {
  return CODE_NAMES.get(code) ?? PRIMARY_NAMES[code] ?? PRIMARY_NAMES[code & 0xff] ?? 'unknown code';
}

function hintForCode(code: number, leader: string | undefined): string {
  switch (code) {
    case ErrorCode.SQLITE_IOERR_NOT_LEADER:
    case ErrorCode.SQLITE_IOERR_NOT_LEADER_LEGACY:
      return leader
        ? `this node is not the leader; the leader is ${leader}: run the statement again (the shell follows the leader), or pass -s ${leader}`
        : 'this node is not the leader and no leader is known yet: wait for an election (a majority of voters must be running) and retry';
    case ErrorCode.SQLITE_IOERR_LEADERSHIP_LOST:
    case ErrorCode.SQLITE_IOERR_LEADERSHIP_LOST_LEGACY:
      return 'leadership changed while the statement ran, so it may or may not have been applied: check the data before running it again';
    case ErrorCode.SQLITE_CONSTRAINT_UNIQUE:
    case ErrorCode.SQLITE_CONSTRAINT_PRIMARYKEY:
      return 'a row with this key already exists: use another value, or UPDATE / INSERT OR REPLACE the existing row';
    case ErrorCode.SQLITE_CONSTRAINT_FOREIGNKEY:
      return 'the row refers to a row that does not exist (or others still refer to it): insert the parent first or delete the children';
    case ErrorCode.SQLITE_CONSTRAINT_NOTNULL:
      return 'a NOT NULL column got no value: give it one';
    case ErrorCode.SQLITE_CONSTRAINT_CHECK:
      return "a CHECK constraint rejected the row: see the table's definition with .schema";
  }
  switch (code & 0xff) {
    case ErrorCode.SQLITE_ERROR:
      return 'check the statement: its syntax and the names of tables and columns (.tables and .schema list them)';
    case ErrorCode.SQLITE_BUSY:
    case 6:
      return 'another client holds a write transaction on this database: retry in a moment';
    case ErrorCode.SQLITE_CONSTRAINT:
      return "the change breaks a constraint of the table: see the table's definition with .schema";
    case ErrorCode.SQLITE_NOTFOUND:
      return 'the node lost the database or statement (as after a leader change): run it again';
    case 25:
      return 'the number of parameters does not match the statement';
  }
  return 'see the message above; the code is the SQLite result code';
}

/**
 * Advice for `error`. `leader` looks up the leader's address; it is asked only for a not-leader
 * error, so the hint can name the leader.
 */
export async function adviseOn(error: unknown, leader: () => Promise<string | undefined>): Promise<ErrorAdvice> {
  if (error instanceof DqliteError) {
    let leaderAddress: string | undefined;
    if (error.isNotLeader) leaderAddress = await leader().catch(() => undefined);
    return { message: `${error.message.replace(/ \(code \d+\)$/, '')} (dqlite code ${error.code} ${codeName(error.code)})`, hint: hintForCode(error.code, leaderAddress) };
  }
  if (error instanceof IndeterminateError) {
    return { message: error.message, hint: 'the connection or leadership was lost after the statement was sent: check whether it was applied before running it again' };
  }
  if (error instanceof NoLeaderError) {
    return { message: error.message, hint: 'no server named a leader: check that the -s addresses are right and that a majority of the voters are running' };
  }
  if (error instanceof ConnectionError) {
    return { message: error.message, hint: `cannot talk to ${error.address}: check the address and that the node is running` };
  }
  if (error instanceof ClientError) {
    const hint =
      error.code === 'too_large'
        ? 'the result is too large to print at once: add a LIMIT or a WHERE clause'
        : error.code === 'closed'
          ? 'the connection was closed: start the shell again'
          : 'check the command and its arguments (.help lists them)';
    return { message: error.message, hint };
  }
  return { message: error instanceof Error ? error.message : String(error), hint: 'see .help for the commands' };
}

/**
 * The SQL console's engine: runs one statement on the cluster through our dqlite client, either
 * following the leader or sent straight to one chosen node (to show what a follower answers).
 */
import { Database, DqliteError, IndeterminateError, NoLeaderError, isReadOnlySql, type Value } from '../src/client/index.ts';
import type { DialStream } from '../src/runtime.ts';

export const DATABASE_NAME = 'demo';
/** Rows shown in the console; a larger result is cut with a note. */
export const CONSOLE_ROWS_MAX = 500;

export type ConsoleResult =
  | { kind: 'rows'; columns: string[]; rows: Value[][]; truncated: boolean; elapsedMs: number; via: string }
  | { kind: 'exec'; rowsAffected: number; lastInsertId: number | bigint; elapsedMs: number; via: string }
  | { kind: 'error'; message: string; hint: string; code?: number | string; elapsedMs: number; via: string };

/** 'leader' follows the leader; an address sends the statement to that node only. */
export type ConsoleTarget = 'leader' | string;

export class SqlConsole {
  private leaderDatabase: Database | undefined;

  constructor(
    private readonly dial: DialStream,
    private readonly servers: () => string[],
  ) {}

  async run(sql: string, target: ConsoleTarget): Promise<ConsoleResult> {
    const started = performance.now();
    const direct = target !== 'leader';
    const via = direct ? target : 'leader';
    const database = direct ? this.directDatabase(target) : this.leader();
    try {
      if (isReadOnlySql(sql)) {
        const result = await database.queryRaw(sql);
        const truncated = result.rows.length > CONSOLE_ROWS_MAX;
        return {
          kind: 'rows',
          columns: result.columns,
          rows: truncated ? result.rows.slice(0, CONSOLE_ROWS_MAX) : result.rows,
          truncated,
          elapsedMs: performance.now() - started,
          via,
        };
      }
      const result = await database.exec(sql);
      return { kind: 'exec', rowsAffected: result.rowsAffected, lastInsertId: result.lastInsertId, elapsedMs: performance.now() - started, via };
    } catch (error) {
      return { ...describeError(error, target), elapsedMs: performance.now() - started, via };
    } finally {
      if (direct) database.close();
    }
  }

  close(): void {
    this.leaderDatabase?.close();
    this.leaderDatabase = undefined;
  }

  private leader(): Database {
    this.leaderDatabase ??= new Database({ servers: this.servers(), dial: this.dial, database: DATABASE_NAME, timeoutMs: 10_000 });
    return this.leaderDatabase;
  }

  private directDatabase(address: string): Database {
    return new Database({ servers: [address], dial: this.dial, database: DATABASE_NAME, leaderDiscovery: false, timeoutMs: 10_000 });
  }
}

/** Turns a client error into a message and a hint a person can act on. */
export function describeError(error: unknown, target: ConsoleTarget): { kind: 'error'; message: string; hint: string; code?: number | string } {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof DqliteError) {
    if (error.isNotLeader) {
      return { kind: 'error', code: error.code, message, hint: `${target} is not the leader: only the leader accepts writes (SQLITE_IOERR_NOT_LEADER). Send it to "leader" instead.` };
    }
    if (error.isLeadershipLost) {
      return { kind: 'error', code: error.code, message, hint: 'The node lost leadership before a majority stored the write: it may or may not have been applied.' };
    }
    if (/timed out|quorum|waiting for/.test(message)) {
      return { kind: 'error', code: error.code, message, hint: 'No majority acknowledged the write in time: this node is on the minority side of a partition.' };
    }
    return { kind: 'error', code: error.code, message, hint: 'SQLite rejected the statement.' };
  }
  if (error instanceof IndeterminateError && error.cause instanceof DqliteError && error.cause.isLeadershipLost) {
    return {
      kind: 'error',
      code: error.cause.code,
      message,
      hint: `${target === 'leader' ? 'The leader' : target} lost its majority (a partition or a crash) before the write committed: it may or may not have been applied; check before retrying.`,
    };
  }
  if (error instanceof IndeterminateError) {
    return { kind: 'error', code: error.code, message, hint: 'The connection or leadership was lost after the write was sent: check whether it was applied.' };
  }
  if (error instanceof NoLeaderError) {
    return { kind: 'error', code: error.code, message, hint: 'No node could be confirmed as leader: a majority of nodes is down or partitioned.' };
  }
  return { kind: 'error', message, hint: 'The node could not be reached.' };
}

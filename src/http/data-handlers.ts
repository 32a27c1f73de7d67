/**
 * `/db/execute`, `/db/query` and `/db/request`: rqlite's statement arrays run on the leader
 * through a dqlite client connection. Without `?transaction` each statement runs on its own and
 * an SQL error is that statement's `error`; with it, the statements run in one transaction that
 * stops and rolls back at the first error.
 */
import type { LeaderLink, LeaderSession } from './leader-link.ts';
import { DqliteError } from '../client/errors.ts';
import { ranNothing, statementErrorText } from './leader-link.ts';
import { errorResult, rowsResult, writeResult, type JsonValue, type ResultShape } from './rqlite-json.ts';
import type { ReadPlan } from './read-level.ts';
import { changesRows, isReadStatement, returnsRows, type ParsedStatement } from './statements.ts';

export type Endpoint = 'execute' | 'query' | 'request';

export interface RunOptions {
  database: string;
  transaction: boolean;
  shape: ResultShape;
  /** How reads run: the level, on the link's node (a transaction's reads see its own writes instead). */
  read: ReadPlan;
}

type Kind = 'exec' | 'query' | 'refused';

function kindOf(endpoint: Endpoint, sql: string): Kind {
  if (endpoint === 'execute') return 'exec';
  if (endpoint === 'query') return isReadStatement(sql) ? 'query' : 'refused';
  return isReadStatement(sql) || returnsRows(sql) ? 'query' : 'exec';
}

function seconds(startMs: number): number {
  return (performance.now() - startMs) / 1000;
}

async function runOne(session: LeaderSession, database: string, statement: ParsedStatement, kind: Kind, shape: ResultShape, read: ReadPlan | undefined): Promise<JsonValue> {
  const startMs = performance.now();
  const db = await session.database(database);
  if (kind === 'query') {
    const { sql, params } = statement;
    const rows =
      read && session.connection.speaksReadExtension
        ? await session.connection.callBookmarkedRows({ type: 'read_sql', db, sql, params, consistency: read.consistency, bookmark: 0n, maxStalenessMs: read.maxStalenessMs })
        : await session.connection.callRows({ type: 'query_sql', db, sql, params });
    return rowsResult(rows.columns, rows.rows, seconds(startMs), shape);
  }
  const result = await session.connection.call({ type: 'exec_sql', db, sql: statement.sql, params: statement.params }, 'result');
  if (!changesRows(statement.sql)) return writeResult(0n, 0n, seconds(startMs), shape);
  return writeResult(result.lastInsertId, result.rowsAffected, seconds(startMs), shape);
}

const REFUSED = 'attempt to change database via query operation: send writes to /db/execute or /db/request';

export async function runStatements(link: LeaderLink, endpoint: Endpoint, statements: ParsedStatement[], options: RunOptions): Promise<JsonValue[]> {
  const kinds = statements.map((s) => kindOf(endpoint, s.sql));
  return options.transaction ? runInTransaction(link, statements, kinds, options) : runEach(link, statements, kinds, options);
}

async function runEach(link: LeaderLink, statements: ParsedStatement[], kinds: Kind[], options: RunOptions): Promise<JsonValue[]> {
  const results: JsonValue[] = [];
  // One session for the request, so statements see each other as on one connection; a
  // statement the old leader refused runs again on the new one, from where it stopped.
  const session = await link.run(
    async (s) => {
      while (results.length < statements.length) {
        const i = results.length;
        const kind = kinds[i]!;
        if (kind === 'refused') {
          results.push(errorResult(REFUSED, 0, options.shape));
          continue;
        }
        const startMs = performance.now();
        try {
          results.push(await runOne(s, options.database, statements[i]!, kind, options.shape, options.read));
        } catch (error) {
          if (ranNothing(error) || !isSqlError(error)) throw error;
          results.push(errorResult(statementErrorText(error), seconds(startMs), options.shape));
        }
      }
      return s;
    },
    { keep: true },
  ).catch((error: unknown) => {
    if (isRequestLevel(error) || results.length >= statements.length) throw error;
    // The connection broke while a statement was in flight: report it, run nothing more.
    results.push(errorResult(statementErrorText(error), 0, options.shape));
    return undefined;
  });
  if (session) {
    // A statement may have left a transaction open (BEGIN, SAVEPOINT): end it, so the next
    // request on this connection never inherits it.
    if (statements.some((s) => TRANSACTION_CONTROL.test(s.sql))) await link.releaseAfterRollback(session, options.database);
    else link.release(session);
  }
  return results;
}

const TRANSACTION_CONTROL = /^\s*(BEGIN|SAVEPOINT|COMMIT|END|ROLLBACK|RELEASE)\b/i;

function isSqlError(error: unknown): boolean {
  return error instanceof DqliteError && !error.isLeadershipLost;
}

async function runInTransaction(link: LeaderLink, statements: ParsedStatement[], kinds: Kind[], options: RunOptions): Promise<JsonValue[]> {
  const results: JsonValue[] = [];
  const refused = kinds.indexOf('refused');
  if (refused >= 0) {
    for (let i = 0; i < refused; i++) results.push(errorResult('not run: a later statement of the transaction was refused', 0, options.shape));
    results.push(errorResult(REFUSED, 0, options.shape));
    return results;
  }
  // BEGIN is retried on a new leader; once the transaction is open it lives on one connection.
  const session = await link.run(
    async (s) => {
      await s.connection.call({ type: 'exec_sql', db: await s.database(options.database), sql: 'BEGIN', params: [] }, 'result');
      return s;
    },
    { keep: true },
  );
  let failed = false;
  for (let i = 0; i < statements.length && !failed; i++) {
    const startMs = performance.now();
    try {
      // Inside the transaction, reads run on its connection and see its writes.
      results.push(await runOne(session, options.database, statements[i]!, kinds[i]!, options.shape, undefined));
    } catch (error) {
      results.push(errorResult(statementErrorText(error), seconds(startMs), options.shape));
      failed = true;
    }
  }
  if (failed) {
    await link.releaseAfterRollback(session, options.database);
    return results;
  }
  try {
    await session.connection.call({ type: 'exec_sql', db: await session.database(options.database), sql: 'COMMIT', params: [] }, 'result');
    link.release(session);
  } catch (error) {
    await link.releaseAfterRollback(session, options.database);
    const last = results.length - 1;
    results[last] = errorResult(`COMMIT failed: ${statementErrorText(error)}`, 0, options.shape);
  }
  return results;
}

/** Errors that fail the whole request (no leader at all) rather than one statement. */
function isRequestLevel(error: unknown): boolean {
  return error instanceof Error && error.name === 'HttpApiError';
}

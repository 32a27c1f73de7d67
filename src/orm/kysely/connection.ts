import type { CompiledQuery, DatabaseConnection, QueryResult } from 'kysely';
import { type BeginOptions, ClientError, type Database, type Transaction, returnsRows } from '../../client/index.ts';
import { asParams } from '../params.ts';

/** Rows per chunk of `streamQuery` when Kysely passes no chunk size. */
const STREAM_CHUNK_ROWS_DEFAULT = 100;

/**
 * Kysely's connection over one client Database. While a transaction is open every query runs
 * on the transaction's connection; otherwise on the Database, which follows the leader.
 */
export class DqliteConnection implements DatabaseConnection {
  private readonly database: Database;
  private transaction: Transaction | undefined;

  constructor(database: Database) {
    this.database = database;
  }

  async begin(options: BeginOptions): Promise<void> {
    if (this.transaction) throw new ClientError('bad_argument', 'a transaction is already open on this connection: use a savepoint');
    this.transaction = await this.database.begin(options);
  }

  async commit(): Promise<void> {
    const transaction = this.endTransaction('commit');
    await transaction.commit();
  }

  async rollback(): Promise<void> {
    const transaction = this.endTransaction('rollback');
    await transaction.rollback();
  }

  private endTransaction(what: string): Transaction {
    const transaction = this.transaction;
    if (!transaction) throw new ClientError('bad_argument', `${what} without an open transaction`);
    this.transaction = undefined;
    return transaction;
  }

  async executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    const target = this.transaction ?? this.database;
    const params = asParams(compiledQuery.parameters);
    if (returnsRows(compiledQuery.sql)) {
      const result = await target.query(compiledQuery.sql, params);
      return { rows: result.rows as R[] };
    }
    const result = await target.exec(compiledQuery.sql, params);
    return { rows: [], numAffectedRows: BigInt(result.rowsAffected), insertId: BigInt(result.lastInsertId) };
  }

  async *streamQuery<R>(compiledQuery: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    if (!returnsRows(compiledQuery.sql)) {
      throw new ClientError('bad_argument', 'only queries that return rows (SELECT, ... RETURNING) can be streamed');
    }
    const chunkRows = chunkSize ?? STREAM_CHUNK_ROWS_DEFAULT;
    if (!Number.isInteger(chunkRows) || chunkRows < 1) {
      throw new ClientError('bad_argument', `chunkSize must be a positive whole number, got ${chunkSize}`);
    }
    const target = this.transaction ?? this.database;
    let pending: R[] = [];
    for await (const batch of target.stream(compiledQuery.sql, asParams(compiledQuery.parameters))) {
      pending.push(...(batch.rows as R[]));
      while (pending.length >= chunkRows) {
        yield { rows: pending.slice(0, chunkRows) };
        pending = pending.slice(chunkRows);
      }
    }
    if (pending.length > 0) yield { rows: pending };
  }
}

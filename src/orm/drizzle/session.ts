import * as drizzleOrm from 'drizzle-orm';
import {
  type Logger,
  NoopLogger,
  type Query,
  type RelationalSchemaConfig,
  type TablesRelationalConfig,
  entityKind,
  fillPlaceholders,
  sql,
} from 'drizzle-orm';
import type { BatchItem } from 'drizzle-orm/batch';
import { type Cache, NoopCache } from 'drizzle-orm/cache/core';
import type { WithCacheConfig } from 'drizzle-orm/cache/core/types';
import {
  type PreparedQueryConfig,
  type SQLiteAsyncDialect,
  type SQLiteExecuteMethod,
  SQLitePreparedQuery,
  SQLiteSession,
  SQLiteTransaction,
  type SQLiteTransactionConfig,
  type SelectedFieldsOrdered,
} from 'drizzle-orm/sqlite-core';
import { type Database, type ExecResult, type Queryable, type Transaction, ClientError } from '../../client/index.ts';
import { asParams } from '../params.ts';

/** What `db.run(...)` resolves to: the client's exec result. */
export type DqliteRunResult = ExecResult;

export interface DqliteSessionOptions {
  logger?: Logger;
  cache?: Cache;
}

type QueryMetadata = { type: 'select' | 'update' | 'delete' | 'insert'; tables: string[] };
type CustomResultMapper = (rows: unknown[][], mapColumnValue?: (value: unknown) => unknown) => unknown;
type MapResultRow = (fields: SelectedFieldsOrdered, row: unknown[], joinsNotNullableMap: Record<string, boolean> | undefined) => unknown;

// Drizzle's own row mapper (it decodes each column and nests joined tables); every Drizzle
// driver uses it, but its type is marked internal.
const mapResultRow = (drizzleOrm as unknown as { mapResultRow?: MapResultRow }).mapResultRow;
if (typeof mapResultRow !== 'function') throw new Error('drizzle-orm without mapResultRow: use the drizzle-orm version dqlite-wasm was tested with');

/**
 * Drizzle's session over a client Database, or over one open Transaction of it: a transaction's
 * session sends everything on the transaction's connection.
 */
export class DqliteSession<TFullSchema extends Record<string, unknown>, TSchema extends TablesRelationalConfig> extends SQLiteSession<
  'async',
  DqliteRunResult,
  TFullSchema,
  TSchema
> {
  static override readonly [entityKind]: string = 'DqliteSession';
  private readonly logger: Logger;
  private readonly cache: Cache;

  constructor(
    private readonly database: Database,
    private readonly asyncDialect: SQLiteAsyncDialect,
    private readonly schema: RelationalSchemaConfig<TSchema> | undefined,
    private readonly options: DqliteSessionOptions,
    private readonly tx: Transaction | undefined,
  ) {
    super(asyncDialect);
    this.logger = options.logger ?? new NoopLogger();
    this.cache = options.cache ?? new NoopCache();
  }

  private get target(): Queryable {
    return this.tx ?? this.database;
  }

  prepareQuery<T extends Omit<PreparedQueryConfig, 'run'>>(
    query: Query,
    fields: SelectedFieldsOrdered | undefined,
    executeMethod: SQLiteExecuteMethod,
    isResponseInArrayMode: boolean,
    customResultMapper?: CustomResultMapper,
    queryMetadata?: QueryMetadata,
    cacheConfig?: WithCacheConfig,
  ): DqlitePreparedQuery<T> {
    return new DqlitePreparedQuery<T>(
      this.target,
      query,
      this.logger,
      this.cache,
      queryMetadata,
      cacheConfig,
      fields,
      executeMethod,
      isResponseInArrayMode,
      customResultMapper,
    );
  }

  /**
   * Runs the queries in order in one transaction (inside the current one, when there is one):
   * all of them apply or none does, as in Drizzle's libSQL and D1 drivers.
   */
  async batch<T extends BatchItem<'sqlite'>[] | readonly BatchItem<'sqlite'>[]>(queries: T): Promise<unknown[]> {
    const prepared = queries.map((query) => asDqlitePrepared((query as unknown as { _prepare(): unknown })._prepare()));
    const runAll = async (target: Queryable): Promise<unknown[]> => {
      const results: unknown[] = [];
      for (const query of prepared) results.push(await query.executeOn(target));
      return results;
    };
    if (this.tx) return runAll(this.tx);
    return this.database.transaction((tx) => runAll(tx));
  }

  override async transaction<T>(
    transaction: (tx: DqliteTransaction<TFullSchema, TSchema>) => Promise<T>,
    config?: SQLiteTransactionConfig,
  ): Promise<T> {
    if (this.tx) {
      // Drizzle calls the session's transaction() only at the top; nested ones are savepoints.
      throw new ClientError('bad_argument', 'a transaction is already open on this session: use tx.transaction() for a savepoint');
    }
    const clientTx = await this.database.begin(config?.behavior ? { behavior: config.behavior } : {});
    const session = new DqliteSession<TFullSchema, TSchema>(this.database, this.asyncDialect, this.schema, this.options, clientTx);
    const tx = new DqliteTransaction<TFullSchema, TSchema>(this.asyncDialect, session, this.schema);
    let result: T;
    try {
      result = await transaction(tx);
    } catch (error) {
      await clientTx.rollback();
      throw error;
    }
    await clientTx.commit();
    return result;
  }

  extractRawAllValueFromBatchResult(result: unknown): unknown {
    return result;
  }

  extractRawGetValueFromBatchResult(result: unknown): unknown {
    return Array.isArray(result) ? result[0] : undefined;
  }

  extractRawValuesValueFromBatchResult(result: unknown): unknown {
    return result;
  }
}

/** Nested `tx.transaction(...)` calls: savepoints sp0, sp1, ... on the same connection. */
export class DqliteTransaction<TFullSchema extends Record<string, unknown>, TSchema extends TablesRelationalConfig> extends SQLiteTransaction<
  'async',
  DqliteRunResult,
  TFullSchema,
  TSchema
> {
  static override readonly [entityKind]: string = 'DqliteTransaction';
  private readonly txDialect: SQLiteAsyncDialect;
  private readonly txSession: DqliteSession<TFullSchema, TSchema>;
  private readonly relationalSchema: RelationalSchemaConfig<TSchema> | undefined;

  constructor(
    dialect: SQLiteAsyncDialect,
    session: DqliteSession<TFullSchema, TSchema>,
    schema: RelationalSchemaConfig<TSchema> | undefined,
    nestedIndex = 0,
  ) {
    super('async', dialect, session, schema, nestedIndex);
    this.txDialect = dialect;
    this.txSession = session;
    this.relationalSchema = schema;
  }

  override async transaction<T>(transaction: (tx: DqliteTransaction<TFullSchema, TSchema>) => Promise<T>): Promise<T> {
    const savepoint = `sp${this.nestedIndex}`;
    const tx = new DqliteTransaction<TFullSchema, TSchema>(this.txDialect, this.txSession, this.relationalSchema, this.nestedIndex + 1);
    await this.txSession.run(sql.raw(`SAVEPOINT ${savepoint}`));
    let result: T;
    try {
      result = await transaction(tx);
    } catch (error) {
      await this.txSession.run(sql.raw(`ROLLBACK TO SAVEPOINT ${savepoint}`));
      await this.txSession.run(sql.raw(`RELEASE SAVEPOINT ${savepoint}`));
      throw error;
    }
    await this.txSession.run(sql.raw(`RELEASE SAVEPOINT ${savepoint}`));
    return result;
  }
}

function asDqlitePrepared(query: unknown): DqlitePreparedQuery {
  if (!(query instanceof DqlitePreparedQuery)) {
    throw new ClientError('bad_argument', 'a batch can only hold queries built by this dqlite Drizzle instance');
  }
  return query;
}

type DqlitePreparedConfig = Omit<PreparedQueryConfig, 'run'>;

export class DqlitePreparedQuery<T extends DqlitePreparedConfig = DqlitePreparedConfig> extends SQLitePreparedQuery<{
  type: 'async';
  run: DqliteRunResult;
  all: T['all'];
  get: T['get'];
  values: T['values'];
  execute: T['execute'];
}> {
  static override readonly [entityKind]: string = 'DqlitePreparedQuery';

  constructor(
    private readonly target: Queryable,
    query: Query,
    private readonly logger: Logger,
    cache: Cache,
    queryMetadata: QueryMetadata | undefined,
    cacheConfig: WithCacheConfig | undefined,
    private readonly fields: SelectedFieldsOrdered | undefined,
    private readonly method: SQLiteExecuteMethod,
    private readonly arrayMode: boolean,
    private readonly customResultMapper: CustomResultMapper | undefined,
  ) {
    super('async', method, query, cache, queryMetadata, cacheConfig);
  }

  run(placeholderValues?: Record<string, unknown>): Promise<DqliteRunResult> {
    return this.runOn(this.target, placeholderValues);
  }

  all(placeholderValues?: Record<string, unknown>): Promise<T['all']> {
    return this.allOn(this.target, placeholderValues) as Promise<T['all']>;
  }

  get(placeholderValues?: Record<string, unknown>): Promise<T['get']> {
    return this.getOn(this.target, placeholderValues) as Promise<T['get']>;
  }

  values(placeholderValues?: Record<string, unknown>): Promise<T['values']> {
    return this.valuesOn(this.target, placeholderValues) as Promise<T['values']>;
  }

  /** @internal What `execute()` does, on another target (the transaction of a batch). */
  executeOn(target: Queryable): Promise<unknown> {
    if (this.method === 'run') return this.runOn(target);
    if (this.method === 'all') return this.allOn(target);
    return this.getOn(target);
  }

  /** @internal */
  isResponseInArrayMode(): boolean {
    return this.arrayMode;
  }

  /** Drizzle's cache and error wrapping around one round trip (an internal method of the base class). */
  private cached<R>(params: unknown[], run: () => Promise<R>): Promise<R> {
    const withCache = (this as unknown as { queryWithCache(sql: string, params: unknown[], query: () => Promise<R>): Promise<R> }).queryWithCache;
    return withCache.call(this, this.query.sql, params, run);
  }

  private params(placeholderValues: Record<string, unknown> | undefined): unknown[] {
    const params = fillPlaceholders(this.query.params, placeholderValues ?? {});
    this.logger.logQuery(this.query.sql, params);
    return params;
  }

  private runOn(target: Queryable, placeholderValues?: Record<string, unknown>): Promise<DqliteRunResult> {
    const params = this.params(placeholderValues);
    return this.cached(params, () => target.exec(this.query.sql, asParams(params)));
  }

  private async allOn(target: Queryable, placeholderValues?: Record<string, unknown>): Promise<unknown> {
    if (!this.fields && !this.customResultMapper) {
      const params = this.params(placeholderValues);
      return this.cached(params, async () => (await target.query(this.query.sql, asParams(params))).rows);
    }
    return this.mapRows(await this.valuesOn(target, placeholderValues));
  }

  private async getOn(target: Queryable, placeholderValues?: Record<string, unknown>): Promise<unknown> {
    if (!this.fields && !this.customResultMapper) {
      const params = this.params(placeholderValues);
      return this.cached(params, async () => (await target.query(this.query.sql, asParams(params))).rows[0]);
    }
    const rows = await this.valuesOn(target, placeholderValues);
    if (this.customResultMapper) return this.customResultMapper(rows);
    const row = rows[0];
    return row === undefined ? undefined : mapResultRow!(this.fields!, row, this.joinsNotNullable());
  }

  private valuesOn(target: Queryable, placeholderValues?: Record<string, unknown>): Promise<unknown[][]> {
    const params = this.params(placeholderValues);
    return this.cached(params, async () => (await target.queryRaw(this.query.sql, asParams(params))).rows);
  }

  private mapRows(rows: unknown[][]): unknown {
    if (this.customResultMapper) return this.customResultMapper(rows);
    return rows.map((row) => mapResultRow!(this.fields!, row, this.joinsNotNullable()));
  }

  /** Set by Drizzle's select builder on the prepared query (an internal field) for outer joins. */
  private joinsNotNullable(): Record<string, boolean> | undefined {
    return (this as unknown as { joinsNotNullableMap?: Record<string, boolean> }).joinsNotNullableMap;
  }
}

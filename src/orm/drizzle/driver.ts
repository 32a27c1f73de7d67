import {
  DefaultLogger,
  type ExtractTablesWithRelations,
  type Logger,
  type RelationalSchemaConfig,
  type TablesRelationalConfig,
  createTableRelationsHelpers,
  entityKind,
  extractTablesRelationalConfig,
} from 'drizzle-orm';
import type { BatchItem, BatchResponse } from 'drizzle-orm/batch';
import { BaseSQLiteDatabase, SQLiteAsyncDialect } from 'drizzle-orm/sqlite-core';
import type { DrizzleConfig } from 'drizzle-orm/utils';
import { ClientError, type Database } from '../../client/index.ts';
import { DqliteSession, type DqliteRunResult } from './session.ts';

/** A Drizzle database (SQLite dialect, async) on a dqlite-wasm or dqlite cluster. */
export class DqliteDrizzleDatabase<TSchema extends Record<string, unknown> = Record<string, never>> extends BaseSQLiteDatabase<
  'async',
  DqliteRunResult,
  TSchema
> {
  static override readonly [entityKind]: string = 'DqliteDrizzleDatabase';
  /** The client Database this instance runs on. */
  declare readonly $client: Database;

  /** Runs the queries in order in one transaction: all apply or none does. */
  async batch<U extends BatchItem<'sqlite'>, T extends Readonly<[U, ...U[]]>>(batch: T): Promise<BatchResponse<T>> {
    return (await internals(this).session.batch(batch)) as BatchResponse<T>;
  }
}

interface Internals {
  dialect: SQLiteAsyncDialect;
  session: DqliteSession<Record<string, unknown>, TablesRelationalConfig>;
}

// Drizzle marks a database's dialect and session internal; `migrate` needs them.
const internalsOf = new WeakMap<object, Internals>();

/** @internal */
export function internals(db: object): Internals {
  const found = internalsOf.get(db);
  if (!found) throw new ClientError('bad_argument', 'not a database made by drizzle() of dqlite-wasm/drizzle');
  return found;
}

/**
 * `drizzle(database, { schema })`: Drizzle over a client Database (from `connect`). Transactions
 * run on one connection of it; nested ones are savepoints.
 */
export function drizzle<TSchema extends Record<string, unknown> = Record<string, never>>(
  database: Database,
  config: DrizzleConfig<TSchema> = {},
): DqliteDrizzleDatabase<TSchema> & { $client: Database } {
  if (typeof (database as Partial<Database> | undefined)?.begin !== 'function') {
    throw new ClientError('bad_argument', 'drizzle() takes a client Database: const db = drizzle(await connect({ servers, database }), { schema })');
  }
  const dialect = new SQLiteAsyncDialect(config.casing ? { casing: config.casing } : {});
  let logger: Logger | undefined;
  if (config.logger === true) logger = new DefaultLogger();
  else if (config.logger) logger = config.logger;

  type Schema = ExtractTablesWithRelations<TSchema>;
  let schema: RelationalSchemaConfig<Schema> | undefined;
  if (config.schema) {
    const tables = extractTablesRelationalConfig<Schema>(config.schema, createTableRelationsHelpers);
    schema = { fullSchema: config.schema, schema: tables.tables, tableNamesMap: tables.tableNamesMap };
  }
  const session = new DqliteSession<TSchema, Schema>(database, dialect, schema, {
    ...(logger && { logger }),
    ...(config.cache && { cache: config.cache }),
  }, undefined);
  const db = new DqliteDrizzleDatabase<TSchema>('async', dialect, session, schema);
  (db as { $client: Database }).$client = database;
  internalsOf.set(db, { dialect, session: session as unknown as Internals['session'] });
  return db as DqliteDrizzleDatabase<TSchema> & { $client: Database };
}

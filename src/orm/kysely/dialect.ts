import {
  type DatabaseConnection,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type Kysely,
  type QueryCompiler,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
} from 'kysely';
import { type ConnectOptions, type Database, connect } from '../../client/index.ts';
import { DqliteDriver } from './driver.ts';

export type DqliteDialectConfig = (
  | ConnectOptions
  | {
      /** A client Database to run on (not closed by `db.destroy()`), or a function that opens one. */
      client: Database | (() => Promise<Database>);
    }
) & {
  /** Called once with the connection before the first query. */
  onCreateConnection?: (connection: DatabaseConnection) => Promise<void>;
};

/**
 * Kysely's SQLite dialect (query compiler, adapter, introspector) over a dqlite-wasm or dqlite
 * cluster: `new Kysely<DB>({ dialect: new DqliteDialect({ servers, database }) })`.
 */
export class DqliteDialect implements Dialect {
  private readonly config: DqliteDialectConfig;

  constructor(config: DqliteDialectConfig) {
    this.config = config;
  }

  createDriver(): Driver {
    const config = this.config;
    const onCreateConnection = config.onCreateConnection;
    if ('client' in config) {
      const client = config.client;
      return new DqliteDriver({
        open: () => (typeof client === 'function' ? client() : Promise.resolve(client)),
        closeOnDestroy: typeof client === 'function',
        ...(onCreateConnection && { onCreateConnection }),
      });
    }
    return new DqliteDriver({ open: () => connect(config), closeOnDestroy: true, ...(onCreateConnection && { onCreateConnection }) });
  }

  createQueryCompiler(): QueryCompiler {
    return new SqliteQueryCompiler();
  }

  createAdapter(): DialectAdapter {
    return new SqliteAdapter();
  }

  createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new SqliteIntrospector(db);
  }
}

import {
  type CompiledQuery,
  type DatabaseConnection,
  type Driver,
  IdentifierNode,
  type QueryCompiler,
  RawNode,
  type TransactionSettings,
  createQueryId,
} from 'kysely';
import { ClientError, type Database } from '../../client/index.ts';
import { DqliteConnection } from './connection.ts';

export interface DqliteDriverConfig {
  /** Opens the client Database (called once, by Kysely's first query). */
  open: () => Promise<Database>;
  /** Whether `destroy()` closes the Database (true when the dialect opened it). */
  closeOnDestroy: boolean;
  onCreateConnection?: (connection: DatabaseConnection) => Promise<void>;
}

/**
 * One connection per Kysely instance, as Kysely's own SQLite driver has: dqlite runs one
 * database's statements one at a time anyway, and a transaction must own its connection.
 * Queries wait here while a transaction holds the connection.
 */
export class DqliteDriver implements Driver {
  private readonly config: DqliteDriverConfig;
  private readonly mutex = new ConnectionMutex();
  private database: Database | undefined;
  private connection: DqliteConnection | undefined;

  constructor(config: DqliteDriverConfig) {
    this.config = config;
  }

  async init(): Promise<void> {
    this.database = await this.config.open();
    this.connection = new DqliteConnection(this.database);
    await this.config.onCreateConnection?.(this.connection);
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    await this.mutex.lock();
    if (!this.connection) {
      this.mutex.unlock();
      throw new ClientError('closed', 'the Kysely instance was destroyed');
    }
    return this.connection;
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    if (settings.isolationLevel !== undefined && settings.isolationLevel !== 'serializable') {
      throw new ClientError('bad_argument', `dqlite transactions are serializable; isolation level "${settings.isolationLevel}" is not available`);
    }
    if (settings.accessMode === 'read only') {
      throw new ClientError('bad_argument', 'SQLite has no read-only transactions: leave accessMode unset (or "read write")');
    }
    await asDqlite(connection).begin({});
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await asDqlite(connection).commit();
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await asDqlite(connection).rollback();
  }

  async savepoint(connection: DatabaseConnection, name: string, compileQuery: QueryCompiler['compileQuery']): Promise<void> {
    await connection.executeQuery(savepointCommand('savepoint', name, compileQuery));
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string, compileQuery: QueryCompiler['compileQuery']): Promise<void> {
    await connection.executeQuery(savepointCommand('rollback to', name, compileQuery));
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string, compileQuery: QueryCompiler['compileQuery']): Promise<void> {
    await connection.executeQuery(savepointCommand('release', name, compileQuery));
  }

  async releaseConnection(): Promise<void> {
    this.mutex.unlock();
  }

  async destroy(): Promise<void> {
    const database = this.database;
    this.database = undefined;
    this.connection = undefined;
    if (database && this.config.closeOnDestroy) await database.close();
  }
}

function asDqlite(connection: DatabaseConnection): DqliteConnection {
  if (!(connection instanceof DqliteConnection)) throw new ClientError('bad_argument', 'not a connection of the dqlite dialect');
  return connection;
}

/** The identifier node quotes the name, so a savepoint name cannot inject SQL. */
function savepointCommand(command: string, name: string, compileQuery: QueryCompiler['compileQuery']): CompiledQuery {
  return compileQuery(RawNode.createWithChildren([RawNode.createWithSql(`${command} `), IdentifierNode.create(name)]), createQueryId());
}

class ConnectionMutex {
  private held: Promise<void> | undefined;
  private release: (() => void) | undefined;

  async lock(): Promise<void> {
    while (this.held) await this.held;
    this.held = new Promise<void>((resolve) => (this.release = resolve));
  }

  unlock(): void {
    const release = this.release;
    this.held = undefined;
    this.release = undefined;
    release?.();
  }
}

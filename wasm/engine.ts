import { RecyclingSlab } from './byte-slab.ts';
import { ChangeCaptureHooks, type ChangeCaptureOptions } from './change-capture.ts';
import { DatabaseImpl, checkSnapshot, type Database, type DatabaseContext, type DatabaseSnapshot } from './database.ts';
import { EngineError } from './errors.ts';
import { MemoryVfs } from './memory-vfs.ts';
import { READ_VIEW_SUFFIX } from './read-view.ts';
import { SqlGuard } from './sql-guard.ts';
import { asSqliteModule, loadDefaultSqlite, type Pointer, type SqliteModule } from './sqlite-api.ts';
import { isValidPageSize } from './wal-format.ts';

export interface EngineOptions {
  /** Injectable loader of the sqlite3 module (defaults to the package's default export init). Keeps Node-only APIs out of the engine so it runs in Deno and Web Workers. */
  loadSqlite?: () => Promise<unknown>;
  /**
   * Page size of the databases this engine creates, in bytes (default 4096, as dqlite): a power
   * of two from 512 to 65536. An existing database keeps its own; a follower's new database takes
   * the leader's (see Database.apply).
   */
  pageSize?: number;
  /** Largest main file or WAL, in bytes (default 1 GiB): writes beyond fail with SQLITE_FULL. */
  fileBytesMax?: number;
  /**
   * Bytes of file memory that closed databases and checkpointed WALs free which the engine keeps
   * for the files that grow next (default 32 MiB; counted in filesBytes()). Like SQLite's own
   * heap, this spares a new database fresh allocations and the garbage collector's work.
   */
  filePoolBytesMax?: number;
  /** Most transactions pending (captured, not yet confirmed) per database (default 4096). */
  pendingMax?: number;
  /**
   * Record per committed transaction the tables and rows it changed (CapturedTransaction.changes,
   * change-capture.ts) on every database this engine opens; off by default (Database.captureChanges
   * turns it on or off per database).
   */
  changeCapture?: ChangeCaptureOptions;
}

const NAME_MAX_BYTES = 256;
/** dqlite's page size: a one-row transaction ships two 4 KiB pages (table and index leaf) where 8 KiB pages ship 16 KiB. */
export const PAGE_SIZE_DEFAULT = 4096;
export const FILE_POOL_BYTES_DEFAULT = 32 * 1024 * 1024;
let engineCounter = 0;

export class Engine {
  private readonly sqlite: SqliteModule;
  private readonly vfs: MemoryVfs;
  private readonly vfsNamePointer: Pointer;
  private readonly guard: SqlGuard;
  private readonly pageSize: number;
  private readonly pendingMax: number;
  private readonly databasesByName = new Map<string, DatabaseImpl>();
  private readonly changeCapture: ChangeCaptureOptions | undefined;
  private hooks: ChangeCaptureHooks | undefined;
  /**
   * Captured payloads of up to 64 KiB (a few pages: a kvwrite of a 1 KiB row writes 4-5 of 4 KiB)
   * are cut from 256 KiB blocks used again and again. A payload lives until its entry is applied.
   */
  private readonly payloadSlab = new RecyclingSlab(256 * 1024, 64 * 1024, 4);

  private constructor(sqlite: SqliteModule, options: EngineOptions) {
    this.sqlite = sqlite;
    this.pageSize = options.pageSize ?? PAGE_SIZE_DEFAULT;
    this.pendingMax = options.pendingMax ?? 4096;
    this.changeCapture = options.changeCapture;
    if (!isValidPageSize(this.pageSize)) {
      throw new EngineError('PAGE_SIZE', `page size ${String(this.pageSize)} is not one SQLite allows: use a power of two from 512 to 65536 (default ${PAGE_SIZE_DEFAULT})`);
    }
    // Several engines may share one SQLite module instance: each gets its own VFS name.
    const vfsName = `dqlite-wasm-memory-${++engineCounter}-${Math.random().toString(36).slice(2, 10)}`;
    this.vfs = new MemoryVfs(sqlite, {
      name: vfsName,
      fileBytesMax: options.fileBytesMax ?? 2 ** 30,
      chunkPoolBytesMax: options.filePoolBytesMax ?? FILE_POOL_BYTES_DEFAULT,
    });
    this.vfs.install();
    this.vfsNamePointer = sqlite.wasm.allocCString(vfsName);
    this.guard = new SqlGuard(sqlite);
  }

  static async create(options: EngineOptions = {}): Promise<Engine> {
    const loaded = await (options.loadSqlite ?? loadDefaultSqlite)();
    return new Engine(asSqliteModule(loaded), options);
  }

  /** SQLite library version of the loaded module, e.g. "3.54.1". */
  get sqliteVersion(): string {
    return this.sqlite.version.libVersion;
  }

  /** Opens (creating if new) the in-memory database `name`: WAL mode, exclusive locking, synchronous=FULL, no automatic checkpoint, no checkpoint on close. */
  open(name: string): Database {
    const existing = this.databasesByName.get(name);
    if (existing !== undefined) return existing;
    checkName(name);
    const database = new DatabaseImpl(this.context(), name, this.pageSize);
    this.databasesByName.set(name, database);
    return database;
  }

  /** Recreates database `name` from snapshot bytes (replaces any open one). Throws EngineError('BAD_SNAPSHOT') and changes nothing on bad bytes. */
  restore(name: string, snapshot: DatabaseSnapshot): Database {
    checkName(name);
    checkSnapshot(snapshot);
    this.databasesByName.get(name)?.close();
    this.vfs.replaceFile(name, snapshot.main);
    if (snapshot.wal.length > 0) this.vfs.replaceFile(`${name}-wal`, snapshot.wal);
    else this.vfs.deleteFile(`${name}-wal`);
    const database = new DatabaseImpl(this.context(), name, this.pageSize);
    this.databasesByName.set(name, database);
    return database;
  }

  /** Bytes of memory the databases' files hold (main files and WALs, in JS memory, not the WASM heap), with the file memory kept for reuse. */
  filesBytes(): number {
    return this.vfs.heldBytes();
  }

  /** Size of the SQLite module's WASM memory (shared by every engine on the module). */
  wasmBytes(): number {
    return this.sqlite.wasm.heap8u().byteLength;
  }

  databases(): string[] {
    return [...this.databasesByName.keys()];
  }

  get(name: string): Database | undefined {
    return this.databasesByName.get(name);
  }

  private context(): DatabaseContext {
    return {
      sqlite: this.sqlite,
      guard: this.guard,
      vfs: this.vfs,
      vfsNamePointer: this.vfsNamePointer,
      pendingMax: this.pendingMax,
      payloadSlab: this.payloadSlab,
      ...(this.changeCapture && { changeCapture: this.changeCapture }),
      // Installed in the function table on first use only: engines that never capture pay nothing.
      changeHooks: () => (this.hooks ??= new ChangeCaptureHooks(this.sqlite)),
      forget: (name) => this.databasesByName.delete(name),
    };
  }
}

function checkName(name: string): void {
  if (typeof name !== 'string' || name.length === 0 || new TextEncoder().encode(name).length > NAME_MAX_BYTES) {
    throw new EngineError('SETUP', `database name must be 1..${NAME_MAX_BYTES} bytes of UTF-8`);
  }
  if (name.endsWith('-wal') || name.endsWith('-journal') || name.endsWith(READ_VIEW_SUFFIX) || name.includes('\u0000')) {
    throw new EngineError('SETUP', `database name ${JSON.stringify(name)} may not end in -wal/-journal/${READ_VIEW_SUFFIX} or contain NUL`);
  }
}

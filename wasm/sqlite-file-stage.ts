// A scratch place for SQLite files that come from outside (an upload, a file to import): the
// bytes stream into an in-memory file of a private VFS (no copy beyond the file itself) and,
// once checked, open as an engine Database the caller reads schema and rows from. Nothing here
// touches a replicated database.

import { DatabaseImpl, mainFilePageSize, type Database, type DatabaseContext } from './database.ts';
import type { Statement } from './statement.ts';
import { SqliteError } from './errors.ts';
import type { MemoryFile } from './memory-file.ts';
import { MemoryVfs } from './memory-vfs.ts';
import { RecyclingSlab } from './byte-slab.ts';
import { SqlGuard } from './sql-guard.ts';
import { asSqliteModule, loadDefaultSqlite, type SqliteModule } from './sqlite-api.ts';

export type SqliteFileErrorCode = 'NOT_SQLITE' | 'CORRUPT' | 'TOO_LARGE' | 'BAD_SQL';

/** Why an outside file was refused; the message says what to do. */
export class SqliteFileError extends Error {
  readonly code: SqliteFileErrorCode;
  constructor(code: SqliteFileErrorCode, message: string) {
    super(message);
    this.name = 'SqliteFileError';
    this.code = code;
  }
}

export interface SqliteFileStageOptions {
  /** Loader of the sqlite3 module (default: the package's build, loaded once for the stage). */
  loadSqlite?: () => Promise<unknown>;
  /** Largest file accepted, in bytes (default 1 GiB). */
  fileBytesMax?: number;
}

const HEADER_BYTES = 100;
/** Page size of the scratch database SQL text is run in (the cluster's pages are its own). */
const SQL_PAGE_BYTES = 4096;
/** First window of SQL text a statement is compiled from (it doubles for longer statements). */
const SQL_WINDOW_CHARS_MIN = 1024;
/** Longest stretch of running SQL text without giving the event loop a turn. */
const SQL_SLICE_MS = 20;
const FILE_BYTES_MAX_DEFAULT = 2 ** 30;
/** Problems listed in a refusal: enough to see what is wrong without flooding the message. */
const INTEGRITY_PROBLEMS_SHOWN = 5;
let stageCounter = 0;

/** One SQLite module and VFS for all staged files of a process. */
export class SqliteFileStage {
  private readonly sqlite: SqliteModule;
  private readonly vfs: MemoryVfs;
  private readonly context: DatabaseContext;
  readonly fileBytesMax: number;
  private nextFile = 1;

  private constructor(sqlite: SqliteModule, fileBytesMax: number) {
    this.sqlite = sqlite;
    this.fileBytesMax = fileBytesMax;
    const name = `dqlite-wasm-stage-${++stageCounter}-${Math.random().toString(36).slice(2, 10)}`;
    this.vfs = new MemoryVfs(sqlite, { name, fileBytesMax });
    this.vfs.install();
    this.context = {
      sqlite,
      guard: new SqlGuard(sqlite),
      vfs: this.vfs,
      vfsNamePointer: sqlite.wasm.allocCString(name),
      pendingMax: 1,
      // A staged file's transactions are never captured for replication: nothing to recycle.
      payloadSlab: new RecyclingSlab(64 * 1024, 16 * 1024, 0),
      forget: () => {},
    };
  }

  static async create(options: SqliteFileStageOptions = {}): Promise<SqliteFileStage> {
    const loaded = await (options.loadSqlite ?? loadDefaultSqlite)();
    return new SqliteFileStage(asSqliteModule(loaded), options.fileBytesMax ?? FILE_BYTES_MAX_DEFAULT);
  }

  /** A new, empty staged file; `discard()` it when done. */
  begin(): StagedSqliteFile {
    const path = `staged-${this.nextFile++}`;
    return new StagedSqliteFile(this.context, this.vfs, path, this.vfs.ensureFile(path), this.fileBytesMax);
  }
}

export class StagedSqliteFile {
  private database: Database | undefined;
  private discarded = false;

  constructor(
    private readonly context: DatabaseContext,
    private readonly vfs: MemoryVfs,
    private readonly path: string,
    private staged: MemoryFile | undefined,
    private readonly fileBytesMax: number,
  ) {}

  /** The staged bytes; gone once discarded (so their memory is free even while this object lives). */
  private get file(): MemoryFile {
    if (!this.staged) throw new Error('the staged file was discarded');
    return this.staged;
  }

  get sizeBytes(): number {
    return this.staged?.size ?? 0;
  }

  /** Appends the next bytes of the file. Throws SqliteFileError('TOO_LARGE') past the limit. */
  append(chunk: Uint8Array): void {
    if (this.discarded || this.database) throw new Error('append() after open() or discard()');
    const end = this.file.size + chunk.length;
    if (end > this.fileBytesMax || !this.file.reserve(end)) {
      throw new SqliteFileError('TOO_LARGE', `the file is larger than ${this.fileBytesMax} bytes, the most this node stages`);
    }
    this.file.write(chunk, this.file.size);
  }

  /**
   * Checks the bytes (SQLite header, whole pages, `PRAGMA integrity_check`) and opens them as a
   * Database to read from. A WAL-mode file is read as its main file alone: frames in a -wal
   * file that was not checkpointed are not part of the upload.
   */
  open(): Database {
    if (this.database) return this.database;
    const size = this.file.size;
    const header = this.file.slice(0, Math.min(size, HEADER_BYTES));
    const pageSize = mainFilePageSize(header);
    if (size < HEADER_BYTES || pageSize === 0) {
      throw new SqliteFileError('NOT_SQLITE', `not an SQLite database file: it does not start with the SQLite header ("SQLite format 3")`);
    }
    if (size % pageSize !== 0) {
      throw new SqliteFileError('CORRUPT', `the file is ${size} bytes, not a whole number of its ${pageSize}-byte pages: it is truncated or damaged`);
    }
    let database: Database;
    try {
      database = new DatabaseImpl(this.context, this.path, pageSize);
    } catch (error) {
      throw new SqliteFileError('CORRUPT', `SQLite cannot open the file: ${(error as Error).message}`);
    }
    try {
      const problems = integrityProblems(database);
      if (problems.length > 0) {
        throw new SqliteFileError('CORRUPT', `the file fails PRAGMA integrity_check: ${problems.join('; ')}`);
      }
    } catch (error) {
      database.close();
      if (error instanceof SqliteFileError) throw error;
      throw new SqliteFileError('CORRUPT', `the file is damaged: ${(error as Error).message}`);
    }
    this.database = database;
    return database;
  }

  /**
   * Takes the staged bytes as SQL text (a dump such as `sqlite3 .dump` writes) and runs it in a
   * new, empty database, returned to read from. Throws SqliteFileError('BAD_SQL') naming the
   * statement that failed. Gives the event loop a turn every few milliseconds: a dump of tens
   * of MiB takes seconds, and the node it runs on must keep answering its peers meanwhile.
   */
  async openAsSql(): Promise<Database> {
    if (this.database) throw new Error('openAsSql() after open()');
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(this.file.slice(0, this.file.size));
    } catch {
      throw new SqliteFileError('NOT_SQLITE', 'neither an SQLite database file nor UTF-8 SQL text');
    }
    this.file.truncate(0);
    const database = new DatabaseImpl(this.context, this.path, SQL_PAGE_BYTES);
    this.database = database;
    let offset = 0;
    let windowChars = SQL_WINDOW_CHARS_MIN;
    let sliceStartMs = performance.now();
    for (let index = 1; ; index++) {
      const next = nextStatement(database, text, offset, windowChars);
      if (next === 'error' || next === undefined) {
        // Compiled alone, the statement (or the rest, when it has none) fails or is empty.
        let statement;
        try {
          statement = database.prepare(text.slice(offset));
          if (!statement) break;
        } catch (error) {
          throw new SqliteFileError('BAD_SQL', `the SQL text fails at statement ${index} (${JSON.stringify(text.slice(offset, offset + 400).trimStart().slice(0, 80))}...): ${(error as Error).message}`);
        } finally {
          statement?.finalize();
        }
        throw new Error('a statement compiled alone but not within a larger window');
      }
      const { statement, consumedChars } = next;
      try {
        while (statement.step()) {
          // rows of a SELECT in a dump are not wanted
        }
      } catch (error) {
        throw new SqliteFileError('BAD_SQL', `the SQL text fails at statement ${index} (${JSON.stringify(text.slice(offset, offset + 400).trimStart().slice(0, 80))}...): ${(error as Error).message}`);
      } finally {
        statement.finalize();
      }
      offset += consumedChars;
      windowChars = Math.max(SQL_WINDOW_CHARS_MIN, 2 * consumedChars);
      if (performance.now() - sliceStartMs >= SQL_SLICE_MS) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        sliceStartMs = performance.now();
      }
    }
    if (database.inTransaction()) throw new SqliteFileError('BAD_SQL', 'the SQL text leaves a transaction open: end it with COMMIT');
    return database;
  }

  /** Frees the staged bytes (closing the database opened on them). */
  discard(): void {
    if (this.discarded) return;
    this.discarded = true;
    this.database?.close();
    this.vfs.deleteFile(this.path);
    this.vfs.deleteFile(`${this.path}-wal`);
    this.staged = undefined;
  }
}

/**
 * The statement that starts at `offset`, compiled from a window of the text rather than all of
 * it: prepare() copies whatever text it is given into SQLite, so handing it the whole rest for
 * each statement made a dump's load quadratic (a 2 MiB dump of 20,000 statements took 99 s). A
 * statement counts as whole only when a `;` ended it inside the window (its tail is not empty);
 * otherwise, or when the window fails to compile, the window doubles, up to the whole rest.
 * 'error' when the whole rest fails to compile, undefined when it holds no statement.
 */
function nextStatement(
  database: Database,
  text: string,
  offset: number,
  windowChars: number,
): { statement: Statement; consumedChars: number } | 'error' | undefined {
  for (let window = windowChars; ; window *= 2) {
    const whole = offset + window >= text.length;
    const piece = whole ? text.slice(offset) : text.slice(offset, offset + window);
    let statement: Statement | null;
    try {
      statement = database.prepare(piece);
    } catch {
      if (whole) return 'error';
      continue;
    }
    if (!statement) {
      if (whole) return undefined;
      continue;
    }
    if (whole || statement.tail.length > 0) return { statement, consumedChars: piece.length - statement.tail.length };
    statement.finalize();
  }
}

function integrityProblems(database: Database): string[] {
  const statement = database.prepare(`PRAGMA integrity_check(${INTEGRITY_PROBLEMS_SHOWN})`);
  if (!statement) throw new SqliteError(1, 'PRAGMA integrity_check did not compile');
  const problems: string[] = [];
  try {
    while (statement.step()) {
      const line = String(statement.row()[0]);
      if (line !== 'ok') problems.push(line);
    }
  } finally {
    statement.finalize();
  }
  return problems;
}

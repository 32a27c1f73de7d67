// A database's read view: a second SQLite connection, opened read-only on alias paths that the
// VFS maps to the database's main file and to the committed prefix of its WAL. It never sees
// frames beyond the committed end (the leader's pending group-commit frames, an open write
// transaction's spilled pages) and can write nothing: the VFS refuses writes, truncation and
// deletion through the aliases, and the connection is opened read-only with query_only set.
//
// Without shared memory, SQLite keeps the WAL index of an EXCLUSIVE connection in its own heap
// and never looks at the WAL again: the view reopens (replaying the committed WAL into a fresh
// index) when the committed state moved. `catchUp()` does that lazily, at most once per commit,
// and every read between two commits shares the open connection.

import { EngineError, SqliteError } from './errors.ts';
import type { MemoryVfs } from './memory-vfs.ts';
import {
  SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
  SQLITE_OPEN_EXRESCODE,
  SQLITE_OPEN_READONLY,
  type Pointer,
  type SqliteExports,
  type SqliteModule,
  type SqliteWasmHelpers,
} from './sqlite-api.ts';
import type { SqlGuard } from './sql-guard.ts';
import { StatementImpl, type Statement, type StatementHost } from './statement.ts';

/** Suffix of a read view's alias of the main file; database names may not end in it. */
export const READ_VIEW_SUFFIX = '-readview';

export interface ReadView {
  /** Brings the view to the committed state now; statements compiled on it recompile on next use. */
  catchUp(): void;
  /** Compiles the first statement of `sql` on the committed state; null for an empty text. Throws SqliteError. */
  prepare(sql: string): Statement | null;
  /** Times the view reopened to follow commits (for measurements and tests). */
  readonly reopenCount: number;
}

/** What the view needs of its database: where the committed state ends, and when it moved. */
export interface CommittedState {
  /** Changes whenever the committed state changes (a commit, an applied entry, a checkpoint). */
  committedVersion(): number;
  /** Bytes of the WAL that belong to committed transactions. */
  committedWalBytes(): number;
}

export interface ReadViewContext {
  readonly sqlite: SqliteModule;
  readonly guard: SqlGuard;
  readonly vfs: MemoryVfs;
  readonly vfsNamePointer: Pointer;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();
const SCRATCH_MIN_BYTES = 4096;

export class ReadViewImpl implements ReadView, StatementHost {
  readonly exports: SqliteExports;
  readonly wasm: SqliteWasmHelpers;
  reopenCount = 0;
  private readonly mainAlias: string;
  private readonly walAlias: string;
  private aliasPointer: Pointer;
  private db: Pointer = 0;
  private openedVersion = -1;
  private scratchPointer: Pointer = 0;
  private scratchBytes = 0;
  private closed = false;
  private readonly statements = new Set<StatementImpl>();

  constructor(
    private readonly context: ReadViewContext,
    private readonly name: string,
    private readonly committed: CommittedState,
  ) {
    this.exports = context.sqlite.wasm.exports;
    this.wasm = context.sqlite.wasm;
    this.mainAlias = `${name}${READ_VIEW_SUFFIX}`;
    this.walAlias = `${this.mainAlias}-wal`;
    context.vfs.addReadView(this.mainAlias, { sourcePath: name, visibleBytes: () => Number.MAX_SAFE_INTEGER });
    context.vfs.addReadView(this.walAlias, { sourcePath: `${name}-wal`, visibleBytes: () => committed.committedWalBytes() });
    this.aliasPointer = this.wasm.allocCString(this.mainAlias);
  }

  catchUp(): void {
    this.assertOpen();
    if (this.db !== 0 && this.openedVersion !== this.committed.committedVersion()) this.closeConnection();
  }

  prepare(sql: string): Statement | null {
    this.catchUp();
    const db = this.connection();
    const x = this.exports;
    const bytes = textEncoder.encode(sql);
    const pSql = this.scratch(bytes.length + 1 + 16);
    const heap = this.wasm.heap8u();
    heap.set(bytes, pSql);
    heap[pSql + bytes.length] = 0;
    const ppStmt = (pSql + bytes.length + 1 + 3) & ~3;
    const pzTail = ppStmt + 4;
    let startByte = 0;
    for (;;) {
      this.wasm.poke32(ppStmt, 0);
      const rc = x.sqlite3_prepare_v3(db, pSql + startByte, bytes.length - startByte, 0, ppStmt, pzTail);
      if (rc !== 0) throw this.errorFor(rc);
      const stmt = this.wasm.peek32(ppStmt);
      const tailByte = this.wasm.peek32(pzTail) - pSql;
      if (stmt !== 0) {
        const statement = new StatementImpl(
          this,
          stmt,
          textDecoder.decode(bytes.subarray(startByte, tailByte)).replace(/^[\s;]+/, ''),
          textDecoder.decode(bytes.subarray(tailByte)),
        );
        this.statements.add(statement);
        return statement;
      }
      if (tailByte >= bytes.length || tailByte <= startByte) return null;
      startByte = tailByte;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const statement of this.statements) statement.detach();
    this.statements.clear();
    this.closeConnection();
    this.context.vfs.removeReadView(this.mainAlias);
    this.context.vfs.removeReadView(this.walAlias);
    if (this.scratchPointer !== 0) this.exports.sqlite3_free(this.scratchPointer);
    this.scratchPointer = 0;
    if (this.aliasPointer !== 0) this.wasm.dealloc(this.aliasPointer);
    this.aliasPointer = 0;
  }

  // --- StatementHost -------------------------------------------------------------------------

  connection(): Pointer {
    this.assertOpen();
    if (this.db === 0) this.openConnection();
    return this.db;
  }

  scratch(sizeBytes: number): Pointer {
    if (sizeBytes > this.scratchBytes) {
      const x = this.exports;
      if (this.scratchPointer !== 0) x.sqlite3_free(this.scratchPointer);
      const bytes = Math.max(SCRATCH_MIN_BYTES, 2 ** Math.ceil(Math.log2(sizeBytes)));
      this.scratchPointer = x.sqlite3_malloc(bytes);
      if (this.scratchPointer === 0) {
        this.scratchBytes = 0;
        throw new SqliteError(7, `out of WASM memory allocating ${bytes} bytes`);
      }
      this.scratchBytes = bytes;
    }
    return this.scratchPointer;
  }

  errorFor(rc: number): SqliteError {
    if (this.db === 0) return new SqliteError(rc, this.wasm.cstrToJs(this.exports.sqlite3_errstr(rc)) ?? `SQLite error ${rc}`);
    const message = this.wasm.cstrToJs(this.exports.sqlite3_errmsg(this.db)) ?? '';
    const extended = this.exports.sqlite3_extended_errcode(this.db);
    const code = (extended & 0xff) === (rc & 0xff) ? extended : rc;
    return new SqliteError(code, message || (this.wasm.cstrToJs(this.exports.sqlite3_errstr(rc)) ?? `SQLite error ${rc}`));
  }

  forget(statement: StatementImpl): void {
    this.statements.delete(statement);
  }

  // --- internals -----------------------------------------------------------------------------

  private assertOpen(): void {
    if (this.closed) throw new EngineError('CLOSED', `the read view of database ${this.name} is closed`);
  }

  private openConnection(): void {
    const x = this.exports;
    const ppDb = this.scratch(8);
    this.wasm.poke32(ppDb, 0);
    const version = this.committed.committedVersion();
    const rc = x.sqlite3_open_v2(this.aliasPointer, ppDb, SQLITE_OPEN_READONLY | SQLITE_OPEN_EXRESCODE, this.context.vfsNamePointer);
    const db = this.wasm.peek32(ppDb);
    if (rc !== 0) {
      const error = new SqliteError(rc, `cannot open the read view of database ${this.name}: ${this.wasm.cstrToJs(x.sqlite3_errstr(rc)) ?? rc}`);
      if (db !== 0) x.sqlite3_close_v2(db);
      throw error;
    }
    this.db = db;
    try {
      x.sqlite3_extended_result_codes(db, 1);
      this.context.sqlite.capi.sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, 0);
      // EXCLUSIVE before the first read: the WAL index then lives in this connection's heap.
      this.exec('PRAGMA locking_mode=EXCLUSIVE; PRAGMA query_only=1; PRAGMA temp_store=MEMORY');
      x.sqlite3_set_authorizer(db, this.context.guard.pointer, 0);
    } catch (error) {
      this.closeConnection();
      throw error;
    }
    this.openedVersion = version;
    this.reopenCount++;
  }

  private closeConnection(): void {
    for (const statement of this.statements) statement.detach();
    if (this.db !== 0) this.exports.sqlite3_close_v2(this.db);
    this.db = 0;
  }

  private exec(sql: string): void {
    const bytes = textEncoder.encode(sql);
    const p = this.scratch(bytes.length + 1);
    const heap = this.wasm.heap8u();
    heap.set(bytes, p);
    heap[p + bytes.length] = 0;
    const rc = this.exports.sqlite3_exec(this.db, p, 0, 0, 0);
    if (rc !== 0) throw this.errorFor(rc);
  }
}

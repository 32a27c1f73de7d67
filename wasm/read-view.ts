// A database's read view: a second SQLite connection, read-only, on an alias file whose bytes
// are the committed state itself: every page as the last committed transaction left it (its
// latest frame in the confirmed prefix of the WAL, else the main file's page), presented as a
// rollback-journal database. It never sees frames beyond the committed end (the leader's pending
// group-commit frames, an open transaction's spilled pages) and can write nothing: the VFS
// refuses writes through the alias, and the connection is read-only with query_only set.
//
// Why not a second WAL connection: without shared memory, SQLite keeps the WAL index of an
// EXCLUSIVE connection in its heap, so following commits would mean reopening and replaying the
// WAL (checksums of every frame) once per commit, 4 to 8 ms at a few hundred frames. Here the
// connection stays open in NORMAL locking mode: each read transaction compares the header's
// change counter, which the view presents as the committed version, and drops its page cache
// when it moved. Following a commit costs a scan of its new frame headers, nothing more.

import { connectionError, ScratchBuffer } from './connection-support.ts';
import { EngineError, SqliteError } from './errors.ts';
import type { MemoryFile } from './memory-file.ts';
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
import { recordReadSet, type ReadSet } from './read-tables.ts';
import type { SqlGuard } from './sql-guard.ts';
import { StatementImpl, type Statement, type StatementHost } from './statement.ts';

/** Suffix of a read view's alias of the main file; database names may not end in it. */
export const READ_VIEW_SUFFIX = '-readview';

export interface ReadView {
  /** Brings the view to the committed state now; statements compiled on it recompile on next use. */
  catchUp(): void;
  /** Compiles the first statement of `sql` on the committed state; null for an empty text. Throws SqliteError. */
  prepare(sql: string): Statement | null;
  /**
   * `prepare`, also returning the tables the statement reads (read-tables.ts): what a live query
   * must watch. The read set of a statement without tables is empty.
   */
  prepareWithReadSet(sql: string): { statement: Statement | null; readSet: ReadSet };
  /** Times the view opened its connection: once, it follows commits without reopening. */
  readonly openCount: number;
  /**
   * Times the view closed its connection (the schema changed): statements compiled before
   * recompile on next use, so what they read may have changed too.
   */
  readonly closeCount: number;
  /** The committed state's schema cookie: it changes with every schema change. */
  schemaCookie(): number;
  /** The committed version the view shows since the last catchUp (changes with every commit). */
  readonly committedVersion: number;
}

/** What the view needs of its database: where the committed state ends, and when it moved. */
export interface CommittedState {
  /** Changes whenever the committed state changes (a commit, an applied entry, a checkpoint). */
  committedVersion(): number;
  /** Bytes of the WAL that belong to committed transactions. */
  committedWalBytes(): number;
  /** Changes when the WAL restarts (a checkpoint): frames below the committed end were rewritten. */
  walGeneration(): number;
  readonly pageSize: number;
}

export interface ReadViewContext {
  readonly sqlite: SqliteModule;
  readonly guard: SqlGuard;
  readonly vfs: MemoryVfs;
  readonly vfsNamePointer: Pointer;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

export class ReadViewImpl implements ReadView, StatementHost {
  readonly exports: SqliteExports;
  readonly wasm: SqliteWasmHelpers;
  openCount = 0;
  closeCount = 0;
  private readonly mainAlias: string;
  private readonly image: CommittedImage;
  private aliasPointer: Pointer;
  private db: Pointer = 0;
  /** The schema cookie the connection's compiled schema belongs to. */
  private openedSchemaCookie = 0;
  private readonly scratchBuffer: ScratchBuffer;
  private closed = false;
  private readonly statements = new Set<StatementImpl>();

  constructor(
    private readonly context: ReadViewContext,
    private readonly name: string,
    committed: CommittedState,
  ) {
    this.exports = context.sqlite.wasm.exports;
    this.scratchBuffer = new ScratchBuffer(this.exports);
    this.wasm = context.sqlite.wasm;
    this.mainAlias = `${name}${READ_VIEW_SUFFIX}`;
    this.image = new CommittedImage(context.vfs, name, committed);
    // No WAL or journal alias: SQLite must see a rollback-journal database with nothing to recover.
    context.vfs.addReadView(this.mainAlias, this.image);
    this.aliasPointer = this.wasm.allocCString(this.mainAlias);
  }

  get committedVersion(): number {
    return this.image.version;
  }

  catchUp(): void {
    this.assertOpen();
    this.image.sync();
    // SQLite would re-prepare a statement compiled on an older schema, but its column list, which
    // statements describe once, could be stale: recompile everything on a fresh connection instead.
    if (this.db !== 0 && this.image.schemaCookie() !== this.openedSchemaCookie) this.closeConnection();
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

  schemaCookie(): number {
    this.assertOpen();
    return this.image.schemaCookie();
  }

  prepareWithReadSet(sql: string): { statement: Statement | null; readSet: ReadSet } {
    // Catch up (which may reopen the connection) before recording: opening reads no user table.
    this.catchUp();
    this.connection();
    const { result, readSet } = recordReadSet(this.context.guard, () => this.prepare(sql));
    return { statement: result, readSet };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const statement of this.statements) statement.detach();
    this.statements.clear();
    this.closeConnection();
    this.context.vfs.removeReadView(this.mainAlias);
    this.scratchBuffer.free();
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
    return this.scratchBuffer.get(sizeBytes);
  }


  errorFor(rc: number): SqliteError {
    return connectionError(this.wasm, this.exports, this.db, rc);
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
      // NORMAL locking: every read transaction checks the change counter, so commits show.
      this.exec('PRAGMA query_only=1; PRAGMA temp_store=MEMORY');
      x.sqlite3_set_authorizer(db, this.context.guard.pointer, 0);
    } catch (error) {
      this.closeConnection();
      throw error;
    }
    this.openedSchemaCookie = this.image.schemaCookie();
    this.openCount++;
  }

  private closeConnection(): void {
    for (const statement of this.statements) statement.detach();
    if (this.db !== 0) {
      this.exports.sqlite3_close_v2(this.db);
      this.closeCount++;
    }
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

const HEADER_BYTES = 100;
const WAL_HEADER_BYTES = 32;
const FRAME_HEADER_BYTES = 24;

/**
 * The bytes of the committed database, page by page: a page's latest frame in the confirmed WAL
 * prefix, else its page in the main file. Page 1's header is presented as a rollback-journal
 * database (format bytes 1, 1) whose change counter is the committed version, with the size of
 * the last committed transaction.
 */
class CommittedImage {
  /** Page number → offset of its latest committed image in the WAL. */
  private readonly frames = new Map<number, number>();
  private scannedEnd = 0;
  private scannedGeneration = -1;
  private syncedVersion = -1;
  private databasePages = 0;
  private readonly header = new Uint8Array(HEADER_BYTES);

  constructor(
    private readonly vfs: MemoryVfs,
    private readonly name: string,
    private readonly committed: CommittedState,
  ) {}

  /** Follows the committed state: scans the frames confirmed since the last call. */
  sync(): void {
    const version = this.committed.committedVersion();
    if (version === this.syncedVersion) return;
    const pageSize = this.committed.pageSize;
    const end = this.committed.committedWalBytes();
    const generation = this.committed.walGeneration();
    if (generation !== this.scannedGeneration || end < this.scannedEnd) {
      this.frames.clear();
      this.scannedEnd = 0;
      this.scannedGeneration = generation;
      this.databasePages = Math.floor((this.vfs.file(this.name)?.size ?? 0) / pageSize);
    }
    if (end > this.scannedEnd) {
      const wal = this.vfs.file(`${this.name}-wal`);
      if (wal === undefined) throw new EngineError('WAL_DIVERGED', `the committed WAL of ${this.name} ends at ${end} bytes but there is no WAL`);
      const frameBytes = FRAME_HEADER_BYTES + pageSize;
      for (let offset = Math.max(this.scannedEnd, WAL_HEADER_BYTES); offset + frameBytes <= end; offset += frameBytes) {
        this.frames.set(wal.uint32(offset), offset + FRAME_HEADER_BYTES);
        const commitPages = wal.uint32(offset + 4);
        if (commitPages !== 0) this.databasePages = commitPages;
      }
      this.scannedEnd = end;
    }
    this.syncedVersion = version;
    this.composeHeader();
  }

  get version(): number {
    return this.syncedVersion;
  }

  /** The schema cookie of the committed state (header offset 40). */
  schemaCookie(): number {
    this.sync();
    return new DataView(this.header.buffer).getUint32(40);
  }

  sizeBytes(): number {
    this.sync();
    return this.databasePages * this.committed.pageSize;
  }

  readInto(target: Uint8Array, targetOffset: number, offset: number, length: number): void {
    this.sync();
    const pageSize = this.committed.pageSize;
    const main = this.vfs.file(this.name);
    const wal = this.vfs.file(`${this.name}-wal`);
    let position = offset;
    let into = targetOffset;
    let remaining = length;
    while (remaining > 0) {
      const page = Math.floor(position / pageSize) + 1;
      const within = position - (page - 1) * pageSize;
      const count = Math.min(remaining, pageSize - within);
      const frame = this.frames.get(page);
      if (page === 1 && within < HEADER_BYTES) {
        const headerCount = Math.min(count, HEADER_BYTES - within);
        target.set(this.header.subarray(within, within + headerCount), into);
        if (count > headerCount) this.copyPage(target, into + headerCount, page, within + headerCount, count - headerCount, frame, main, wal);
      } else {
        this.copyPage(target, into, page, within, count, frame, main, wal);
      }
      position += count;
      into += count;
      remaining -= count;
    }
  }

  private copyPage(
    target: Uint8Array,
    into: number,
    page: number,
    within: number,
    count: number,
    frame: number | undefined,
    main: MemoryFile | undefined,
    wal: MemoryFile | undefined,
  ): void {
    if (frame !== undefined) {
      wal!.readInto(target, into, frame + within, count);
      return;
    }
    const at = (page - 1) * this.committed.pageSize + within;
    const available = Math.max(0, Math.min(count, (main?.size ?? 0) - at));
    if (available > 0) main!.readInto(target, into, at, available);
    target.fill(0, into + available, into + count);
  }

  /** Page 1's first 100 bytes as the reader must see them. */
  private composeHeader(): void {
    const header = this.header;
    header.fill(0);
    if (this.databasePages === 0) return;
    this.copyPage(header, 0, 1, 0, HEADER_BYTES, this.frames.get(1), this.vfs.file(this.name), this.vfs.file(`${this.name}-wal`));
    const view = new DataView(header.buffer);
    // Rollback-journal format: the reader looks for no WAL.
    header[18] = 1;
    header[19] = 1;
    const counter = this.syncedVersion >>> 0;
    view.setUint32(24, counter);
    view.setUint32(28, this.databasePages);
    // "Version-valid-for" equal to the change counter: the size at offset 28 is to be trusted.
    view.setUint32(92, counter);
  }
}

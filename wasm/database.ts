// One replicated database: a main file and a WAL in the engine's MemoryVfs, one SQLite
// connection (WAL mode, exclusive locking, no automatic checkpoint, no checkpoint on close).
//
// WAL bookkeeping, as byte offsets into the WAL file:
//   confirmedEnd <= capturedEnd <= end of the last transaction SQLite committed
// `confirmedEnd` is the state Raft committed (followers: everything applied); transactions in
// (confirmedEnd, capturedEnd] are pending (handed out by takeCaptured, not yet confirmed).

import {
  type CapturedTransaction,
  type ReplicaWal,
  bytesSource,
  checkAppend,
  describeReplicaWal,
  decodePayload,
  encodePayload,
  encodePayloadInto,
  PAYLOAD_HEADER_BYTES,
  payloadPageNumbers,
  readPayloadRange,
  StagedPayload,
} from './captured-payload.ts';
import { capturedChanges, ChangeCapture, type CapturedChanges, type ChangeCaptureHooks, type ChangeCaptureOptions } from './change-capture.ts';
import type { RecyclingSlab, SlabBlock } from './byte-slab.ts';
import { connectionError, ScratchBuffer } from './connection-support.ts';
import { EngineError, SqliteError } from './errors.ts';
import { CHUNK_BYTES, NOTHING_FROZEN, type FrozenBytes, type MemoryFile } from './memory-file.ts';
import type { MemoryVfs } from './memory-vfs.ts';
import {
  SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
  SQLITE_OPEN_CREATE,
  SQLITE_OPEN_EXRESCODE,
  SQLITE_OPEN_READWRITE,
  type Pointer,
  type SqliteExports,
  type SqliteModule,
  type SqliteWasmHelpers,
} from './sqlite-api.ts';
import { ReadViewImpl, type ReadView } from './read-view.ts';
import type { SqlGuard } from './sql-guard.ts';
import { StatementImpl, type Statement, type StatementHost } from './statement.ts';
import {
  WAL_FRAME_HEADER_BYTES,
  WAL_HEADER_BYTES,
  checkWalHeader,
  decodeWalHeader,
  isValidPageSize,
  readFrameCommitPageCount,
  readUint32BigEndian,
  walFrameCount,
  walHeaderPageSize,
} from './wal-format.ts';

/**
 * WAL bytes from which the leader checkpoints on the bytes (checkpointFiles) rather than with
 * SQLite's checkpoint: a load's transaction, whose WAL then gives its memory to the main file as
 * it is copied.
 */
export const CHECKPOINT_BY_BYTES_WAL_BYTES_MIN = 16 * 1024 * 1024;

export interface FrozenSnapshot {
  main: FrozenBytes;
  wal: FrozenBytes;
}

export interface DatabaseSnapshot {
  main: Uint8Array;
  wal: Uint8Array;
}

export interface Database {
  readonly name: string;
  /** Page size of the database file, in bytes. */
  readonly pageSize: number;
  // --- SQL, for the node's execution loop ---
  /** Compiles the first statement of `sql`; null when `sql` holds only whitespace/comments. Throws SqliteError. */
  prepare(sql: string): Statement | null;
  /**
   * `prepare`, but from the idle statements `recycle` kept, by their whole SQL text: a client
   * that sends the same statement text again (an EXEC_SQL of each write) compiles it once. The
   * statement's columnNames are those of its first compilation (SQLite recompiles it after a
   * schema change, but its column list is not described again): for statements whose rows are
   * discarded. Hand it back with `recycle`, not finalize.
   */
  prepareReusable(sql: string): Statement | null;
  /** Keeps a statement of `prepareReusable`, reset and unbound, for its next use (or finalizes it). */
  recycle(statement: Statement): void;
  /** sqlite3_changes64 of the last statement. */
  changes(): number;
  lastInsertRowid(): number | bigint;
  /** !sqlite3_get_autocommit */
  inTransaction(): boolean;
  interrupt(): void;
  // --- capture on the leader ---
  /**
   * Transactions that committed in SQLite since the last call, oldest first; each is also
   * recorded as pending. One whose payload is larger than `copyBytesMax` is not copied: its
   * payload is read from the WAL when asked for (readPayload), until it is aborted or checkpointed.
   */
  takeCaptured(copyBytesMax?: number): CapturedTransaction[];
  /** Raft committed the oldest `count` (default 1) pending transactions: they become the confirmed state (their copied payloads are no longer valid). */
  confirm(count?: number): void;
  /**
   * Records, per transaction committed from now on, the tables and rows it changed
   * (CapturedTransaction.changes; change-capture.ts); undefined turns it off.
   */
  captureChanges(options: ChangeCaptureOptions | undefined): void;
  /** Drops every pending transaction (their payloads are no longer valid) and puts the connection/files back exactly at the last confirmed state (also rolls back an open SQL transaction). */
  abort(): void;
  pendingCount(): number;
  // --- followers ---
  /** Appends a captured transaction from another engine; validates fully first, throws EngineError and leaves the replica unchanged on bad input. */
  apply(payload: Uint8Array): void;
  /**
   * The next slice of another engine's transaction (the first slice starts it), checked and
   * appended to the WAL past the confirmed state, without its commit frame: no read, no
   * snapshot and no reopened connection sees any of it until `commitStaged()`. Throws EngineError
   * on bad input; what was staged stays until `discardStaged()`.
   */
  stage(slice: Uint8Array): void;
  /** The staged transaction is complete and committed: it becomes the confirmed state. Throws EngineError when it is incomplete. */
  commitStaged(): void;
  /** Drops the staged transaction, if any: the WAL returns to the confirmed state. */
  discardStaged(): void;
  /** Bytes of the staged transaction received so far; undefined when none is staged. */
  stagedBytes(): number | undefined;
  // --- checkpoint / snapshot ---
  /** Frames in the confirmed part of the WAL. */
  walFrameCount(): number;
  /** Copies all WAL frames into the main file and truncates the WAL (blocking, deterministic). Throws if pending transactions exist. */
  checkpoint(): void;
  /** Copies of the confirmed main file + WAL bytes. */
  snapshot(): DatabaseSnapshot;
  /**
   * The confirmed main file + WAL as frozen views, without copying them (copy-on-write: a later
   * write copies the 256 KiB chunk it changes). Release both when done.
   */
  frozenSnapshot(): FrozenSnapshot;
  /** Raw file bytes: identical across replicas that applied the same log prefix. */
  files(): DatabaseSnapshot;
  // --- reads on the committed state ---
  /** The read-only view of the confirmed state (main file + confirmed WAL prefix), opened on first use. */
  readView(): ReadView;
  close(): void;
}

export interface DatabaseContext {
  readonly sqlite: SqliteModule;
  readonly guard: SqlGuard;
  readonly vfs: MemoryVfs;
  readonly vfsNamePointer: Pointer;
  readonly pendingMax: number;
  /** Where captured payloads are cut from; each goes back when its transaction is confirmed or aborted. */
  readonly payloadSlab: RecyclingSlab;
  /** Change capture for every database of the engine (off when undefined). */
  readonly changeCapture?: ChangeCaptureOptions;
  changeHooks?(): ChangeCaptureHooks;
  forget(name: string): void;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();
/** Idle statements `recycle` keeps per database; the least recently used one goes past this. */
const REUSABLE_STATEMENTS_MAX = 16;
/** SQL text longer than this is compiled each time (a statement with literals in it rarely recurs). */
const REUSABLE_SQL_CHARS_MAX = 4096;
/** SQLite's own whitespace (not Unicode's): text of only this holds no statement. */
const ONLY_WHITESPACE = /^[ \t\n\f\r]*$/;
const MAIN_HEADER_MAGIC = 'SQLite format 3\u0000';

class Captured implements CapturedTransaction {
  readonly frames: number;
  readonly payloadBytes: number;
  encodedChanges: Uint8Array | undefined;
  private changesCache: CapturedChanges | undefined;
  private pageNumbersCache: readonly number[] | undefined;
  private payloadCopy: Uint8Array | undefined;

  /** `payload` copied when taken, or `inWal`: where its bytes are, read when asked for. */
  constructor(payload: Uint8Array | undefined, frames: number, private readonly inWal?: WalRange) {
    this.payloadCopy = payload;
    this.frames = frames;
    this.payloadBytes = payload ? payload.length : PAYLOAD_HEADER_BYTES + inWal!.end - inWal!.start;
  }

  get payload(): Uint8Array {
    if (!this.payloadCopy) {
      const payload = new Uint8Array(this.payloadBytes);
      this.readPayload(payload, 0, 0, payload.length);
      this.payloadCopy = payload;
    }
    return this.payloadCopy;
  }

  readPayload(target: Uint8Array, targetOffset: number, offset: number, length: number): void {
    if (this.payloadCopy) {
      target.set(this.payloadCopy.subarray(offset, offset + length), targetOffset);
      return;
    }
    const range = this.inWal!;
    if (!range.readable()) {
      throw new EngineError('NOT_PENDING', 'the transaction is no longer in the WAL (aborted or checkpointed): its payload was not copied when taken');
    }
    readPayloadRange(range.wal, range.start, range.end, range.pageSize, target, targetOffset, offset, length);
  }

  /** Decoded on first use: a node only copies encodedChanges into its log entry. */
  get changes(): CapturedChanges | undefined {
    if (this.encodedChanges === undefined) return undefined;
    this.changesCache ??= capturedChanges(this.encodedChanges);
    return this.changesCache;
  }

  get pageNumbers(): readonly number[] {
    this.pageNumbersCache ??= payloadPageNumbers(this.payload);
    return this.pageNumbersCache;
  }
}

/** A captured transaction's bytes left in the WAL, readable until the WAL drops or rewrites them. */
interface WalRange {
  readonly wal: MemoryFile;
  readonly start: number;
  readonly end: number;
  readonly pageSize: number;
  readable(): boolean;
}

/** Page size declared by a main database file's header, or 0 when there is no valid header. */
export function mainFilePageSize(main: Uint8Array): number {
  if (main.length < 100) return 0;
  if (textDecoder.decode(main.subarray(0, 16)) !== MAIN_HEADER_MAGIC) return 0;
  const raw = (main[16]! << 8) | main[17]!;
  const pageSize = raw === 1 ? 65536 : raw;
  return isValidPageSize(pageSize) ? pageSize : 0;
}

export class DatabaseImpl implements Database, StatementHost {
  readonly name: string;
  readonly exports: SqliteExports;
  readonly wasm: SqliteWasmHelpers;
  private readonly context: DatabaseContext;
  private readonly mainPath: string;
  private readonly walPath: string;
  private pageSizeBytes: number;
  private db: Pointer = 0;
  private closed = false;
  private namePointer: Pointer;
  private readonly scratchBuffer: ScratchBuffer;
  private confirmedEnd = 0;
  /** Bumped whenever the confirmed state changes: the read view reopens when it moved. */
  private confirmedVersion = 0;
  /** Bumped by every checkpoint: the WAL restarts and its frames are rewritten. */
  private walGeneration = 0;
  private view: ReadViewImpl | undefined;
  private capturedEnd = 0;
  private pendingEnds: number[] = [];
  /** The slab block of each pending transaction's payload, in the order of `pendingEnds`. */
  private pendingBlocks: (SlabBlock | undefined)[] = [];
  private lastPayloadBlock: SlabBlock | undefined;

  private scannedSyncCount = -1;
  /** Bumped whenever WAL bytes past the start may be dropped or rewritten (abort, checkpoint, restore). */
  private walDropCount = 0;
  /** Another engine's transaction arriving in slices (stage()), and where its WAL bytes end. */
  private staged: { payload: StagedPayload; end: number } | undefined;
  private readonly statements = new Set<StatementImpl>();
  /** Idle statements of prepareReusable by their SQL text, least recently used first (all also in `statements`). */
  private readonly reusable = new Map<string, StatementImpl>();
  /** checkpoint()'s statement, kept between checkpoints (finalized with the others on close). */
  private checkpointStatement: Statement | undefined;
  private capture: ChangeCapture | undefined;
  /** The replica's WAL header, read into this for each apply (no allocation per transaction). */
  private readonly replicaWalHeader = new Uint8Array(WAL_HEADER_BYTES);

  /** Opens (creating if its main file is empty) the database `name` in `context.vfs`. */
  constructor(context: DatabaseContext, name: string, pageSizeForNew: number) {
    this.context = context;
    this.name = name;
    this.exports = context.sqlite.wasm.exports;
    this.scratchBuffer = new ScratchBuffer(this.exports);
    this.wasm = context.sqlite.wasm;
    this.mainPath = name;
    this.walPath = `${name}-wal`;
    this.namePointer = this.wasm.allocCString(name);
    const main = context.vfs.file(this.mainPath);
    const existingPageSize = main === undefined ? 0 : mainFilePageSize(main.slice(0, Math.min(main.size, 100)));
    this.pageSizeBytes = existingPageSize !== 0 ? existingPageSize : pageSizeForNew;
    const wal = context.vfs.file(this.walPath);
    this.confirmedEnd = this.capturedEnd = wal?.size ?? 0;
    if (context.changeCapture) this.capture = new ChangeCapture(this.hooks(), context.changeCapture);
    try {
      this.openConnection(existingPageSize === 0);
    } catch (error) {
      this.releaseResources();
      throw error;
    }
  }

  get pageSize(): number {
    return this.pageSizeBytes;
  }

  // --- SQL -----------------------------------------------------------------------------------

  prepare(sql: string): Statement | null {
    const db = this.connection();
    // The tail after a client's last statement, nearly always: no need to ask SQLite.
    if (ONLY_WHITESPACE.test(sql)) return null;
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
          // SQLite skips empty statements (stray semicolons) before this one: drop them from the text.
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

  prepareReusable(sql: string): Statement | null {
    if (sql.length > REUSABLE_SQL_CHARS_MAX) return this.prepare(sql);
    const idle = this.reusable.get(sql);
    if (idle) {
      this.reusable.delete(sql);
      return idle;
    }
    const statement = this.prepare(sql) as StatementImpl | null;
    if (statement) statement.reuseKey = sql;
    return statement;
  }

  recycle(statement: Statement): void {
    const impl = statement as StatementImpl;
    const key = impl.reuseKey;
    if (key === undefined || this.closed || impl.isFinalized || this.reusable.has(key)) {
      statement.finalize();
      return;
    }
    impl.unbind();
    this.reusable.set(key, impl);
    if (this.reusable.size > REUSABLE_STATEMENTS_MAX) {
      const [oldestKey, oldest] = this.reusable.entries().next().value!;
      this.reusable.delete(oldestKey);
      oldest.finalize();
    }
  }

  changes(): number {
    return this.db === 0 ? 0 : Number(this.exports.sqlite3_changes64(this.db));
  }

  lastInsertRowid(): number | bigint {
    if (this.db === 0) return 0;
    const rowid = this.exports.sqlite3_last_insert_rowid(this.db);
    return rowid >= BigInt(Number.MIN_SAFE_INTEGER) && rowid <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(rowid) : rowid;
  }

  inTransaction(): boolean {
    return this.db !== 0 && this.exports.sqlite3_get_autocommit(this.db) === 0;
  }

  interrupt(): void {
    if (this.db !== 0) this.exports.sqlite3_interrupt(this.db);
  }

  // --- capture on the leader ----------------------------------------------------------------

  takeCaptured(copyBytesMax = Infinity): CapturedTransaction[] {
    this.assertNotClosed();
    this.assertNothingStaged('take captured transactions');
    const captured: CapturedTransaction[] = [];
    const wal = this.context.vfs.file(this.walPath);
    if (this.db === 0 || wal === undefined) return captured;
    if (wal.size < this.capturedEnd) {
      throw new EngineError('WAL_DIVERGED', `WAL shrank to ${wal.size} bytes below the captured end ${this.capturedEnd}: something checkpointed outside checkpoint()`);
    }
    // Each commit ends in one xSync of the WAL: no new sync, no new commit.
    if (wal.syncCount !== this.scannedSyncCount) {
      // Refuse before taking anything: commits left in the WAL are taken by a later call.
      if (this.pendingEnds.length >= this.context.pendingMax) {
        throw new EngineError('LIMIT', `${this.pendingEnds.length} transactions pending, the limit: confirm() or abort() some before taking more`);
      }
      this.scannedSyncCount = wal.syncCount;
      this.scanCommits(wal, captured, copyBytesMax);
    }
    if (this.capture) this.attachChanges(this.capture, captured);
    // Frames past the last commit with no transaction open were rolled back: drop them so the
    // leader's WAL stays byte-identical to the followers'. SQLite never reads past its last
    // commit, and writes the next transaction right there.
    if (wal.size > this.capturedEnd && this.exports.sqlite3_get_autocommit(this.db) !== 0) {
      wal.truncate(this.capturedEnd);
    }
    return captured;
  }

  captureChanges(options: ChangeCaptureOptions | undefined): void {
    this.assertNotClosed();
    this.capture?.dispose();
    this.capture = options && new ChangeCapture(this.hooks(), options);
    if (this.capture && this.db !== 0) this.capture.attach(this.db);
    else if (!this.capture && this.db !== 0) ChangeCapture.detach(this.context.sqlite, this.db);
  }

  private hooks(): ChangeCaptureHooks {
    if (!this.context.changeHooks) throw new EngineError('SETUP', `database ${this.name} cannot capture changes`);
    return this.context.changeHooks();
  }

  /** Pairs each captured transaction with what the hooks recorded for it. */
  private attachChanges(capture: ChangeCapture, captured: CapturedTransaction[]): void {
    const changes = capture.take(captured.length, this.lookupKeyColumns);
    for (let i = 0; i < captured.length; i++) (captured[i] as Captured).encodedChanges = changes[i];
  }

  private readonly lookupKeyColumns = (table: string): number[] | undefined => this.keyColumns(table);

  /** The key columns of a WITHOUT ROWID table (undefined for a rowid table: its key is the rowid). */
  private keyColumns(table: string): number[] | undefined {
    const kind = this.prepare("SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?")!;
    try {
      kind.bind([table]);
      if (!kind.step() || kind.row()[0] !== 1) return undefined;
    } finally {
      kind.finalize();
    }
    const columns = this.prepare('SELECT cid FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk')!;
    try {
      columns.bind([table]);
      const key: number[] = [];
      while (columns.step()) key.push(Number(columns.row()[0]));
      return key;
    } finally {
      columns.finalize();
    }
  }

  confirm(count = 1): void {
    this.assertNotClosed();
    if (!Number.isInteger(count) || count < 1 || count > this.pendingEnds.length) {
      throw new EngineError('NOT_PENDING', `confirm(${count}) but ${this.pendingEnds.length} transactions are pending`);
    }
    this.confirmedEnd = this.pendingEnds[count - 1]!;
    this.confirmedVersion++;
    for (let i = 0; i < count; i++) this.context.payloadSlab.give(this.pendingBlocks[i]);
    // Raft confirms everything taken at once, nearly always: emptying allocates nothing. Popped,
    // not cut with `length = 0`: the length setter is a runtime call (a few % of a transaction).
    if (count === this.pendingEnds.length) {
      for (let i = 0; i < count; i++) {
        this.pendingEnds.pop();
        this.pendingBlocks.pop();
      }
    } else {
      this.pendingEnds.splice(0, count);
      this.pendingBlocks.splice(0, count);
    }
  }

  abort(): void {
    this.assertNotClosed();
    this.walDropCount++;
    this.staged = undefined;
    this.dropPending();
    this.capture?.reset();
    const wal = this.context.vfs.file(this.walPath);
    const walSize = wal?.size ?? 0;
    if (walSize === this.confirmedEnd) {
      // Nothing reached the WAL beyond the confirmed state: a plain rollback is exact.
      if (this.db !== 0 && this.exports.sqlite3_get_autocommit(this.db) === 0) this.exec('ROLLBACK');
      this.capturedEnd = this.confirmedEnd;
      return;
    }
    // The connection's in-memory WAL index knows the dropped frames: close it (no checkpoint),
    // cut the WAL back to the confirmed end, reopen.
    this.closeConnection();
    wal?.truncate(this.confirmedEnd);
    this.capturedEnd = this.confirmedEnd;
    this.openConnection(false);
  }

  pendingCount(): number {
    return this.pendingEnds.length;
  }

  // --- followers ---------------------------------------------------------------------------

  apply(payload: Uint8Array): void {
    this.assertNotClosed();
    this.assertNothingStaged('apply another transaction');
    this.assertCanApply();
    const decoded = decodePayload(payload);
    let wal = this.context.vfs.ensureFile(this.walPath);
    if (wal.size > this.confirmedEnd && findCommitEnds(wal, this.capturedEnd, this.pageSizeBytes).length > 0) {
      throw new EngineError('PENDING', 'cannot apply another node\'s transaction: this replica committed transactions never taken with takeCaptured(); take and abort() them first');
    }
    // Only a transaction that starts the WAL can be the first one an empty replica takes.
    const adopt = decoded.hasWalHeader && decoded.pageSize !== this.pageSizeBytes && this.holdsNothing();
    const pageSize = adopt ? decoded.pageSize : this.pageSizeBytes;
    // checkAppend reads the header only of a WAL that holds one.
    if (this.confirmedEnd >= WAL_HEADER_BYTES) wal.readInto(this.replicaWalHeader, 0, 0, WAL_HEADER_BYTES);
    const replica = describeReplicaWal(this.confirmedEnd, pageSize, wal, this.replicaWalHeader);
    checkAppend(decoded, pageSize, replica);
    const newEnd = this.confirmedEnd + decoded.walBytes.length;
    if (!wal.reserve(newEnd)) {
      throw new EngineError('LIMIT', `WAL would grow to ${newEnd} bytes, above its limit of ${wal.sizeMaxBytes} bytes: checkpoint more often`);
    }
    // Without shared memory the connection caches its WAL index: it must reopen to see new
    // frames. Close it now; the next use reopens (a follower that is not read pays nothing).
    if (this.db !== 0) this.closeConnection();
    if (adopt) {
      this.recreateEmpty(pageSize);
      wal = this.context.vfs.ensureFile(this.walPath);
    }
    wal.truncate(this.confirmedEnd);
    wal.write(decoded.walBytes, this.confirmedEnd);
    this.confirmedEnd = this.capturedEnd = newEnd;
    this.confirmedVersion++;
  }

  stage(slice: Uint8Array): void {
    this.assertNotClosed();
    if (!this.staged) {
      this.assertCanApply();
      const walBefore = this.context.vfs.ensureFile(this.walPath);
      if (walBefore.size > this.confirmedEnd && findCommitEnds(walBefore, this.capturedEnd, this.pageSizeBytes).length > 0) {
        throw new EngineError('PENDING', 'cannot stage another node\'s transaction: this replica committed transactions never taken with takeCaptured(); take and abort() them first');
      }
      // Nothing past the confirmed end is ours to keep (frames of a rolled-back transaction).
      walBefore.truncate(this.confirmedEnd);
      // The connection's WAL index must not outlive the bytes about to be written under it.
      if (this.db !== 0) this.closeConnection();
      const staged: { payload: StagedPayload; end: number } = {
        end: this.confirmedEnd,
        payload: new StagedPayload({
          begin: (header) => {
            // Only a transaction that starts the WAL can be the first one an empty replica takes.
            if (header.hasWalHeader && header.pageSize !== this.pageSizeBytes && this.holdsNothing()) this.recreateEmpty(header.pageSize);
            const wal = this.context.vfs.ensureFile(this.walPath);
            const replica = describeReplicaWal(this.confirmedEnd, this.pageSizeBytes, wal, wal.slice(0, Math.min(WAL_HEADER_BYTES, this.confirmedEnd)));
            return { pageSize: this.pageSizeBytes, replica };
          },
          append: (bytes) => {
            const wal = this.context.vfs.ensureFile(this.walPath);
            const end = staged.end + bytes.length;
            if (!wal.reserve(end)) {
              throw new EngineError('LIMIT', `WAL would grow to ${end} bytes, above its limit of ${wal.sizeMaxBytes} bytes: checkpoint more often`);
            }
            wal.write(bytes, staged.end);
            staged.end = end;
          },
        }),
      };
      this.staged = staged;
    }
    this.staged.payload.take(slice);
  }

  commitStaged(): void {
    this.assertNotClosed();
    const staged = this.staged;
    if (!staged) throw new EngineError('NOT_PENDING', 'commitStaged() but no transaction is staged');
    staged.payload.finish();
    this.staged = undefined;
    // A connection opened meanwhile (a read on this replica) knows the WAL without this commit.
    if (this.db !== 0) this.closeConnection();
    this.confirmedEnd = this.capturedEnd = staged.end;
    this.confirmedVersion++;
  }

  discardStaged(): void {
    this.assertNotClosed();
    if (!this.staged) return;
    this.staged = undefined;
    if (this.db !== 0) this.closeConnection();
    this.context.vfs.file(this.walPath)?.truncate(this.confirmedEnd);
  }

  stagedBytes(): number | undefined {
    return this.staged?.payload.receivedBytes;
  }

  private assertCanApply(): void {
    if (this.pendingEnds.length > 0) {
      throw new EngineError('PENDING', `cannot apply another node's transaction with ${this.pendingEnds.length} of our own pending: abort() first`);
    }
    if (this.inTransaction()) {
      throw new EngineError('IN_TRANSACTION', 'cannot apply another node\'s transaction while an SQL transaction is open: abort() first');
    }
  }

  private assertNothingStaged(what: string): void {
    if (this.staged) throw new EngineError('STAGED', `cannot ${what} while another node's transaction is staged: commitStaged() or discardStaged() first`);
  }

  // --- checkpoint / snapshot -----------------------------------------------------------------

  walFrameCount(): number {
    return walFrameCount(this.confirmedEnd, this.pageSizeBytes);
  }

  checkpoint(): void {
    this.assertNotClosed();
    this.assertNothingStaged('checkpoint');
    this.walDropCount++;
    if (this.pendingEnds.length > 0) {
      throw new EngineError('PENDING', `cannot checkpoint with ${this.pendingEnds.length} pending transactions: confirm() or abort() them first`);
    }
    if (this.db === 0) {
      // No connection (a follower that was not read since it applied frames): checkpoint the
      // files directly instead of paying a reopen and WAL recovery first.
      this.checkpointFiles();
      return;
    }
    const db = this.db;
    if (this.exports.sqlite3_get_autocommit(db) === 0) {
      throw new EngineError('IN_TRANSACTION', 'cannot checkpoint while an SQL transaction is open');
    }
    const wal = this.context.vfs.file(this.walPath);
    if (wal !== undefined && wal.size > this.capturedEnd) {
      if (findCommitEnds(wal, this.capturedEnd, this.pageSizeBytes).length > 0) {
        throw new EngineError('PENDING', 'cannot checkpoint: transactions committed that were never taken with takeCaptured()');
      }
      wal.truncate(this.capturedEnd);
    }
    if (this.confirmedEnd >= CHECKPOINT_BY_BYTES_WAL_BYTES_MIN) {
      // A large WAL (a load): checkpointed on the bytes, as a follower does, which gives the WAL's
      // memory back as its pages are copied; SQLite's own checkpoint holds the whole WAL beside
      // the whole main file until it ends. Same result, byte for byte (checkpointFiles).
      this.closeConnection();
      this.checkpointFiles();
      this.openConnection(false);
      return;
    }
    // Prepared once per connection, and stepped with the guard lifted too: a step re-prepares a
    // statement whose schema changed, and the guard refuses this pragma to everyone else.
    const guard = this.context.guard;
    const statement = (this.checkpointStatement ??= guard.lift(() => this.prepare('PRAGMA wal_checkpoint(TRUNCATE)')!));
    let busy: unknown;
    try {
      busy = guard.lift(() => (statement.step() ? statement.row()[0] : undefined));
    } finally {
      statement.reset();
    }
    if (busy !== 0 || (wal !== undefined && wal.size !== 0)) {
      throw new EngineError('SETUP', `checkpoint did not complete (busy=${String(busy)}, WAL ${wal?.size ?? 0} bytes)`);
    }
    this.confirmedEnd = this.capturedEnd = 0;
    this.confirmedVersion++;
    this.walGeneration++;
  }

  snapshot(): DatabaseSnapshot {
    this.assertNotClosed();
    const main = this.context.vfs.file(this.mainPath);
    const wal = this.context.vfs.file(this.walPath);
    return {
      main: main?.copy() ?? new Uint8Array(0),
      wal: wal === undefined ? new Uint8Array(0) : wal.slice(0, this.confirmedEnd),
    };
  }

  frozenSnapshot(): FrozenSnapshot {
    this.assertNotClosed();
    const main = this.context.vfs.file(this.mainPath);
    const wal = this.context.vfs.file(this.walPath);
    return { main: main?.freeze() ?? NOTHING_FROZEN, wal: wal?.freeze(this.confirmedEnd) ?? NOTHING_FROZEN };
  }

  files(): DatabaseSnapshot {
    this.assertNotClosed();
    return {
      main: this.context.vfs.file(this.mainPath)?.copy() ?? new Uint8Array(0),
      wal: this.context.vfs.file(this.walPath)?.copy() ?? new Uint8Array(0),
    };
  }

  /** Views of the main file and WAL, chunk by chunk, valid until the next write: lets tests compare replicas every step without copying. */
  fileViews(): { main: Uint8Array[]; wal: Uint8Array[] } {
    this.assertNotClosed();
    return {
      main: this.context.vfs.file(this.mainPath)?.views() ?? [],
      wal: this.context.vfs.file(this.walPath)?.views() ?? [],
    };
  }

  readView(): ReadView {
    this.assertNotClosed();
    const database = this;
    this.view ??= new ReadViewImpl(this.context, this.name, {
      committedVersion: () => this.confirmedVersion,
      committedWalBytes: () => this.confirmedEnd,
      walGeneration: () => this.walGeneration,
      get pageSize() {
        return database.pageSizeBytes;
      },
    });
    return this.view;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.dropPending();
    this.view?.close();
    this.view = undefined;
    for (const statement of this.statements) statement.detach();
    this.statements.clear();
    this.reusable.clear();
    if (this.db !== 0) this.closeConnection();
    this.capture?.dispose();
    this.capture = undefined;
    this.releaseResources();
    this.context.vfs.deleteFile(this.mainPath);
    this.context.vfs.deleteFile(this.walPath);
    this.context.forget(this.name);
  }

  // --- StatementHost -------------------------------------------------------------------------

  connection(): Pointer {
    this.assertNotClosed();
    if (this.db === 0) this.openConnection(false);
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

  statementRuns(flags: number): void {
    this.capture?.statementRuns(flags);
  }

  // --- internals -----------------------------------------------------------------------------

  /** Forgets every pending transaction, giving their payloads' memory back. */
  private dropPending(): void {
    for (const block of this.pendingBlocks) this.context.payloadSlab.give(block);
    this.pendingEnds = [];
    this.pendingBlocks = [];
  }

  private assertNotClosed(): void {
    if (this.closed) throw new EngineError('CLOSED', `database ${this.name} is closed`);
  }

  private openConnection(isNew: boolean): void {
    const x = this.exports;
    const ppDb = this.scratch(8);
    this.wasm.poke32(ppDb, 0);
    const rc = x.sqlite3_open_v2(
      this.namePointer,
      ppDb,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_EXRESCODE,
      this.context.vfsNamePointer,
    );
    const db = this.wasm.peek32(ppDb);
    if (rc !== 0) {
      const error = new SqliteError(rc, `cannot open database ${this.name}: ${this.wasm.cstrToJs(x.sqlite3_errstr(rc)) ?? rc}`);
      if (db !== 0) x.sqlite3_close_v2(db);
      throw error;
    }
    this.db = db;
    try {
      x.sqlite3_extended_result_codes(db, 1);
      this.context.sqlite.capi.sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, 0);
      // EXCLUSIVE must precede the first read: WAL without shared memory needs it.
      this.exec('PRAGMA locking_mode=EXCLUSIVE');
      if (isNew) this.exec(`PRAGMA page_size=${this.pageSizeBytes}`);
      const mode = this.queryFirst('PRAGMA journal_mode=WAL');
      if (mode !== 'wal') throw new EngineError('SETUP', `database ${this.name} did not switch to WAL mode (journal_mode=${String(mode)})`);
      this.exec('PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=0; PRAGMA temp_store=MEMORY');
      const pageSize = this.queryFirst('PRAGMA page_size');
      if (pageSize !== this.pageSizeBytes) {
        throw new EngineError('PAGE_SIZE', `database ${this.name} has page size ${String(pageSize)}, expected ${this.pageSizeBytes}`);
      }
      x.sqlite3_set_authorizer(db, this.context.guard.pointer, 0);
      this.capture?.attach(db);
    } catch (error) {
      this.closeConnection();
      throw error;
    }
    const wal = this.context.vfs.file(this.walPath);
    this.scannedSyncCount = wal?.syncCount ?? -1;
  }

  /**
   * Whether the database holds nothing at all: no WAL, and a main file of at most one page with
   * no schema, no free pages, no user_version or application_id (what opening a new name makes).
   */
  private holdsNothing(): boolean {
    if (this.confirmedEnd !== 0 || this.pendingEnds.length > 0 || this.inTransaction()) return false;
    if ((this.context.vfs.file(this.walPath)?.size ?? 0) !== 0) return false;
    const main = this.context.vfs.file(this.mainPath);
    if (main === undefined || main.size === 0) return true;
    if (main.size > this.pageSizeBytes || main.size < 100) return false;
    return main.uint32(28) <= 1 && main.uint32(32) === 0 && main.uint32(40) === 0 && main.uint32(60) === 0 && main.uint32(68) === 0;
  }

  /**
   * A database's page size is chosen by the node that creates it, the leader; a follower
   * configured otherwise (or that opened the name before the first transaction arrived) holds an
   * empty database of its own page size. It is made again, empty, with the leader's page size,
   * the way the leader made it, so that the replicas stay byte-identical.
   */
  private recreateEmpty(pageSize: number): void {
    this.context.vfs.deleteFile(this.mainPath);
    this.context.vfs.deleteFile(this.walPath);
    this.pageSizeBytes = pageSize;
    this.openConnection(true);
    this.closeConnection();
    this.confirmedVersion++;
    this.walGeneration++;
  }

  private closeConnection(): void {
    for (const statement of this.statements) statement.detach();
    if (this.db !== 0) this.exports.sqlite3_close_v2(this.db);
    this.db = 0;
  }

  private releaseResources(): void {
    this.scratchBuffer.free();
    if (this.namePointer !== 0) this.wasm.dealloc(this.namePointer);
    this.namePointer = 0;
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

  private queryFirst(sql: string): unknown {
    const statement = this.prepare(sql)!;
    try {
      return statement.step() ? statement.row()[0] : undefined;
    } finally {
      statement.finalize();
    }
  }

  /**
   * What `PRAGMA wal_checkpoint(TRUNCATE)` does to the files, done on the bytes while no
   * connection is open: every page numbered up to the last commit's database size takes its
   * latest WAL image, the main file is cut to that size, the WAL to zero. The randomized replica
   * test compares its result byte for byte with SQLite's own checkpoint on the leader. Each chunk
   * of the WAL is given back once the last page whose image it holds is copied, and the main file
   * is grown a page at a time: a load's WAL, whose frames come about in page order, turns into
   * the main file without both being held whole at once.
   */
  private checkpointFiles(): void {
    this.context.vfs.holdingChunks(() => this.checkpointFilesNow());
  }

  private checkpointFilesNow(): void {
    const wal = this.context.vfs.file(this.walPath);
    this.confirmedVersion++;
    this.walGeneration++;
    if (wal === undefined || this.confirmedEnd === 0) {
      wal?.truncate(0);
      this.confirmedEnd = this.capturedEnd = 0;
      return;
    }
    const pageSize = this.pageSizeBytes;
    const frameBytes = WAL_FRAME_HEADER_BYTES + pageSize;
    const frames = walFrameCount(this.confirmedEnd, pageSize);
    const databasePages = wal.uint32(WAL_HEADER_BYTES + (frames - 1) * frameBytes + 4);
    if (databasePages === 0) throw new EngineError('NO_COMMIT', 'the confirmed WAL does not end with a commit frame');
    const main = this.context.vfs.ensureFile(this.mainPath);
    const databaseBytes = databasePages * pageSize;
    // Checked before anything is given back: past this point nothing may fail.
    if (Math.max(databaseBytes, main.size) > main.sizeMaxBytes) {
      throw new EngineError('LIMIT', `checkpoint would grow the database to ${databaseBytes} bytes, above its limit of ${main.sizeMaxBytes}`);
    }
    // Each page is copied once, from its latest image, in page order: the main file then grows
    // by appending, never first zero-filling a gap that the pages below fill again.
    const latestFrame = new Int32Array(databasePages + 1).fill(-1);
    for (let i = 0; i < frames; i++) {
      const pageNumber = wal.uint32(WAL_HEADER_BYTES + i * frameBytes);
      if (pageNumber <= databasePages) latestFrame[pageNumber] = i;
    }
    // The last page (in page order) whose image each WAL chunk holds: the chunk goes once it is copied.
    const walChunks = Math.ceil(wal.size / CHUNK_BYTES);
    const lastPageOfChunk = new Int32Array(walChunks);
    for (let pageNumber = 1; pageNumber <= databasePages; pageNumber++) {
      const frame = latestFrame[pageNumber]!;
      if (frame < 0) continue;
      const start = WAL_HEADER_BYTES + frame * frameBytes + WAL_FRAME_HEADER_BYTES;
      for (let chunk = Math.floor(start / CHUNK_BYTES); chunk <= Math.floor((start + pageSize - 1) / CHUNK_BYTES); chunk++) lastPageOfChunk[chunk] = pageNumber;
    }
    const dropOrder = Array.from({ length: walChunks }, (_, chunk) => chunk).sort((a, b) => lastPageOfChunk[a]! - lastPageOfChunk[b]!);
    let dropped = 0;
    const dropCopied = (pageNumber: number): void => {
      while (dropped < walChunks && lastPageOfChunk[dropOrder[dropped]!]! <= pageNumber) wal.dropChunk(dropOrder[dropped++]!);
    };
    dropCopied(0);
    for (let pageNumber = 1; pageNumber <= databasePages; pageNumber++) {
      const frame = latestFrame[pageNumber]!;
      if (frame < 0) continue;
      main.reserve(pageNumber * pageSize);
      wal.copyTo(main, (pageNumber - 1) * pageSize, WAL_HEADER_BYTES + frame * frameBytes + WAL_FRAME_HEADER_BYTES, pageSize);
      dropCopied(pageNumber);
    }
    main.reserve(Math.max(databaseBytes, main.size));
    main.truncate(databaseBytes);
    wal.truncate(0);
    this.confirmedEnd = this.capturedEnd = 0;
  }

  /** An array for a payload, from the engine's slab; its block is `lastPayloadBlock` then. */
  private allocatePayload(lengthBytes: number): Uint8Array {
    // encodePayloadInto writes every byte: no zero-fill first.
    const piece = this.context.payloadSlab.take(lengthBytes, false);
    this.lastPayloadBlock = piece.block;
    return piece.bytes;
  }

  /** Records each transaction SQLite committed after `capturedEnd` as pending and captures it. */
  private scanCommits(wal: MemoryFile, captured: CapturedTransaction[], copyBytesMax: number): void {
    const pageSize = this.pageSizeBytes;
    const frameBytes = WAL_FRAME_HEADER_BYTES + pageSize;
    let start = this.capturedEnd;
    for (let end = nextCommitEnd(wal, start, pageSize); end !== 0; end = nextCommitEnd(wal, end, pageSize)) {
      const frames = (end - start - (start === 0 ? WAL_HEADER_BYTES : 0)) / frameBytes;
      this.lastPayloadBlock = undefined;
      if (PAYLOAD_HEADER_BYTES + end - start > copyBytesMax) {
        const generation = this.walDropCount;
        const range: WalRange = { wal, start, end, pageSize, readable: () => !this.closed && this.walDropCount === generation };
        captured.push(new Captured(undefined, frames, range));
      } else {
        captured.push(new Captured(encodePayloadInto(this.allocatePayload(PAYLOAD_HEADER_BYTES + end - start), wal, start, end, pageSize), frames));
      }
      this.pendingEnds.push(end);
      this.pendingBlocks.push(this.lastPayloadBlock);
      start = end;
    }
    this.capturedEnd = start;
  }
}

/**
 * End offsets of the transactions committed in the WAL after byte `from` (0: from the header):
 * each ends with a frame whose commit field is set. Frames past the last commit belong to an
 * open or rolled-back transaction and never carry a commit mark.
 */
function findCommitEnds(wal: MemoryFile, from: number, pageSize: number): number[] {
  const ends: number[] = [];
  for (let end = nextCommitEnd(wal, from, pageSize); end !== 0; end = nextCommitEnd(wal, end, pageSize)) ends.push(end);
  return ends;
}

/** The end offset of the first transaction committed in the WAL after byte `from`, or 0 when there is none. */
function nextCommitEnd(wal: MemoryFile, from: number, pageSize: number): number {
  const walSize = wal.size;
  if (walSize < WAL_HEADER_BYTES) return 0;
  const frameBytes = WAL_FRAME_HEADER_BYTES + pageSize;
  const salt1 = wal.uint32(16);
  const salt2 = wal.uint32(20);
  let offset = from === 0 ? WAL_HEADER_BYTES : from;
  while (offset + frameBytes <= walSize) {
    // A frame with other salts is left over from an earlier WAL generation: the log ends.
    if (wal.uint32(offset + 8) !== salt1 || wal.uint32(offset + 12) !== salt2) return 0;
    const commitPageCount = wal.uint32(offset + 4);
    offset += frameBytes;
    if (commitPageCount !== 0) return offset;
  }
  return 0;
}

/** Checks snapshot bytes before they replace a database; throws EngineError('BAD_SNAPSHOT'). */
export function checkSnapshot(snapshot: DatabaseSnapshot): number {
  const { main, wal } = snapshot;
  if (!(main instanceof Uint8Array) || !(wal instanceof Uint8Array)) {
    throw new EngineError('BAD_SNAPSHOT', 'snapshot needs `main` and `wal` byte arrays');
  }
  const pageSize = mainFilePageSize(main);
  if (pageSize === 0) throw new EngineError('BAD_SNAPSHOT', 'snapshot main file does not start with a valid SQLite header');
  if (main.length % pageSize !== 0) {
    throw new EngineError('BAD_SNAPSHOT', `snapshot main file is ${main.length} bytes, not a whole number of ${pageSize}-byte pages`);
  }
  if (main[18] !== 2 || main[19] !== 2) throw new EngineError('BAD_SNAPSHOT', 'snapshot main file is not in WAL mode');
  if (wal.length === 0) return pageSize;
  if (wal.length < WAL_HEADER_BYTES) throw new EngineError('BAD_SNAPSHOT', `snapshot WAL is ${wal.length} bytes, shorter than a WAL header`);
  const problem = checkWalHeader(wal, 0);
  if (problem !== null) throw new EngineError('BAD_SNAPSHOT', `snapshot WAL header is invalid (${problem})`);
  const walPageSize = walHeaderPageSize(decodeWalHeader(wal, 0));
  if (walPageSize !== pageSize) {
    throw new EngineError('BAD_SNAPSHOT', `snapshot WAL has ${walPageSize}-byte pages, its main file ${pageSize}-byte pages`);
  }
  const frameBytes = WAL_FRAME_HEADER_BYTES + pageSize;
  if ((wal.length - WAL_HEADER_BYTES) % frameBytes !== 0) {
    throw new EngineError('BAD_SNAPSHOT', `snapshot WAL is ${wal.length} bytes, not a header plus whole frames`);
  }
  // Validate the frames as if appended to an empty WAL, one payload-shaped view at a time.
  const frames = (wal.length - WAL_HEADER_BYTES) / frameBytes;
  if (frames > 0) {
    const lastCommit = readFrameCommitPageCount(wal, wal.length - frameBytes);
    if (lastCommit === 0) throw new EngineError('BAD_SNAPSHOT', 'snapshot WAL does not end with a commit frame');
    try {
      let end = 0;
      let offset = WAL_HEADER_BYTES;
      while (offset < wal.length) {
        const commit = readFrameCommitPageCount(wal, offset);
        offset += frameBytes;
        if (commit !== 0) {
          const replica: ReplicaWal = describeReplicaWal(end, pageSize, { uint32: (at) => readUint32BigEndian(wal, at) }, wal.subarray(0, WAL_HEADER_BYTES));
          checkAppend(decodePayload(encodePayload(bytesSource(wal), end, offset, pageSize)), pageSize, replica);
          end = offset;
        }
      }
    } catch (error) {
      if (error instanceof EngineError) throw new EngineError('BAD_SNAPSHOT', `snapshot WAL: ${error.message}`);
      throw error;
    }
  }
  return pageSize;
}


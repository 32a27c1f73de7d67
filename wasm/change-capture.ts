// Change capture on the leader's connection: per committed transaction, the tables it changed
// and its row changes (operation, table, primary key, new values), so that what changed can
// travel in the log next to the frames and no replica has to decode pages to know it.
//
// Cheapest of the two ways the build offers: SQLite's pre-update hook (one JS call per changed
// row, reading only the new values; the session extension would add a changeset to build, walk
// and free per transaction and still lacks the full new row of an update). The hook writes each
// row's values straight from SQLite's memory into one buffer, already in the change set's
// encoding (change-set.ts): no JS value per column, no text decoded to be encoded again. The
// commit hook closes a transaction, the rollback hook drops it; `take` cuts each committed one
// into its change set body, which a node copies into the log entry without decoding it.
//
// What the hook cannot see is marked by the statement that does it (statement.ts): DDL (no hook
// fires for sqlite_schema) adds SCHEMA_TABLE to the tables, and ROLLBACK TO (rows it undid were
// already recorded) keeps only the table list (rowsOmitted). Above `changeSetBytesMax` only the
// table list is kept too.
//
// Primary keys: the rowid for rowid tables (the hook's key); for WITHOUT ROWID tables the
// declared key columns, read from the values after the commit (schema lookups cannot run
// inside the hook), so a delete records its old values until then.

import { ByteSlab } from './byte-slab.ts';
import {
  CHANGE_SET_ROWS_OMITTED,
  decodeChangeSetBody,
  OPERATION_DELETE,
  OPERATION_INSERT,
  OPERATION_UPDATE,
  VALUE_BLOB,
  VALUE_FLOAT,
  VALUE_INTEGER,
  VALUE_NULL,
  VALUE_TEXT,
} from './change-set.ts';
import type { Pointer, SqliteModule } from './sqlite-api.ts';
import { SQLITE_BLOB, SQLITE_FLOAT, SQLITE_INTEGER, SQLITE_TEXT } from './sqlite-api.ts';
import type { SqlValue } from './statement.ts';

export type CapturedRowOperation = 'insert' | 'update' | 'delete';

export interface CapturedRow {
  operation: CapturedRowOperation;
  table: string;
  /** The row's primary key: [rowid] for a rowid table, the key columns for WITHOUT ROWID. */
  primaryKey: SqlValue[];
  /** The row's values after the change (every column, in table order); undefined for a delete. */
  values?: SqlValue[];
}

export interface CapturedChanges {
  /** Tables changed, sorted, each once; SCHEMA_TABLE when the transaction changed the schema. */
  tables: string[];
  /** Row changes in order; undefined when rowsOmitted. */
  rows?: CapturedRow[];
  rowsOmitted: boolean;
}

export interface ChangeCaptureOptions {
  /** Rows are dropped (only the table list kept) once a transaction's estimated size passes this. */
  changeSetBytesMax: number;
}

/** Listed among a transaction's tables when it changed the schema: treat every table as changed. */
export const SCHEMA_TABLE = 'sqlite_schema';

/** What a statement does that the pre-update hook cannot see (statement.ts sets these at prepare). */
export const STATEMENT_CHANGES_SCHEMA = 1;
export const STATEMENT_ROLLS_BACK_SAVEPOINT = 2;

const SQLITE_DELETE = 9;
const SQLITE_INSERT = 18;
const SQLITE_UPDATE = 23;
/** Bytes counted per row and per value by the size estimate (about their encoded size). */
const ROW_OVERHEAD_BYTES = 16;
const VALUE_OVERHEAD_BYTES = 9;

// The hook writes each row as the change set has it (change-set.ts), with two provisional
// parts that `take` resolves (schema lookups cannot run in the hook): the table is a slot of
// OpenTransaction.tables (first-seen order, not yet the sorted list's index), the key is the
// rowid (a WITHOUT ROWID table's key is read from its values), and a delete whose table's key
// is not known yet keeps its old values under DELETE_WITH_VALUES.
const ROW_TABLE = 1;
/** u8 operation, u32 table, u16 key count 1, u8 integer type, i64 rowid. */
const ROW_ROWID = 8;
const ROW_HEADER_BYTES = 16;
const DELETE_WITH_VALUES = 0x83;
const TWO_POW_32 = 2 ** 32;
const SPARE_TRANSACTIONS_MAX = 8;
const TWO_POW_53 = 2 ** 53;
const ROW_BUFFER_INITIAL_BYTES = 4 * 1024;
/** A row buffer grown past this by a large transaction is dropped once it is empty again. */
const ROW_BUFFER_KEPT_BYTES = 64 * 1024;

interface ValueExports {
  sqlite3_preupdate_hook(db: Pointer, callback: Pointer, context: Pointer): Pointer;
  sqlite3_commit_hook(db: Pointer, callback: Pointer, context: Pointer): Pointer;
  sqlite3_rollback_hook(db: Pointer, callback: Pointer, context: Pointer): Pointer;
  sqlite3_preupdate_count(db: Pointer): number;
  sqlite3_preupdate_new(db: Pointer, column: number, ppValue: Pointer): number;
  sqlite3_preupdate_old(db: Pointer, column: number, ppValue: Pointer): number;
  sqlite3_value_type(value: Pointer): number;
  sqlite3_value_int64(value: Pointer): bigint;
  sqlite3_value_double(value: Pointer): number;
  sqlite3_value_text(value: Pointer): Pointer;
  sqlite3_value_blob(value: Pointer): Pointer;
  sqlite3_value_bytes(value: Pointer): number;
  sqlite3_malloc(bytes: number): Pointer;
  sqlite3_free(pointer: Pointer): void;
}

/** One transaction as the hooks saw it; its rows are records in the capture's row buffer. */
interface OpenTransaction {
  /** Where its row records start in the row buffer; they end where the next transaction's start. */
  start: number;
  end: number;
  rowCount: number;
  /** The size estimate checked against changeSetBytesMax. */
  bytes: number;
  rowsOmitted: boolean;
  /** Some delete kept its old values (DELETE_WITH_VALUES). */
  deletesWithValues: boolean;
  /** Table names by slot, in the order first seen (a name may repeat after a schema change). */
  tables: string[];
  /** Tells whether a table name's cached slot belongs to this transaction. */
  generation: number;
}

interface TableName {
  name: string;
  /** The name's bytes at its pointer, to tell a reused pointer. */
  bytes: Uint8Array;
  generation: number;
  slot: number;
}

/** How the primary key of a table is read: undefined for a rowid table. */
type KeyColumns = number[] | undefined;

const NOTHING: (Uint8Array | undefined)[] = [];
/** Change sets are cut from shared blocks: a fresh small array per transaction costs its own backing store (byte-slab.ts). */
const changeSetSlab = new ByteSlab(64 * 1024, 16 * 1024);
// ignoreBOM: a text value that starts with U+FEFF keeps it.
const textDecoder = new TextDecoder('utf-8', { ignoreBOM: true });
const utf8Encoder = new TextEncoder();
const NAME_BYTES_CACHED_MAX = 256;

/** The engine's hooks, installed once in the WASM function table, dispatching by connection. */
export class ChangeCaptureHooks {
  private readonly captures = new Map<number, ChangeCapture>();
  private nextId = 1;
  readonly preupdate: Pointer;
  readonly commit: Pointer;
  readonly rollback: Pointer;

  constructor(readonly sqlite: SqliteModule) {
    const wasm = sqlite.wasm;
    this.preupdate = wasm.installFunction(
      ((id: number, db: Pointer, op: number, zDb: Pointer, zTable: Pointer, oldKey: bigint, newKey: bigint): void => {
        this.captures.get(id)?.row(db, op, zDb, zTable, oldKey, newKey);
      }) as (...args: never[]) => unknown,
      'v(ppippjj)',
    );
    this.commit = wasm.installFunction(((id: number): number => {
      this.captures.get(id)?.committed();
      return 0;
    }) as (...args: never[]) => unknown, 'i(p)');
    this.rollback = wasm.installFunction(((id: number): void => {
      this.captures.get(id)?.rolledBack();
    }) as (...args: never[]) => unknown, 'v(p)');
  }

  register(capture: ChangeCapture): number {
    const id = this.nextId++;
    this.captures.set(id, capture);
    return id;
  }

  unregister(id: number): void {
    this.captures.delete(id);
  }
}

/** The capture of one database: its open transaction and the committed ones not yet taken. */
export class ChangeCapture {
  private readonly x: ValueExports;
  private readonly id: number;
  private readonly valueSlot: Pointer;
  private open: OpenTransaction | undefined;
  private readonly done: (OpenTransaction | undefined)[] = [];
  /** Transactions taken, to record the next ones in (they are never handed out). */
  private readonly spare: OpenTransaction[] = [];
  private readonly taken: (Uint8Array | undefined)[] = [];
  private generation = 0;
  private readonly keyColumns = new Map<string, KeyColumns>();
  /** Table names by the pointer SQLite passes (its schema's own copy), checked byte for byte. */
  private readonly names = new Map<Pointer, TableName>();
  private readonly nameBytes = new Map<string, Uint8Array>();
  private mainPointer: Pointer = 0;
  /** Row records of the committed transactions not yet taken, then the open one's. Never handed out. */
  private rowBytes: Uint8Array = new Uint8Array(ROW_BUFFER_INITIAL_BYTES);
  private rowView: DataView = new DataView(this.rowBytes.buffer);
  private rowLength = 0;
  private heap: Uint8Array = new Uint8Array(0);
  private heapWords: Int32Array = new Int32Array(0);

  constructor(
    private readonly hooks: ChangeCaptureHooks,
    private readonly options: ChangeCaptureOptions,
  ) {
    this.x = hooks.sqlite.wasm.exports as unknown as ValueExports;
    this.id = hooks.register(this);
    this.valueSlot = this.x.sqlite3_malloc(8);
  }

  /** Installs the hooks on a (re)opened connection. */
  attach(db: Pointer): void {
    this.x.sqlite3_preupdate_hook(db, this.hooks.preupdate, this.id);
    this.x.sqlite3_commit_hook(db, this.hooks.commit, this.id);
    this.x.sqlite3_rollback_hook(db, this.hooks.rollback, this.id);
    this.dropOpen();
    this.names.clear();
    this.mainPointer = 0;
  }

  /** Removes the hooks from a connection whose capture was turned off. */
  static detach(sqlite: SqliteModule, db: Pointer): void {
    const x = sqlite.wasm.exports as unknown as ValueExports;
    x.sqlite3_preupdate_hook(db, 0, 0);
    x.sqlite3_commit_hook(db, 0, 0);
    x.sqlite3_rollback_hook(db, 0, 0);
  }

  /** The engine went back to its confirmed state: nothing recorded so far will be proposed. */
  reset(): void {
    this.open = undefined;
    this.done.length = 0;
    this.emptyRowBuffer();
  }

  dispose(): void {
    this.hooks.unregister(this.id);
    this.x.sqlite3_free(this.valueSlot);
  }

  /** A statement the hook cannot see through is about to run (STATEMENT_* flags). */
  statementRuns(flags: number): void {
    const open = this.openTransaction();
    if (flags & STATEMENT_CHANGES_SCHEMA) {
      if (!open.tables.includes(SCHEMA_TABLE)) open.tables.push(SCHEMA_TABLE);
      this.keyColumns.clear();
      this.names.clear();
    }
    if (flags & STATEMENT_ROLLS_BACK_SAVEPOINT) this.omitRows(open);
  }

  row(db: Pointer, op: number, zDb: Pointer, zTable: Pointer, oldKey: bigint, newKey: bigint): void {
    // Only the main database replicates (temp tables live on the leader alone).
    if (zDb !== this.mainPointer) {
      if (this.heapTo(zDb + 1)[zDb] !== 0x6d /* 'm' */ || this.hooks.sqlite.wasm.cstrToJs(zDb) !== 'main') return;
      this.mainPointer = zDb;
    }
    const open = this.openTransaction();
    const slot = this.tableSlot(zTable, open);
    if (open.rowsOmitted) return;
    const x = this.x;
    const columns = x.sqlite3_preupdate_count(db);
    const isDelete = op === SQLITE_DELETE;
    let keepValues = true;
    let operation = op === SQLITE_INSERT ? OPERATION_INSERT : op === SQLITE_UPDATE ? OPERATION_UPDATE : OPERATION_DELETE;
    if (isDelete) {
      // A delete keeps its old values only while its key may have to be read from them.
      const table = open.tables[slot]!;
      keepValues = this.keyColumns.get(table) !== undefined || !this.keyColumns.has(table);
      if (keepValues) operation = DELETE_WITH_VALUES;
    }
    const bytesMax = this.options.changeSetBytesMax;
    let at = this.rowLength;
    let rows = 1;
    this.room(at + 2 * ROW_HEADER_BYTES + 2 + columns * 9);
    if (op === SQLITE_UPDATE && oldKey !== newKey) {
      // The rowid changed: the old row is gone, a new one exists.
      this.writeRowHeader(at, OPERATION_DELETE, slot, oldKey);
      at += ROW_HEADER_BYTES;
      operation = OPERATION_INSERT;
      rows = 2;
    }
    this.writeRowHeader(at, operation, slot, isDelete ? oldKey : newKey);
    const countAt = at + ROW_HEADER_BYTES;
    let w = keepValues ? countAt + 2 : countAt;
    const read = isDelete ? x.sqlite3_preupdate_old : x.sqlite3_preupdate_new;
    const valueSlot = this.valueSlot;
    let bytes = ROW_OVERHEAD_BYTES;
    for (let i = 0; i < columns; i++) {
      if (read(db, i, valueSlot) !== 0) {
        if (keepValues) this.rowBytes[w++] = VALUE_NULL;
        continue;
      }
      const value = this.heapWordsTo(valueSlot + 4)[valueSlot >> 2]!;
      bytes += VALUE_OVERHEAD_BYTES;
      switch (x.sqlite3_value_type(value)) {
        case SQLITE_INTEGER: {
          if (!keepValues) break;
          // As a double first: below 2^53 it is exact, and no BigInt is made for it.
          const approximate = x.sqlite3_value_double(value);
          this.rowBytes[w] = VALUE_INTEGER;
          if (approximate < TWO_POW_53 && approximate > -TWO_POW_53) writeSafeInt64(this.rowView, w + 1, approximate);
          else this.rowView.setBigInt64(w + 1, x.sqlite3_value_int64(value), true);
          w += 9;
          break;
        }
        case SQLITE_FLOAT: {
          const float = x.sqlite3_value_double(value);
          if (!keepValues) break;
          // As a JS number went before: one that is a safe integer travels as an integer.
          if (Number.isSafeInteger(float)) {
            this.rowBytes[w] = VALUE_INTEGER;
            writeSafeInt64(this.rowView, w + 1, float);
          } else {
            this.rowBytes[w] = VALUE_FLOAT;
            this.rowView.setFloat64(w + 1, float, true);
          }
          w += 9;
          break;
        }
        case SQLITE_TEXT: {
          const pointer = x.sqlite3_value_text(value);
          const length = x.sqlite3_value_bytes(value);
          bytes += length;
          if (open.bytes + bytes > bytesMax) return this.omitRows(open);
          if (keepValues) w = this.writeText(w, pointer, length, (columns - i) * 9);
          break;
        }
        case SQLITE_BLOB: {
          const pointer = x.sqlite3_value_blob(value);
          const length = x.sqlite3_value_bytes(value);
          bytes += length;
          if (open.bytes + bytes > bytesMax) return this.omitRows(open);
          if (keepValues) {
            this.room(w + 5 + length + (columns - i) * 9);
            const target = this.rowBytes;
            target[w] = VALUE_BLOB;
            this.rowView.setUint32(w + 1, length, true);
            if (length > 0) target.set(this.heapTo(pointer + length).subarray(pointer, pointer + length), w + 5);
            w += 5 + length;
          }
          break;
        }
        default:
          if (keepValues) this.rowBytes[w++] = VALUE_NULL;
      }
    }
    open.bytes += bytes;
    if (open.bytes > bytesMax) return this.omitRows(open);
    if (keepValues) this.rowView.setUint16(countAt, columns, true);
    this.rowLength = w;
    open.rowCount += rows;
  }

  committed(): void {
    if (this.open) this.open.end = this.rowLength;
    this.done.push(this.open);
    this.open = undefined;
  }

  rolledBack(): void {
    this.dropOpen();
  }

  /**
   * The change set bodies (change-set.ts) of the last `count` transactions that committed since
   * the last call, paired with the WAL commits the engine found. A write transaction that wrote
   * no page (a DELETE that matched nothing) commits in SQLite but not in the WAL: empty ones go
   * first when there are more commits here than in the WAL. `lookup` answers schema questions
   * outside the hook. Each body is the caller's to keep; the array is valid until the next call.
   */
  take(count: number, lookup: (table: string) => KeyColumns): (Uint8Array | undefined)[] {
    if (count === 0 && this.done.length === 0) return NOTHING;
    let done = this.done;
    if (done.length > count) {
      done = done.slice();
      for (let i = 0; i < done.length && done.length > count; ) {
        const tx = done[i];
        if (tx === undefined || tx.tables.length === 0) done.splice(i, 1);
        else i++;
      }
      while (done.length > count) done.shift();
    }
    const result = this.taken;
    // Resized by push and pop, not by setting `length`: that setter is a runtime call, and this
    // runs once per transaction.
    while (result.length > count) result.pop();
    while (result.length < count) result.push(undefined);
    const missing = count - done.length;
    for (let i = 0; i < missing; i++) result[i] = undefined;
    for (let i = 0; i < done.length; i++) result[missing + i] = this.finish(done[i], lookup);
    for (const tx of this.done) if (tx !== undefined && this.spare.length < SPARE_TRANSACTIONS_MAX) this.spare.push(tx);
    while (this.done.length > 0) this.done.pop();
    if (this.open === undefined) this.emptyRowBuffer();
    return result;
  }

  /** The change set body of one committed transaction: one array, sized once. */
  private finish(tx: OpenTransaction | undefined, lookup: (table: string) => KeyColumns): Uint8Array {
    if (tx === undefined || (tx.tables.length === 0 && !tx.rowsOmitted)) return changeSetSlab.take(9); // no tables, no rows: all zero
    const slots = tx.tables;
    let tables = slots;
    let slotIndex: number[] | undefined;
    if (slots.length > 1) {
      tables = [...new Set(slots)].sort();
      for (let slot = 0; slot < slots.length; slot++) {
        if (tables[slot] === slots[slot]) continue;
        slotIndex = slots.map((name) => tables.indexOf(name));
        break;
      }
    }
    let size = 5;
    const nameBytes: Uint8Array[] = new Array<Uint8Array>(tables.length);
    for (let i = 0; i < tables.length; i++) {
      nameBytes[i] = this.encodedName(tables[i]!);
      size += 4 + nameBytes[i]!.length;
    }
    if (tx.rowsOmitted) {
      const body = changeSetSlab.take(size);
      body[0] = CHANGE_SET_ROWS_OMITTED;
      writeTables(body, 1, nameBytes);
      return body;
    }
    let keys: KeyColumns[] | undefined;
    for (let slot = 0; slot < slots.length; slot++) {
      const key = this.keyColumnsOf(slots[slot]!, lookup);
      if (key === undefined) continue;
      keys ??= new Array<KeyColumns>(slots.length);
      keys[slot] = key;
    }
    size += 4;
    if (keys === undefined && slotIndex === undefined && !tx.deletesWithValues) {
      // Every row is final already: one copy.
      const body = changeSetSlab.take(size + tx.end - tx.start);
      const w = writeUint32(body, writeTables(body, 1, nameBytes), tx.rowCount);
      body.set(this.rowBytes.subarray(tx.start, tx.end), w);
      return body;
    }
    const rowsBytes = resolveRows(this.rowBytes, tx.start, tx.end, keys, slotIndex, undefined, 0);
    const body = changeSetSlab.take(size + rowsBytes);
    const w = writeUint32(body, writeTables(body, 1, nameBytes), tx.rowCount);
    const end = resolveRows(this.rowBytes, tx.start, tx.end, keys, slotIndex, body, w);
    if (end !== body.length) throw new Error(`change set of ${body.length} bytes written as ${end}`);
    return body;
  }

  private keyColumnsOf(table: string, lookup: (table: string) => KeyColumns): KeyColumns {
    if (this.keyColumns.has(table)) return this.keyColumns.get(table);
    const key = table === SCHEMA_TABLE ? undefined : lookup(table);
    this.keyColumns.set(table, key);
    return key;
  }

  private encodedName(name: string): Uint8Array {
    let bytes = this.nameBytes.get(name);
    if (bytes === undefined) {
      if (this.nameBytes.size >= NAME_BYTES_CACHED_MAX) this.nameBytes.clear();
      bytes = utf8Encoder.encode(name);
      this.nameBytes.set(name, bytes);
    }
    return bytes;
  }

  /** The slot of the table at `zTable` in `open`, adding it on first sight. */
  private tableSlot(zTable: Pointer, open: OpenTransaction): number {
    const entry = this.tableName(zTable);
    if (entry.generation !== open.generation) {
      entry.generation = open.generation;
      entry.slot = open.tables.length;
      open.tables.push(entry.name);
    }
    return entry.slot;
  }

  /** The name at `zTable`, decoded once per pointer (a reused pointer with other bytes is decoded again). */
  private tableName(zTable: Pointer): TableName {
    const heap = this.heapTo(zTable + 1);
    const known = this.names.get(zTable);
    if (known) {
      const bytes = known.bytes;
      let same = heap[zTable + bytes.length] === 0;
      for (let i = 0; same && i < bytes.length; i++) same = heap[zTable + i] === bytes[i];
      if (same) return known;
    }
    let end = zTable;
    while (heap[end] !== 0) end++;
    const bytes = heap.slice(zTable, end);
    const entry: TableName = { name: textDecoder.decode(bytes), bytes, generation: -1, slot: 0 };
    this.names.set(zTable, entry);
    return entry;
  }

  private openTransaction(): OpenTransaction {
    if (this.open !== undefined) return this.open;
    const open = this.spare.pop() ?? { start: 0, end: 0, rowCount: 0, bytes: 0, rowsOmitted: false, deletesWithValues: false, tables: [], generation: 0 };
    open.start = open.end = this.rowLength;
    open.rowCount = open.bytes = 0;
    open.rowsOmitted = open.deletesWithValues = false;
    open.tables.length = 0;
    open.generation = ++this.generation;
    this.open = open;
    return open;
  }

  /** Keeps only the table list of `open`: its rows so far go. */
  private omitRows(open: OpenTransaction): void {
    open.rowsOmitted = true;
    open.rowCount = 0;
    this.rowLength = open.start;
  }

  private dropOpen(): void {
    if (this.open) this.rowLength = this.open.start;
    this.open = undefined;
  }

  private emptyRowBuffer(): void {
    this.rowLength = 0;
    if (this.rowBytes.length > ROW_BUFFER_KEPT_BYTES) this.setRowBuffer(new Uint8Array(ROW_BUFFER_INITIAL_BYTES));
  }

  /** Makes the row buffer hold at least `bytes`. */
  private room(bytes: number): void {
    if (bytes <= this.rowBytes.length) return;
    let size = this.rowBytes.length * 2;
    while (size < bytes) size *= 2;
    const grown = new Uint8Array(size);
    // All of it: the row being written lies past rowLength.
    grown.set(this.rowBytes);
    this.setRowBuffer(grown);
  }

  private setRowBuffer(bytes: Uint8Array): void {
    this.rowBytes = bytes;
    this.rowView = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private writeRowHeader(at: number, operation: number, slot: number, rowid: bigint): void {
    const view = this.rowView;
    view.setUint8(at, operation);
    view.setUint32(at + ROW_TABLE, slot, true);
    view.setUint16(at + ROW_TABLE + 4, 1, true);
    view.setUint8(at + ROW_TABLE + 6, VALUE_INTEGER);
    view.setBigInt64(at + ROW_ROWID, rowid, true);
    if (operation === DELETE_WITH_VALUES) this.open!.deletesWithValues = true;
  }

  /**
   * Writes SQLite's UTF-8 as it is when it is ASCII; other text is decoded and encoded again, as
   * any invalid sequence must become U+FFFD. Keeps `reserveBytes` of room after it.
   */
  private writeText(w: number, pointer: Pointer, length: number, reserveBytes: number): number {
    this.room(w + 5 + length + reserveBytes);
    this.rowBytes[w] = VALUE_TEXT;
    if (length === 0) {
      this.rowView.setUint32(w + 1, 0, true);
      return w + 5;
    }
    const heap = this.heapTo(pointer + length);
    if (isAscii(heap, this.heapWordsTo(pointer + length), pointer, length)) {
      this.rowView.setUint32(w + 1, length, true);
      this.rowBytes.set(heap.subarray(pointer, pointer + length), w + 5);
      return w + 5 + length;
    }
    const text = textDecoder.decode(heap.subarray(pointer, pointer + length));
    this.room(w + 5 + text.length * 3 + reserveBytes);
    const { written } = utf8Encoder.encodeInto(text, this.rowBytes.subarray(w + 5));
    this.rowView.setUint32(w + 1, written, true);
    return w + 5 + written;
  }

  /**
   * The WASM heap, holding at least `end` bytes. A view is kept between calls: growing the
   * memory detaches it (length 0), so a view too short for `end` is the sign to take a new one.
   */
  private heapTo(end: number): Uint8Array {
    if (end > this.heap.length) this.refreshHeap();
    return this.heap;
  }

  private heapWordsTo(end: number): Int32Array {
    if (end > this.heapWords.byteLength) this.refreshHeap();
    return this.heapWords;
  }

  private refreshHeap(): void {
    this.heap = this.hooks.sqlite.wasm.heap8u();
    this.heapWords = new Int32Array(this.heap.buffer, 0, this.heap.buffer.byteLength >> 2);
  }
}

/** The changes a body holds, as the engine hands them out (CapturedTransaction.changes). */
export function capturedChanges(body: Uint8Array): CapturedChanges {
  const { tables, rows, rowsOmitted } = decodeChangeSetBody(body);
  return rowsOmitted ? { tables, rowsOmitted: true } : { tables, rows: rows as CapturedRow[], rowsOmitted: false };
}

function isAscii(heap: Uint8Array, words: Int32Array, pointer: number, length: number): boolean {
  const end = pointer + length;
  let i = pointer;
  let bits = 0;
  for (; i < end && (i & 3) !== 0; i++) bits |= heap[i]!;
  const wordsEnd = (end & ~3) >> 2;
  let wordBits = 0;
  for (let word = i >> 2; word < wordsEnd; word++) wordBits |= words[word]!;
  for (i = Math.max(i, wordsEnd << 2); i < end; i++) bits |= heap[i]!;
  return (bits & 0x80) === 0 && (wordBits & 0x80808080) === 0;
}

/** The size of the value (in the change set's value encoding) at `at` in `bytes`. */
function valueSize(bytes: Uint8Array, at: number): number {
  switch (bytes[at]) {
    case VALUE_NULL:
      return 1;
    case VALUE_INTEGER:
    case VALUE_FLOAT:
      return 9;
    default: {
      const length = (bytes[at + 1]! | (bytes[at + 2]! << 8) | (bytes[at + 3]! << 16) | (bytes[at + 4]! << 24)) >>> 0;
      return 5 + length;
    }
  }
}

/**
 * Resolves the provisional rows in `records[start, end)` (see ROW_HEADER_BYTES): table slots to
 * indexes, rowids to the declared key of WITHOUT ROWID tables (`keys` by slot; a column the
 * row lacks is a null), DELETE_WITH_VALUES to a delete. Writes into `out` at `w` and returns
 * where it ended; without `out`, returns the bytes it would write.
 */
function resolveRows(records: Uint8Array, start: number, end: number, keys: KeyColumns[] | undefined, slotIndex: number[] | undefined, out: Uint8Array | undefined, w: number): number {
  const offsets: number[] = [];
  let bytes = 0;
  for (let at = start; at < end; ) {
    const operation = records[at]!;
    const slot = readUint32(records, at + ROW_TABLE);
    const hasValues = operation !== OPERATION_DELETE;
    let valuesEnd = at + ROW_HEADER_BYTES;
    let count = 0;
    if (hasValues) {
      count = records[valuesEnd]! | (records[valuesEnd + 1]! << 8);
      valuesEnd += 2;
      // Overwritten, not emptied first (`length = 0` is a runtime call): only [0, count) is read.
      for (let i = 0; i < count; i++) {
        offsets[i] = valuesEnd;
        valuesEnd += valueSize(records, valuesEnd);
      }
    }
    const key = keys?.[slot];
    const keepsValues = hasValues && operation !== DELETE_WITH_VALUES;
    if (out !== undefined) {
      out[w] = operation === DELETE_WITH_VALUES ? OPERATION_DELETE : operation;
      writeUint32(out, w + 1, slotIndex === undefined ? slot : slotIndex[slot]!);
    }
    let rowBytes = 5;
    if (key === undefined) {
      out?.set(records.subarray(at + ROW_TABLE + 4, at + ROW_HEADER_BYTES), w + rowBytes);
      rowBytes += ROW_HEADER_BYTES - ROW_TABLE - 4;
    } else {
      if (out !== undefined) {
        out[w + rowBytes] = key.length & 0xff;
        out[w + rowBytes + 1] = key.length >>> 8;
      }
      rowBytes += 2;
      for (const column of key) {
        if (column >= count) {
          if (out !== undefined) out[w + rowBytes] = VALUE_NULL;
          rowBytes += 1;
          continue;
        }
        const valueAt = offsets[column]!;
        const size = valueSize(records, valueAt);
        out?.set(records.subarray(valueAt, valueAt + size), w + rowBytes);
        rowBytes += size;
      }
    }
    if (keepsValues) {
      const valuesStart = at + ROW_HEADER_BYTES;
      out?.set(records.subarray(valuesStart, valuesEnd), w + rowBytes);
      rowBytes += valuesEnd - valuesStart;
    }
    if (out !== undefined) w += rowBytes;
    bytes += rowBytes;
    at = valuesEnd;
  }
  return out === undefined ? bytes : w;
}

/** Writes a safe integer as a little-endian i64 (two's complement), without a BigInt. */
function writeSafeInt64(view: DataView, at: number, value: number): void {
  const high = Math.floor(value / TWO_POW_32);
  view.setUint32(at, value - high * TWO_POW_32, true);
  view.setInt32(at + 4, high, true);
}

function readUint32(bytes: Uint8Array, at: number): number {
  return (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
}

function writeUint32(body: Uint8Array, w: number, value: number): number {
  body[w] = value & 0xff;
  body[w + 1] = (value >>> 8) & 0xff;
  body[w + 2] = (value >>> 16) & 0xff;
  body[w + 3] = value >>> 24;
  return w + 4;
}

function writeTables(body: Uint8Array, w: number, names: Uint8Array[]): number {
  w = writeUint32(body, w, names.length);
  for (const name of names) {
    w = writeUint32(body, w, name.length);
    body.set(name, w);
    w += name.length;
  }
  return w;
}

/** Statement flags for `sql`: what it does that the pre-update hook cannot see. */
export function statementCaptureFlags(sql: string): number {
  let flags = 0;
  if (/^\s*(CREATE|DROP|ALTER)\b/i.test(sql)) flags |= STATEMENT_CHANGES_SCHEMA;
  if (/^\s*ROLLBACK\b[\s\S]*\bTO\b/i.test(sql)) flags |= STATEMENT_ROLLS_BACK_SAVEPOINT;
  return flags;
}

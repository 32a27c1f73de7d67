// Change capture on the leader's connection: per committed transaction, the tables it changed
// and its row changes (operation, table, primary key, new values), so that what changed can
// travel in the log next to the frames and no replica has to decode pages to know it.
//
// Cheapest of the two ways the build offers: SQLite's pre-update hook (one JS call per changed
// row, reading only the new values; the session extension would add a changeset to build, walk
// and free per transaction and still lacks the full new row of an update). Rows collect in JS;
// the commit hook closes a transaction, the rollback hook drops it. What the hook cannot see is
// marked by the statement that does it (statement.ts): DDL (no hook fires for sqlite_schema)
// adds SCHEMA_TABLE to the tables, and ROLLBACK TO (rows it undid were already recorded) keeps
// only the table list (rowsOmitted). Above `changeSetBytesMax` only the table list is kept too.
//
// Primary keys: the rowid for rowid tables (the hook's key); for WITHOUT ROWID tables the
// declared key columns, read from the values after the commit (schema lookups cannot run
// inside the hook), so a delete records its old values until then.

import { ByteSlab } from './byte-slab.ts';
import type { Pointer, SqliteModule } from './sqlite-api.ts';
import { SQLITE_BLOB, SQLITE_FLOAT, SQLITE_INTEGER, SQLITE_NULL, SQLITE_TEXT } from './sqlite-api.ts';
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
/** Bytes counted per row and per fixed-size value by the size estimate (about their encoded size). */
const ROW_OVERHEAD_BYTES = 16;
const VALUE_OVERHEAD_BYTES = 9;

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

/** One row as the hook saw it; the key is resolved after the commit. */
interface RawRow {
  operation: CapturedRowOperation;
  table: string;
  rowid: bigint;
  /** New values (insert, update) or, for a delete, the old ones (a WITHOUT ROWID key needs them). */
  values: SqlValue[];
}

interface OpenTransaction {
  tables: Set<string>;
  rows: RawRow[] | undefined;
  bytes: number;
}

/** How the primary key of a table is read: undefined for a rowid table. */
type KeyColumns = number[] | undefined;

const NOTHING: (CapturedChanges | undefined)[] = [];
/** Blob values are cut from shared blocks: a fresh small array per value costs its own backing store (byte-slab.ts). */
const blobSlab = new ByteSlab(64 * 1024, 4 * 1024);
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const textDecoder = new TextDecoder();

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
  private readonly keyColumns = new Map<string, KeyColumns>();
  /** Table names by the pointer SQLite passes (its schema's own copy), checked byte for byte. */
  private readonly names = new Map<Pointer, { name: string; bytes: Uint8Array }>();
  private mainPointer: Pointer = 0;

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
    this.open = undefined;
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
  }

  dispose(): void {
    this.hooks.unregister(this.id);
    this.x.sqlite3_free(this.valueSlot);
  }

  /** A statement the hook cannot see through is about to run (STATEMENT_* flags). */
  statementRuns(flags: number): void {
    const open = this.openTransaction();
    if (flags & STATEMENT_CHANGES_SCHEMA) {
      open.tables.add(SCHEMA_TABLE);
      this.keyColumns.clear();
      this.names.clear();
    }
    if (flags & STATEMENT_ROLLS_BACK_SAVEPOINT) open.rows = undefined;
  }

  row(db: Pointer, op: number, zDb: Pointer, zTable: Pointer, oldKey: bigint, newKey: bigint): void {
    const wasm = this.hooks.sqlite.wasm;
    // Only the main database replicates (temp tables live on the leader alone).
    if (zDb !== this.mainPointer) {
      if (wasm.heap8u()[zDb] !== 0x6d /* 'm' */ || wasm.cstrToJs(zDb) !== 'main') return;
      this.mainPointer = zDb;
    }
    const table = this.tableName(zTable);
    const open = this.openTransaction();
    open.tables.add(table);
    if (open.rows === undefined) return;
    const x = this.x;
    const columns = x.sqlite3_preupdate_count(db);
    const values: SqlValue[] = new Array<SqlValue>(columns);
    const read = op === SQLITE_DELETE ? x.sqlite3_preupdate_old : x.sqlite3_preupdate_new;
    let bytes = ROW_OVERHEAD_BYTES;
    for (let i = 0; i < columns; i++) {
      if (read(db, i, this.valueSlot) !== 0) {
        values[i] = null;
        continue;
      }
      const value = wasm.peek32(this.valueSlot);
      values[i] = this.readValue(value);
      bytes += VALUE_OVERHEAD_BYTES + (typeof values[i] === 'string' || values[i] instanceof Uint8Array ? x.sqlite3_value_bytes(value) : 0);
    }
    open.bytes += bytes;
    if (open.bytes > this.options.changeSetBytesMax) {
      open.rows = undefined;
      return;
    }
    if (op === SQLITE_UPDATE && oldKey !== newKey) {
      // The rowid changed: the old row is gone, a new one exists.
      open.rows.push({ operation: 'delete', table, rowid: oldKey, values: [] });
      open.rows.push({ operation: 'insert', table, rowid: newKey, values });
      return;
    }
    const operation: CapturedRowOperation = op === SQLITE_INSERT ? 'insert' : op === SQLITE_UPDATE ? 'update' : 'delete';
    open.rows.push({ operation, table, rowid: op === SQLITE_DELETE ? oldKey : newKey, values });
  }

  /** The name at `zTable`, decoded once per pointer (a reused pointer with other bytes is decoded again). */
  private tableName(zTable: Pointer): string {
    const heap = this.hooks.sqlite.wasm.heap8u();
    const known = this.names.get(zTable);
    if (known) {
      const bytes = known.bytes;
      let same = heap[zTable + bytes.length] === 0;
      for (let i = 0; same && i < bytes.length; i++) same = heap[zTable + i] === bytes[i];
      if (same) return known.name;
    }
    let end = zTable;
    while (heap[end] !== 0) end++;
    const bytes = heap.slice(zTable, end);
    const name = textDecoder.decode(bytes);
    this.names.set(zTable, { name, bytes });
    return name;
  }

  committed(): void {
    this.done.push(this.open);
    this.open = undefined;
  }

  rolledBack(): void {
    this.open = undefined;
  }

  /**
   * The changes of the last `count` transactions that committed since the last call, paired
   * with the WAL commits the engine found. A write transaction that wrote no page (a DELETE that
   * matched nothing) commits in SQLite but not in the WAL: empty ones go first when there are
   * more commits here than in the WAL. `lookup` answers schema questions outside the hook.
   */
  take(count: number, lookup: (table: string) => KeyColumns): (CapturedChanges | undefined)[] {
    if (count === 0 && this.done.length === 0) return NOTHING;
    const done = this.done.splice(0);
    for (let i = 0; i < done.length && done.length > count; ) {
      const tx = done[i];
      if (tx === undefined || tx.tables.size === 0) done.splice(i, 1);
      else i++;
    }
    while (done.length > count) done.shift();
    const result: (CapturedChanges | undefined)[] = [];
    for (let i = 0; i < count - done.length; i++) result.push(undefined);
    for (const tx of done) result.push(this.finish(tx, lookup));
    return result;
  }

  private finish(tx: OpenTransaction | undefined, lookup: (table: string) => KeyColumns): CapturedChanges {
    if (tx === undefined) return { tables: [], rows: [], rowsOmitted: false };
    const tables = [...tx.tables].sort();
    if (tx.rows === undefined) return { tables, rowsOmitted: true };
    const rows: CapturedRow[] = new Array<CapturedRow>(tx.rows.length);
    for (let i = 0; i < tx.rows.length; i++) {
      const raw = tx.rows[i]!;
      let key: KeyColumns;
      if (this.keyColumns.has(raw.table)) key = this.keyColumns.get(raw.table);
      else {
        key = lookup(raw.table);
        this.keyColumns.set(raw.table, key);
      }
      const primaryKey = key === undefined ? [rowidValue(raw.rowid)] : key.map((column) => raw.values[column] ?? null);
      rows[i] = raw.operation === 'delete' ? { operation: 'delete', table: raw.table, primaryKey } : { operation: raw.operation, table: raw.table, primaryKey, values: raw.values };
    }
    return { tables, rows, rowsOmitted: false };
  }

  private openTransaction(): OpenTransaction {
    this.open ??= { tables: new Set(), rows: [], bytes: 0 };
    return this.open;
  }

  private readValue(value: Pointer): SqlValue {
    const x = this.x;
    switch (x.sqlite3_value_type(value)) {
      case SQLITE_INTEGER:
        return rowidValue(x.sqlite3_value_int64(value));
      case SQLITE_FLOAT:
        return x.sqlite3_value_double(value);
      case SQLITE_TEXT: {
        const p = x.sqlite3_value_text(value);
        const n = x.sqlite3_value_bytes(value);
        return n === 0 ? '' : textDecoder.decode(this.hooks.sqlite.wasm.heap8u().subarray(p, p + n));
      }
      case SQLITE_BLOB: {
        const n = x.sqlite3_value_bytes(value);
        const p = x.sqlite3_value_blob(value);
        if (n === 0) return new Uint8Array(0);
        const copy = blobSlab.take(n);
        copy.set(this.hooks.sqlite.wasm.heap8u().subarray(p, p + n));
        return copy;
      }
      case SQLITE_NULL:
      default:
        return null;
    }
  }
}

function rowidValue(value: bigint): number | bigint {
  return value >= MIN_SAFE && value <= MAX_SAFE ? Number(value) : value;
}

/** Statement flags for `sql`: what it does that the pre-update hook cannot see. */
export function statementCaptureFlags(sql: string): number {
  let flags = 0;
  if (/^\s*(CREATE|DROP|ALTER)\b/i.test(sql)) flags |= STATEMENT_CHANGES_SCHEMA;
  if (/^\s*ROLLBACK\b[\s\S]*\bTO\b/i.test(sql)) flags |= STATEMENT_ROLLS_BACK_SAVEPOINT;
  return flags;
}

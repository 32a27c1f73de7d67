// A compiled SQL statement on the engine's connection, driven through the raw WASM exports.
// Statements survive the connection being reopened (abort, follower catch-up): they recompile
// from their text and rebind their last values, unless they were in the middle of returning rows.

import { EngineError, SqliteError } from './errors.ts';
import {
  SQLITE_BLOB,
  SQLITE_DONE,
  SQLITE_FLOAT,
  SQLITE_INTEGER,
  SQLITE_ROW,
  SQLITE_TEXT,
  SQLITE_TRANSIENT,
  type Pointer,
  type SqliteExports,
  type SqliteWasmHelpers,
} from './sqlite-api.ts';
import { statementCaptureFlags } from './change-capture.ts';

export type SqlValue = null | number | bigint | string | Uint8Array;
/** What `bind` accepts: SQL values plus booleans (bound as 1/0). */
/** `{ double }` binds a number as REAL even when it has no fraction (a client sent a float). */
export type BindValue = SqlValue | boolean | { readonly double: number };

export interface Statement {
  /** This statement's text. */
  readonly sql: string;
  /** Remaining SQL after it. */
  readonly tail: string;
  readonly parameterCount: number;
  readonly columnNames: readonly string[];
  readonly declaredTypes: readonly (string | null)[];
  /** sqlite3_stmt_readonly */
  readonly isReadonly: boolean;
  /** Clears bindings and binds values to parameters 1..n. Throws SqliteError. */
  bind(values: readonly BindValue[]): void;
  /** true: a row is ready (read it with row()/rowTypes()); false: done. Throws SqliteError. */
  step(): boolean;
  row(): SqlValue[];
  /** SQLite fundamental types of the current row: 1 int, 2 float, 3 text, 4 blob, 5 null. */
  rowTypes(): number[];
  reset(): void;
  /** Resets it and sets every parameter NULL, keeping no bound value (nor anything it points into). */
  unbind(): void;
  finalize(): void;
}

/** What a statement needs from its database. */
export interface StatementHost {
  readonly exports: SqliteExports;
  readonly wasm: SqliteWasmHelpers;
  /** The open connection (reopening it if needed). */
  connection(): Pointer;
  /** A scratch WASM buffer of at least `sizeBytes`, valid until the next call. */
  scratch(sizeBytes: number): Pointer;
  errorFor(rc: number): SqliteError;
  forget(statement: StatementImpl): void;
  /** Change capture (change-capture.ts): a statement it cannot see through is about to run. */
  statementRuns?(flags: number): void;
}

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

export class StatementImpl implements Statement {
  readonly sql: string;
  readonly tail: string;
  parameterCount = 0;
  columnNames: readonly string[] = [];
  declaredTypes: readonly (string | null)[] = [];
  isReadonly = false;
  private pointer: Pointer;
  private readonly host: StatementHost;
  private boundValues: readonly BindValue[] | null = null;
  /** Stepped since the last reset: SQLite needs a reset before rebinding. */
  private stepped = false;
  /** Returned a row and not yet done or reset: a recompile would lose the cursor. */
  private midRows = false;
  private finalized = false;
  /** STATEMENT_* flags of change-capture.ts: 0 for nearly every statement. */
  private readonly captureFlags: number;
  /** The SQL text it was compiled from by Database.prepareReusable, the key it is kept under. */
  reuseKey: string | undefined;

  constructor(host: StatementHost, pointer: Pointer, sql: string, tail: string) {
    this.host = host;
    this.pointer = pointer;
    this.sql = sql;
    this.captureFlags = statementCaptureFlags(sql);
    this.tail = tail;
    this.describe();
  }

  /** Called when the connection closes under the statement: the compiled form is gone. */
  detach(): void {
    if (this.pointer !== 0) this.host.exports.sqlite3_finalize(this.pointer);
    this.pointer = 0;
  }

  bind(values: readonly BindValue[]): void {
    const stmt = this.live();
    const x = this.host.exports;
    if (this.stepped) {
      x.sqlite3_reset(stmt);
      this.stepped = false;
      this.midRows = false;
    }
    if (values.length > this.parameterCount) {
      throw new SqliteError(25, `${values.length} values bound to a statement with ${this.parameterCount} parameters (SQLITE_RANGE)`);
    }
    if (values.length < this.parameterCount) x.sqlite3_clear_bindings(stmt);
    for (let i = 0; i < values.length; i++) {
      const rc = this.bindOne(stmt, i + 1, values[i]!);
      if (rc !== 0) throw this.host.errorFor(rc);
    }
    this.boundValues = values;
  }

  step(): boolean {
    const stmt = this.live();
    this.stepped = true;
    if (this.captureFlags !== 0) this.host.statementRuns?.(this.captureFlags);
    const rc = this.host.exports.sqlite3_step(stmt);
    if (rc === SQLITE_ROW) {
      this.midRows = true;
      return true;
    }
    this.midRows = false;
    if (rc === SQLITE_DONE) return false;
    throw this.host.errorFor(rc);
  }

  row(): SqlValue[] {
    const stmt = this.live();
    const x = this.host.exports;
    const count = this.columnNames.length;
    const row = new Array<SqlValue>(count);
    for (let i = 0; i < count; i++) {
      switch (x.sqlite3_column_type(stmt, i)) {
        case SQLITE_INTEGER: {
          const value = x.sqlite3_column_int64(stmt, i);
          row[i] = value >= MIN_SAFE && value <= MAX_SAFE ? Number(value) : value;
          break;
        }
        case SQLITE_FLOAT:
          row[i] = x.sqlite3_column_double(stmt, i);
          break;
        case SQLITE_TEXT: {
          const p = x.sqlite3_column_text(stmt, i);
          const n = x.sqlite3_column_bytes(stmt, i);
          row[i] = n === 0 ? '' : textDecoder.decode(this.host.wasm.heap8u().subarray(p, p + n));
          break;
        }
        case SQLITE_BLOB: {
          const p = x.sqlite3_column_blob(stmt, i);
          const n = x.sqlite3_column_bytes(stmt, i);
          row[i] = n === 0 ? new Uint8Array(0) : this.host.wasm.heap8u().slice(p, p + n);
          break;
        }
        default:
          row[i] = null;
      }
    }
    return row;
  }

  rowTypes(): number[] {
    const stmt = this.live();
    const count = this.columnNames.length;
    const types = new Array<number>(count);
    for (let i = 0; i < count; i++) types[i] = this.host.exports.sqlite3_column_type(stmt, i);
    return types;
  }

  reset(): void {
    if (this.finalized) return;
    if (this.pointer !== 0) this.host.exports.sqlite3_reset(this.pointer);
    this.stepped = false;
    this.midRows = false;
  }

  get isFinalized(): boolean {
    return this.finalized;
  }

  unbind(): void {
    this.reset();
    if (this.pointer !== 0) this.host.exports.sqlite3_clear_bindings(this.pointer);
    this.boundValues = null;
  }

  finalize(): void {
    if (this.finalized) return;
    this.finalized = true;
    this.detach();
    this.host.forget(this);
  }

  // --- internals -----------------------------------------------------------------------------

  /** The compiled statement, recompiled (and rebound) if the connection was reopened. */
  private live(): Pointer {
    if (this.pointer !== 0) return this.pointer;
    if (this.finalized) throw new EngineError('CLOSED', 'statement used after finalize()');
    if (this.midRows) {
      this.midRows = false;
      this.stepped = false;
      throw new EngineError('STATEMENT_INVALIDATED', 'the connection was reset (abort or catch-up) while this statement was returning rows; run it again');
    }
    const db = this.host.connection();
    const bytes = textEncoder.encode(this.sql);
    const x = this.host.exports;
    const pSql = this.host.scratch(bytes.length + 1 + 8);
    const heap = this.host.wasm.heap8u();
    heap.set(bytes, pSql);
    heap[pSql + bytes.length] = 0;
    const ppStmt = pSql + bytes.length + 1 + ((4 - ((pSql + bytes.length + 1) & 3)) & 3);
    this.host.wasm.poke32(ppStmt, 0);
    const rc = x.sqlite3_prepare_v3(db, pSql, bytes.length, 0, ppStmt, 0);
    if (rc !== 0) throw this.host.errorFor(rc);
    this.pointer = this.host.wasm.peek32(ppStmt);
    if (this.pointer === 0) throw new EngineError('STATEMENT_INVALIDATED', 'statement text no longer compiles to a statement');
    this.stepped = false;
    this.describe();
    if (this.boundValues !== null) {
      for (let i = 0; i < this.boundValues.length; i++) {
        const bindRc = this.bindOne(this.pointer, i + 1, this.boundValues[i]!);
        if (bindRc !== 0) throw this.host.errorFor(bindRc);
      }
    }
    return this.pointer;
  }

  private describe(): void {
    const x = this.host.exports;
    const wasm = this.host.wasm;
    const stmt = this.pointer;
    this.parameterCount = x.sqlite3_bind_parameter_count(stmt);
    const count = x.sqlite3_column_count(stmt);
    const names: string[] = [];
    const types: (string | null)[] = [];
    for (let i = 0; i < count; i++) {
      names.push(wasm.cstrToJs(x.sqlite3_column_name(stmt, i)) ?? '');
      const pType = x.sqlite3_column_decltype(stmt, i);
      types.push(pType === 0 ? null : wasm.cstrToJs(pType));
    }
    this.columnNames = names;
    this.declaredTypes = types;
    this.isReadonly = x.sqlite3_stmt_readonly(stmt) !== 0;
  }

  private bindOne(stmt: Pointer, index: number, value: BindValue): number {
    const x = this.host.exports;
    if (value === null || value === undefined) return x.sqlite3_bind_null(stmt, index);
    switch (typeof value) {
      case 'number':
        if (Number.isInteger(value)) {
          if (value >= -2147483648 && value <= 2147483647) return x.sqlite3_bind_int(stmt, index, value);
          if (Number.isSafeInteger(value)) return x.sqlite3_bind_int64(stmt, index, BigInt(value));
        }
        return x.sqlite3_bind_double(stmt, index, value);
      case 'bigint':
        if (value < INT64_MIN || value > INT64_MAX) {
          throw new SqliteError(25, `parameter ${index}: ${value} does not fit in a 64-bit integer`);
        }
        return x.sqlite3_bind_int64(stmt, index, value);
      case 'boolean':
        return x.sqlite3_bind_int(stmt, index, value ? 1 : 0);
      case 'string': {
        // UTF-8 is at most 3 bytes per UTF-16 code unit.
        const p = this.host.scratch(value.length * 3 + 1);
        const { written } = textEncoder.encodeInto(value, this.host.wasm.heap8u().subarray(p, p + value.length * 3 + 1));
        return x.sqlite3_bind_text(stmt, index, p, written, SQLITE_TRANSIENT);
      }
      default:
        if (!(value instanceof Uint8Array) && typeof value === 'object' && typeof value.double === 'number') {
          return x.sqlite3_bind_double(stmt, index, value.double);
        }
        if (value instanceof Uint8Array) {
          const p = this.host.scratch(value.length + 1);
          this.host.wasm.heap8u().set(value, p);
          return x.sqlite3_bind_blob(stmt, index, p, value.length, SQLITE_TRANSIENT);
        }
        throw new TypeError(`parameter ${index}: cannot bind a value of type ${typeof value}`);
    }
  }
}


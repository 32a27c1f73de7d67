// The binary body of a change set: what a log entry carries after its f64 time (the whole layout
// is in src/fsm/change-codec.ts). The capture writes it straight from SQLite's values
// (change-capture.ts); this reads it back, for the engine's `changes` and for every replica.
//
//   u8 flags (bit 0: rowsOmitted), u32 table count, per table: u32 bytes, UTF-8;
//   unless rowsOmitted: u32 row count, per row: u8 operation (1 insert, 2 update, 3 delete),
//   u32 table (index into the table list), u16 key values, the key values, and (insert/update)
//   u16 values, the values. A value: u8 type (0 null, 1 integer: i64, 2 float: f64,
//   3 text: u32 bytes + UTF-8, 4 blob: u32 bytes + bytes). Little-endian.

import type { SqlValue } from './statement.ts';

export type ChangeSetOperation = 'insert' | 'update' | 'delete';

export interface ChangeSetRow {
  operation: ChangeSetOperation;
  table: string;
  primaryKey: SqlValue[];
  values?: SqlValue[];
}

export interface ChangeSetBody {
  tables: string[];
  /** Undefined when rowsOmitted. */
  rows: ChangeSetRow[] | undefined;
  rowsOmitted: boolean;
}

export const CHANGE_SET_ROWS_OMITTED = 1;
export const OPERATION_INSERT = 1;
export const OPERATION_UPDATE = 2;
export const OPERATION_DELETE = 3;
export const VALUE_NULL = 0;
export const VALUE_INTEGER = 1;
export const VALUE_FLOAT = 2;
export const VALUE_TEXT = 3;
export const VALUE_BLOB = 4;
/** Values per row the format can hold (a u16 count). */
export const CHANGE_SET_VALUES_MAX = 0xffff;

export class ChangeSetFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChangeSetFormatError';
  }
}

const SHARED_BLOBS_BYTES_MAX = 64 * 1024;
const OPERATIONS: (ChangeSetOperation | undefined)[] = [undefined, 'insert', 'update', 'delete'];
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
// ignoreBOM: a text value that starts with U+FEFF keeps it (the default decoder drops it).
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

class BodyReader {
  offset: number;
  private readonly view: DataView;
  /** Where blob values may start: the first row. */
  sharedFrom = 0;
  private shared: Uint8Array | undefined;

  constructor(
    private readonly bytes: Uint8Array,
    offset: number,
  ) {
    this.offset = offset;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  need(bytes: number): number {
    if (this.offset + bytes > this.bytes.length) throw new ChangeSetFormatError(`truncated at byte ${this.offset} (${bytes} more needed, ${this.bytes.length - this.offset} left)`);
    const at = this.offset;
    this.offset += bytes;
    return at;
  }

  u8(): number {
    return this.bytes[this.need(1)]!;
  }

  u16(): number {
    return this.view.getUint16(this.need(2), true);
  }

  u32(): number {
    return this.view.getUint32(this.need(4), true);
  }

  i64(): bigint {
    return this.view.getBigInt64(this.need(8), true);
  }

  f64(): number {
    return this.view.getFloat64(this.need(8), true);
  }

  chunk(): Uint8Array {
    const length = this.u32();
    const at = this.need(length);
    return this.bytes.subarray(at, at + length);
  }

  text(): string {
    const bytes = this.chunk();
    try {
      return utf8Decoder.decode(bytes);
    } catch {
      throw new ChangeSetFormatError('text is not valid UTF-8');
    }
  }

  get done(): boolean {
    return this.offset === this.bytes.length;
  }

  values(): SqlValue[] {
    const count = this.u16();
    const values: SqlValue[] = new Array<SqlValue>(count);
    for (let i = 0; i < count; i++) values[i] = this.value();
    return values;
  }

  value(): SqlValue {
    const type = this.u8();
    switch (type) {
      case VALUE_NULL:
        return null;
      case VALUE_INTEGER: {
        const value = this.i64();
        return value >= MIN_SAFE && value <= MAX_SAFE ? Number(value) : value;
      }
      case VALUE_FLOAT:
        return this.f64();
      case VALUE_TEXT:
        return this.text();
      case VALUE_BLOB:
        return this.blob();
      default:
        throw new ChangeSetFormatError(`unknown value type ${type}`);
    }
  }

  /**
   * A blob of a small change set is a view into one copy of the bytes from `sharedFrom` on (one
   * allocation per change set, not per blob): whoever keeps the value keeps that copy, at most
   * SHARED_BLOBS_BYTES_MAX. A larger change set copies each blob on its own.
   */
  private blob(): Uint8Array {
    const length = this.u32();
    const at = this.need(length);
    if (length === 0) return new Uint8Array(0);
    if (this.bytes.length - this.sharedFrom > SHARED_BLOBS_BYTES_MAX) return this.bytes.slice(at, at + length);
    this.shared ??= this.bytes.slice(this.sharedFrom);
    return this.shared.subarray(at - this.sharedFrom, at - this.sharedFrom + length);
  }
}

/** Reads the body that starts at `offset` and runs to the end of `bytes`; throws ChangeSetFormatError on bad bytes. */
export function decodeChangeSetBody(bytes: Uint8Array, offset = 0): ChangeSetBody {
  const reader = new BodyReader(bytes, offset);
  const flags = reader.u8();
  if (flags > CHANGE_SET_ROWS_OMITTED) throw new ChangeSetFormatError(`unknown flags ${flags}`);
  const tableCount = reader.u32();
  if (tableCount > bytes.length) throw new ChangeSetFormatError(`${tableCount} tables in ${bytes.length} bytes`);
  const tables: string[] = [];
  for (let i = 0; i < tableCount; i++) tables.push(reader.text());
  if (flags === CHANGE_SET_ROWS_OMITTED) {
    if (!reader.done) throw new ChangeSetFormatError('bytes after the table list of a change without rows');
    return { tables, rows: undefined, rowsOmitted: true };
  }
  const rowCount = reader.u32();
  if (rowCount > bytes.length) throw new ChangeSetFormatError(`${rowCount} rows in ${bytes.length} bytes`);
  reader.sharedFrom = reader.offset;
  const rows: ChangeSetRow[] = new Array<ChangeSetRow>(rowCount);
  for (let i = 0; i < rowCount; i++) {
    const operation = OPERATIONS[reader.u8()];
    if (operation === undefined) throw new ChangeSetFormatError(`row ${i} has an unknown operation`);
    const table = tables[reader.u32()];
    if (table === undefined) throw new ChangeSetFormatError(`row ${i} names a table outside the list`);
    const primaryKey = reader.values();
    rows[i] = operation === 'delete' ? { operation, table, primaryKey } : { operation, table, primaryKey, values: reader.values() };
  }
  if (!reader.done) throw new ChangeSetFormatError('bytes after the last row');
  return { tables, rows, rowsOmitted: false };
}

/**
 * The binary form of a transaction's changes (commit-events.ts TransactionChanges), as the FRAMES
 * and TX_COMMIT entries carry it. Little-endian:
 *
 *   f64 timeMs, u8 flags (bit 0: rowsOmitted), u32 table count, per table: u32 bytes, UTF-8;
 *   unless rowsOmitted: u32 row count, per row: u8 operation (1 insert, 2 update, 3 delete),
 *   u32 table (index into the table list), u16 key values, the key values, and (insert/update)
 *   u16 values, the values. A value: u8 type (0 null, 1 integer: i64, 2 float: f64,
 *   3 text: u32 bytes + UTF-8, 4 blob: u32 bytes + bytes).
 */
import type { Value } from '../protocol/values.ts';
import type { RowChange, RowOperation, TransactionChanges } from './commit-events.ts';

export class ChangeCodecError extends Error {
  readonly code = 'BAD_CHANGES';
  constructor(message: string) {
    super(`transaction changes: ${message}`);
    this.name = 'ChangeCodecError';
  }
}

const OPERATION_CODES: Record<RowOperation, number> = { insert: 1, update: 2, delete: 3 };
const OPERATIONS: (RowOperation | undefined)[] = [undefined, 'insert', 'update', 'delete'];
const VALUES_MAX = 0xffff;
const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

class ByteWriter {
  private bytes: Uint8Array;
  private view: DataView;
  length = 0;

  constructor(initialBytes: number) {
    this.bytes = new Uint8Array(initialBytes);
    this.view = new DataView(this.bytes.buffer);
  }

  private room(bytes: number): void {
    if (this.length + bytes <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.length + bytes) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
    this.view = new DataView(grown.buffer);
  }

  u8(value: number): void {
    this.room(1);
    this.bytes[this.length++] = value;
  }

  u16(value: number): void {
    this.room(2);
    this.view.setUint16(this.length, value, true);
    this.length += 2;
  }

  u32(value: number): void {
    this.room(4);
    this.view.setUint32(this.length, value, true);
    this.length += 4;
  }

  i64(value: bigint): void {
    this.room(8);
    this.view.setBigInt64(this.length, value, true);
    this.length += 8;
  }

  f64(value: number): void {
    this.room(8);
    this.view.setFloat64(this.length, value, true);
    this.length += 8;
  }

  chunk(bytes: Uint8Array): void {
    this.u32(bytes.length);
    this.room(bytes.length);
    this.bytes.set(bytes, this.length);
    this.length += bytes.length;
  }

  /** The bytes written: a view, valid until the next write (callers copy it into their message). */
  result(): Uint8Array {
    return this.bytes.subarray(0, this.length);
  }
}

class ByteReader {
  private offset = 0;
  private readonly view: DataView;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private need(bytes: number): number {
    if (this.offset + bytes > this.bytes.length) throw new ChangeCodecError(`truncated at byte ${this.offset} (${bytes} more needed, ${this.bytes.length - this.offset} left)`);
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
    try {
      return utf8Decoder.decode(this.chunk());
    } catch (error) {
      if (error instanceof ChangeCodecError) throw error;
      throw new ChangeCodecError('text is not valid UTF-8');
    }
  }

  get done(): boolean {
    return this.offset === this.bytes.length;
  }
}

/** About the encoded size, so that the writer rarely grows (each growth copies). */
function estimateBytes(changes: TransactionChanges): number {
  let bytes = 64;
  for (const table of changes.tables) bytes += 4 + table.length * 3;
  if (changes.rowsOmitted || !changes.rows) return bytes;
  for (const row of changes.rows) {
    bytes += 9;
    for (const value of row.primaryKey) bytes += valueBytes(value);
    if (row.values) for (const value of row.values) bytes += valueBytes(value);
  }
  return bytes;
}

function valueBytes(value: Value): number {
  if (typeof value === 'string') return 5 + value.length * 3;
  if (value instanceof Uint8Array) return 5 + value.length;
  return 9;
}

export function encodeChanges(changes: TransactionChanges): Uint8Array {
  const writer = new ByteWriter(estimateBytes(changes));
  writer.f64(changes.timeMs);
  const omitted = changes.rowsOmitted || changes.rows === undefined;
  writer.u8(omitted ? 1 : 0);
  writer.u32(changes.tables.length);
  const tableIndex = new Map<string, number>();
  changes.tables.forEach((table, i) => {
    tableIndex.set(table, i);
    writer.chunk(utf8Encoder.encode(table));
  });
  if (omitted) return writer.result();
  const rows = changes.rows!;
  writer.u32(rows.length);
  for (const row of rows) {
    const table = tableIndex.get(row.table);
    if (table === undefined) throw new ChangeCodecError(`row of table ${JSON.stringify(row.table)}, which is not in the table list`);
    writer.u8(OPERATION_CODES[row.operation]);
    writer.u32(table);
    writeValues(writer, row.primaryKey);
    if (row.operation !== 'delete') writeValues(writer, row.values ?? []);
  }
  return writer.result();
}

function writeValues(writer: ByteWriter, values: readonly Value[]): void {
  if (values.length > VALUES_MAX) throw new ChangeCodecError(`${values.length} values in one row, at most ${VALUES_MAX}`);
  writer.u16(values.length);
  for (const value of values) writeValue(writer, value);
}

function writeValue(writer: ByteWriter, value: Value): void {
  if (value === null) return writer.u8(0);
  switch (typeof value) {
    case 'number':
      if (Number.isSafeInteger(value)) {
        writer.u8(1);
        return writer.i64(BigInt(value));
      }
      writer.u8(2);
      return writer.f64(value);
    case 'bigint':
      writer.u8(1);
      return writer.i64(value);
    case 'string':
      writer.u8(3);
      return writer.chunk(utf8Encoder.encode(value));
    case 'boolean':
      writer.u8(1);
      return writer.i64(value ? 1n : 0n);
    default:
      if (value instanceof Uint8Array) {
        writer.u8(4);
        return writer.chunk(value);
      }
      writer.u8(3);
      return writer.chunk(utf8Encoder.encode(value.toISOString()));
  }
}

export function decodeChanges(bytes: Uint8Array): TransactionChanges {
  const reader = new ByteReader(bytes);
  const timeMs = reader.f64();
  const flags = reader.u8();
  if (flags > 1) throw new ChangeCodecError(`unknown flags ${flags}`);
  const tableCount = reader.u32();
  if (tableCount > bytes.length) throw new ChangeCodecError(`${tableCount} tables in ${bytes.length} bytes`);
  const tables: string[] = [];
  for (let i = 0; i < tableCount; i++) tables.push(reader.text());
  if (flags === 1) {
    if (!reader.done) throw new ChangeCodecError('bytes after the table list of a change without rows');
    return { timeMs, tables, rowsOmitted: true };
  }
  const rowCount = reader.u32();
  if (rowCount > bytes.length) throw new ChangeCodecError(`${rowCount} rows in ${bytes.length} bytes`);
  const rows: RowChange[] = [];
  for (let i = 0; i < rowCount; i++) {
    const operation = OPERATIONS[reader.u8()];
    if (operation === undefined) throw new ChangeCodecError(`row ${i} has an unknown operation`);
    const table = tables[reader.u32()];
    if (table === undefined) throw new ChangeCodecError(`row ${i} names a table outside the list`);
    const primaryKey = readValues(reader);
    rows.push(operation === 'delete' ? { operation, table, primaryKey } : { operation, table, primaryKey, values: readValues(reader) });
  }
  if (!reader.done) throw new ChangeCodecError('bytes after the last row');
  return { timeMs, tables, rows, rowsOmitted: false };
}

function readValues(reader: ByteReader): Value[] {
  const count = reader.u16();
  const values: Value[] = new Array<Value>(count);
  for (let i = 0; i < count; i++) values[i] = readValue(reader);
  return values;
}

function readValue(reader: ByteReader): Value {
  const type = reader.u8();
  switch (type) {
    case 0:
      return null;
    case 1: {
      const value = reader.i64();
      return value >= MIN_SAFE && value <= MAX_SAFE ? Number(value) : value;
    }
    case 2:
      return reader.f64();
    case 3:
      return reader.text();
    case 4:
      return reader.chunk().slice();
    default:
      throw new ChangeCodecError(`unknown value type ${type}`);
  }
}

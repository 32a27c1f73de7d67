/**
 * The binary form of a transaction's changes (commit-events.ts TransactionChanges), as the FRAMES
 * and TX_COMMIT entries carry it. Little-endian:
 *
 *   f64 timeMs, u8 flags (bit 0: rowsOmitted), u32 table count, per table: u32 bytes, UTF-8;
 *   unless rowsOmitted: u32 row count, per row: u8 operation (1 insert, 2 update, 3 delete),
 *   u32 table (index into the table list), u16 key values, the key values, and (insert/update)
 *   u16 values, the values. A value: u8 type (0 null, 1 integer: i64, 2 float: f64,
 *   3 text: u32 bytes + UTF-8, 4 blob: u32 bytes + bytes).
 *
 * Everything after timeMs is the change set body the engine writes while it captures
 * (wasm/change-set.ts): a leader copies it into the entry as it is (EncodedTransactionChanges).
 */
import { ChangeSetFormatError, decodeChangeSetBody } from '../../wasm/change-set.ts';
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
const VALUES_MAX = 0xffff;
const TIME_BYTES = 8;
const utf8Encoder = new TextEncoder();
const WRITER_INITIAL_BYTES = 16 * 1024;
const WRITER_KEPT_BYTES = 2 * 1024 * 1024;

/**
 * A transaction's changes as the engine captured them: its change set body (wasm/change-set.ts)
 * and the commit time. Encoding it copies the body; the fields are decoded only if read.
 */
export class EncodedTransactionChanges implements TransactionChanges {
  private decoded: { tables: string[]; rows: RowChange[] | undefined; rowsOmitted: boolean } | undefined;

  constructor(
    readonly timeMs: number,
    /** The body: the caller hands it over and does not change it. */
    readonly body: Uint8Array,
  ) {}

  get tables(): string[] {
    return this.decode().tables;
  }

  get rows(): RowChange[] | undefined {
    return this.decode().rows;
  }

  get rowsOmitted(): boolean {
    return this.decode().rowsOmitted;
  }

  private decode(): { tables: string[]; rows: RowChange[] | undefined; rowsOmitted: boolean } {
    if (this.decoded === undefined) {
      try {
        this.decoded = decodeChangeSetBody(this.body);
      } catch (error) {
        throw error instanceof ChangeSetFormatError ? new ChangeCodecError(error.message) : error;
      }
    }
    return this.decoded;
  }
}

class ByteWriter {
  private bytes: Uint8Array;
  private view: DataView;
  length = 0;

  constructor(initialBytes: number) {
    this.bytes = new Uint8Array(initialBytes);
    this.view = new DataView(this.bytes.buffer);
  }

  /** Starts over, with room for `bytes`; a buffer a large change set grew is let go. */
  start(bytes: number): void {
    this.length = 0;
    if (this.bytes.length > WRITER_KEPT_BYTES && bytes <= WRITER_KEPT_BYTES) {
      this.bytes = new Uint8Array(WRITER_INITIAL_BYTES);
      this.view = new DataView(this.bytes.buffer);
    }
    this.room(bytes);
  }

  /** `bytes` as they are. */
  raw(bytes: Uint8Array): void {
    this.room(bytes.length);
    this.bytes.set(bytes, this.length);
    this.length += bytes.length;
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

  /** A u32 length and the UTF-8 of `text`, encoded in place. */
  text(text: string): void {
    this.room(4 + text.length * 3);
    const { written } = utf8Encoder.encodeInto(text, this.bytes.subarray(this.length + 4));
    this.view.setUint32(this.length, written, true);
    this.length += 4 + written;
  }

  /** The bytes written: a view, valid until the next write (callers copy it into their message). */
  result(): Uint8Array {
    return this.bytes.subarray(0, this.length);
  }
}

const sharedWriter = new ByteWriter(WRITER_INITIAL_BYTES);

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

/**
 * The bytes of `changes`: a view into a buffer this module writes every change set in, valid
 * until the next call. Callers copy it into their entry or message at once: no array per
 * transaction to allocate and collect.
 */
export function encodeChanges(changes: TransactionChanges): Uint8Array {
  const writer = sharedWriter;
  if (changes instanceof EncodedTransactionChanges) {
    writer.start(TIME_BYTES + changes.body.length);
    writer.f64(changes.timeMs);
    writer.raw(changes.body);
    return writer.result();
  }
  writer.start(estimateBytes(changes));
  writer.f64(changes.timeMs);
  const omitted = changes.rowsOmitted || changes.rows === undefined;
  writer.u8(omitted ? 1 : 0);
  writer.u32(changes.tables.length);
  const tableIndex = new Map<string, number>();
  changes.tables.forEach((table, i) => {
    tableIndex.set(table, i);
    writer.text(table);
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
      return writer.text(value);
    case 'boolean':
      writer.u8(1);
      return writer.i64(value ? 1n : 0n);
    default:
      if (value instanceof Uint8Array) {
        writer.u8(4);
        return writer.chunk(value);
      }
      writer.u8(3);
      return writer.text(value.toISOString());
  }
}

export function decodeChanges(bytes: Uint8Array): TransactionChanges {
  if (bytes.length < TIME_BYTES) throw new ChangeCodecError(`truncated at byte 0 (${TIME_BYTES} more needed, ${bytes.length} left)`);
  const timeMs = new DataView(bytes.buffer, bytes.byteOffset, TIME_BYTES).getFloat64(0, true);
  let body: ReturnType<typeof decodeChangeSetBody>;
  try {
    body = decodeChangeSetBody(bytes, TIME_BYTES);
  } catch (error) {
    throw error instanceof ChangeSetFormatError ? new ChangeCodecError(error.message) : error;
  }
  const { tables, rows } = body;
  return rows === undefined ? { timeMs, tables, rowsOmitted: true } : { timeMs, tables, rows, rowsOmitted: false };
}

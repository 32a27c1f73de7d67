import { type Reader, type Writer, padToWord } from './buffer.ts';
import { PARAMS_MAX_SCHEMA0, ValueType, type ValueTypeCode, WORD_BYTES, isValueTypeCode } from './constants.ts';
import { ProtocolError } from './errors.ts';

/** A value as applications see it. */
export type Value = number | bigint | string | Uint8Array | null | boolean | Date;

/** A value exactly as it travels: its wire type code and payload. */
export type TypedValue =
  | { readonly type: typeof ValueType.Integer; readonly value: bigint }
  | { readonly type: typeof ValueType.Float; readonly value: number }
  | { readonly type: typeof ValueType.Text; readonly value: string }
  | { readonly type: typeof ValueType.Blob; readonly value: Uint8Array }
  | { readonly type: typeof ValueType.Null; readonly value: null }
  /** Seconds since the Unix epoch. */
  | { readonly type: typeof ValueType.UnixTime; readonly value: bigint }
  /** An ISO-8601 timestamp as text; the empty string means NULL. */
  | { readonly type: typeof ValueType.Iso8601; readonly value: string }
  | { readonly type: typeof ValueType.Boolean; readonly value: boolean };

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

/**
 * How an application value goes on the wire, like go-dqlite: integers as INTEGER (a JS number
 * with no fraction is an integer; tag it `{ type: ValueType.Float, value }` to force a float),
 * Date as ISO-8601 text with a numeric zone offset.
 */
export function toTypedValue(value: Value | TypedValue): TypedValue {
  if (value === null) return { type: ValueType.Null, value: null };
  switch (typeof value) {
    case 'number':
      if (Number.isSafeInteger(value)) return { type: ValueType.Integer, value: BigInt(value) };
      return { type: ValueType.Float, value };
    case 'bigint':
      if (value < INT64_MIN || value > INT64_MAX) {
        throw new ProtocolError('bad_value', `integer ${value} does not fit in 64 bits`);
      }
      return { type: ValueType.Integer, value };
    case 'string':
      return { type: ValueType.Text, value };
    case 'boolean':
      return { type: ValueType.Boolean, value };
    case 'object':
      if (value instanceof Uint8Array) return { type: ValueType.Blob, value };
      if (value instanceof Date) {
        if (Number.isNaN(value.getTime())) throw new ProtocolError('bad_value', 'an invalid Date cannot be sent');
        return { type: ValueType.Iso8601, value: formatIso8601(value) };
      }
      if (isTypedValue(value)) return value;
      break;
    default:
      break;
  }
  throw new ProtocolError('bad_value', `a value of type ${typeof value} cannot be sent as a parameter`);
}

function isTypedValue(value: object): value is TypedValue {
  return 'type' in value && 'value' in value && typeof value.type === 'number' && isValueTypeCode(value.type);
}

/** The application value of a wire value: integers as number when safe, bigint otherwise. */
export function fromTypedValue(typed: TypedValue): Value {
  switch (typed.type) {
    case ValueType.Integer:
      return bigintToValue(typed.value);
    case ValueType.UnixTime:
      return new Date(Number(typed.value) * 1000);
    case ValueType.Iso8601:
      return typed.value === '' ? null : parseIso8601(typed.value);
    default:
      return typed.value;
  }
}

export function bigintToValue(value: bigint): number | bigint {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

/** go-dqlite's layout `2006-01-02 15:04:05.999999999-07:00`, in UTC. */
export function formatIso8601(date: Date): string {
  const pad = (n: number, width = 2): string => String(n).padStart(width, '0');
  const base =
    `${pad(date.getUTCFullYear(), 4)}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())} ` +
    `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}`;
  const millis = date.getUTCMilliseconds();
  const fraction = millis === 0 ? '' : `.${pad(millis, 3).replace(/0+$/, '')}`;
  return `${base}${fraction}+00:00`;
}

const ISO8601_PATTERN =
  /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?(Z|[+-]\d{2}:\d{2})?$/;

/** Parses the layouts go-dqlite accepts; a timestamp without a zone is UTC. Unparseable text stays text. */
export function parseIso8601(text: string): Date | string {
  const match = ISO8601_PATTERN.exec(text);
  if (!match) return text;
  const [, year, month, day, hour, minute, second, fraction, zone] = match;
  const millis = fraction ? Number(fraction.padEnd(3, '0').slice(0, 3)) : 0;
  // Not Date.UTC: it maps years 0-99 to 1900-1999.
  const utc = new Date(0);
  utc.setUTCFullYear(Number(year), Number(month) - 1, Number(day));
  utc.setUTCHours(Number(hour ?? 0), Number(minute ?? 0), Number(second ?? 0), millis);
  let time = utc.getTime();
  if (zone && zone !== 'Z') {
    const sign = zone[0] === '-' ? -1 : 1;
    const offsetMinutes = Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6));
    time -= sign * offsetMinutes * 60_000;
  }
  const date = new Date(time);
  return Number.isNaN(date.getTime()) ? text : date;
}

export function writeValue(writer: Writer, typed: TypedValue): void {
  switch (typed.type) {
    case ValueType.Integer:
    case ValueType.UnixTime:
      writer.i64(typed.value);
      return;
    case ValueType.Float:
      writer.f64(typed.value);
      return;
    case ValueType.Text:
    case ValueType.Iso8601:
      writer.text(typed.value);
      return;
    case ValueType.Blob:
      writer.blob(typed.value);
      return;
    case ValueType.Null:
      writer.u64(0n);
      return;
    case ValueType.Boolean:
      writer.u64(typed.value ? 1n : 0n);
      return;
  }
}

export function readValue(reader: Reader, type: number, field: string): TypedValue {
  switch (type) {
    case ValueType.Integer:
      return { type, value: reader.i64(field) };
    case ValueType.UnixTime:
      return { type, value: reader.i64(field) };
    case ValueType.Float:
      return { type, value: reader.f64(field) };
    case ValueType.Text:
      return { type, value: reader.text(field) };
    case ValueType.Iso8601:
      return { type, value: reader.text(field) };
    case ValueType.Blob:
      return { type, value: reader.blob(field) };
    case ValueType.Null:
      reader.skip(WORD_BYTES, field);
      return { type, value: null };
    case ValueType.Boolean:
      return { type, value: reader.i64(field) !== 0n };
    default:
      throw new ProtocolError('bad_type', `${field}: unknown value type code ${type}`);
  }
}

/**
 * Parameter tuple of Exec/Query/ExecSQL/QuerySQL. Nothing at all for zero parameters. Schema 0:
 * u8 count; schema 1 (newer dqlite): u32 count. Then one byte per type, padding to a word, values.
 */
export function writeParams(writer: Writer, params: readonly TypedValue[], schema: 0 | 1 = 0): void {
  if (params.length === 0) return;
  if (schema === 0) {
    if (params.length > PARAMS_MAX_SCHEMA0) {
      throw new ProtocolError('too_large', `${params.length} parameters, at most ${PARAMS_MAX_SCHEMA0} allowed`);
    }
    writer.u8(params.length);
  } else {
    writer.u32(params.length);
  }
  for (const param of params) writer.u8(param.type);
  writer.padToWord();
  for (const param of params) writeValue(writer, param);
}

export function readParams(reader: Reader, schema: number): TypedValue[] {
  if (reader.atEnd()) return [];
  const count = schema === 1 ? reader.u32('parameter count') : reader.u8('parameter count');
  // Each parameter takes a type byte and at least one word, so the body bounds the count.
  if (count > reader.remaining) {
    throw new ProtocolError('too_large', `parameter count ${count} exceeds the ${reader.remaining} bytes left`);
  }
  const types: number[] = [];
  for (let i = 0; i < count; i++) types.push(reader.u8('parameter type'));
  // Padding bytes are not zeroed by the Go client: skip them unread.
  reader.skipToWord('parameter header padding');
  return types.map((type, i) => readValue(reader, type, `parameter ${i}`));
}

/** Row header bytes for `columnCount` columns: 4 bits each, padded to a word. */
export function rowHeaderBytes(columnCount: number): number {
  return padToWord(Math.ceil(columnCount / 2));
}

export function writeRow(writer: Writer, row: readonly TypedValue[]): void {
  const headerBytes = rowHeaderBytes(row.length);
  const header = new Uint8Array(headerBytes);
  row.forEach((value, i) => {
    header[i >> 1]! |= (i & 1) === 0 ? value.type : value.type << 4;
  });
  writer.raw(header);
  for (const value of row) writeValue(writer, value);
}

/** Reads one row whose header starts at the current position (the caller checked for end markers). */
export function readRow(reader: Reader, columnCount: number): TypedValue[] {
  const headerBytes = rowHeaderBytes(columnCount);
  const header = reader.raw(headerBytes, 'row header');
  const row: TypedValue[] = [];
  for (let i = 0; i < columnCount; i++) {
    const byte = header[i >> 1]!;
    const type = (i & 1) === 0 ? byte & 0x0f : byte >> 4;
    row.push(readValue(reader, type, `column ${i}`));
  }
  return row;
}

export type { ValueTypeCode };

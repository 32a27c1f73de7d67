/**
 * The JSON shapes rqlite answers with (rqlite.io/docs/api/api): per statement either
 * `{last_insert_id, rows_affected}`, `{columns, types, values}` (or `{types, rows}` with
 * `?associative`), or `{error}`; around them `{results, time?}`.
 */
import { ValueType, type TypedValue } from '../protocol/index.ts';

export type JsonValue = null | boolean | number | bigint | string | JsonValue[] | { [key: string]: JsonValue };

export interface ResultShape {
  associative: boolean;
  timings: boolean;
  /** Blobs as arrays of byte values instead of base64 text (rqlite's `?blob_array`). */
  blobArray: boolean;
}

export function errorResult(message: string, seconds: number, shape: ResultShape): JsonValue {
  return shape.timings ? { error: message, time: seconds } : { error: message };
}

/**
 * Like rqlite, zero fields are left out: a CREATE answers `{}`. SQLite's last insert id belongs
 * to the connection, so it is shown only for a statement that changed rows.
 */
export function writeResult(lastInsertId: bigint, rowsAffected: bigint, seconds: number, shape: ResultShape): JsonValue {
  const result: Record<string, JsonValue> = {};
  if (rowsAffected > 0n) {
    result['last_insert_id'] = lastInsertId;
    result['rows_affected'] = rowsAffected;
  }
  if (shape.timings) result['time'] = seconds;
  return result;
}

export function rowsResult(columns: string[], rows: TypedValue[][], seconds: number, shape: ResultShape): JsonValue {
  const types = columns.map((_, i) => columnType(rows, i));
  const result: Record<string, JsonValue> = {};
  if (shape.associative) {
    result['types'] = Object.fromEntries(columns.map((name, i) => [name, types[i]!]));
    result['rows'] = rows.map((row) => Object.fromEntries(columns.map((name, i) => [name, jsonValue(row[i], shape)])));
  } else {
    result['columns'] = columns;
    result['types'] = types;
    if (rows.length > 0) result['values'] = rows.map((row) => columns.map((_, i) => jsonValue(row[i], shape)));
  }
  if (shape.timings) result['time'] = seconds;
  return result;
}

/**
 * The dqlite protocol carries a value's type per row, not the column's declared type: a column
 * is named after its first non-NULL value (datetime and boolean come from declared types).
 */
function columnType(rows: TypedValue[][], column: number): string {
  for (const row of rows) {
    const value = row[column];
    if (!value || value.type === ValueType.Null) continue;
    switch (value.type) {
      case ValueType.Integer:
      case ValueType.UnixTime:
        return 'integer';
      case ValueType.Float:
        return 'real';
      case ValueType.Text:
        return 'text';
      case ValueType.Blob:
        return 'blob';
      case ValueType.Iso8601:
        return 'datetime';
      case ValueType.Boolean:
        return 'boolean';
    }
  }
  return '';
}

function jsonValue(value: TypedValue | undefined, shape: ResultShape): JsonValue {
  if (!value) return null;
  switch (value.type) {
    case ValueType.Null:
      return null;
    case ValueType.Integer:
    case ValueType.UnixTime:
      return value.value;
    case ValueType.Float:
      return Number.isFinite(value.value) ? value.value : null;
    case ValueType.Text:
      return value.value;
    case ValueType.Iso8601:
      return value.value === '' ? null : value.value;
    case ValueType.Boolean:
      return value.value ? 1 : 0;
    case ValueType.Blob:
      return shape.blobArray ? Array.from(value.value) : base64(value.value);
  }
}

function base64(bytes: Uint8Array): string {
  let binary = '';
  const step = 0x8000;
  for (let i = 0; i < bytes.length; i += step) binary += String.fromCharCode(...bytes.subarray(i, i + step));
  return btoa(binary);
}

/** Marks bigints inside JSON.stringify's output; random, so no stored text can look like it. */
const BIGINT_MARK = `bigint-${Math.random().toString(36).slice(2)}:`;
const BIGINT_MARKED = new RegExp(`"\\\\u0000${BIGINT_MARK}(-?\\d+)"`, 'g');

/** JSON text; bigints are written as exact integers (JSON.stringify cannot). */
export function encodeJson(value: JsonValue, pretty: boolean): string {
  const text = JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? `\u0000${BIGINT_MARK}${v.toString()}` : v), pretty ? 4 : undefined);
  return text.replace(BIGINT_MARKED, '$1') + '\n';
}

/**
 * SQLite values ↔ dqlite wire values. Like dqlite's query.c: columns declared DATETIME, DATE or
 * TIMESTAMP travel as UNIXTIME (integers) or ISO8601 (text, NULL as ''), BOOLEAN columns as
 * BOOLEAN, everything else by SQLite's dynamic type.
 */
import type { BindValue, SqlValue } from '../../wasm/index.ts';
import { ValueType, type TypedValue } from '../protocol/index.ts';

const SQLITE_INTEGER = 1;
const SQLITE_FLOAT = 2;
const SQLITE_TEXT = 3;
const SQLITE_BLOB = 4;

type DeclaredKind = 'time' | 'boolean' | 'plain';

const declaredKindCache = new Map<string, DeclaredKind>();

function declaredKind(declared: string | null | undefined): DeclaredKind {
  if (!declared) return 'plain';
  let kind = declaredKindCache.get(declared);
  if (!kind) {
    const upper = declared.trim().toUpperCase();
    kind = upper === 'DATETIME' || upper === 'DATE' || upper === 'TIMESTAMP' ? 'time' : upper === 'BOOLEAN' ? 'boolean' : 'plain';
    if (declaredKindCache.size < 1024) declaredKindCache.set(declared, kind);
  }
  return kind;
}

function asBigInt(value: SqlValue): bigint {
  return typeof value === 'bigint' ? value : BigInt(Math.trunc(Number(value)));
}

export function toTypedValue(value: SqlValue, sqliteType: number, declared: string | null | undefined): TypedValue {
  const kind = declaredKind(declared);
  if (kind === 'time') {
    if (sqliteType === SQLITE_INTEGER) return { type: ValueType.UnixTime, value: asBigInt(value) };
    if (sqliteType === SQLITE_TEXT) return { type: ValueType.Iso8601, value: value as string };
    if (value === null) return { type: ValueType.Iso8601, value: '' };
  } else if (kind === 'boolean') {
    if (sqliteType === SQLITE_INTEGER) return { type: ValueType.Boolean, value: asBigInt(value) !== 0n };
    if (value === null) return { type: ValueType.Boolean, value: false };
  }
  switch (sqliteType) {
    case SQLITE_INTEGER:
      return { type: ValueType.Integer, value: asBigInt(value) };
    case SQLITE_FLOAT:
      return { type: ValueType.Float, value: Number(value) };
    case SQLITE_TEXT:
      return { type: ValueType.Text, value: value as string };
    case SQLITE_BLOB:
      return { type: ValueType.Blob, value: value as Uint8Array };
    default:
      return { type: ValueType.Null, value: null };
  }
}

export function rowToTypedValues(
  row: readonly SqlValue[],
  types: readonly number[],
  declaredTypes: readonly (string | null)[],
): TypedValue[] {
  const out = new Array<TypedValue>(row.length);
  for (let i = 0; i < row.length; i++) out[i] = toTypedValue(row[i]!, types[i]!, declaredTypes[i]);
  return out;
}

const SAFE_MAX = BigInt(Number.MAX_SAFE_INTEGER);
const SAFE_MIN = -SAFE_MAX;

/** What a wire parameter binds as in SQLite. */
export function bindValue(param: TypedValue): BindValue {
  switch (param.type) {
    case ValueType.Integer:
    case ValueType.UnixTime:
      return param.value >= SAFE_MIN && param.value <= SAFE_MAX ? Number(param.value) : param.value;
    case ValueType.Float:
      // A float with no fraction (2.0) must stay REAL, as it does in dqlite.
      return { double: param.value };
    case ValueType.Text:
    case ValueType.Iso8601:
      return param.value;
    case ValueType.Blob:
      return param.value;
    case ValueType.Boolean:
      return param.value ? 1 : 0;
    default:
      return null;
  }
}

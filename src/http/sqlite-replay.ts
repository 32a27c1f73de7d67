/**
 * Replays an SQLite database (opened from a staged file) as SQL: schema, rows, sequences and
 * user_version, in an order that recreates it: tables, their rows, then indexes, views and
 * triggers (so triggers do not fire on the copied rows). Run inside one transaction, it becomes
 * one replicated change. Rowids are kept, so rows keep their identity.
 */
import type { Database as EngineDatabase, Statement as EngineStatement } from '../../wasm/index.ts';
import { ValueType, type TypedValue } from '../protocol/index.ts';

/** Where the replayed SQL goes (a transaction on the leader). */
export interface ReplaySink {
  exec(sql: string, params: TypedValue[]): Promise<void>;
}

export interface ReplayCounts {
  tables: number;
  indexes: number;
  views: number;
  triggers: number;
  rows: number;
}

interface SchemaEntry {
  type: string;
  name: string;
  sql: string | null;
}

/** Bound on the values bound in one INSERT: the dqlite wire format (schema 0) carries at most 255. */
const PARAMS_PER_INSERT_MAX = 255;
const ROWS_PER_INSERT_MAX = 200;
/**
 * Bound on the bytes of the values bound in one INSERT (a row larger than this goes alone).
 * Each INSERT is encoded, executed and captured in one go, without a turn of the event loop:
 * 200 rows of 100 KiB blobs in one statement held the leader's loop long enough, on a busy
 * machine, for the followers to elect a new leader mid-load.
 */
export const INSERT_VALUE_BYTES_MAX = 1024 * 1024;

/**
 * Longest stretch the replay runs without giving the event loop a turn. Each statement on the
 * node's own gateway resolves as a microtask, so without this a large replay would hold the
 * loop for seconds: no heartbeats go out and the followers elect a new leader mid-load.
 */
const REPLAY_SLICE_MS = 20;

/** A source database feature the replay cannot carry over; the message says what to do. */
export class ReplayError extends Error {
  override readonly name = 'ReplayError';
}

export function quoteName(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function readSchema(source: EngineDatabase): SchemaEntry[] {
  return all(source, 'SELECT type, name, sql FROM sqlite_schema ORDER BY rowid').map((row) => ({
    type: String(row[0]),
    name: String(row[1]),
    sql: row[2] === null ? null : String(row[2]),
  }));
}

/** Tables, views, indexes and triggers a user made (SQLite's own objects excluded). */
export function userObjects(schema: SchemaEntry[]): SchemaEntry[] {
  return schema.filter((entry) => !entry.name.startsWith('sqlite_'));
}

export async function replayDatabase(source: EngineDatabase, sink: ReplaySink, onRows?: (rows: number) => void): Promise<ReplayCounts> {
  const schema = readSchema(source);
  const objects = userObjects(schema);
  const virtual = objects.find((entry) => entry.type === 'table' && /^\s*CREATE\s+VIRTUAL\s+TABLE/i.test(entry.sql ?? ''));
  if (virtual) {
    throw new ReplayError(`table ${virtual.name} is a virtual table, which import cannot copy: drop it (or copy it into a plain table) first`);
  }
  const counts: ReplayCounts = { tables: 0, indexes: 0, views: 0, triggers: 0, rows: 0 };
  const tables = objects.filter((entry) => entry.type === 'table');
  for (const table of tables) {
    await sink.exec(table.sql!, []);
    counts.tables++;
  }
  for (const table of tables) {
    const before = counts.rows;
    counts.rows += await copyRows(source, table.name, sink, (copied) => onRows?.(before + copied));
    onRows?.(counts.rows);
  }
  if (schema.some((entry) => entry.type === 'table' && entry.name === 'sqlite_sequence')) {
    await sink.exec('DELETE FROM sqlite_sequence', []);
    for (const row of all(source, 'SELECT name, seq FROM sqlite_sequence')) {
      await sink.exec('INSERT INTO sqlite_sequence(name, seq) VALUES (?, ?)', [typed(row[0]!, 3), typed(row[1]!, 1)]);
    }
  }
  for (const type of ['index', 'view', 'trigger'] as const) {
    for (const entry of objects.filter((e) => e.type === type && e.sql !== null)) {
      await sink.exec(entry.sql!, []);
      if (type === 'index') counts.indexes++;
      else if (type === 'view') counts.views++;
      else counts.triggers++;
    }
  }
  const userVersion = Number(all(source, 'PRAGMA user_version')[0]?.[0] ?? 0);
  if (userVersion !== 0) await sink.exec(`PRAGMA user_version = ${Math.trunc(userVersion)}`, []);
  return counts;
}

async function copyRows(source: EngineDatabase, table: string, sink: ReplaySink, onRows: (copied: number) => void): Promise<number> {
  // table_xinfo: hidden 0 is a plain column; generated columns (2, 3) cannot be inserted.
  const columns = all(source, `PRAGMA table_xinfo(${quoteName(table)})`)
    .filter((row) => Number(row[6]) === 0)
    .map((row) => ({ name: String(row[1]), type: String(row[2] ?? '').toUpperCase(), pk: Number(row[5]) }));
  const rowidAlias = columns.filter((c) => c.pk > 0).length === 1 && columns.find((c) => c.pk > 0)!.type === 'INTEGER';
  const keepRowid = hasRowid(source, table) && !rowidAlias;
  const names = [...(keepRowid ? ['rowid'] : []), ...columns.map((c) => c.name)];
  if (names.length === 0) return 0;
  const select = source.prepare(`SELECT ${names.map(quoteName).join(', ')} FROM ${quoteName(table)}`)!;
  const rowsPerInsert = Math.max(1, Math.min(ROWS_PER_INSERT_MAX, Math.floor(PARAMS_PER_INSERT_MAX / names.length)));
  const insertHead = `INSERT INTO ${quoteName(table)}(${names.map(quoteName).join(', ')}) VALUES `;
  const tuple = `(${names.map(() => '?').join(', ')})`;
  let copied = 0;
  let sliceStartMs = performance.now();
  let batch: TypedValue[] = [];
  let batchRows = 0;
  let batchBytes = 0;
  const flush = async (): Promise<void> => {
    if (batchRows === 0) return;
    await sink.exec(insertHead + Array.from({ length: batchRows }, () => tuple).join(', '), batch);
    copied += batchRows;
    onRows(copied);
    batch = [];
    batchRows = 0;
    batchBytes = 0;
    if (performance.now() - sliceStartMs >= REPLAY_SLICE_MS) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      sliceStartMs = performance.now();
    }
  };
  try {
    while (select.step()) {
      const values = select.row();
      const types = select.rowTypes();
      const rowBytes = valueBytes(values);
      if (batchRows > 0 && batchBytes + rowBytes > INSERT_VALUE_BYTES_MAX) await flush();
      for (let i = 0; i < values.length; i++) batch.push(typed(values[i]!, types[i]!));
      batchRows++;
      batchBytes += rowBytes;
      if (batchRows === rowsPerInsert || batchBytes >= INSERT_VALUE_BYTES_MAX) await flush();
    }
    await flush();
  } finally {
    select.finalize();
  }
  return copied;
}

/** About what a row's values weigh once bound (text counted as its UTF-16 length, a lower bound). */
function valueBytes(values: readonly (null | number | bigint | string | Uint8Array)[]): number {
  let bytes = 0;
  for (const value of values) {
    if (value instanceof Uint8Array) bytes += value.byteLength;
    else if (typeof value === 'string') bytes += value.length;
    else bytes += 8;
  }
  return bytes;
}

function hasRowid(source: EngineDatabase, table: string): boolean {
  let statement: EngineStatement | null = null;
  try {
    statement = source.prepare(`SELECT rowid FROM ${quoteName(table)} LIMIT 0`);
    return true;
  } catch {
    return false; // WITHOUT ROWID
  } finally {
    statement?.finalize();
  }
}

/** SQLite's storage class codes: 1 integer, 2 float, 3 text, 4 blob, 5 null. */
function typed(value: null | number | bigint | string | Uint8Array, type: number): TypedValue {
  switch (type) {
    case 1:
      return { type: ValueType.Integer, value: BigInt(value as number | bigint) };
    case 2:
      return { type: ValueType.Float, value: value as number };
    case 3:
      return { type: ValueType.Text, value: value as string };
    case 4:
      return { type: ValueType.Blob, value: value as Uint8Array };
    default:
      return { type: ValueType.Null, value: null };
  }
}

function all(source: EngineDatabase, sql: string): (null | number | bigint | string | Uint8Array)[][] {
  const statement = source.prepare(sql);
  if (!statement) return [];
  const rows: (null | number | bigint | string | Uint8Array)[][] = [];
  try {
    while (statement.step()) rows.push(statement.row());
  } finally {
    statement.finalize();
  }
  return rows;
}

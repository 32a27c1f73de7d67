// A statement's read set: the tables SQLite itself says it reads. While the statement compiles,
// the authorizer hears an SQLITE_READ for every column of every table the statement touches,
// the tables under a view or a subquery included, and one with an empty column name for a table
// read for no column (`SELECT count(*) FROM t`). Recording them costs nothing at run time: the
// authorizer is asked at compile time only.

import type { SqlGuard } from './sql-guard.ts';

const SQLITE_READ = 20;

/**
 * The tables a statement reads, by name as its schema spells them (case kept). `schema` is true
 * when it reads SQLite's own tables (sqlite_schema and the like): those change with DDL and with
 * AUTOINCREMENT, which a list of changed user tables may not name, so such a statement must be
 * treated as reading everything.
 */
export interface ReadSet {
  readonly tables: readonly string[];
  readonly schema: boolean;
}

/** Runs `prepare` (a compile on a connection guarded by `guard`) and returns what it reads. */
export function recordReadSet<T>(guard: SqlGuard, prepare: () => T): { result: T; readSet: ReadSet } {
  const tables = new Set<string>();
  let schema = false;
  const result = guard.observe((action, table, _column, database) => {
    if (action !== SQLITE_READ || table === null) return;
    // The TEMP schema cannot change through replication: it is this connection's own.
    if (database === 'temp') return;
    if (table.toLowerCase().startsWith('sqlite_')) schema = true;
    else tables.add(table);
  }, prepare);
  return { result, readSet: { tables: [...tables].sort(), schema } };
}

/** Whether a transaction that changed `changedTables` may change the result of a read of `readSet`. */
export function readSetTouched(readSet: ReadSet, changedTables: readonly string[]): boolean {
  if (readSet.schema) return true;
  if (changedTables.length === 0 || readSet.tables.length === 0) return false;
  // SQLite's names are case-insensitive (ASCII); the change list and the schema may differ in case.
  const changed = new Set(changedTables.map((t) => t.toLowerCase()));
  return readSet.tables.some((t) => changed.has(t.toLowerCase()));
}

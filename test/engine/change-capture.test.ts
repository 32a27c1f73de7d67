import { beforeAll, describe, expect, it } from 'vitest';
import { Engine, SCHEMA_TABLE, type CapturedChanges, type Database } from '../../wasm/index.ts';
import { run, ship } from './helpers.ts';

let engine: Engine;
let follower: Engine;
let counter = 0;

beforeAll(async () => {
  [engine, follower] = await Promise.all([Engine.create({ changeCapture: { changeSetBytesMax: 4096 } }), Engine.create()]);
});

function fresh(): Database {
  return engine.open(`capture${++counter}`);
}

/** Runs `sql` and returns the changes of every transaction it committed (shipping them to a follower). */
function changesOf(db: Database, sql: string, values: (string | number | null)[] = []): (CapturedChanges | undefined)[] {
  run(db, sql, values);
  return ship(db, [follower.open(db.name)]).map((tx) => tx.changes);
}

describe('change capture (pre-update hook)', () => {
  it('records inserts, updates and deletes with the rowid as key and the new values', () => {
    const db = fresh();
    expect(changesOf(db, 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)')).toEqual([{ tables: [SCHEMA_TABLE], rows: [], rowsOmitted: false }]);
    expect(changesOf(db, 'INSERT INTO t(id, v) VALUES (1, ?)', ['one'])).toEqual([
      { tables: ['t'], rows: [{ operation: 'insert', table: 't', primaryKey: [1], values: [1, 'one'] }], rowsOmitted: false },
    ]);
    run(db, 'CREATE TABLE u(x)');
    ship(db, [follower.open(db.name)]);
    const [tx] = changesOf(db, "BEGIN; UPDATE t SET v = 'uno' WHERE id = 1; INSERT INTO u(x) VALUES (x'0102'); DELETE FROM t WHERE id = 1; COMMIT");
    expect(tx).toEqual({
      tables: ['t', 'u'],
      rows: [
        { operation: 'update', table: 't', primaryKey: [1], values: [1, 'uno'] },
        { operation: 'insert', table: 'u', primaryKey: [1], values: [new Uint8Array([1, 2])] },
        { operation: 'delete', table: 't', primaryKey: [1] },
      ],
      rowsOmitted: false,
    });
  });

  it('gives one change per transaction, none for rolled-back ones, and nothing for reads', () => {
    const db = fresh();
    changesOf(db, 'CREATE TABLE t(id INTEGER PRIMARY KEY, v)');
    run(db, 'BEGIN; INSERT INTO t VALUES (1, 1); ROLLBACK');
    expect(changesOf(db, 'SELECT * FROM t')).toEqual([]);
    expect(changesOf(db, 'DELETE FROM t WHERE id = 99')).toEqual([]);
    const changes = changesOf(db, 'INSERT INTO t VALUES (2, 2)');
    expect(changes).toHaveLength(1);
    expect(changes[0]!.rows).toEqual([{ operation: 'insert', table: 't', primaryKey: [2], values: [2, 2] }]);
  });

  it('keys WITHOUT ROWID tables by their declared key, deletes included', () => {
    const db = fresh();
    changesOf(db, 'CREATE TABLE kv(b TEXT, a INTEGER, v, PRIMARY KEY (a, b)) WITHOUT ROWID');
    expect(changesOf(db, "INSERT INTO kv VALUES ('x', 7, 'val')")[0]!.rows).toEqual([{ operation: 'insert', table: 'kv', primaryKey: [7, 'x'], values: ['x', 7, 'val'] }]);
    expect(changesOf(db, 'DELETE FROM kv')[0]!.rows).toEqual([{ operation: 'delete', table: 'kv', primaryKey: [7, 'x'] }]);
  });

  it('a rowid change is a delete of the old row and an insert of the new', () => {
    const db = fresh();
    changesOf(db, 'CREATE TABLE t(id INTEGER PRIMARY KEY, v); INSERT INTO t VALUES (1, 1)');
    expect(changesOf(db, 'UPDATE t SET id = 5')[0]!.rows).toEqual([
      { operation: 'delete', table: 't', primaryKey: [1] },
      { operation: 'insert', table: 't', primaryKey: [5], values: [5, 1] },
    ]);
  });

  it('keeps only the table list above changeSetBytesMax and after ROLLBACK TO', () => {
    const db = fresh();
    changesOf(db, 'CREATE TABLE t(id INTEGER PRIMARY KEY, v)');
    const [omitted] = changesOf(db, 'WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) INSERT INTO t(v) SELECT hex(randomblob(100)) FROM n');
    expect(omitted).toEqual({ tables: ['t'], rowsOmitted: true });
    const [undone] = changesOf(db, 'BEGIN; INSERT INTO t(v) VALUES (1); SAVEPOINT s; INSERT INTO t(v) VALUES (2); ROLLBACK TO s; COMMIT');
    expect(undone).toEqual({ tables: ['t'], rowsOmitted: true });
  });

  it('ignores temp tables and can be turned off per database', () => {
    const db = fresh();
    changesOf(db, 'CREATE TABLE t(v)');
    expect(changesOf(db, 'CREATE TEMP TABLE scratch(v); INSERT INTO scratch VALUES (1)')).toEqual([]);
    db.captureChanges(undefined);
    expect(changesOf(db, 'INSERT INTO t VALUES (1)')).toEqual([undefined]);
    db.captureChanges({ changeSetBytesMax: 1024 });
    expect(changesOf(db, 'INSERT INTO t VALUES (2)')[0]!.rows).toEqual([{ operation: 'insert', table: 't', primaryKey: [2], values: [2] }]);
  });

  it('names the right table after tables are dropped, created and renamed', () => {
    const db = fresh();
    changesOf(db, 'CREATE TABLE a(v); INSERT INTO a VALUES (1)');
    changesOf(db, 'DROP TABLE a; CREATE TABLE b(v)');
    expect(changesOf(db, 'INSERT INTO b VALUES (2)')[0]!.tables).toEqual(['b']);
    changesOf(db, 'ALTER TABLE b RENAME TO c');
    expect(changesOf(db, 'INSERT INTO c VALUES (3)')[0]!.tables).toEqual(['c']);
  });

  it('survives abort (connection reopened) and captures again afterwards', () => {
    const db = fresh();
    changesOf(db, 'CREATE TABLE t(v)');
    run(db, 'INSERT INTO t VALUES (1)');
    db.takeCaptured();
    db.abort();
    expect(changesOf(db, 'INSERT INTO t VALUES (3)')[0]!.rows).toEqual([{ operation: 'insert', table: 't', primaryKey: [1], values: [3] }]);
  });
});

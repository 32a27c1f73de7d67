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

  it('keeps a text value exactly, a leading U+FEFF included, and turns invalid UTF-8 into U+FFFD', () => {
    const db = fresh();
    changesOf(db, 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
    for (const text of ['\uFEFFbom first', 'plain ascii', 'é à ü ✓ 😀', '', 'a\u0000b']) {
      expect(changesOf(db, 'INSERT INTO t(v) VALUES (?)', [text])[0]!.rows![0]!.values![1]).toBe(text);
    }
    // x'C328' is not UTF-8: cast to text it reads as U+FFFD followed by '('.
    expect(changesOf(db, "INSERT INTO t(v) VALUES (CAST(x'41C328' AS TEXT))")[0]!.rows![0]!.values![1]).toBe('A\uFFFD(');
  });

  it('records every value type, large integers and floats that are whole numbers included', () => {
    const db = fresh();
    changesOf(db, 'CREATE TABLE t(id INTEGER PRIMARY KEY, a, b, c, d, e, f)');
    const [tx] = changesOf(db, "INSERT INTO t VALUES (-9007199254740993, 9007199254740991, -4294967297, 2.0, -0.5, x'', NULL)");
    expect(tx!.rows).toEqual([
      { operation: 'insert', table: 't', primaryKey: [-9007199254740993n], values: [-9007199254740993n, 9007199254740991, -4294967297, 2, -0.5, new Uint8Array(0), null] },
    ]);
    expect(changesOf(db, 'UPDATE t SET a = 9223372036854775807, b = -1e300')[0]!.rows![0]!.values!.slice(1, 3)).toEqual([9223372036854775807n, -1e300]);
  });

  it('keeps rows larger than its buffer whole, and the next transactions after them', () => {
    const db = fresh();
    db.captureChanges({ changeSetBytesMax: 1 << 20 });
    changesOf(db, 'CREATE TABLE t(id INTEGER PRIMARY KEY, v, w)');
    const big = new Uint8Array(3000).map((_, i) => i & 0xff);
    run(db, 'BEGIN');
    for (let i = 1; i <= 12; i++) run(db, 'INSERT INTO t VALUES (?, zeroblob(?), ?)', [i, i, big]);
    const [tx] = changesOf(db, 'COMMIT');
    expect(tx!.rowsOmitted).toBe(false);
    expect(tx!.rows).toEqual(Array.from({ length: 12 }, (_, i) => ({ operation: 'insert', table: 't', primaryKey: [i + 1], values: [i + 1, new Uint8Array(i + 1), big] })));
    expect(changesOf(db, "INSERT INTO t VALUES (99, 'after', 1)")[0]!.rows).toEqual([{ operation: 'insert', table: 't', primaryKey: [99], values: [99, 'after', 1] }]);
  });

  it('lists tables sorted and indexes rows by that list, whatever order they changed in', () => {
    const db = fresh();
    changesOf(db, 'CREATE TABLE zeta(v); CREATE TABLE alpha(v); CREATE TABLE mid(k TEXT PRIMARY KEY, v) WITHOUT ROWID');
    const [tx] = changesOf(db, "BEGIN; INSERT INTO zeta VALUES (1); INSERT INTO mid VALUES ('k', 2); INSERT INTO alpha VALUES (3); DELETE FROM mid; DELETE FROM zeta; COMMIT");
    expect(tx).toEqual({
      tables: ['alpha', 'mid', 'zeta'],
      rows: [
        { operation: 'insert', table: 'zeta', primaryKey: [1], values: [1] },
        { operation: 'insert', table: 'mid', primaryKey: ['k'], values: ['k', 2] },
        { operation: 'insert', table: 'alpha', primaryKey: [1], values: [3] },
        { operation: 'delete', table: 'mid', primaryKey: ['k'] },
        { operation: 'delete', table: 'zeta', primaryKey: [1] },
      ],
      rowsOmitted: false,
    });
    // Known keys now: a delete of a rowid table no longer keeps its old values, of a WITHOUT ROWID one still does.
    run(db, "INSERT INTO zeta VALUES (5); INSERT INTO mid VALUES ('j', 6)");
    ship(db, [follower.open(db.name)]);
    expect(changesOf(db, 'BEGIN; DELETE FROM zeta; DELETE FROM mid; COMMIT')[0]!.rows).toEqual([
      { operation: 'delete', table: 'zeta', primaryKey: [1] },
      { operation: 'delete', table: 'mid', primaryKey: ['j'] },
    ]);
  });

  it('reads values right when SQLite grows its memory inside the hook (a large zeroblob is expanded there)', () => {
    const db = fresh();
    db.captureChanges({ changeSetBytesMax: 64 << 20 });
    changesOf(db, 'CREATE TABLE t(id INTEGER PRIMARY KEY, z, r, s)');
    const [tx] = changesOf(db, "INSERT INTO t VALUES (1, zeroblob(12 << 20), randomblob(3 << 20), 'after the blobs')");
    const values = tx!.rows![0]!.values!;
    expect((values[1] as Uint8Array).length).toBe(12 << 20);
    expect((values[1] as Uint8Array).every((byte) => byte === 0)).toBe(true);
    const [[stored]] = run(db, 'SELECT r FROM t');
    expect(values[2]).toEqual(stored);
    expect(values[3]).toBe('after the blobs');
  });
});

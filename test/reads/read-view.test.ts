// The engine's read view on real SQLite: it shows exactly the confirmed state, never pending or
// open-transaction frames, follows commits, applies and checkpoints, and never changes a byte.
import { beforeAll, describe, expect, it } from 'vitest';
import { Engine, type Database } from '../../wasm/index.ts';
import { bytesEqual, run, ship } from '../engine/helpers.ts';

function readAll(db: Database, sql: string): unknown[][] {
  const view = db.readView();
  view.catchUp();
  const statement = view.prepare(sql)!;
  try {
    const rows: unknown[][] = [];
    while (statement.step()) rows.push(statement.row());
    return rows;
  } finally {
    statement.finalize();
  }
}

function filesOf(db: Database): { main: Uint8Array; wal: Uint8Array } {
  return db.files();
}

describe('read view', () => {
  let engineA: Engine;
  let engineB: Engine;
  beforeAll(async () => {
    engineA = await Engine.create();
    engineB = await Engine.create();
  });

  it('shows the confirmed state only: not pending frames, not an open transaction', () => {
    const leader = engineA.open('view-pending');
    const follower = engineB.open('view-pending');
    expect(readAll(leader, 'SELECT count(*) FROM sqlite_master')).toEqual([[0]]);
    run(leader, 'CREATE TABLE t (x INT)');
    ship(leader, [follower]);
    run(leader, 'INSERT INTO t VALUES (1)');
    ship(leader, [follower]);
    expect(readAll(leader, 'SELECT x FROM t')).toEqual([[1]]);

    // Committed in SQLite, captured, not confirmed: pending.
    run(leader, 'INSERT INTO t VALUES (2)');
    const pending = leader.takeCaptured();
    expect(pending).toHaveLength(1);
    expect(run(leader, 'SELECT x FROM t ORDER BY x')).toEqual([[1], [2]]);
    expect(readAll(leader, 'SELECT x FROM t ORDER BY x')).toEqual([[1]]);

    // An open transaction with spilled and unspilled changes.
    run(leader, "BEGIN; INSERT INTO t VALUES (3); INSERT INTO t SELECT 100 + x FROM t");
    expect(leader.inTransaction()).toBe(true);
    expect(readAll(leader, 'SELECT x FROM t ORDER BY x')).toEqual([[1]]);
    run(leader, 'COMMIT');

    leader.confirm(1);
    expect(readAll(leader, 'SELECT x FROM t ORDER BY x')).toEqual([[1], [2]]);
    follower.apply(pending[0]!.payload);
    expect(readAll(follower, 'SELECT x FROM t ORDER BY x')).toEqual([[1], [2]]);
    ship(leader, [follower]);
    expect(readAll(leader, 'SELECT count(*) FROM t')).toEqual([[6]]);
    expect(readAll(follower, 'SELECT count(*) FROM t')).toEqual([[6]]);
  });

  it('writes nothing: replicas stay byte-identical, the view refuses writes', () => {
    const leader = engineA.open('view-bytes');
    const follower = engineB.open('view-bytes');
    run(leader, 'CREATE TABLE t (x INT); INSERT INTO t VALUES (1)');
    ship(leader, [follower]);
    const before = filesOf(follower);
    expect(readAll(follower, 'SELECT x FROM t')).toEqual([[1]]);
    expect(() => readAll(follower, 'INSERT INTO t VALUES (9)')).toThrow(/readonly|read-only|query_only|attempt to write/i);
    expect(() => readAll(follower, 'PRAGMA journal_mode=DELETE')).toThrow();
    const after = filesOf(follower);
    expect(bytesEqual(before.main, after.main)).toBe(true);
    expect(bytesEqual(before.wal, after.wal)).toBe(true);
    expect(bytesEqual(filesOf(leader).wal, after.wal)).toBe(true);
  });

  it('follows commits and a checkpoint on one connection', () => {
    const leader = engineA.open('view-checkpoint');
    const follower = engineB.open('view-checkpoint');
    run(leader, 'CREATE TABLE t (x INT)');
    ship(leader, [follower]);
    for (let i = 0; i < 5; i++) {
      run(leader, 'INSERT INTO t VALUES (?)', [i]);
      ship(leader, [follower]);
    }
    const view = follower.readView();
    for (let i = 0; i < 10; i++) expect(readAll(follower, 'SELECT count(*) FROM t')).toEqual([[5]]);
    leader.checkpoint();
    follower.checkpoint();
    expect(filesOf(follower).wal.length).toBe(0);
    expect(readAll(follower, 'SELECT count(*) FROM t')).toEqual([[5]]);
    run(leader, 'INSERT INTO t VALUES (5)');
    ship(leader, [follower]);
    expect(readAll(follower, 'SELECT count(*) FROM t')).toEqual([[6]]);
    expect(readAll(leader, 'SELECT count(*) FROM t')).toEqual([[6]]);
    // One connection followed every commit, apply and checkpoint.
    expect(view.openCount).toBe(1);
    expect(bytesEqual(filesOf(leader).main, filesOf(follower).main)).toBe(true);
    expect(bytesEqual(filesOf(leader).wal, filesOf(follower).wal)).toBe(true);
  });

  it('a prepared read statement recompiles on the newer state', () => {
    const leader = engineA.open('view-prepared');
    run(leader, 'CREATE TABLE t (x INT); INSERT INTO t VALUES (1)');
    leader.confirm(leader.takeCaptured().length);
    const view = leader.readView();
    const statement = view.prepare('SELECT count(*) FROM t')!;
    expect(statement.step()).toBe(true);
    expect(statement.row()).toEqual([1]);
    statement.reset();
    run(leader, 'INSERT INTO t VALUES (2)');
    leader.confirm(leader.takeCaptured().length);
    view.catchUp();
    expect(statement.step()).toBe(true);
    expect(statement.row()).toEqual([2]);
    statement.finalize();
  });

  it('refuses a database name that would collide with a read view', () => {
    expect(() => engineA.open('x-readview')).toThrow(/readview/);
  });
});

describe('read view under a seeded workload', () => {
  /** Rows as a short comparable text: id, blob length and a checksum, the other columns. */
  function dump(rows: unknown[][]): string {
    return rows
      .map((row) =>
        row.map((v) => (v instanceof Uint8Array ? `${v.length}:${v.reduce((a, b) => (a * 31 + b) >>> 0, 7)}` : String(v))).join(','),
      )
      .join(' ');
  }

  it('always equals the confirmed state: writes, pending, aborts, schema changes, shrinking, checkpoints', async () => {
    const engineL = await Engine.create();
    const engineF = await Engine.create();
    const leader = engineL.open('seeded');
    const follower = engineF.open('seeded');
    run(leader, 'CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)');
    ship(leader, [follower]);
    let seed = 42;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const query = 'SELECT * FROM t ORDER BY id';
    let columns = 2;
    for (let step = 0; step < 300; step++) {
      const choice = random(100);
      if (choice < 50) run(leader, 'INSERT OR REPLACE INTO t (id, v) VALUES (?, randomblob(?))', [random(200), random(6000)]);
      else if (choice < 65) run(leader, 'DELETE FROM t WHERE id % 7 = ?', [random(7)]);
      else if (choice < 70 && columns < 6) {
        run(leader, `ALTER TABLE t ADD COLUMN c${columns} INT DEFAULT ${columns}`);
        columns++;
      } else if (choice < 75) run(leader, `CREATE INDEX IF NOT EXISTS i${random(4)} ON t (v)`);
      else if (choice < 80) run(leader, 'VACUUM');
      else if (choice < 85) {
        // Pending, then aborted: never visible.
        const before = dump(readAll(leader, query));
        run(leader, 'INSERT OR REPLACE INTO t (id, v) VALUES (?, randomblob(100))', [1000 + step]);
        expect(leader.takeCaptured().length).toBe(1);
        expect(dump(readAll(leader, query))).toBe(before);
        leader.abort();
        continue;
      } else if (choice < 90) {
        leader.checkpoint();
        follower.checkpoint();
      }
      ship(leader, [follower]);
      const expected = dump(run(follower, query));
      expect(`${step}/${choice}: ${dump(readAll(leader, query))}`).toBe(`${step}/${choice}: ${expected}`);
      expect(dump(readAll(follower, query))).toBe(expected);
      if (step % 50 === 0) expect(readAll(follower, 'PRAGMA integrity_check')).toEqual([['ok']]);
    }
    expect(bytesEqual(filesOf(leader).main, filesOf(follower).main)).toBe(true);
    expect(bytesEqual(filesOf(leader).wal, filesOf(follower).wal)).toBe(true);
  });
});

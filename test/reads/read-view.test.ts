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

  it('follows a checkpoint and reopens at most once per commit', () => {
    const leader = engineA.open('view-checkpoint');
    const follower = engineB.open('view-checkpoint');
    run(leader, 'CREATE TABLE t (x INT)');
    ship(leader, [follower]);
    for (let i = 0; i < 5; i++) {
      run(leader, 'INSERT INTO t VALUES (?)', [i]);
      ship(leader, [follower]);
    }
    const view = follower.readView();
    const opened = view.reopenCount;
    for (let i = 0; i < 10; i++) expect(readAll(follower, 'SELECT count(*) FROM t')).toEqual([[5]]);
    expect(view.reopenCount - opened).toBeLessThanOrEqual(1);
    leader.checkpoint();
    follower.checkpoint();
    expect(filesOf(follower).wal.length).toBe(0);
    expect(readAll(follower, 'SELECT count(*) FROM t')).toEqual([[5]]);
    run(leader, 'INSERT INTO t VALUES (5)');
    ship(leader, [follower]);
    expect(readAll(follower, 'SELECT count(*) FROM t')).toEqual([[6]]);
    expect(readAll(leader, 'SELECT count(*) FROM t')).toEqual([[6]]);
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

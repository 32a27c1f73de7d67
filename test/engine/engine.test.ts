import { beforeAll, describe, expect, it } from 'vitest';
import { Engine, EngineError, SqliteError, type Database } from '../../wasm/index.ts';
import { PAYLOAD_HEADER_BYTES } from '../../wasm/captured-payload.ts';
import { WAL_FRAME_HEADER_BYTES, WAL_HEADER_BYTES } from '../../wasm/wal-format.ts';
import { assertSameFiles, bytesEqual, digest, run, ship } from './helpers.ts';

let leaderEngine: Engine;
let followerEngine: Engine;
let otherEngine: Engine;
let counter = 0;

beforeAll(async () => {
  [leaderEngine, followerEngine, otherEngine] = await Promise.all([Engine.create(), Engine.create(), Engine.create()]);
});

/** A fresh leader/follower pair with the same name on two engines. */
function pair(): { leader: Database; follower: Database } {
  const name = `db${++counter}`;
  return { leader: leaderEngine.open(name), follower: followerEngine.open(name) };
}

function expectEngineError(action: () => void, code: string): EngineError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(EngineError);
    expect((error as EngineError).code).toBe(code);
    expect((error as EngineError).message.length).toBeGreaterThan(10);
    return error as EngineError;
  }
  throw new Error(`expected EngineError ${code}`);
}

describe('Engine', () => {
  it('opens databases with the default page size, lists and finds them', () => {
    const { leader } = pair();
    expect(leader.pageSize).toBe(4096);
    expect(run(leader, 'PRAGMA journal_mode')).toEqual([['wal']]);
    expect(run(leader, 'PRAGMA locking_mode')).toEqual([['exclusive']]);
    expect(run(leader, 'PRAGMA synchronous')).toEqual([[2]]);
    expect(leaderEngine.databases()).toContain(leader.name);
    expect(leaderEngine.get(leader.name)).toBe(leader);
    expect(leaderEngine.open(leader.name)).toBe(leader);
    leader.close();
    expect(leaderEngine.get(leader.name)).toBeUndefined();
    expect(() => leader.prepare('SELECT 1')).toThrow(EngineError);
  });

  it('creates byte-identical databases on every engine (replicas start equal)', () => {
    const { leader, follower } = pair();
    assertSameFiles(leader, follower, 'after open');
    expect(leader.files().main.length).toBe(4096);
  });

  it('uses an injected loader and page size', async () => {
    let calls = 0;
    const engine = await Engine.create({
      pageSize: 8192,
      loadSqlite: async () => {
        calls++;
        const module = await import('@sqlite.org/sqlite-wasm');
        return module.default();
      },
    });
    expect(calls).toBe(1);
    expect(engine.open('x').pageSize).toBe(8192);
    await expect(Engine.create({ loadSqlite: async () => ({}) })).rejects.toThrow(TypeError);
    await expect(Engine.create({ pageSize: 1000 })).rejects.toThrow(EngineError);
  });
});

describe('Statement', () => {
  it('returns null for whitespace and comments, splits text into sql and tail', () => {
    const { leader } = pair();
    expect(leader.prepare('  -- nothing\n /* here */ ')).toBeNull();
    expect(leader.prepare(';;')).toBeNull();
    const statement = leader.prepare(' ; SELECT 1 AS one; SELECT 2')!;
    expect(statement.sql).toBe('SELECT 1 AS one;');
    expect(statement.tail).toBe(' SELECT 2');
    expect(statement.columnNames).toEqual(['one']);
    expect(statement.isReadonly).toBe(true);
    statement.finalize();
  });

  it('binds and reads back every value type', () => {
    const { leader } = pair();
    run(leader, 'CREATE TABLE v(a INTEGER, b REAL, c TEXT, d BLOB, e)');
    const insert = leader.prepare('INSERT INTO v VALUES(?, ?, ?, ?, ?)')!;
    expect(insert.parameterCount).toBe(5);
    expect(insert.isReadonly).toBe(false);
    const big = 2n ** 62n;
    insert.bind([big, 1.5, 'héllo 中 😀', new Uint8Array([0, 1, 255]), null]);
    expect(insert.step()).toBe(false);
    insert.bind([-(2 ** 53) + 1, -0.25, '', new Uint8Array(0), true]);
    expect(insert.step()).toBe(false);
    insert.bind([2147483648, 1e300, 'a\u0000b', new Uint8Array(70000).fill(9), false]);
    expect(insert.step()).toBe(false);
    insert.finalize();
    const select = leader.prepare('SELECT a, b, c, d, e FROM v ORDER BY rowid')!;
    expect(select.columnNames).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(select.declaredTypes).toEqual(['INTEGER', 'REAL', 'TEXT', 'BLOB', null]);
    expect(select.step()).toBe(true);
    expect(select.row()).toEqual([big, 1.5, 'héllo 中 😀', new Uint8Array([0, 1, 255]), null]);
    expect(select.rowTypes()).toEqual([1, 2, 3, 4, 5]);
    expect(select.step()).toBe(true);
    expect(select.row()).toEqual([-(2 ** 53) + 1, -0.25, '', new Uint8Array(0), 1]);
    expect(select.step()).toBe(true);
    const row = select.row();
    expect(row.slice(0, 3)).toEqual([2147483648, 1e300, 'a\u0000b']);
    expect((row[3] as Uint8Array).length).toBe(70000);
    expect(row[4]).toBe(0);
    expect(select.step()).toBe(false);
    select.finalize();
  });

  it('reports SQLite errors with extended codes; changes, rowid, transactions', () => {
    const { leader } = pair();
    run(leader, 'CREATE TABLE u(id INTEGER PRIMARY KEY, k TEXT UNIQUE NOT NULL)');
    run(leader, "INSERT INTO u(k) VALUES('a'),('b')");
    expect(leader.changes()).toBe(2);
    expect(leader.lastInsertRowid()).toBe(2);
    const insert = leader.prepare('INSERT INTO u(k) VALUES(?)')!;
    insert.bind(['a']);
    try {
      insert.step();
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(SqliteError);
      expect((error as SqliteError).code).toBe(2067);
      expect((error as SqliteError).primaryCode).toBe(19);
      expect((error as SqliteError).message).toMatch(/UNIQUE/);
    }
    insert.bind([null]);
    expect(() => insert.step()).toThrow(expect.objectContaining({ code: 1299 }));
    insert.finalize();
    expect(() => leader.prepare('SELEC 1')).toThrow(expect.objectContaining({ code: 1, name: 'SqliteError' }));
    const tooMany = leader.prepare('SELECT ?')!;
    expect(() => tooMany.bind([1, 2])).toThrow(SqliteError);
    tooMany.finalize();
    expect(leader.inTransaction()).toBe(false);
    run(leader, 'BEGIN');
    expect(leader.inTransaction()).toBe(true);
    run(leader, 'ROLLBACK');
    expect(leader.inTransaction()).toBe(false);
    run(leader, `INSERT INTO u(id, k) VALUES(${2n ** 60n}, 'big')`);
    expect(leader.lastInsertRowid()).toBe(2n ** 60n);
  });
});

describe('bounds', () => {
  it('fails a transaction that would grow a file past fileBytesMax with SQLITE_FULL, and recovers', async () => {
    const engine = await Engine.create({ fileBytesMax: 1024 * 1024 });
    const db = engine.open('small');
    run(db, 'CREATE TABLE t(x)');
    db.takeCaptured();
    db.confirm();
    expect(() => run(db, 'INSERT INTO t VALUES(randomblob(2000000))')).toThrow(expect.objectContaining({ primaryCode: 13 }));
    expect(db.takeCaptured()).toHaveLength(0);
    db.abort();
    run(db, 'INSERT INTO t VALUES(1)');
    expect(db.takeCaptured()).toHaveLength(1);
    expect(run(db, 'SELECT x FROM t')).toEqual([[1]]);
  });
});

describe('SQL guard', () => {
  it('refuses SQL that would break replication, allows reading those settings and VACUUM', () => {
    const { leader, follower } = pair();
    run(leader, 'CREATE TABLE t(x)');
    ship(leader, [follower]);
    for (const sql of [
      'PRAGMA journal_mode=DELETE',
      'PRAGMA main.locking_mode=NORMAL',
      'PRAGMA wal_checkpoint',
      'PRAGMA wal_checkpoint(TRUNCATE)',
      'PRAGMA wal_autocheckpoint=100',
      'PRAGMA synchronous=OFF',
      'PRAGMA page_size=1024',
      "ATTACH 'other' AS other",
    ]) {
      expect(() => leader.prepare(sql), sql).toThrow(expect.objectContaining({ name: 'SqliteError', primaryCode: 23 }));
    }
    expect(run(leader, 'PRAGMA journal_mode')).toEqual([['wal']]);
    expect(run(leader, 'PRAGMA wal_autocheckpoint')).toEqual([[0]]);
    run(leader, 'PRAGMA cache_size=100');
    run(leader, 'INSERT INTO t VALUES(randomblob(5000))');
    run(leader, 'DELETE FROM t');
    run(leader, 'VACUUM');
    ship(leader, [follower]);
    assertSameFiles(leader, follower, 'after VACUUM');
    expect(run(leader, 'PRAGMA journal_mode')).toEqual([['wal']]);
  });
});

describe('capture, confirm, abort', () => {
  it('captures each committed transaction once, with the WAL header on the first', () => {
    const { leader, follower } = pair();
    run(leader, 'CREATE TABLE t(x)');
    const first = leader.takeCaptured();
    expect(first).toHaveLength(1);
    expect(first[0]!.payload[5]).toBe(1); // starts a new WAL: header included
    expect(first[0]!.payload.length).toBe(PAYLOAD_HEADER_BYTES + WAL_HEADER_BYTES + first[0]!.frames * (WAL_FRAME_HEADER_BYTES + 4096));
    expect(first[0]!.pageNumbers).toEqual([1, 2]);
    expect(leader.takeCaptured()).toHaveLength(0);
    expect(leader.pendingCount()).toBe(1);
    follower.apply(first[0]!.payload);
    leader.confirm();
    run(leader, 'INSERT INTO t VALUES(1)');
    const second = leader.takeCaptured();
    expect(second).toHaveLength(1);
    expect(second[0]!.payload[5]).toBe(0);
    follower.apply(second[0]!.payload);
    leader.confirm(1);
    assertSameFiles(leader, follower, 'after two transactions');
    expect(run(follower, 'SELECT x FROM t')).toEqual([[1]]);
  });

  it('never captures rolled-back work, including spilled frames, and trims them from the WAL', () => {
    const { leader, follower } = pair();
    run(leader, 'CREATE TABLE t(x)');
    ship(leader, [follower]);
    run(leader, 'PRAGMA cache_size=10');
    run(leader, 'BEGIN');
    run(leader, 'WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) INSERT INTO t SELECT randomblob(3000) FROM n');
    expect(leader.files().wal.length).toBeGreaterThan(follower.files().wal.length); // spilled
    run(leader, 'ROLLBACK');
    expect(leader.takeCaptured()).toHaveLength(0);
    assertSameFiles(leader, follower, 'after rollback');
    run(leader, 'INSERT INTO t VALUES(2)');
    ship(leader, [follower]);
    assertSameFiles(leader, follower, 'after next commit');
    expect(run(follower, 'SELECT x FROM t')).toEqual([[2]]);
  });

  it('holds several pending transactions (group commit) and confirms them in order', () => {
    const { leader, follower } = pair();
    run(leader, 'CREATE TABLE t(x)');
    run(leader, 'INSERT INTO t VALUES(1)');
    run(leader, 'INSERT INTO t VALUES(2)');
    const captured = leader.takeCaptured();
    expect(captured).toHaveLength(3);
    expect(leader.pendingCount()).toBe(3);
    for (const transaction of captured) follower.apply(transaction.payload);
    leader.confirm(2);
    expect(leader.pendingCount()).toBe(1);
    expectEngineError(() => leader.confirm(2), 'NOT_PENDING');
    leader.confirm(1);
    expect(leader.pendingCount()).toBe(0);
    assertSameFiles(leader, follower, 'after group commit');
  });

  it('bounds pending transactions without losing the ones it refuses to take', async () => {
    const engine = await Engine.create({ pendingMax: 2 });
    const db = engine.open('bounded');
    run(db, 'CREATE TABLE t(x)');
    run(db, 'INSERT INTO t VALUES(1)');
    expect(db.takeCaptured()).toHaveLength(2);
    run(db, 'INSERT INTO t VALUES(2)');
    expectEngineError(() => db.takeCaptured(), 'LIMIT');
    db.confirm(1);
    const [third] = db.takeCaptured();
    expect(third!.frames).toBeGreaterThan(0);
    expect(db.pendingCount()).toBe(2);
  });

  it('abort drops every pending transaction and restores the confirmed state exactly', () => {
    const { leader, follower } = pair();
    run(leader, 'CREATE TABLE t(x)');
    run(leader, 'INSERT INTO t VALUES(1)');
    ship(leader, [follower]);
    const before = leader.files();
    const select = leader.prepare('SELECT count(*) FROM t')!;
    run(leader, 'INSERT INTO t VALUES(2)');
    run(leader, 'CREATE TABLE extra(y)');
    expect(leader.takeCaptured()).toHaveLength(2);
    run(leader, 'BEGIN; INSERT INTO t VALUES(3)');
    expect(leader.inTransaction()).toBe(true);
    leader.abort();
    expect(leader.pendingCount()).toBe(0);
    expect(leader.inTransaction()).toBe(false);
    expect(bytesEqual(leader.files().main, before.main)).toBe(true);
    expect(bytesEqual(leader.files().wal, before.wal)).toBe(true);
    expect(run(leader, 'SELECT x FROM t')).toEqual([[1]]);
    expect(run(leader, "SELECT count(*) FROM sqlite_schema WHERE name='extra'")).toEqual([[0]]);
    // A statement prepared before the abort recompiles transparently.
    expect(select.step()).toBe(true);
    expect(select.row()).toEqual([1]);
    select.finalize();
    // The leader keeps working from the confirmed state and stays identical to its follower.
    run(leader, 'INSERT INTO t VALUES(4)');
    ship(leader, [follower]);
    assertSameFiles(leader, follower, 'after abort and a new commit');
  });

  it('abort of a transaction that started a new WAL truncates the WAL to nothing', () => {
    const { leader, follower } = pair();
    run(leader, 'CREATE TABLE t(x)');
    ship(leader, [follower]);
    leader.checkpoint();
    follower.checkpoint();
    run(leader, 'INSERT INTO t VALUES(1)');
    expect(leader.takeCaptured()[0]!.payload[5]).toBe(1);
    leader.abort();
    expect(leader.files().wal.length).toBe(0);
    assertSameFiles(leader, follower, 'after abort');
    run(leader, 'INSERT INTO t VALUES(2)');
    ship(leader, [follower]);
    assertSameFiles(leader, follower, 'after the next commit');
    expect(run(follower, 'SELECT x FROM t')).toEqual([[2]]);
  });
});

describe('followers', () => {
  it('see applied data, can be promoted at any point, and the old leader follows', () => {
    const { leader, follower } = pair();
    run(leader, 'CREATE TABLE t(id INTEGER PRIMARY KEY, v)');
    run(leader, "INSERT INTO t(v) VALUES('a')");
    ship(leader, [follower]);
    expect(run(follower, 'SELECT v FROM t')).toEqual([['a']]);
    run(leader, "INSERT INTO t(v) VALUES('b')");
    ship(leader, [follower]);
    // Promote: the follower writes, the old leader applies.
    run(follower, "INSERT INTO t(v) VALUES('c')");
    ship(follower, [leader]);
    assertSameFiles(leader, follower, 'after promotion');
    expect(run(leader, 'SELECT v FROM t ORDER BY id')).toEqual([['a'], ['b'], ['c']]);
    expect(digest(leader)).toBe(digest(follower));
  });

  it('refuses to apply while it has its own pending transactions', () => {
    const { leader, follower } = pair();
    run(leader, 'CREATE TABLE t(x)');
    const captured = leader.takeCaptured();
    run(follower, 'CREATE TABLE mine(y)');
    follower.takeCaptured();
    expectEngineError(() => follower.apply(captured[0]!.payload), 'PENDING');
    follower.abort();
    follower.apply(captured[0]!.payload);
    leader.confirm();
    assertSameFiles(leader, follower, 'after abort and apply');
  });
});

describe('bad input to apply leaves the replica unchanged', () => {
  function setup() {
    const { leader, follower } = pair();
    run(leader, 'CREATE TABLE t(x)');
    ship(leader, [follower]);
    run(leader, 'INSERT INTO t VALUES(randomblob(100))');
    run(leader, 'INSERT INTO t VALUES(2)');
    const [next, after] = leader.takeCaptured();
    leader.confirm(2);
    return { leader, follower, next: next!.payload, after: after!.payload };
  }

  function expectRejected(follower: Database, payload: Uint8Array, code: string): void {
    const before = follower.files();
    const rows = run(follower, "SELECT count(*) FROM sqlite_schema WHERE name = 't'");
    expectEngineError(() => follower.apply(payload), code);
    const afterFiles = follower.files();
    expect(bytesEqual(afterFiles.main, before.main)).toBe(true);
    expect(bytesEqual(afterFiles.wal, before.wal)).toBe(true);
    expect(run(follower, "SELECT count(*) FROM sqlite_schema WHERE name = 't'")).toEqual(rows);
  }

  it('truncated payloads', () => {
    const { follower, next } = setup();
    expectRejected(follower, next.subarray(0, next.length - 1), 'TRUNCATED');
    expectRejected(follower, next.subarray(0, 10), 'TRUNCATED');
    expectRejected(follower, new Uint8Array(0), 'TRUNCATED');
  });

  it('a bad checksum in a page, and a skipped transaction (broken chain)', () => {
    const { leader, follower, next, after } = setup();
    const corrupt = next.slice();
    corrupt[corrupt.length - 100] ^= 0x40;
    expectRejected(follower, corrupt, 'WAL_CHECKSUM');
    expectRejected(follower, after, 'WAL_CHECKSUM');
    follower.apply(next);
    follower.apply(after);
    assertSameFiles(leader, follower, 'after the valid payloads');
  });

  it('a wrong salt', () => {
    const { follower, next } = setup();
    const wrongSalt = next.slice();
    wrongSalt[PAYLOAD_HEADER_BYTES + 8] ^= 1;
    expectRejected(follower, wrongSalt, 'WAL_SALT');
  });

  it('a page size mismatch', async () => {
    const { leader, next } = setup();
    const engine8k = await Engine.create({ pageSize: 8192 });
    const other = engine8k.open(leader.name);
    expect(other.pageSize).toBe(8192);
    expectEngineError(() => other.apply(next), 'PAGE_SIZE');
    const relabelled = next.slice();
    new DataView(relabelled.buffer).setUint32(8, 8192);
    const { follower } = pair();
    expectEngineError(() => follower.apply(relabelled), 'TRUNCATED');
  });

  it('frames for a WAL the replica does not have, and a second WAL header', () => {
    const { leader, next } = setup();
    const fresh = otherEngine.open(`fresh-${leader.name}`);
    expectRejected(fresh, next, 'NO_WAL');
    const { leader: l2, follower: f2 } = pair();
    run(l2, 'CREATE TABLE t(x)');
    const [withHeader] = ship(l2, [f2]);
    expectRejected(f2, withHeader!.payload, 'HAS_WAL');
  });

  it('garbage and wrong framing', () => {
    const { follower, next } = setup();
    const badMagic = next.slice();
    badMagic[0] = 0;
    expectRejected(follower, badMagic, 'BAD_PAYLOAD');
    const trailing = new Uint8Array(next.length + 1);
    trailing.set(next);
    expectRejected(follower, trailing, 'BAD_PAYLOAD');
    const noCommit = next.slice();
    const lastFrame = next.length - (WAL_FRAME_HEADER_BYTES + 4096);
    noCommit.fill(0, lastFrame + 4, lastFrame + 8);
    expectRejected(follower, noCommit, 'NO_COMMIT');
  });
});

describe('checkpoint, snapshot, restore', () => {
  it('checkpoints deterministically and replicates the next WAL header', () => {
    const { leader, follower } = pair();
    run(leader, 'CREATE TABLE t(x)');
    for (let i = 0; i < 20; i++) run(leader, 'INSERT INTO t VALUES(randomblob(500))');
    ship(leader, [follower]);
    expect(leader.walFrameCount()).toBeGreaterThan(20);
    run(leader, 'INSERT INTO t VALUES(1)');
    leader.takeCaptured();
    expectEngineError(() => leader.checkpoint(), 'PENDING');
    leader.abort();
    leader.checkpoint();
    follower.checkpoint();
    expect(leader.walFrameCount()).toBe(0);
    assertSameFiles(leader, follower, 'after checkpoint');
    run(leader, 'INSERT INTO t VALUES(2)');
    ship(leader, [follower]);
    assertSameFiles(leader, follower, 'after the first transaction of the new WAL');
    expect(digest(leader)).toBe(digest(follower));
  });

  it('refuses to checkpoint or apply over commits never taken, without losing them', () => {
    const { leader, follower } = pair();
    run(leader, 'CREATE TABLE t(x)');
    ship(leader, [follower]);
    run(leader, 'INSERT INTO t VALUES(1)');
    expectEngineError(() => leader.checkpoint(), 'PENDING');
    const [other] = (() => {
      run(follower, 'INSERT INTO t VALUES(2)');
      return follower.takeCaptured();
    })();
    follower.abort();
    expectEngineError(() => leader.apply(other!.payload), 'PENDING');
    const captured = leader.takeCaptured();
    expect(captured).toHaveLength(1);
    follower.apply(captured[0]!.payload);
    leader.confirm();
    leader.checkpoint();
    follower.checkpoint();
    assertSameFiles(leader, follower, 'after checkpoint');
    expect(run(follower, 'SELECT x FROM t')).toEqual([[1]]);
  });

  it('checkpoints a follower that was read (SQLite) and one that was not (bytes) identically', () => {
    const name = `db${++counter}`;
    const leader = leaderEngine.open(name);
    const read = followerEngine.open(name);
    const unread = otherEngine.open(name);
    run(leader, 'CREATE TABLE t(id INTEGER PRIMARY KEY, v)');
    for (let i = 0; i < 30; i++) {
      run(leader, 'INSERT INTO t(v) VALUES(randomblob(?))', [i * 400]);
      if (i % 10 === 0) run(leader, 'DELETE FROM t WHERE id % 3 = 0');
    }
    ship(leader, [read, unread]);
    expect(run(read, 'SELECT count(*) FROM t')).toEqual(run(leader, 'SELECT count(*) FROM t'));
    for (const db of [leader, read, unread]) db.checkpoint();
    assertSameFiles(leader, read, 'read follower');
    assertSameFiles(leader, unread, 'unread follower');
    expect(digest(unread)).toBe(digest(leader));
  });

  it('snapshot and restore reproduce the confirmed files, pending work excluded', async () => {
    const { leader } = pair();
    run(leader, 'CREATE TABLE t(x)');
    run(leader, "INSERT INTO t VALUES('kept')");
    leader.takeCaptured();
    leader.confirm(2);
    const confirmed = leader.files();
    run(leader, "INSERT INTO t VALUES('pending')");
    leader.takeCaptured();
    const snapshot = leader.snapshot();
    expect(bytesEqual(snapshot.main, confirmed.main)).toBe(true);
    expect(bytesEqual(snapshot.wal, confirmed.wal)).toBe(true);
    const engine = await Engine.create();
    const restored = engine.restore('copy', snapshot);
    expect(run(restored, 'SELECT x FROM t')).toEqual([['kept']]);
    expect(bytesEqual(restored.files().wal, snapshot.wal)).toBe(true);
    // A restored replica continues the log.
    leader.abort();
    run(leader, "INSERT INTO t VALUES('next')");
    const [next] = leader.takeCaptured();
    restored.apply(next!.payload);
    expect(run(restored, 'SELECT x FROM t')).toEqual([['kept'], ['next']]);
    // A restored replica can lead: its transactions continue the same WAL on the others.
    leader.confirm();
    run(restored, "INSERT INTO t VALUES('from restored')");
    const [fromRestored] = restored.takeCaptured();
    restored.confirm();
    leader.apply(fromRestored!.payload);
    assertSameFiles(leader, restored, 'after the restored replica led');
    // restore replaces an open database
    const again = engine.restore('copy', snapshot);
    expect(engine.get('copy')).toBe(again);
    expect(run(again, 'SELECT count(*) FROM t')).toEqual([[1]]);
  });

  it('refuses bad snapshots and leaves the existing database alone', async () => {
    const { leader } = pair();
    run(leader, 'CREATE TABLE t(x)');
    run(leader, 'INSERT INTO t VALUES(1)');
    leader.takeCaptured();
    leader.confirm(2);
    const good = leader.snapshot();
    const engine = await Engine.create();
    const existing = engine.restore('r', good);
    const cases: Array<{ main: Uint8Array; wal: Uint8Array }> = [
      { main: new Uint8Array(10), wal: good.wal },
      { main: good.main.subarray(0, 4000), wal: good.wal },
      { main: good.main, wal: good.wal.subarray(0, 20) },
      { main: good.main, wal: good.wal.subarray(0, good.wal.length - 1) },
      { main: good.main, wal: (() => { const w = good.wal.slice(); w[w.length - 7] ^= 1; return w; })() },
    ];
    for (const bad of cases) {
      expectEngineError(() => engine.restore('r', bad), 'BAD_SNAPSHOT');
    }
    expect(engine.get('r')).toBe(existing);
    expect(run(existing, 'SELECT x FROM t')).toEqual([[1]]);
  });
});

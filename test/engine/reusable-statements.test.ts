import { beforeAll, describe, expect, it } from 'vitest';
import { Engine, type Database, type SqlValue, type Statement } from '../../wasm/index.ts';
import { run, ship } from './helpers.ts';

let leaderEngine: Engine;
let followerEngine: Engine;
let counter = 0;

beforeAll(async () => {
  [leaderEngine, followerEngine] = await Promise.all([Engine.create(), Engine.create()]);
});

function fresh(): { leader: Database; follower: Database } {
  const name = `reuse${++counter}`;
  const leader = leaderEngine.open(name);
  run(leader, 'CREATE TABLE t(id INTEGER PRIMARY KEY, v)');
  return { leader, follower: followerEngine.open(name) };
}

/** Runs `sql` once through the reusable statements, as the gateway's EXEC_SQL does. */
function execReusable(db: Database, sql: string, values: readonly SqlValue[] = []): Statement {
  const statement = db.prepareReusable(sql)!;
  try {
    statement.reset();
    if (values.length > 0) statement.bind(values);
    while (statement.step()) {
      // rows discarded, as exec does
    }
  } finally {
    statement.reset();
    db.recycle(statement);
  }
  return statement;
}

describe('reusable statements', () => {
  it('compile a statement text once: the same statement comes back after recycle', () => {
    const { leader } = fresh();
    const first = execReusable(leader, 'INSERT INTO t(v) VALUES(?)', ['a']);
    const second = execReusable(leader, 'INSERT INTO t(v) VALUES(?)', ['b']);
    expect(second).toBe(first);
    // Another text is another statement.
    expect(execReusable(leader, 'INSERT INTO t(v) VALUES(?) ', ['c'])).not.toBe(first);
    expect(run(leader, 'SELECT v FROM t ORDER BY id')).toEqual([['a'], ['b'], ['c']]);
  });

  it('come back with no value bound: an unbound parameter is NULL again', () => {
    const { leader } = fresh();
    execReusable(leader, 'INSERT INTO t(v) VALUES(?)', ['bound']);
    execReusable(leader, 'INSERT INTO t(v) VALUES(?)');
    expect(run(leader, 'SELECT v FROM t ORDER BY id')).toEqual([['bound'], [null]]);
  });

  it('follow schema changes: a dropped column or table fails, a new column is used', () => {
    const { leader } = fresh();
    execReusable(leader, 'INSERT INTO t(v) VALUES(?)', [1]);
    run(leader, 'ALTER TABLE t ADD COLUMN w DEFAULT 7');
    execReusable(leader, 'INSERT INTO t(v) VALUES(?)', [2]);
    expect(run(leader, 'SELECT v, w FROM t ORDER BY id')).toEqual([[1, 7], [2, 7]]);
    run(leader, 'DROP TABLE t');
    expect(() => execReusable(leader, 'INSERT INTO t(v) VALUES(?)', [3])).toThrow(/no such table/);
    run(leader, 'CREATE TABLE t(id INTEGER PRIMARY KEY, v)');
    execReusable(leader, 'INSERT INTO t(v) VALUES(?)', [4]);
    expect(run(leader, 'SELECT v FROM t')).toEqual([[4]]);
  });

  it('survive an abort that reopens the connection, and replicate what they write', () => {
    const { leader, follower } = fresh();
    ship(leader, [follower]);
    execReusable(leader, 'INSERT INTO t(v) VALUES(?)', ['kept']);
    ship(leader, [follower]);
    execReusable(leader, 'INSERT INTO t(v) VALUES(?)', ['dropped']);
    leader.abort();
    execReusable(leader, 'INSERT INTO t(v) VALUES(?)', ['after']);
    ship(leader, [follower]);
    expect(run(follower, 'SELECT v FROM t ORDER BY id')).toEqual([['kept'], ['after']]);
    expect(run(leader, 'SELECT v FROM t ORDER BY id')).toEqual([['kept'], ['after']]);
  });

  it('keep a bounded number of texts, finalizing the least recently used', () => {
    const { leader } = fresh();
    const first = execReusable(leader, 'INSERT INTO t(v) VALUES(0)');
    for (let i = 1; i <= 40; i++) execReusable(leader, `INSERT INTO t(v) VALUES(${i})`);
    // The first text was dropped long ago: it is compiled again, and still runs.
    const again = execReusable(leader, 'INSERT INTO t(v) VALUES(0)');
    expect(again).not.toBe(first);
    expect(run(leader, 'SELECT count(*) FROM t')).toEqual([[42]]);
  });

  it('finalize a second statement of the same text rather than keep two', () => {
    const { leader } = fresh();
    const a = leader.prepareReusable('SELECT 1')!;
    const b = leader.prepareReusable('SELECT 1')!;
    expect(b).not.toBe(a);
    leader.recycle(a);
    leader.recycle(b);
    expect(() => b.step()).toThrow(/finalize/);
    expect(leader.prepareReusable('SELECT 1')).toBe(a);
  });

  it('answer null for text that holds no statement, as prepare does', () => {
    const { leader } = fresh();
    expect(leader.prepareReusable('')).toBeNull();
    expect(leader.prepareReusable(' \n\t')).toBeNull();
    expect(leader.prepare('  ')).toBeNull();
    expect(leader.prepareReusable('-- only a comment')).toBeNull();
  });
});

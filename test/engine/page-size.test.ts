import { beforeAll, describe, expect, it } from 'vitest';
import { Engine, EngineError, type Database } from '../../wasm/index.ts';
import { assertSameFiles, bytesEqual, run, ship } from './helpers.ts';

let engine4k: Engine;
let engine8k: Engine;
let counter = 0;

beforeAll(async () => {
  [engine4k, engine8k] = await Promise.all([Engine.create(), Engine.create({ pageSize: 8192 })]);
});

function fill(leader: Database, followers: Database[], rows: number): void {
  run(leader, 'CREATE TABLE IF NOT EXISTS model(key TEXT PRIMARY KEY, value BLOB)');
  ship(leader, followers);
  for (let i = 0; i < rows; i++) {
    run(leader, 'INSERT OR REPLACE INTO model VALUES(?, randomblob(1024))', [`key-${i % 40}`]);
    ship(leader, followers);
  }
}

describe('page size', () => {
  it('is 4096 by default and refuses sizes SQLite does not allow, saying which it allows', async () => {
    expect(engine4k.open(`default-${++counter}`).pageSize).toBe(4096);
    for (const pageSize of [0, 256, 1000, 4097, 131072, 1.5]) {
      const refused = await Engine.create({ pageSize }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(refused).toBeInstanceOf(EngineError);
      expect((refused as EngineError).code).toBe('PAGE_SIZE');
      expect((refused as EngineError).message).toContain('power of two from 512 to 65536');
    }
  });

  for (const [leaderSize, followerSize] of [
    [4096, 8192],
    [8192, 4096],
  ] as const) {
    it(`a follower configured for ${followerSize} takes the ${leaderSize}-byte pages of the leader that created the database`, () => {
      const name = `adopt-${++counter}`;
      const leader = (leaderSize === 4096 ? engine4k : engine8k).open(name);
      // Opened before the first transaction arrives, as a node does when a client reads first.
      const follower = (followerSize === 4096 ? engine4k : engine8k).open(name);
      expect(follower.pageSize).toBe(followerSize);
      expect(run(follower, 'SELECT count(*) FROM sqlite_schema')).toEqual([[0]]);
      fill(leader, [follower], 30);
      expect(follower.pageSize).toBe(leaderSize);
      assertSameFiles(leader, follower, 'after the inserts');
      leader.checkpoint();
      follower.checkpoint();
      assertSameFiles(leader, follower, 'after a checkpoint');
      expect(run(follower, 'PRAGMA page_size')).toEqual([[leaderSize]]);
      expect(run(follower, 'SELECT count(*) FROM model')).toEqual([[30]]);
      leader.close();
      follower.close();
    });
  }

  it('an existing database keeps its page size on an engine whose default differs, and replicates', () => {
    const name = `existing-${++counter}`;
    const old = engine8k.open(name);
    fill(old, [], 10);
    const snapshot = old.snapshot();
    const leader = engine4k.restore(name, snapshot);
    const followerEngineDb = engine4k.restore(`${name}-copy`, snapshot);
    expect(leader.pageSize).toBe(8192);
    expect(followerEngineDb.pageSize).toBe(8192);
    fill(leader, [followerEngineDb], 20);
    assertSameFiles(leader, followerEngineDb, 'after inserts on the restored 8192-byte database');
    leader.checkpoint();
    followerEngineDb.checkpoint();
    assertSameFiles(leader, followerEngineDb, 'after a checkpoint');
    expect(run(leader, 'PRAGMA page_size')).toEqual([[8192]]);
    // A new database on the same engine gets the engine's page size.
    expect(engine4k.open(`${name}-new`).pageSize).toBe(4096);
    for (const db of [old, leader, followerEngineDb]) db.close();
  });

  it('a database that holds anything refuses a transaction of another page size and stays as it was', () => {
    const name = `holds-${++counter}`;
    const leader = engine4k.open(name);
    run(leader, 'CREATE TABLE t(x)');
    const [first] = leader.takeCaptured();
    leader.confirm(1);
    for (const setup of ['CREATE TABLE other(y)', 'PRAGMA user_version = 7']) {
      const holder = engine8k.open(`${name}-${setup.length}`);
      run(holder, setup);
      holder.takeCaptured();
      holder.confirm(1);
      holder.checkpoint();
      const before = holder.files();
      let refused: unknown;
      try {
        holder.apply(first!.payload);
      } catch (error) {
        refused = error;
      }
      expect((refused as EngineError).code).toBe('PAGE_SIZE');
      expect(holder.pageSize).toBe(8192);
      expect(bytesEqual(holder.files().main, before.main)).toBe(true);
      expect(bytesEqual(holder.files().wal, before.wal)).toBe(true);
      holder.close();
    }
    leader.close();
  });
});

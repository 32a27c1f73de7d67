/**
 * A checkpoint of a large WAL (a load's transaction) on the bytes: the leader, past
 * CHECKPOINT_BY_BYTES_WAL_BYTES_MIN of WAL, checkpoints as a follower does (checkpointFiles), and
 * each WAL chunk is given back once the pages it holds are copied, so the main file grows into
 * the WAL's chunks (through the engine's chunk pool) instead of beside the whole WAL. The result
 * is the same on every node, byte for byte, and the database is whole.
 */
import { describe, expect, it } from 'vitest';
import { Engine, type Database } from '../../wasm/index.ts';
import { CHECKPOINT_BY_BYTES_WAL_BYTES_MIN } from '../../wasm/database.ts';
import type { MemoryFile } from '../../wasm/memory-file.ts';
import { assertSameFiles, run, ship } from './helpers.ts';

/** The database's files in its engine's VFS (white box: which arrays hold them). */
function files(db: Database): { main: MemoryFile; wal: MemoryFile } {
  const internal = db as unknown as { context: { vfs: { file(path: string): MemoryFile | undefined } }; mainPath: string; walPath: string };
  return { main: internal.context.vfs.file(internal.mainPath)!, wal: internal.context.vfs.file(internal.walPath)! };
}

function buffersOf(file: MemoryFile): Set<ArrayBufferLike> {
  return new Set(file.views().map((view) => view.buffer));
}

describe('a checkpoint of a large WAL, on the bytes', () => {
  it('gives the WAL chunks to the main file as it copies them, on the leader and a follower, with the same result', async () => {
    const [leaderEngine, followerEngine] = await Promise.all([Engine.create(), Engine.create()]);
    const leader = leaderEngine.open('load');
    const follower = followerEngine.open('load');
    run(leader, 'CREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT, v BLOB)');
    ship(leader, [follower]);
    // A small checkpoint first: SQLite's, whose statement the leader keeps across the large one.
    leader.checkpoint();
    follower.checkpoint();
    // One transaction of about 24 MiB, as a load's replay makes: rows, then an index.
    run(leader, 'BEGIN');
    run(leader, "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 20000) INSERT INTO t SELECT n, 'row ' || n, randomblob(1024) FROM c");
    run(leader, 'CREATE INDEX t_note ON t(note)');
    run(leader, 'COMMIT');
    ship(leader, [follower]);
    for (const db of [leader, follower]) {
      const { wal } = files(db);
      expect(wal.size).toBeGreaterThan(CHECKPOINT_BY_BYTES_WAL_BYTES_MIN);
      const walBuffers = buffersOf(wal);
      db.checkpoint();
      const { main } = files(db);
      expect(files(db).wal.size).toBe(0);
      // Most of the main file's chunks are the WAL's, given back as they were copied (with the
      // whole WAL held to the end, none could be: the main file grew beside it).
      const reused = [...buffersOf(main)].filter((buffer) => walBuffers.has(buffer)).length;
      expect(reused).toBeGreaterThan(0.7 * buffersOf(main).size);
      expect(run(db, 'PRAGMA integrity_check')).toEqual([['ok']]);
    }
    assertSameFiles(leader, follower, 'after the checkpoint');
    expect(run(follower, 'SELECT count(*), sum(length(v)) FROM t')).toEqual([[20000, 20000 * 1024]]);
    // The leader goes on writing on its reopened connection, and the follower follows.
    run(leader, "INSERT INTO t VALUES (20001, 'after', x'00')");
    ship(leader, [follower]);
    leader.checkpoint();
    follower.checkpoint();
    assertSameFiles(leader, follower, 'after a small checkpoint');
    expect(run(follower, 'SELECT note FROM t WHERE id = 20001')).toEqual([['after']]);
  }, 60_000);
});

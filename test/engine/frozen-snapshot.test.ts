/**
 * Copy-on-write snapshots of the engine's files: a frozen view keeps the bytes of the moment it
 * was taken while the database goes on changing, shares the file's chunks (a write copies only
 * the chunk it changes), and after release a write copies nothing.
 */
import { describe, expect, it } from 'vitest';
import { Engine } from '../../wasm/index.ts';
import { CHUNK_BYTES, MemoryFile } from '../../wasm/memory-file.ts';
import { run, ship } from './helpers.ts';

function joined(view: { length: number; chunks: readonly Uint8Array[] }): Uint8Array {
  const out = new Uint8Array(view.length);
  let offset = 0;
  for (const chunk of view.chunks) {
    const n = Math.min(chunk.length, view.length - offset);
    out.set(chunk.subarray(0, n), offset);
    offset += n;
  }
  return out;
}

describe('frozen views of a memory file', () => {
  it('keep their bytes; a write copies only the chunk it changes', () => {
    const file = new MemoryFile(64 * CHUNK_BYTES);
    file.write(new Uint8Array(3 * CHUNK_BYTES).fill(1), 0);
    const before = file.copy();
    const view = file.freeze();
    const chunksBefore = [...view.chunks];
    file.write(new Uint8Array(10).fill(2), CHUNK_BYTES + 5);
    file.write(new Uint8Array(10).fill(3), 3 * CHUNK_BYTES);
    expect(joined(view)).toEqual(before);
    const after = file.freeze();
    // Chunk 1 was copied for the write; chunks 0 and 2 are still shared.
    expect(after.chunks[0]).toBe(chunksBefore[0]);
    expect(after.chunks[1]).not.toBe(chunksBefore[1]);
    expect(after.chunks[2]).toBe(chunksBefore[2]);
    expect(file.slice(CHUNK_BYTES + 5, CHUNK_BYTES + 15)).toEqual(new Uint8Array(10).fill(2));
    after.release();
    view.release();
    // Nothing is shared any more: a write changes the chunk in place.
    const shared = file.freeze();
    const chunk0 = shared.chunks[0];
    shared.release();
    file.write(new Uint8Array(4).fill(9), 0);
    expect(file.freeze().chunks[0]).toBe(chunk0);
  });

  it('a truncation and regrowth do not reach into a frozen view', () => {
    const file = new MemoryFile(64 * CHUNK_BYTES);
    file.write(new Uint8Array(CHUNK_BYTES + 100).fill(7), 0);
    const view = file.freeze(CHUNK_BYTES + 50);
    file.truncate(10);
    file.truncate(CHUNK_BYTES + 100); // zero-fills what grows back
    expect(joined(view)).toEqual(new Uint8Array(CHUNK_BYTES + 50).fill(7));
    expect(file.slice(0, 20)).toEqual(new Uint8Array(20).fill(7).fill(0, 10));
  });
});

describe('frozen snapshot of a database', () => {
  it('equals the copied snapshot at the time, whatever is written after', async () => {
    const engine = await Engine.create();
    const db = engine.open('cow');
    const exec = (sql: string): void => {
      run(db, sql);
      ship(db, []);
    };
    exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)');
    for (let i = 0; i < 200; i++) exec(`INSERT INTO t VALUES (${i}, randomblob(2000))`);
    db.checkpoint();
    for (let i = 200; i < 260; i++) exec(`INSERT INTO t VALUES (${i}, randomblob(2000))`);
    const copied = db.snapshot();
    const frozen = db.frozenSnapshot();
    exec('UPDATE t SET v = randomblob(2000)');
    db.checkpoint();
    expect(joined(frozen.main)).toEqual(copied.main);
    expect(joined(frozen.wal)).toEqual(copied.wal);
    frozen.main.release();
    frozen.wal.release();
    // The frozen state restores as a database with the rows of its time.
    const restored = (await Engine.create()).restore('cow', { main: copied.main, wal: copied.wal });
    expect(run(restored, 'SELECT count(*) FROM t')).toEqual([[260]]);
  });
});

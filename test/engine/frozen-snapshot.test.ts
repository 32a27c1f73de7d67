/**
 * Copy-on-write snapshots of the engine's files: a frozen view keeps the bytes of the moment it
 * was taken while the database goes on changing, shares the file's chunks (a write saves in the
 * view only the 4 KiB granules it changes), and once released, or past what the reader released,
 * a write saves nothing.
 */
import { describe, expect, it } from 'vitest';
import { Engine } from '../../wasm/index.ts';
import { CHUNK_BYTES, ChunkPool, GRANULE_BYTES, MemoryFile, type FrozenBytes } from '../../wasm/memory-file.ts';
import { Random, bytesEqual, run, ship } from './helpers.ts';

function joined(view: FrozenBytes, from = 0): Uint8Array {
  const out = new Uint8Array(view.length - from);
  view.readInto(out, 0, from, out.length);
  return out;
}

describe('frozen views of a memory file', () => {
  it('keep their bytes; a write saves only the granules it changes, within the view', () => {
    const file = new MemoryFile(64 * CHUNK_BYTES);
    file.write(new Uint8Array(3 * CHUNK_BYTES).fill(1), 0);
    const before = file.copy();
    const view = file.freeze();
    file.write(new Uint8Array(10).fill(2), CHUNK_BYTES + 5);
    expect(view.savedBytes).toBe(GRANULE_BYTES);
    // The same granule again: saved already.
    file.write(new Uint8Array(10).fill(2), CHUNK_BYTES + 100);
    expect(view.savedBytes).toBe(GRANULE_BYTES);
    // Across two granules and a chunk boundary.
    file.write(new Uint8Array(10).fill(4), 2 * CHUNK_BYTES - 5);
    expect(view.savedBytes).toBe(3 * GRANULE_BYTES);
    // Past the view's end: not its bytes.
    file.write(new Uint8Array(10).fill(3), 3 * CHUNK_BYTES);
    expect(view.savedBytes).toBe(3 * GRANULE_BYTES);
    expect(view.heldBytes).toBe(CHUNK_BYTES);
    expect(joined(view)).toEqual(before);
    // The file itself changed in place.
    expect(file.slice(CHUNK_BYTES + 5, CHUNK_BYTES + 15)).toEqual(new Uint8Array(10).fill(2));
    const after = file.freeze();
    file.write(new Uint8Array(4).fill(5), 10);
    expect(after.savedBytes).toBe(GRANULE_BYTES);
    expect(view.savedBytes).toBe(4 * GRANULE_BYTES);
    expect(joined(view)).toEqual(before);
    expect(joined(after).subarray(0, 20)).toEqual(before.subarray(0, 20));
    after.release();
    view.release();
    expect(view.heldBytes).toBe(0);
    expect(() => joined(view)).toThrow(/released/);
    // Nothing is shared any more: a write saves nothing.
    const last = file.freeze();
    last.release();
    file.write(new Uint8Array(4).fill(9), 0);
    expect(last.savedBytes).toBe(0);
  });

  it('save nothing for bytes the reader released, and cannot read them', () => {
    const file = new MemoryFile(64 * CHUNK_BYTES);
    file.write(new Uint8Array(2 * CHUNK_BYTES).fill(1), 0);
    const view = file.freeze();
    file.write(new Uint8Array(1).fill(2), 100);
    expect(view.savedBytes).toBe(GRANULE_BYTES);
    // The saved granule is below what is released: its slot goes back.
    view.releaseBelow(CHUNK_BYTES + 10);
    expect(view.savedBytes).toBe(0);
    file.write(new Uint8Array(1).fill(2), CHUNK_BYTES + 5);
    // Granule 64 (CHUNK_BYTES..+4096) was not wholly released: it is still the view's.
    expect(view.savedBytes).toBe(GRANULE_BYTES);
    file.write(new Uint8Array(1).fill(2), 200);
    expect(view.savedBytes).toBe(GRANULE_BYTES);
    expect(joined(view, CHUNK_BYTES)).toEqual(new Uint8Array(CHUNK_BYTES).fill(1));
    expect(() => view.readInto(new Uint8Array(1), 0, 0, 1)).toThrow(/released/);
    view.releaseBelow(2 * CHUNK_BYTES);
    expect(view.heldBytes).toBe(0);
    file.write(new Uint8Array(1).fill(2), CHUNK_BYTES + 5000);
    expect(view.savedBytes).toBe(0);
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

  it('match what the file held when each was taken, through random writes, truncations and releases', () => {
    const random = new Random(11);
    const pool = new ChunkPool(8 * CHUNK_BYTES);
    const file = new MemoryFile(16 * CHUNK_BYTES, undefined, pool);
    let model = new Uint8Array(0);
    let views: { view: FrozenBytes; bytes: Uint8Array; releasedBelow: number }[] = [];
    for (let op = 0; op < 600; op++) {
      const kind = random.int(10);
      if (kind < 5) {
        const offset = random.int(Math.max(1, model.length + 3 * GRANULE_BYTES));
        const data = random.bytes(1 + random.int(3 * GRANULE_BYTES));
        file.write(data, offset);
        if (offset + data.length > model.length) {
          const grown = new Uint8Array(offset + data.length);
          grown.set(model);
          model = grown;
        }
        model.set(data, offset);
      } else if (kind === 5 && model.length > 0) {
        const size = random.int(model.length + 2 * CHUNK_BYTES);
        file.truncate(size);
        const resized = new Uint8Array(size);
        resized.set(model.subarray(0, Math.min(size, model.length)));
        model = resized;
      } else if (kind === 6 && views.length < 3) {
        const end = random.int(model.length + 1);
        views.push({ view: file.freeze(end), bytes: model.slice(0, end), releasedBelow: 0 });
      } else if (kind === 7 && views.length > 0) {
        const entry = views[random.int(views.length)]!;
        entry.releasedBelow = Math.min(entry.bytes.length, entry.releasedBelow + random.int(CHUNK_BYTES));
        entry.view.releaseBelow(entry.releasedBelow);
      } else if (kind === 8 && views.length > 0) {
        const index = random.int(views.length);
        views[index]!.view.release();
        views = views.filter((_, i) => i !== index);
      }
      expect(bytesEqual(file.copy(), model)).toBe(true);
      for (const { view, bytes, releasedBelow } of views) {
        if (releasedBelow >= bytes.length) continue;
        expect(bytesEqual(joined(view, releasedBelow), bytes.subarray(releasedBelow))).toBe(true);
        // What a view saves is never more than the bytes it still shares, rounded to granules.
        expect(view.savedBytes).toBeLessThanOrEqual(Math.ceil(bytes.length / GRANULE_BYTES) * GRANULE_BYTES);
      }
    }
    for (const { view } of views) view.release();
  });
});

/** A database whose every statement is committed and shipped at once, as a leader's would be. */
async function shippingDatabase(): Promise<{ db: ReturnType<Engine['open']>; exec: (sql: string) => void }> {
  const db = (await Engine.create()).open('cow');
  return {
    db,
    exec: (sql) => {
      run(db, sql);
      ship(db, []);
    },
  };
}

describe('frozen snapshot of a database', () => {
  it('equals the copied snapshot at the time, whatever is written after', async () => {
    const { db, exec } = await shippingDatabase();
    exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)');
    for (let i = 0; i < 200; i++) exec(`INSERT INTO t VALUES (${i}, randomblob(2000))`);
    db.checkpoint();
    for (let i = 200; i < 260; i++) exec(`INSERT INTO t VALUES (${i}, randomblob(2000))`);
    const copied = db.snapshot();
    const frozen = db.frozenSnapshot();
    exec('UPDATE t SET v = randomblob(2000)');
    db.checkpoint();
    exec('UPDATE t SET v = randomblob(1000) WHERE id < 100');
    expect(joined(frozen.main)).toEqual(copied.main);
    expect(joined(frozen.wal)).toEqual(copied.wal);
    frozen.main.release();
    frozen.wal.release();
    // The frozen state restores as a database with the rows of its time.
    const restored = (await Engine.create()).restore('cow', { main: copied.main, wal: copied.wal });
    expect(run(restored, 'SELECT count(*) FROM t')).toEqual([[260]]);
  });

  it('a checkpoint of random pages while a snapshot is frozen saves those pages, not the chunks they fall in', async () => {
    const { db, exec } = await shippingDatabase();
    exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)');
    // About 16 MiB of rows, a page each: 64 chunks of the main file.
    const rows = 4000;
    for (let first = 0; first < rows; first += 500) {
      exec(`WITH RECURSIVE c(x) AS (SELECT ${first} UNION ALL SELECT x + 1 FROM c WHERE x < ${first + 499}) INSERT INTO t SELECT x, randomblob(3500) FROM c`);
    }
    db.checkpoint();
    const copied = db.snapshot();
    const frozen = db.frozenSnapshot();
    const mainBytes = frozen.main.length;
    expect(mainBytes).toBeGreaterThan(60 * CHUNK_BYTES);
    // 40 rows updated at random, then checkpointed: their pages (and the tree's above them)
    // are written all over the main file, the WAL restarts over the frozen WAL's bytes.
    const random = new Random(3);
    for (let i = 0; i < 40; i++) exec(`UPDATE t SET v = randomblob(3500) WHERE id = ${random.int(rows)}`);
    const walFrames = db.walFrameCount();
    db.checkpoint();
    exec('UPDATE t SET v = randomblob(3500) WHERE id = 1');
    // What the view saved is the pages the checkpoint wrote, at most one per WAL frame: a
    // copy of each chunk written to would have been most of the file (40 of 64 chunks or more).
    expect(frozen.main.savedBytes).toBeGreaterThan(0);
    expect(frozen.main.savedBytes).toBeLessThanOrEqual(walFrames * GRANULE_BYTES);
    expect(frozen.main.heldBytes).toBeLessThanOrEqual(Math.ceil((walFrames * GRANULE_BYTES) / CHUNK_BYTES) * CHUNK_BYTES);
    expect(frozen.main.heldBytes).toBeLessThan(mainBytes / 8);
    expect(bytesEqual(joined(frozen.main), copied.main)).toBe(true);
    expect(bytesEqual(joined(frozen.wal), copied.wal)).toBe(true);
    frozen.main.release();
    frozen.wal.release();
  });
});

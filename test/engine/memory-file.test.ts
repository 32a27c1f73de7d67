import { describe, expect, it } from 'vitest';
import { CHUNK_BYTES, ChunkPool, MemoryFile } from '../../wasm/memory-file.ts';
import { Engine, EngineError } from '../../wasm/index.ts';
import { Random, bytesEqual, run, ship } from './helpers.ts';

describe('MemoryFile', () => {
  it('matches a plain byte-array model through random writes, reads and truncations across chunk boundaries', () => {
    const random = new Random(7);
    const limit = 4 * CHUNK_BYTES;
    const file = new MemoryFile(limit);
    let model = new Uint8Array(0);
    for (let op = 0; op < 400; op++) {
      const kind = random.int(3);
      if (kind === 0) {
        // Writes cluster around chunk boundaries, where the splitting logic lives.
        const boundary = CHUNK_BYTES * (1 + random.int(2));
        const offset = Math.max(0, boundary - 5000 + random.int(10000));
        const data = random.bytes(1 + random.int(9000));
        file.write(data, offset);
        const end = offset + data.length;
        if (end > model.length) {
          const grown = new Uint8Array(end);
          grown.set(model);
          model = grown;
        }
        model.set(data, offset);
      } else if (kind === 1 && model.length > 0) {
        const size = random.int(model.length + 20000);
        file.truncate(size);
        const resized = new Uint8Array(size);
        resized.set(model.subarray(0, Math.min(size, model.length)));
        model = resized;
      } else if (model.length > 0) {
        const offset = random.int(model.length);
        const length = random.int(model.length - offset);
        const target = new Uint8Array(length + 3);
        file.readInto(target, 3, offset, length);
        expect(bytesEqual(target.subarray(3), model.subarray(offset, offset + length))).toBe(true);
        if (offset + 4 <= model.length) {
          const expected = new DataView(model.buffer, offset, 4).getUint32(0);
          expect(file.uint32(offset)).toBe(expected);
        }
      }
      expect(file.size).toBe(model.length);
    }
    expect(bytesEqual(file.copy(), model)).toBe(true);
    const joined = new Uint8Array(file.size);
    let at = 0;
    for (const view of file.views()) {
      joined.set(view, at);
      at += view.length;
    }
    expect(bytesEqual(joined, model)).toBe(true);
  });

  it('reads zeros where a truncated region regrows and where a write leaves a gap', () => {
    const file = new MemoryFile(CHUNK_BYTES * 2);
    file.write(new Uint8Array(100).fill(7), 0);
    file.truncate(10);
    file.truncate(50);
    expect(file.slice(0, 50)).toEqual(new Uint8Array(50).fill(7, 0, 10));
    file.truncate(10);
    file.write(new Uint8Array([1]), 60);
    expect(file.slice(0, 61)).toEqual(Object.assign(new Uint8Array(61).fill(7, 0, 10), { 60: 1 }));
  });

  it('refuses to grow past its limit with a clear error', () => {
    const file = new MemoryFile(1000);
    expect(file.reserve(1001)).toBe(false);
    expect(() => file.write(new Uint8Array(10), 995)).toThrow(EngineError);
    expect(() => file.truncate(2000)).toThrow(/limit/);
    expect(() => new MemoryFile(0)).toThrow(EngineError);
  });
});

describe('chunk pool', () => {
  it('a file grown from recycled chunks reads zeros wherever it was not written', () => {
    const pool = new ChunkPool(8 * CHUNK_BYTES);
    const old = new MemoryFile(8 * CHUNK_BYTES, undefined, pool);
    old.write(new Uint8Array(3 * CHUNK_BYTES).fill(0xee), 0);
    const oldChunks = old.views().map((view) => view.buffer);
    old.releaseChunks();
    expect(pool.heldBytes).toBe(3 * CHUNK_BYTES);
    expect(old.size).toBe(0);
    expect(() => old.write(new Uint8Array(1), 0)).toThrow(/released/);
    const file = new MemoryFile(8 * CHUNK_BYTES, undefined, pool);
    file.write(new Uint8Array([1, 2, 3]), 10);
    file.truncate(CHUNK_BYTES + 20);
    file.write(new Uint8Array([4]), 2 * CHUNK_BYTES + 7);
    const expected = new Uint8Array(2 * CHUNK_BYTES + 8);
    expected.set([1, 2, 3], 10);
    expected[2 * CHUNK_BYTES + 7] = 4;
    expect(bytesEqual(file.copy(), expected)).toBe(true);
    // The chunks were reused, stale bytes and all, rather than allocated.
    expect(pool.heldBytes).toBe(0);
    expect(oldChunks).toContain(file.views()[0]!.buffer);
  });

  it('keeps chunks a frozen view shares out of the pool, and never more than its limit', () => {
    const pool = new ChunkPool(2 * CHUNK_BYTES);
    const file = new MemoryFile(8 * CHUNK_BYTES, undefined, pool);
    file.write(new Uint8Array(4 * CHUNK_BYTES).fill(5), 0);
    const view = file.freeze(CHUNK_BYTES);
    file.releaseChunks();
    // Chunk 0 stays with the view; of the other three the pool keeps two.
    expect(pool.heldBytes).toBe(2 * CHUNK_BYTES);
    const next = new MemoryFile(8 * CHUNK_BYTES, undefined, pool);
    next.write(new Uint8Array(3 * CHUNK_BYTES).fill(6), 0);
    const kept = new Uint8Array(CHUNK_BYTES);
    view.readInto(kept, 0, 0, CHUNK_BYTES);
    expect(kept).toEqual(new Uint8Array(CHUNK_BYTES).fill(5));
    view.release();
  });

  it('lets a database opened after another one closed reuse its file memory, with byte-identical replicas', async () => {
    const leaderEngine = await Engine.create();
    const followerEngine = await Engine.create({ filePoolBytesMax: 0 });
    const fill = (name: string) => {
      const leader = leaderEngine.open(name);
      const follower = followerEngine.open(name);
      run(leader, 'CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)');
      ship(leader, [follower]);
      for (let i = 0; i < 300; i++) {
        run(leader, 'INSERT INTO t(v) VALUES(randomblob(3000))');
        ship(leader, [follower]);
        if (i === 150) {
          leader.checkpoint();
          follower.checkpoint();
        }
      }
      return { leader, follower };
    };
    const first = fill('first');
    const firstBytes = leaderEngine.filesBytes();
    first.leader.close();
    first.follower.close();
    // What the closed database held is kept for reuse, within the pool's limit.
    expect(leaderEngine.filesBytes()).toBe(Math.min(firstBytes, 32 * 1024 * 1024));
    expect(followerEngine.filesBytes()).toBe(0);
    const second = fill('second');
    expect(leaderEngine.filesBytes()).toBe(firstBytes);
    const leaderFiles = second.leader.files();
    const followerFiles = second.follower.files();
    expect(bytesEqual(leaderFiles.main, followerFiles.main)).toBe(true);
    expect(bytesEqual(leaderFiles.wal, followerFiles.wal)).toBe(true);
    expect(run(second.leader, 'SELECT count(*), sum(length(v)) FROM t')).toEqual([[300, 900_000]]);
    expect(run(second.follower, 'SELECT count(*), sum(length(v)) FROM t')).toEqual([[300, 900_000]]);
  });
});

/**
 * Captured payloads of a few pages are cut from blocks the engine uses again once every payload
 * in a block was confirmed or aborted: a payload is valid until then, and one kept past the
 * reuse of its memory is detached (length 0) instead of showing another transaction's bytes.
 */
import { describe, expect, it } from 'vitest';
import { RecyclingSlab } from '../../wasm/byte-slab.ts';
import { Engine, EngineError, type CapturedTransaction } from '../../wasm/index.ts';
import { bytesEqual, run } from './helpers.ts';

describe('recycling slab', () => {
  it('hands out zero-filled pieces, detaches a block\'s pieces before serving its memory again', () => {
    const slab = new RecyclingSlab(64, 32, 1);
    const first = slab.take(24);
    first.bytes.fill(0xaa);
    const second = slab.take(24);
    second.bytes.fill(0xbb);
    // No room for a third piece: the block is full, but its pieces are still out.
    const third = slab.take(24);
    expect(third.block).not.toBe(first.block);
    expect(first.bytes.length).toBe(24);
    slab.give(first.block);
    expect(second.bytes[0]).toBe(0xbb);
    slab.give(second.block);
    // Both pieces of the full block are back: its memory is kept for reuse, its old views detached.
    expect(first.bytes.length).toBe(0);
    expect(second.bytes.length).toBe(0);
    slab.take(24);
    const reused = slab.take(24);
    expect(reused.bytes).toEqual(new Uint8Array(24));
    // Asked not to zero-fill, reused memory shows what it held (here the second piece's bytes).
    const unfilled = slab.take(24, false);
    expect(unfilled.bytes).toEqual(new Uint8Array(24).fill(0xbb));
    expect(() => slab.give(first.block)).toThrow(/twice/);
  });

  it('takes back a block whose buffer its owner transferred away, keeping nothing of it', () => {
    const slab = new RecyclingSlab(64, 48, 1);
    const first = slab.take(40);
    structuredClone(first.bytes.buffer, { transfer: [first.bytes.buffer] });
    const second = slab.take(40);
    expect(second.block).not.toBe(first.block);
    slab.give(first.block);
    expect(slab.heldBytes).toBe(64);
    expect(slab.take(40).bytes).toEqual(new Uint8Array(40));
  });

  it('gives pieces above its limit their own buffer, never reused', () => {
    const slab = new RecyclingSlab(64, 32, 1);
    const large = slab.take(33);
    expect(large.block).toBeUndefined();
    expect(large.bytes.buffer.byteLength).toBe(33);
    slab.give(large.block);
    expect(large.bytes.length).toBe(33);
  });
});

describe('captured payloads', () => {
  async function pair() {
    const leaderEngine = await Engine.create();
    const followerEngine = await Engine.create();
    const leader = leaderEngine.open('db');
    const follower = followerEngine.open('db');
    run(leader, 'CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)');
    return { leader, follower };
  }

  it('a payload kept past its confirm is detached once its memory serves again, and cannot be applied', async () => {
    const { leader, follower } = await pair();
    const [first] = leader.takeCaptured() as [CapturedTransaction];
    const copy = first.payload.slice();
    follower.apply(first.payload);
    leader.confirm(1);
    // Enough transactions of one page to fill more than a 256 KiB block.
    for (let i = 0; i < 100; i++) {
      run(leader, 'INSERT INTO t(v) VALUES(zeroblob(100))');
      for (const tx of leader.takeCaptured()) follower.apply(tx.payload);
      leader.confirm(leader.pendingCount());
    }
    expect(first.payload.length).toBe(0);
    expect(() => follower.apply(first.payload)).toThrow(EngineError);
    // The copy taken before the confirm is intact: a new replica starts from it.
    const late = (await Engine.create()).open('db');
    late.apply(copy);
    expect(run(late, "SELECT name FROM sqlite_schema WHERE type = 'table'")).toEqual([['t']]);
    const leaderFiles = leader.files();
    const followerFiles = follower.files();
    expect(bytesEqual(leaderFiles.wal, followerFiles.wal)).toBe(true);
    expect(run(follower, 'SELECT count(*) FROM t')).toEqual([[100]]);
  });

  it('a payload of several pages (a row of a few KiB) is cut from a block and its memory serves again', async () => {
    const { leader, follower } = await pair();
    follower.apply(leader.takeCaptured()[0]!.payload);
    leader.confirm(1);
    const payloads: Uint8Array[] = [];
    for (let i = 0; i < 40; i++) {
      run(leader, 'INSERT INTO t(v) VALUES(randomblob(12000))');
      const [tx] = leader.takeCaptured() as [CapturedTransaction];
      // Four pages and more: past the 16 KiB that once got a fresh array buffer of its own.
      expect(tx.payload.length).toBeGreaterThan(16 * 1024);
      expect(tx.payload.buffer.byteLength).toBe(256 * 1024);
      payloads.push(tx.payload);
      follower.apply(tx.payload);
      leader.confirm(1);
    }
    // 40 payloads of ~17 KiB fill a 256 KiB block a few times over: the first block's memory
    // served again, its old payloads detached.
    expect(payloads[0]!.length).toBe(0);
    expect(bytesEqual(leader.files().wal, follower.files().wal)).toBe(true);
  });

  it('payloads stay valid while pending, and an abort gives their memory back', async () => {
    const { leader, follower } = await pair();
    follower.apply(leader.takeCaptured()[0]!.payload);
    leader.confirm(1);
    const pending: CapturedTransaction[] = [];
    for (let i = 0; i < 100; i++) {
      run(leader, 'INSERT INTO t(v) VALUES(zeroblob(100))');
      pending.push(...leader.takeCaptured());
    }
    // Nothing confirmed: every payload is whole, and the follower can apply them in order.
    for (const tx of pending) follower.apply(tx.payload);
    leader.abort();
    for (let i = 0; i < 100; i++) {
      run(leader, 'INSERT INTO t(v) VALUES(zeroblob(200))');
      leader.takeCaptured();
      leader.confirm(leader.pendingCount());
    }
    expect(pending.filter((tx) => tx.payload.length === 0).length).toBeGreaterThan(0);
    expect(run(follower, 'SELECT count(*) FROM t')).toEqual([[100]]);
    expect(run(leader, 'SELECT count(*), sum(length(v)) FROM t')).toEqual([[100, 20_000]]);
  });
});

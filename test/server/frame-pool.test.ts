/**
 * The leader's pool of frame buffers: a buffer given back serves the next frame, one given back
 * twice is refused (a frame still being written would be overwritten), and an idle pool lets its
 * buffers go but one.
 */
import { describe, expect, test } from 'vitest';
import { nodeRuntime } from '../../runtimes/node/index.ts';
import { FRAME_POOL_IDLE_BUFFERS_KEPT, FRAME_POOL_IDLE_MS, FramePool, POOLED_FRAME_BYTES_MIN } from '../../src/server/frame-pool.ts';

describe('FramePool', () => {
  test('reuses what was given back, refuses a second give, and drops its free buffers but one once idle', () => {
    const pool = new FramePool(256 * 1024);
    expect(pool.serves(POOLED_FRAME_BYTES_MIN - 1)).toBe(false);
    expect(pool.serves(POOLED_FRAME_BYTES_MIN)).toBe(true);
    expect(pool.serves(256 * 1024 + 1)).toBe(false);
    expect(pool.holds(100)).toBe(true);

    // Frames in flight at once each have their own buffer; written, they serve the next ones.
    const first = pool.take(0);
    const second = pool.take(0);
    expect(second).not.toBe(first);
    pool.give(first);
    pool.give(second);
    for (let i = 0; i < 100; i++) pool.give(pool.take(i));
    expect(pool.buffersAllocated).toBe(2);
    expect(() => pool.give(second)).toThrow(/given back twice/);
    expect(() => pool.give(new Uint8Array(1024))).toThrow(/not taken from this pool/);

    expect(pool.freeBytes).toBe(2 * 256 * 1024);
    pool.trim(99 + FRAME_POOL_IDLE_MS - 1);
    expect(pool.freeBytes).toBe(2 * 256 * 1024);
    pool.trim(99 + FRAME_POOL_IDLE_MS);
    expect(FRAME_POOL_IDLE_BUFFERS_KEPT).toBe(1);
    expect(pool.freeBytes).toBe(256 * 1024);
    // The one kept serves the next frame; a second at once is new.
    pool.take(20_000);
    expect(pool.buffersAllocated).toBe(2);
    pool.take(20_000);
    expect(pool.buffersAllocated).toBe(3);
  });

  test('a reader waits for a buffer being written to come back instead of making one; a dropped frame wakes it too', async () => {
    const pool = new FramePool(64 * 1024);
    const clock = nodeRuntime().clock;
    const first = pool.take(0);
    pool.sending(first);
    expect(pool.framesWriting).toBe(1);
    expect(pool.freeBytes).toBe(0);
    const back = pool.bufferBack(clock, 60_000).then(() => pool.take(1));
    pool.give(first);
    expect(await back).toBe(first);
    expect(pool.buffersAllocated).toBe(1);
    expect(pool.framesWriting).toBe(0);

    // Not coming back (the channel kept it): the waiter is woken, and makes a new buffer.
    pool.sending(first);
    const after = pool.bufferBack(clock, 60_000).then(() => pool.take(2));
    pool.drop(first);
    expect(await after).not.toBe(first);
    expect(pool.buffersAllocated).toBe(2);
    // A buffer given back that was never sent wakes nobody; the wait ends at its timeout.
    const started = performance.now();
    await pool.bufferBack(clock, 20);
    expect(performance.now() - started).toBeGreaterThanOrEqual(15);
  });
});

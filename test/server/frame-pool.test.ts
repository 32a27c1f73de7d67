/**
 * The leader's pool of frame buffers: a buffer given back serves the next frame, one given back
 * twice is refused (a frame still being written would be overwritten), and an idle pool lets its
 * buffers go but one.
 */
import { describe, expect, test } from 'vitest';
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
});

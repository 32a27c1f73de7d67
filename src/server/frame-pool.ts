/**
 * Buffers for the leader's large peer frames (appends of entries, and the snapshot chunks read
 * into them: SnapshotChunkReader), reused once the socket wrote them. A frame is garbage as soon as it is written; a leader sending a follower the log after a
 * snapshot, or replicating a write load, would otherwise leave a fresh buffer of up to
 * `appendBytesMax` per message to the collector, which lets tens of MiB of them pile up in RSS
 * before it runs (docs/memory.md). A frame the channel never hands back (a host that cannot tell
 * when it wrote it, a channel that gives the bytes themselves to the other side) is simply left to
 * the collector: the pool then makes a new buffer, as before.
 */

import type { Clock } from '../runtime.ts';

/** Frames smaller than this are allocated as they come: they are a small part of what a leader sends. */
export const POOLED_FRAME_BYTES_MIN = 16 * 1024;
/** Free buffers kept: frames in flight to a couple of followers at once. */
const FREE_BUFFERS_MAX = 4;
/**
 * An idle pool drops its free buffers but one after this long without a frame taken, and the
 * collection a node asks for once its writes stopped (10–20 s later) takes them.
 */
export const FRAME_POOL_IDLE_MS = 2_000;
/**
 * Free buffers an idle pool keeps: the next large frame, a burst of appends or a follower caught
 * up by snapshot a chunk at a time, then allocates nothing. One buffer (about 1 MiB) of an idle
 * leader's memory, against a fresh one at every catch-up and burst.
 */
export const FRAME_POOL_IDLE_BUFFERS_KEPT = 1;

export class FramePool {
  private readonly free: Uint8Array[] = [];
  private lastTakenMs = 0;
  private allocated = 0;
  /** Taken buffers whose frames are handed to a socket: each comes back (`give`) or is dropped (`drop`). */
  private readonly writing = new Set<Uint8Array>();
  /** Waiting for one of those to come back (`bufferBack`). */
  private readonly waiters: (() => void)[] = [];

  /** `bufferBytes`: the size of every buffer, the largest frame it serves. */
  constructor(private readonly bufferBytes: number) {
    if (!Number.isSafeInteger(bufferBytes) || bufferBytes < POOLED_FRAME_BYTES_MIN) throw new RangeError(`a frame pool's buffers must hold at least ${POOLED_FRAME_BYTES_MIN} bytes, not ${bufferBytes}`);
  }

  /** Whether a frame of `frameBytes` comes from this pool. */
  serves(frameBytes: number): boolean {
    return frameBytes >= POOLED_FRAME_BYTES_MIN && frameBytes <= this.bufferBytes;
  }

  /** Whether a buffer of this pool holds `bytes` (a snapshot chunk and the room before it). */
  holds(bytes: number): boolean {
    return bytes <= this.bufferBytes;
  }

  /** A buffer for a frame it serves: a free one, or a new one. Give it back once written. */
  take(nowMs: number): Uint8Array {
    this.lastTakenMs = nowMs;
    const buffer = this.free.pop();
    if (buffer) return buffer;
    this.allocated++;
    return new Uint8Array(this.bufferBytes);
  }

  /** `buffer`'s frame is handed to a socket, which reports when it wrote it: `give` or `drop` follows. */
  sending(buffer: Uint8Array): void {
    this.writing.add(buffer);
  }

  /** `buffer`, taken from this pool, is written: the next frame may use it. */
  give(buffer: Uint8Array): void {
    if (buffer.length !== this.bufferBytes) throw new RangeError(`a ${buffer.length}-byte buffer was not taken from this pool of ${this.bufferBytes}-byte buffers`);
    if (this.free.includes(buffer)) throw new Error('a frame buffer was given back twice: a frame still being written could be overwritten');
    if (this.free.length < FREE_BUFFERS_MAX) this.free.push(buffer);
    this.sent(buffer);
  }

  /** `buffer`'s frame went to a channel that keeps it (or was copied): it does not come back. */
  drop(buffer: Uint8Array): void {
    this.sent(buffer);
  }

  /** Frames of this pool's buffers being written now: their buffers come back. */
  get framesWriting(): number {
    return this.writing.size;
  }

  /**
   * Resolves once a frame being written gives its buffer back (or is dropped), or after
   * `timeoutMs`: a reader that can wait for a buffer takes the one that came back instead of
   * making another.
   */
  bufferBack(clock: Pick<Clock, 'setTimeout'>, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        const at = this.waiters.indexOf(wake);
        if (at < 0) return;
        this.waiters.splice(at, 1);
        timer.cancel();
        resolve();
      };
      const timer = clock.setTimeout(wake, timeoutMs);
      this.waiters.push(wake);
    });
  }

  /** Wakes everything waiting for a buffer (the node stops). */
  wakeAll(): void {
    for (const wake of [...this.waiters]) wake();
  }

  private sent(buffer: Uint8Array): void {
    if (!this.writing.delete(buffer)) return;
    // Resumes after this turn's code: by then the buffer given back is on the free list.
    this.waiters[0]?.();
  }

  /** Drops the free buffers but FRAME_POOL_IDLE_BUFFERS_KEPT once no frame was taken for FRAME_POOL_IDLE_MS. */
  trim(nowMs: number): void {
    if (this.free.length > FRAME_POOL_IDLE_BUFFERS_KEPT && nowMs - this.lastTakenMs >= FRAME_POOL_IDLE_MS) this.free.length = FRAME_POOL_IDLE_BUFFERS_KEPT;
  }

  /** Buffers made since the pool was: with frames given back, a few, however many were sent. */
  get buffersAllocated(): number {
    return this.allocated;
  }

  get freeBytes(): number {
    return this.free.length * this.bufferBytes;
  }
}

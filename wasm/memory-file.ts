import { EngineError } from './errors.ts';

const CHUNK_SHIFT = 18;
/** Files are stored in 256 KiB chunks: growing never copies, and no huge contiguous buffer is needed. */
export const CHUNK_BYTES = 1 << CHUNK_SHIFT;
const CHUNK_MASK = CHUNK_BYTES - 1;
/** Chunks kept past the end after a truncation, so a WAL that refills after each checkpoint reuses them. */
const SPARE_CHUNKS_MAX = 64;
/** Copies up to this long are done byte by byte. */
const SMALL_COPY_BYTES = 32;
/** Offsets are computed with 32-bit shifts. */
export const FILE_BYTES_LIMIT = 2 ** 31;

/**
 * Bytes a frozen view saves at a time (SQLite's default page size, so a checkpoint's page writes
 * are whole granules): a write to a frozen chunk saves the old bytes of the granules it changes,
 * not of the whole 256 KiB chunk.
 */
const GRANULE_SHIFT = 12;
export const GRANULE_BYTES = 1 << GRANULE_SHIFT;
const GRANULE_MASK = GRANULE_BYTES - 1;
const GRANULES_PER_CHUNK_SHIFT = CHUNK_SHIFT - GRANULE_SHIFT;
const GRANULES_PER_CHUNK_MASK = (1 << GRANULES_PER_CHUNK_SHIFT) - 1;

/**
 * The bytes of a file as they were when frozen (MemoryFile.freeze), without a copy: the view
 * shares the file's chunks, and a write to a shared chunk first saves, in the view, the old bytes
 * of each 4 KiB granule it changes (copy-on-write, the writer paying, a granule at a time). What
 * the view saves (`savedBytes`; `heldBytes` counts the 256 KiB blocks they are kept in) is thus
 * what was written since it was taken, within the bytes it still shares, rounded up to granules:
 * a checkpoint while a snapshot of a 200 MiB
 * database is written saves its few MiB of pages, where copying whole chunks copied most of the
 * main file. `releaseBelow` ends the sharing of the bytes the reader is done with, `release` of
 * all of them (later writes then save nothing); neither may be read after.
 */
export interface FrozenBytes {
  readonly length: number;
  /** Bytes the view holds of its own: the blocks its saved granules are kept in. */
  readonly heldBytes: number;
  /** Bytes of the granules saved and not released. */
  readonly savedBytes: number;
  /** Copies `length` bytes from `offset` (all below `this.length`, none released) into `target` at `targetOffset`. */
  readInto(target: Uint8Array, targetOffset: number, offset: number, length: number): void;
  /** Lets go of the bytes below `offset` (the reader copied them out): writes there save nothing for this view any more. */
  releaseBelow(offset: number): void;
  release(): void;
}

/** A file's frozen view; the file calls `preserve` before every write to a chunk the view shares. */
class FrozenView implements FrozenBytes {
  /** Granules below this one are released. */
  private releasedGranules = 0;
  /** Chunks below this index are released (their sharing ended in the file). */
  private releasedChunks = 0;
  /** Saved granule (index in the file) → slot of its saved bytes in `blocks`. */
  private readonly saved = new Map<number, number>();
  /** The saved bytes, a granule per slot, in chunk-sized blocks from the file's pool. */
  private readonly blocks: Uint8Array[] = [];
  private readonly freeSlots: number[] = [];
  private slotsUsed = 0;
  private done = false;

  constructor(
    private readonly file: MemoryFileViews,
    readonly length: number,
    private readonly chunks: readonly Uint8Array[],
    private readonly pool: ChunkPool,
  ) {}

  get heldBytes(): number {
    return this.blocks.length * CHUNK_BYTES;
  }

  get savedBytes(): number {
    return this.saved.size * GRANULE_BYTES;
  }

  /** Saves the granules of `[start, end)` of chunk `index` (which is `chunk`) that the view shares and has not saved. */
  preserve(index: number, chunk: Uint8Array, start: number, end: number): void {
    // A chunk that truncation took out of the file and growth replaced is not the view's.
    if (this.chunks[index] !== chunk) return;
    const base = index * CHUNK_BYTES;
    // Bytes past the view's end (a WAL's frames after the frozen ones) are not its own.
    const limit = Math.min(end, this.length - base);
    if (start >= limit) return;
    const first = Math.max((base + start) >>> GRANULE_SHIFT, this.releasedGranules);
    const last = (base + limit - 1) >>> GRANULE_SHIFT;
    for (let granule = first; granule <= last; granule++) {
      if (this.saved.has(granule)) continue;
      const slot = this.freeSlots.pop() ?? this.slotsUsed++;
      if (slot >>> GRANULES_PER_CHUNK_SHIFT === this.blocks.length) this.blocks.push(this.pool.take());
      const from = (granule & GRANULES_PER_CHUNK_MASK) << GRANULE_SHIFT;
      this.blocks[slot >>> GRANULES_PER_CHUNK_SHIFT]!.set(chunk.subarray(from, from + GRANULE_BYTES), (slot & GRANULES_PER_CHUNK_MASK) << GRANULE_SHIFT);
      this.saved.set(granule, slot);
    }
  }

  readInto(target: Uint8Array, targetOffset: number, offset: number, length: number): void {
    if (this.done || !(offset >= 0 && offset + length <= this.length) || offset >>> GRANULE_SHIFT < this.releasedGranules) {
      throw new EngineError('LIMIT', `cannot read ${length} bytes at ${offset} of a frozen view of ${this.length} bytes${this.done ? ', released' : ` released below granule ${this.releasedGranules}`}`);
    }
    while (length > 0) {
      const granule = offset >>> GRANULE_SHIFT;
      const slot = this.saved.size === 0 ? undefined : this.saved.get(granule);
      let source: Uint8Array;
      let from: number;
      let count: number;
      if (slot === undefined) {
        // Straight from the shared chunk, up to its end or the next saved granule.
        const within = offset & CHUNK_MASK;
        count = Math.min(length, CHUNK_BYTES - within);
        if (this.saved.size !== 0) count = Math.min(count, GRANULE_BYTES - (offset & GRANULE_MASK));
        source = this.chunks[offset >>> CHUNK_SHIFT]!;
        from = within;
      } else {
        count = Math.min(length, GRANULE_BYTES - (offset & GRANULE_MASK));
        source = this.blocks[slot >>> GRANULES_PER_CHUNK_SHIFT]!;
        from = ((slot & GRANULES_PER_CHUNK_MASK) << GRANULE_SHIFT) + (offset & GRANULE_MASK);
      }
      target.set(source.subarray(from, from + count), targetOffset);
      offset += count;
      targetOffset += count;
      length -= count;
    }
  }

  releaseBelow(offset: number): void {
    if (this.done) return;
    const granules = offset >= this.length ? Math.ceil(this.length / GRANULE_BYTES) : Math.floor(offset / GRANULE_BYTES);
    for (let granule = this.releasedGranules; granule < granules; granule++) {
      const slot = this.saved.get(granule);
      if (slot === undefined) continue;
      this.saved.delete(granule);
      this.freeSlots.push(slot);
    }
    if (granules > this.releasedGranules) this.releasedGranules = granules;
    const chunks = offset >= this.length ? this.chunks.length : Math.floor(offset / CHUNK_BYTES);
    for (; this.releasedChunks < chunks; this.releasedChunks++) this.file.unshare(this.chunks[this.releasedChunks]!);
    if (this.releasedChunks === this.chunks.length) this.release();
  }

  release(): void {
    if (this.done) return;
    this.done = true;
    for (; this.releasedChunks < this.chunks.length; this.releasedChunks++) this.file.unshare(this.chunks[this.releasedChunks]!);
    this.file.forget(this);
    this.saved.clear();
    for (const block of this.blocks) this.pool.give(block);
    this.blocks.length = 0;
  }
}

/** What a frozen view asks of its file. */
interface MemoryFileViews {
  /** The view no longer shares `chunk`. */
  unshare(chunk: Uint8Array): void;
  /** The view is released: the file calls it no more. */
  forget(view: FrozenView): void;
}

/** The view of a file that does not exist: no bytes. */
export const NOTHING_FROZEN: FrozenBytes = Object.freeze({
  length: 0,
  heldBytes: 0,
  savedBytes: 0,
  readInto: (_target: Uint8Array, _targetOffset: number, offset: number, length: number): void => {
    if (offset !== 0 || length !== 0) throw new EngineError('LIMIT', `cannot read ${length} bytes at ${offset} of an empty view`);
  },
  releaseBelow: () => {},
  release: () => {},
});

/**
 * Chunks given back by deleted or shrunk files, handed to growing ones. A fresh chunk costs its
 * allocation, the page faults of its first writes and, once garbage, a share of a full GC (the
 * JS heap counts it as external memory); SQLite's own heap reuses freed memory the same way.
 * Pooled chunks hold stale bytes, which a MemoryFile never shows (bytes past `size` are stale
 * anyway: growing zero-fills).
 */
export class ChunkPool {
  private readonly chunks: Uint8Array[] = [];
  private holding = false;

  /** Keeps at most `bytesMax` of chunks (0: keeps none). */
  constructor(readonly bytesMax: number) {
    if (!(bytesMax >= 0)) throw new RangeError(`chunk pool limit ${bytesMax} must be >= 0`);
  }

  /** Bytes of the chunks kept. */
  get heldBytes(): number {
    return this.chunks.length * CHUNK_BYTES;
  }

  /** A chunk with arbitrary contents. */
  take(): Uint8Array {
    return this.chunks.pop() ?? new Uint8Array(CHUNK_BYTES);
  }

  /** Keeps `chunk` for reuse; the caller must hold no other reference to it that it still uses. */
  give(chunk: Uint8Array): void {
    if (chunk.length !== CHUNK_BYTES) throw new RangeError(`a pooled chunk must be ${CHUNK_BYTES} bytes, not ${chunk.length}`);
    if (this.holding || (this.chunks.length + 1) * CHUNK_BYTES <= this.bytesMax) this.chunks.push(chunk);
  }

  /**
   * Runs `move` keeping every chunk given back meanwhile, whatever `bytesMax`, then drops those
   * beyond it: a checkpoint gives a WAL's chunks back ahead of the main file taking them (its
   * pages are not all in page order), and they are reused instead of left to the collector while
   * the main file allocates new ones.
   */
  holdingAll<T>(move: () => T): T {
    if (this.holding) return move();
    this.holding = true;
    try {
      return move();
    } finally {
      this.holding = false;
      while (this.chunks.length * CHUNK_BYTES > this.bytesMax) this.chunks.pop();
    }
  }
}

/** Stands for a chunk given back by dropChunk in a file's chunk list, until a truncation removes it. */
const DROPPED_CHUNK = new Uint8Array(0);

/** No pool: every chunk is allocated fresh and dropped to the garbage collector. */
const NO_POOL = new ChunkPool(0);

/**
 * A growable in-memory file. Bytes past `size` are stale (truncation does not clear them: a
 * checkpoint truncates megabytes of WAL); growing zero-fills, as a real file reads zeros there.
 */
export class MemoryFile implements MemoryFileViews {
  size = 0;
  /** Incremented by every xSync: lets the engine skip work when SQLite committed nothing. */
  syncCount = 0;
  readonly sizeMaxBytes: number;
  private readonly chunks: Uint8Array[] = [];
  /** Chunks frozen views share, with how many views share each: a write to one saves what it changes in them first. */
  private readonly frozen = new Map<Uint8Array, number>();
  /** The frozen views not yet released. */
  private readonly frozenViews: FrozenView[] = [];

  private readonly pool: ChunkPool;
  /** Set by releaseChunks: the file is gone, its chunks belong to the pool. */
  private released = false;
  /** Chunks given back by dropChunk and not yet taken out of `chunks` by a truncation. */
  private droppedChunks = 0;

  constructor(sizeMaxBytes: number, initial?: Uint8Array, pool: ChunkPool = NO_POOL) {
    if (!(sizeMaxBytes > 0 && sizeMaxBytes <= FILE_BYTES_LIMIT)) {
      throw new EngineError('LIMIT', `file size limit ${sizeMaxBytes} is outside 1..${FILE_BYTES_LIMIT} bytes`);
    }
    this.sizeMaxBytes = sizeMaxBytes;
    this.pool = pool;
    if (initial !== undefined) this.write(initial, 0);
  }

  /** Bytes of memory the file holds: its chunks, spare ones included. */
  get heldBytes(): number {
    return (this.chunks.length - this.droppedChunks) * CHUNK_BYTES;
  }

  /**
   * Gives chunk `index` back (to the pool, unless a frozen view shares it) before the file is cut
   * below it: a checkpoint gives back each chunk of the WAL once it copied the pages it holds, so
   * the main file grows into them instead of beside the whole WAL. The chunk's bytes must never be
   * read or written again: the caller truncates the file below it before any other use.
   */
  dropChunk(index: number): void {
    const chunk = this.chunks[index];
    if (chunk === undefined || chunk === DROPPED_CHUNK) return;
    this.chunks[index] = DROPPED_CHUNK;
    this.droppedChunks++;
    this.giveBack(chunk);
  }

  /**
   * The first `end` bytes as they are now, without copying them: while the view shares them,
   * a write saves in it the granules it changes (copy-on-write), so a snapshot costs only what
   * is written while it is held.
   */
  freeze(end = this.size): FrozenBytes {
    if (!(end >= 0 && end <= this.size)) throw new EngineError('LIMIT', `cannot freeze ${end} bytes of a ${this.size}-byte file`);
    const chunks = this.chunks.slice(0, Math.ceil(end / CHUNK_BYTES));
    const view = new FrozenView(this, end, chunks, this.pool);
    if (chunks.length === 0) return view;
    for (const chunk of chunks) this.frozen.set(chunk, (this.frozen.get(chunk) ?? 0) + 1);
    this.frozenViews.push(view);
    return view;
  }

  /** For the file's frozen views: one of them no longer shares `chunk`. */
  unshare(chunk: Uint8Array): void {
    const holders = this.frozen.get(chunk);
    if (holders === undefined) throw new EngineError('LIMIT', 'invariant violated: a frozen view let go of a chunk it did not share');
    if (holders <= 1) this.frozen.delete(chunk);
    else this.frozen.set(chunk, holders - 1);
  }

  /** For the file's frozen views: `view` is released. */
  forget(view: FrozenView): void {
    const index = this.frozenViews.indexOf(view);
    if (index >= 0) this.frozenViews.splice(index, 1);
  }

  /** Chunk `index`, about to be written in `[start, end)`: the frozen views sharing it save those bytes first. */
  private writable(index: number, start: number, end: number): Uint8Array {
    const chunk = this.chunks[index]!;
    if (this.frozen.size === 0 || !this.frozen.has(chunk)) return chunk;
    for (const view of this.frozenViews) view.preserve(index, chunk, start, end);
    return chunk;
  }

  /** Makes room for `sizeBytes` (without changing `size`); false when that exceeds `sizeMaxBytes`. */
  reserve(sizeBytes: number): boolean {
    if (sizeBytes > this.sizeMaxBytes) return false;
    if (this.released) throw new EngineError('CLOSED', 'write to a file whose chunks were released');
    while (this.chunks.length * CHUNK_BYTES < sizeBytes) this.chunks.push(this.pool.take());
    return true;
  }

  /** Copies `length` bytes from `offset` (all below `size`) into `target` at `targetOffset`. */
  readInto(target: Uint8Array, targetOffset: number, offset: number, length: number): void {
    const within = offset & CHUNK_MASK;
    if (within + length <= CHUNK_BYTES) {
      target.set(this.chunks[offset >>> CHUNK_SHIFT]!.subarray(within, within + length), targetOffset);
      return;
    }
    while (length > 0) {
      const start = offset & CHUNK_MASK;
      const count = Math.min(length, CHUNK_BYTES - start);
      target.set(this.chunks[offset >>> CHUNK_SHIFT]!.subarray(start, start + count), targetOffset);
      offset += count;
      targetOffset += count;
      length -= count;
    }
  }

  /** Writes `length` bytes of `source` from `sourceOffset` at file `offset`; space must be reserved. */
  writeFrom(source: Uint8Array, sourceOffset: number, length: number, offset: number): void {
    if (offset > this.size) this.zero(this.size, offset);
    const end = offset + length;
    const within = offset & CHUNK_MASK;
    if (within + length <= CHUNK_BYTES) {
      const chunk = this.writable(offset >>> CHUNK_SHIFT, within, within + length);
      // A WAL frame header (24 bytes) is written on its own: a loop beats making a subarray.
      if (length <= SMALL_COPY_BYTES) {
        for (let i = 0; i < length; i++) chunk[within + i] = source[sourceOffset + i]!;
      } else {
        chunk.set(source.subarray(sourceOffset, sourceOffset + length), within);
      }
    } else {
      while (length > 0) {
        const start = offset & CHUNK_MASK;
        const count = Math.min(length, CHUNK_BYTES - start);
        this.writable(offset >>> CHUNK_SHIFT, start, start + count).set(source.subarray(sourceOffset, sourceOffset + count), start);
        offset += count;
        sourceOffset += count;
        length -= count;
      }
    }
    if (end > this.size) this.size = end;
  }

  write(source: Uint8Array, offset: number): void {
    if (!this.reserve(offset + source.length)) {
      throw new EngineError('LIMIT', `file would grow to ${offset + source.length} bytes, above its limit of ${this.sizeMaxBytes} bytes`);
    }
    this.writeFrom(source, 0, source.length, offset);
  }

  truncate(sizeBytes: number): void {
    if (sizeBytes > this.size) {
      if (!this.reserve(sizeBytes)) {
        throw new EngineError('LIMIT', `file would grow to ${sizeBytes} bytes, above its limit of ${this.sizeMaxBytes} bytes`);
      }
      this.zero(this.size, sizeBytes);
    } else {
      const chunksNeeded = Math.ceil(sizeBytes / CHUNK_BYTES);
      if (this.droppedChunks > 0) {
        for (let i = 0; i < chunksNeeded; i++) {
          if (this.chunks[i] === DROPPED_CHUNK) throw new EngineError('LIMIT', `invariant violated: a truncation to ${sizeBytes} bytes keeps chunk ${i}, which was given back`);
        }
        // The chunks past the new end are spare, their place does not matter: the given-back ones go.
        const spare = this.chunks.slice(chunksNeeded).filter((chunk) => chunk !== DROPPED_CHUNK);
        this.chunks.length = chunksNeeded;
        for (const chunk of spare) this.chunks.push(chunk);
        this.droppedChunks = 0;
      }
      while (this.chunks.length > chunksNeeded + SPARE_CHUNKS_MAX) this.giveBack(this.chunks.pop()!);
    }
    this.size = sizeBytes;
  }

  /**
   * Ends the file: its chunks go back to the pool (those a frozen view shares stay with it) and
   * it holds nothing. Only for a file nothing reads or writes any more.
   */
  releaseChunks(): void {
    this.released = true;
    for (const chunk of this.chunks) this.giveBack(chunk);
    this.chunks.length = 0;
    this.droppedChunks = 0;
    this.size = 0;
  }

  private giveBack(chunk: Uint8Array): void {
    if (chunk !== DROPPED_CHUNK && !this.frozen.has(chunk)) this.pool.give(chunk);
  }

  /** `uint32` as a function of its own, made once. */
  readonly uint32Reader = (offset: number): number => this.uint32(offset);

  /** Big-endian 32-bit value at `offset` (may straddle chunks). */
  uint32(offset: number): number {
    const within = offset & CHUNK_MASK;
    if (within + 4 <= CHUNK_BYTES) {
      const chunk = this.chunks[offset >>> CHUNK_SHIFT]!;
      return ((chunk[within]! << 24) | (chunk[within + 1]! << 16) | (chunk[within + 2]! << 8) | chunk[within + 3]!) >>> 0;
    }
    return ((this.byte(offset) << 24) | (this.byte(offset + 1) << 16) | (this.byte(offset + 2) << 8) | this.byte(offset + 3)) >>> 0;
  }

  /** Copies `length` bytes from `offset` (all below `size`) to `target` at `targetOffset` (space reserved there). */
  copyTo(target: MemoryFile, targetOffset: number, offset: number, length: number): void {
    while (length > 0) {
      const start = offset & CHUNK_MASK;
      const count = Math.min(length, CHUNK_BYTES - start);
      target.writeFrom(this.chunks[offset >>> CHUNK_SHIFT]!, start, count, targetOffset);
      offset += count;
      targetOffset += count;
      length -= count;
    }
  }

  /** A copy of bytes `[start, end)`. */
  slice(start: number, end: number): Uint8Array {
    const copy = new Uint8Array(end - start);
    if (end > start) this.readInto(copy, 0, start, end - start);
    return copy;
  }

  /** Views of the file's bytes, chunk by chunk (valid until the next write): comparisons without copies. */
  views(): Uint8Array[] {
    const views: Uint8Array[] = [];
    for (let offset = 0; offset < this.size; offset += CHUNK_BYTES) {
      views.push(this.chunks[offset >>> CHUNK_SHIFT]!.subarray(0, Math.min(CHUNK_BYTES, this.size - offset)));
    }
    return views;
  }

  /** A copy of the whole file. */
  copy(): Uint8Array {
    return this.slice(0, this.size);
  }

  private byte(offset: number): number {
    return this.chunks[offset >>> CHUNK_SHIFT]![offset & CHUNK_MASK]!;
  }

  private zero(from: number, to: number): void {
    while (from < to) {
      const start = from & CHUNK_MASK;
      const count = Math.min(to - from, CHUNK_BYTES - start);
      this.writable(from >>> CHUNK_SHIFT, start, start + count).fill(0, start, start + count);
      from += count;
    }
  }
}

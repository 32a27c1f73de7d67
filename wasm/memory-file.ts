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
 * The bytes of a file as they were when frozen (MemoryFile.freeze): its chunks, shared with the
 * file until a write copies the one it changes. `release()` ends the sharing (then later writes
 * copy nothing); the view must not be read after it.
 */
export interface FrozenBytes {
  readonly length: number;
  /** The chunks; the last may hold bytes past `length`. */
  readonly chunks: readonly Uint8Array[];
  /** Bytes the view alone keeps alive: its chunks that writes replaced in the file by copies. */
  readonly heldBytes: number;
  release(): void;
  /**
   * Optional: ends the sharing of chunk `index` alone (once its bytes were copied out), so that
   * later writes to it copy nothing; the view must not read that chunk after it.
   */
  releaseChunk?(index: number): void;
}

/** The view of a file that does not exist: no bytes. */
export const NOTHING_FROZEN: FrozenBytes = Object.freeze({ length: 0, chunks: [], heldBytes: 0, release: () => {} });

/**
 * Chunks given back by deleted or shrunk files, handed to growing ones. A fresh chunk costs its
 * allocation, the page faults of its first writes and, once garbage, a share of a full GC (the
 * JS heap counts it as external memory); SQLite's own heap reuses freed memory the same way.
 * Pooled chunks hold stale bytes, which a MemoryFile never shows (bytes past `size` are stale
 * anyway: growing zero-fills).
 */
export class ChunkPool {
  private readonly chunks: Uint8Array[] = [];

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
    if ((this.chunks.length + 1) * CHUNK_BYTES <= this.bytesMax) this.chunks.push(chunk);
  }
}

/** No pool: every chunk is allocated fresh and dropped to the garbage collector. */
const NO_POOL = new ChunkPool(0);

/**
 * A growable in-memory file. Bytes past `size` are stale (truncation does not clear them: a
 * checkpoint truncates megabytes of WAL); growing zero-fills, as a real file reads zeros there.
 */
export class MemoryFile {
  size = 0;
  /** Incremented by every xSync: lets the engine skip work when SQLite committed nothing. */
  syncCount = 0;
  readonly sizeMaxBytes: number;
  private readonly chunks: Uint8Array[] = [];
  /** Chunks frozen views share, with how many views hold each: a write copies such a chunk first. */
  private readonly frozen = new Map<Uint8Array, number>();

  private readonly pool: ChunkPool;
  /** Set by releaseChunks: the file is gone, its chunks belong to the pool. */
  private released = false;

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
    return this.chunks.length * CHUNK_BYTES;
  }

  /**
   * The first `end` bytes as they are now, without copying them: later writes copy each chunk
   * they change (copy-on-write), so a snapshot costs only the chunks written while it is held.
   */
  freeze(end = this.size): FrozenBytes {
    if (!(end >= 0 && end <= this.size)) throw new EngineError('LIMIT', `cannot freeze ${end} bytes of a ${this.size}-byte file`);
    const chunks = this.chunks.slice(0, Math.ceil(end / CHUNK_BYTES));
    for (const chunk of chunks) this.frozen.set(chunk, (this.frozen.get(chunk) ?? 0) + 1);
    const held = chunks.map(() => true);
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const file = this;
    const letGo = (index: number): void => {
      if (!held[index]) return;
      held[index] = false;
      const chunk = chunks[index]!;
      const holders = this.frozen.get(chunk) ?? 0;
      if (holders <= 1) this.frozen.delete(chunk);
      else this.frozen.set(chunk, holders - 1);
    };
    return {
      length: end,
      chunks,
      get heldBytes(): number {
        let replaced = 0;
        for (let index = 0; index < chunks.length; index++) if (held[index] && file.chunks[index] !== chunks[index]) replaced++;
        return replaced * CHUNK_BYTES;
      },
      release: () => {
        for (let index = 0; index < chunks.length; index++) letGo(index);
      },
      releaseChunk: (index) => {
        if (!(Number.isInteger(index) && index >= 0 && index < chunks.length)) throw new EngineError('LIMIT', `no chunk ${index} in a view of ${chunks.length}`);
        letGo(index);
      },
    };
  }

  /** Chunk `index`, copied first if a frozen view shares it. */
  private writable(index: number): Uint8Array {
    const chunk = this.chunks[index]!;
    if (this.frozen.size === 0 || !this.frozen.has(chunk)) return chunk;
    const copy = this.pool.take();
    copy.set(chunk);
    this.chunks[index] = copy;
    return copy;
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
      const chunk = this.writable(offset >>> CHUNK_SHIFT);
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
        this.writable(offset >>> CHUNK_SHIFT).set(source.subarray(sourceOffset, sourceOffset + count), start);
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
    this.size = 0;
  }

  private giveBack(chunk: Uint8Array): void {
    if (!this.frozen.has(chunk)) this.pool.give(chunk);
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
      this.writable(from >>> CHUNK_SHIFT).fill(0, start, start + count);
      from += count;
    }
  }
}

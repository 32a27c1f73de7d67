/**
 * Reads the chunks of the snapshot file the Raft core asks for, so the leader sends a follower a
 * snapshot a chunk at a time from disk and holds about one chunk per follower, not the snapshot
 * (docs/memory.md). The core asks storage for a range of the snapshot's data
 * (`MemoryStorage.snapshotChunk`); while the data is on disk only, the answer is 'pending' and
 * this reads that range from the file, hands it to storage and tells the core.
 *
 * The file is opened once per snapshot and kept open while chunks of it are asked for (and
 * SNAPSHOT_READER_IDLE_MS after): on a POSIX file system a newer snapshot renamed over it leaves
 * the open file readable, so a follower halfway through an older snapshot finishes it. A host
 * that cannot keep the old file answers 'unavailable' for it and the core starts over with the
 * latest.
 *
 * The data's checksum is computed over the chunks as they are read, in order: the chunk that ends
 * the data is only given out once the whole data matched it, so a follower never installs a
 * damaged snapshot (it installs on the last chunk).
 *
 * Where the file can be read into a given buffer (`DurableFileReader.readInto`), a chunk is read
 * into a buffer of the node's frame pool, after free bytes for its message's header, and lent to
 * the core: `frameInPlace` writes the message's header in front of the chunk, and the frame goes
 * to the socket where the chunk was read, uncopied; once the socket wrote it (`released`) the
 * buffer goes back to the pool, for the next chunk or the appends that follow the snapshot. So
 * sending a snapshot allocates nothing per chunk, and leaves no garbage for the collector: a
 * leader whose collector ran late grew by tens of MiB of chunks and frames sent
 * (docs/memory.md). A buffer whose chunk was never framed (the core lost interest, the node
 * stopped leading) is left to the collector.
 */
import { encodeMessageWithHeadroom, encodeSnapshotMessagePrefix, MessageType, type MemoryStorage, type Message, type SnapshotChunkRequest } from '../raft/index.ts';
import type { Clock, DurableFileReader, TimerHandle } from '../runtime.ts';
import { crc32Update } from '../util/crc32.ts';
import type { FramePool } from './frame-pool.ts';
import type { RaftLog } from './raft-log.ts';
import { decodeSnapshotFileHeader, SNAPSHOT_FILE_META_LENGTH_BYTES, type SnapshotFileHeader } from './raft-log-format.ts';

/** How long a snapshot file stays open after the last chunk read from it. */
export const SNAPSHOT_READER_IDLE_MS = 10_000;
/**
 * How long a chunk read waits for a frame buffer being written (the chunk before, or an append
 * to the follower) rather than make a new one: the follower can acknowledge a chunk before the
 * leader's socket reports it written, and without the wait every catch-up took a second buffer.
 * Past this the read takes a new one (a channel slow to report must not stall the catch-up).
 */
export const SNAPSHOT_CHUNK_BUFFER_WAIT_MS = 1_000;
/** Snapshot files open at once: the latest, and the one before for a follower still being sent it. */
const SNAPSHOT_READERS_MAX = 2;
/**
 * Bytes a chunk buffer keeps free in front of its chunk for the frame's and the message's header
 * (128 bytes and the snapshot's configuration, about 30 bytes and an address per member): a
 * larger header is encoded beside the chunk, which is then copied once.
 */
export const SNAPSHOT_CHUNK_PREFIX_BYTES_MAX = 4096;

/** A chunk read into a buffer of the frame pool, lent to the core until its frame is written. */
interface LentChunk {
  /** The whole buffer: SNAPSHOT_CHUNK_PREFIX_BYTES_MAX free bytes, then the chunk. */
  buffer: Uint8Array;
  /** Taken from the frame pool (else made for this chunk alone: one longer than the pool's buffers). */
  pooled: boolean;
  chunk: Uint8Array;
  /** Its message's header was written in front of it: it is on its way to the socket. */
  framed: boolean;
}

interface OpenSnapshot {
  index: number;
  file: DurableFileReader;
  header: SnapshotFileHeader;
  dataBytes: number;
  /** Data bytes [0, verifiedBytes) were read in order; `crc` is their CRC-32. */
  verifiedBytes: number;
  crc: number;
  lastReadMs: number;
}

export interface SnapshotChunkReaderHost {
  log: Pick<RaftLog, 'openSnapshotReader'>;
  memory: MemoryStorage;
  clock: Pick<Clock, 'nowMs' | 'setTimeout'>;
  /** The buffers chunks are read into and sent from, shared with the node's other large frames. */
  frames: FramePool;
  /** Chunks were handed to storage: let the core send them (RaftNode.snapshotChunksReady) and process its Ready. */
  chunksReady(): void;
  /** One line for the node's log. */
  write(line: string): void;
}

export class SnapshotChunkReader {
  private readonly open: OpenSnapshot[] = [];
  private readonly reading = new Set<string>();
  /** The reads in progress, one after the other: the leader holds one chunk being read at a time. */
  private tail: Promise<unknown> = Promise.resolve();
  private idleTimer: TimerHandle | undefined;
  private stopped = false;
  /** Bytes of chunks being read now (for tests and the memory report). */
  private inFlightBytes = 0;
  private inFlightBytesPeak = 0;
  /** The chunks read into the pool's buffers and not yet written, by their buffer (weakly: one whose chunk the core dropped is left to the collector). */
  private readonly lent = new WeakMap<ArrayBufferLike, LentChunk>();
  /** Chunks framed into the pool's buffers and handed to a socket, not yet reported written. */
  private chunksWriting = 0;

  constructor(private readonly host: SnapshotChunkReaderHost) {}

  /** The largest number of chunk bytes this reader held being read at once. */
  get readBytesPeak(): number {
    return this.inFlightBytesPeak;
  }

  get heldBytes(): number {
    return this.inFlightBytes;
  }

  /**
   * The frame of `message` built where its chunk was read, when it carries a chunk this reader
   * lent (undefined otherwise: encode it as any other message): its header, then the chunk, after
   * `headroomBytes` for the transport's header. `released` gives the buffer back once the frame
   * was written (or dropped); until then nothing else writes it.
   */
  frameInPlace(message: Message, headroomBytes: number): { frame: Uint8Array; released: (reusable: boolean) => void } | undefined {
    const chunk = message.snapshot?.data;
    if (message.type !== MessageType.Snapshot || !chunk) return undefined;
    const lent = this.lent.get(chunk.buffer);
    if (!lent || lent.chunk !== chunk || lent.framed) return undefined;
    lent.framed = true;
    if (lent.pooled) {
      this.chunksWriting++;
      this.host.frames.sending(lent.buffer);
    }
    // Not reusable: the channel keeps the buffer, which goes to the collector with the frame.
    const released = (reusable: boolean): void => (reusable ? this.giveBack(lent) : this.dropped(lent));
    const prefix = encodeSnapshotMessagePrefix(message, headroomBytes);
    if (prefix.length > chunk.byteOffset - lent.buffer.byteOffset) {
      // A header beyond the room left for it: copy the chunk once, beside it.
      const frame = encodeMessageWithHeadroom(message, headroomBytes);
      released(true);
      return { frame, released: () => undefined };
    }
    const start = chunk.byteOffset - lent.buffer.byteOffset - prefix.length;
    lent.buffer.set(prefix, start);
    return { frame: lent.buffer.subarray(start, start + prefix.length + chunk.length), released };
  }

  /** Reads the chunks the core asked for since the last call; takes back the buffers of chunks it will not take. */
  readWanted(): void {
    if (this.stopped) return;
    for (const chunk of this.host.memory.takeDroppedSnapshotChunks()) {
      const lent = this.lent.get(chunk.buffer);
      // Never framed: nothing else holds the buffer.
      if (lent && lent.chunk === chunk && !lent.framed) this.giveBack(lent);
    }
    for (const request of this.host.memory.takeSnapshotChunksWanted()) {
      const key = `${request.index}/${request.offset}/${request.length}`;
      if (this.reading.has(key)) continue;
      this.reading.add(key);
      const read = this.tail.then(() => this.readChunk(request));
      this.tail = read.catch(() => undefined);
      void read
        .catch((error: unknown) => {
          this.host.write(`could not read the snapshot at index ${request.index} to send it to a follower: ${(error as Error).message}`);
          return 'unavailable' as const;
        })
        .then((answer) => {
          this.reading.delete(key);
          if (this.stopped) return;
          this.host.memory.holdSnapshotChunk(request, answer);
          this.host.chunksReady();
        });
    }
  }

  /** Closes the open files; later requests are not read. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.idleTimer?.cancel();
    this.host.frames.wakeAll();
    await this.tail;
    await Promise.allSettled(this.open.splice(0).map((open) => open.file.close()));
  }

  private async readChunk(request: SnapshotChunkRequest): Promise<Uint8Array | 'unavailable'> {
    if (this.stopped) return 'unavailable';
    const open = await this.snapshotFile(request.index);
    if (!open) return 'unavailable';
    open.lastReadMs = this.host.clock.nowMs();
    const end = request.offset + request.length;
    if (end > open.dataBytes) throw new Error(`the chunk ${request.offset}..${end} is past the end of its ${open.dataBytes} bytes of data`);
    if (end === open.dataBytes) {
      // The chunk that completes the follower's copy: first make sure the data before it is whole.
      while (open.verifiedBytes < request.offset) {
        const length = Math.min(Math.max(request.length, 1), request.offset - open.verifiedBytes);
        const read = await this.readData(open, open.verifiedBytes, length);
        this.verify(open, open.verifiedBytes, read.chunk);
        // Only checked, never lent: its buffer reads the next range.
        if (read.lent) this.giveBack(read.lent);
      }
    }
    const read = await this.readData(open, request.offset, request.length);
    if (read.lent) this.lent.set(read.chunk.buffer, read.lent);
    this.verify(open, request.offset, read.chunk);
    if (end === open.dataBytes && open.crc !== open.header.dataCrc) {
      throw new Error(`the snapshot file fails its data checksum (its data is damaged): not sent`);
    }
    return read.chunk;
  }

  /** Bytes [offset, offset + length) of the data: into a pool's buffer where the file reads into one (`lent` is then set, not yet framed). */
  private async readData(open: OpenSnapshot, offset: number, length: number): Promise<{ chunk: Uint8Array; lent?: LentChunk }> {
    this.inFlightBytes += length;
    this.inFlightBytesPeak = Math.max(this.inFlightBytesPeak, this.inFlightBytes);
    try {
      const position = open.header.dataOffset + offset;
      if (open.file.readInto) {
        const bytes = SNAPSHOT_CHUNK_PREFIX_BYTES_MAX + length;
        const pooled = this.host.frames.holds(bytes);
        // One chunk on its way at a time, and no new buffer while one is being written (the chunk
        // before, or an append): the next chunk is read into the buffer that comes back.
        if (pooled && (this.chunksWriting > 0 || (this.host.frames.freeBytes === 0 && this.host.frames.framesWriting > 0))) {
          await this.host.frames.bufferBack(this.host.clock, SNAPSHOT_CHUNK_BUFFER_WAIT_MS);
        }
        const buffer = pooled ? this.host.frames.take(this.host.clock.nowMs()) : new Uint8Array(bytes);
        const chunk = buffer.subarray(SNAPSHOT_CHUNK_PREFIX_BYTES_MAX, SNAPSHOT_CHUNK_PREFIX_BYTES_MAX + length);
        const lent: LentChunk = { buffer, pooled, chunk, framed: false };
        try {
          await open.file.readInto(position, chunk);
        } catch (error) {
          this.giveBack(lent);
          throw error;
        }
        return { chunk, lent };
      }
      const chunk = await open.file.read(position, length);
      if (chunk.length !== length) throw new Error(`read ${chunk.length} bytes at ${offset} of its data, not ${length}`);
      return { chunk };
    } finally {
      this.inFlightBytes -= length;
    }
  }

  /** A chunk's buffer is written (or was never lent): back to the pool it came from. */
  private giveBack(lent: LentChunk): void {
    this.forget(lent);
    if (!lent.pooled) return;
    if (lent.framed) this.chunksWriting--;
    this.host.frames.give(lent.buffer);
  }

  /** A framed chunk's buffer stays with the channel: the pool hears it will not come back. */
  private dropped(lent: LentChunk): void {
    this.forget(lent);
    if (!lent.pooled) return;
    this.chunksWriting--;
    this.host.frames.drop(lent.buffer);
  }

  private forget(lent: LentChunk): void {
    if (this.lent.get(lent.chunk.buffer) === lent) this.lent.delete(lent.chunk.buffer);
  }

  private verify(open: OpenSnapshot, offset: number, data: Uint8Array): void {
    if (offset !== open.verifiedBytes) return;
    open.crc = crc32Update(open.crc, data);
    open.verifiedBytes += data.length;
  }

  /** The open file of the snapshot at `index`; opens the file when it is the latest snapshot. Undefined: that snapshot cannot be read any more. */
  private async snapshotFile(index: number): Promise<OpenSnapshot | undefined> {
    const known = this.open.find((open) => open.index === index);
    if (known) return known;
    if (index !== this.host.memory.snapshot().meta.index) return undefined;
    // The core cuts the chunks by the size it knows: the last one must end the file's data.
    return this.openLatest(index, this.host.memory.snapshotDataBytes());
  }

  private async openLatest(index: number, dataBytesExpected: number): Promise<OpenSnapshot | undefined> {
    const file = await this.host.log.openSnapshotReader();
    if (!file) return undefined;
    try {
      let header = decodeSnapshotFileHeader(await file.read(0, SNAPSHOT_FILE_META_LENGTH_BYTES));
      if (typeof header === 'object' && 'headerBytes' in header) header = decodeSnapshotFileHeader(await file.read(0, header.headerBytes));
      if (typeof header === 'string') throw new Error(`the snapshot file cannot be read: ${header}`);
      if (!('meta' in header)) throw new Error('the snapshot file header is cut short');
      if (header.meta.index !== index) {
        // Replaced by another snapshot meanwhile: the core hears 'unavailable' and asks for the latest.
        await file.close();
        return undefined;
      }
      const dataBytes = file.sizeBytes - header.dataOffset;
      if (dataBytes !== dataBytesExpected) {
        throw new Error(`the snapshot file holds ${dataBytes} bytes of data, not the ${dataBytesExpected} of the snapshot at index ${index}`);
      }
      const open: OpenSnapshot = { index, file, header, dataBytes, verifiedBytes: 0, crc: 0, lastReadMs: this.host.clock.nowMs() };
      this.open.push(open);
      while (this.open.length > SNAPSHOT_READERS_MAX) await this.open.shift()!.file.close();
      this.scheduleIdleClose();
      return open;
    } catch (error) {
      await file.close().catch(() => undefined);
      throw error;
    }
  }

  private scheduleIdleClose(): void {
    if (this.idleTimer || this.stopped) return;
    this.idleTimer = this.host.clock.setTimeout(() => {
      this.idleTimer = undefined;
      // Queued behind the reads, so that no read is cut off by the close.
      this.tail = this.tail.then(async () => {
        const now = this.host.clock.nowMs();
        for (const open of [...this.open]) {
          if (now - open.lastReadMs < SNAPSHOT_READER_IDLE_MS) continue;
          this.open.splice(this.open.indexOf(open), 1);
          await open.file.close().catch(() => undefined);
        }
        if (this.open.length > 0) this.scheduleIdleClose();
      });
    }, SNAPSHOT_READER_IDLE_MS);
  }
}

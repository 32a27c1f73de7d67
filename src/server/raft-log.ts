/**
 * The durable half of a node's Raft state, on the host's DurableStorage (format: raft-log-format.ts
 * and docs/storage.md):
 *   `meta`              term and vote (replaced atomically when they change)
 *   `snapshot`          the latest snapshot (metadata + state machine bytes), replaced atomically
 *   `segment-<first>`   log entries, appended and fsynced before they are acknowledged
 *
 * Recovery tells a torn write from damage (Alagappan et al., "Protocol-Aware Recovery for
 * Consensus-Based Storage", FAST 2018): only the last append can be torn by a crash, because
 * each append is fsynced before the next begins. A bad range at the end of the last segment
 * that no later append's record follows is cut off; anything else is damage to entries this
 * node acknowledged, and the node refuses to start rather than vote or lead without them.
 *
 * Any failed write or fsync makes the log unusable for the rest of the process: after a failed
 * fsync the kernel may have dropped the dirty pages and a retry would report success for data
 * that is not on disk ("fsyncgate"), so nothing is retried.
 */
import { LIMITS } from '../limits.ts';
import type { DurableFileReader, DurableStorage } from '../runtime.ts';
import type { Entry, HardState, Snapshot } from '../raft/index.ts';
import {
  decodeMeta,
  decodeRecordRun,
  LAYOUT_V1,
  LAYOUT_V2,
  decodeSnapshotFile,
  encodeMeta,
  encodeRecordInto,
  encodeSegmentHeader,
  encodeSnapshotFileHeader,
  ENTRY_BYTES_MAX,
  META_BYTES,
  parseSegment,
  recordBytes,
  SEGMENT_HEADER_BYTES,
  SEGMENT_PREFIX,
  segmentFirstIndex,
  segmentName,
  snapshotFileDataCrcOffset,
} from './raft-log-format.ts';
import { DiskSpaceGauge, isDiskFullError, type DiskSpaceOptions } from './disk-space.ts';
import { crc32Update } from '../util/crc32.ts';

/** A snapshot's data to store, written a piece at a time (RaftLog.saveSnapshotData). */
export interface SnapshotDataSource {
  /** Bytes of the data. */
  readonly bytes: number;
  /**
   * Writes the data, in order, through `write`, in pieces of at most `pieceBytesMax` bytes; a piece
   * may be reused once its write resolved.
   */
  writeTo(write: (piece: Uint8Array) => Promise<void>, pieceBytesMax: number): Promise<void>;
}

/** A source of the data of a snapshot already in memory: views of it, nothing copied. */
export function snapshotDataInMemory(data: Uint8Array): SnapshotDataSource {
  return {
    bytes: data.length,
    async writeTo(write, pieceBytesMax) {
      for (let offset = 0; offset < data.length; offset += pieceBytesMax) await write(data.subarray(offset, offset + pieceBytesMax));
    },
  };
}

export interface LoadedRaftState {
  hardState: HardState;
  snapshot: Snapshot | undefined;
  entries: Entry[];
  /** What loading repaired (a torn tail cut off), one sentence each, for the node's log. */
  repairs: string[];
}

export type RaftLogErrorCode =
  /** A file is damaged where a crash cannot explain it: the node must not start on it. */
  | 'RAFT_LOG_CORRUPT'
  /** A write or fsync failed: the log can no longer be trusted in this process. */
  | 'RAFT_LOG_FAILED'
  /** The disk is full (or below the reserve): this write was refused and nothing was harmed. */
  | 'DISK_FULL'
  /** Misuse by the caller (an invariant of the log's API broken). */
  | 'RAFT_LOG';

export class RaftLogError extends Error {
  constructor(
    readonly code: RaftLogErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`raft log: ${message}`, options);
    this.name = 'RaftLogError';
  }
}

/** A damaged file: `file` and `offset` say where. */
export class RaftLogCorruptError extends RaftLogError {
  constructor(
    readonly file: string,
    readonly offset: number,
    problem: string,
  ) {
    super('RAFT_LOG_CORRUPT', `${file} is damaged at byte ${offset}: ${problem}. ${CORRUPTION_ADVICE}`);
    this.name = 'RaftLogCorruptError';
  }
}

export const CORRUPTION_ADVICE =
  'This node refuses to start: with this file it could vote or lead without entries it had acknowledged, ' +
  'and the cluster would lose committed writes. Do not edit or delete the file. Either restore the data ' +
  "directory from a backup, or move it aside and add this node back as a new, empty member (remove its " +
  'old member from the cluster first, e.g. with the dqlite shell\'s ".remove ADDRESS"): it then copies the log and ' +
  'databases from the other nodes';

/**
 * Where the storage writes in place, the last segment's file is grown by this much of zeros at a
 * time, ahead of the records: an O_DSYNC overwrite inside the file is durable sooner (0.2 against
 * 0.3–0.5 ms for 10 KiB here) than an append, whose new file size the file system's journal must
 * commit first. One append in about a hundred (of 10 KB) pays for the growth.
 */
export const SEGMENT_PREALLOCATE_BYTES = 1024 * 1024;
/** Bytes of records an append encodes into the kept array (recordsBuffer), beyond the preallocation. */
const APPEND_BUFFER_BYTES_KEPT = 256 * 1024;
/**
 * A segment is closed before an append would take it past this (dqlite's are 8 MiB too): the
 * log is deleted a whole segment at a time once a snapshot covers it, so the smaller they are,
 * the closer the data directory stays to the trailing log the node keeps.
 */
export const SEGMENT_BYTES_DEFAULT = 8 * 1024 * 1024;

interface Segment {
  name: string;
  firstIndex: number;
  /** Byte offset of each entry's record; entry firstIndex + i starts at offsets[i]. */
  offsets: number[];
  bytes: number;
  /** Bytes the file holds: `bytes`, then zeros preallocated for later records. */
  fileBytes: number;
  /** Format 1 segments are read but never appended to. */
  sealed: boolean;
  /** The segment's format (1 only for segments written by versions before format 2). */
  version: 1 | 2;
}

export interface RaftLogOptions {
  /** Free-space reserve below which proposals are refused (see DiskSpaceGauge). */
  diskSpace?: DiskSpaceOptions;
  /**
   * Zeros to grow the last segment by, ahead of its records, where the storage can write in place
   * (DurableStorage.writeAt); 0 appends instead. Default SEGMENT_PREALLOCATE_BYTES.
   */
  preallocateBytes?: number;
  /**
   * Test only, never in production: `truncateOnCorruption` cuts the last segment at its first bad
   * record even when a later append's record proves the damage (the loader before the fix), so
   * the whole-cluster simulator can show that it catches a node starting on a damaged log.
   */
  unsafeForTesting?: { truncateOnCorruption?: boolean };
  /** Bytes after which a segment is closed (default SEGMENT_BYTES_DEFAULT); one larger append fills a segment alone. */
  segmentBytesMax?: number;
  /** Bytes of one write of the snapshot file (default LIMITS.snapshotWriteBytesMax). */
  snapshotWriteBytesMax?: number;
}

export class RaftLog {
  private segments: Segment[] = [];
  private termVote = { term: 0, vote: 0 };
  /** The first failed write or fsync; every later write fails with it. */
  private failure: RaftLogError | undefined;
  private readonly space: DiskSpaceGauge;
  private appending = false;
  /** The array appends are encoded into (see growthBuffer, recordsBuffer), and how many of its first bytes they may have written since it was last zeroed. */
  private growth: Uint8Array | undefined;
  private growthBufferWrittenBytes = 0;
  private readonly truncateOnCorruption: boolean;
  private readonly preallocateBytes: number;
  private readonly segmentBytesMax: number;
  /** Bytes of one write of a snapshot file: what a snapshot being written holds of its encoding. */
  readonly snapshotWriteBytesMax: number;

  constructor(
    private readonly storage: DurableStorage,
    options: RaftLogOptions = {},
  ) {
    this.space = new DiskSpaceGauge(storage, options.diskSpace);
    this.truncateOnCorruption = options.unsafeForTesting?.truncateOnCorruption === true;
    this.preallocateBytes = storage.writeAt ? (options.preallocateBytes ?? SEGMENT_PREALLOCATE_BYTES) : 0;
    this.segmentBytesMax = options.segmentBytesMax ?? SEGMENT_BYTES_DEFAULT;
    this.snapshotWriteBytesMax = options.snapshotWriteBytesMax ?? LIMITS.snapshotWriteBytesMax;
    if (!(Number.isSafeInteger(this.snapshotWriteBytesMax) && this.snapshotWriteBytesMax > 0)) {
      throw new RaftLogError('RAFT_LOG', `snapshotWriteBytesMax must be a positive integer, got ${this.snapshotWriteBytesMax}`);
    }
  }

  /**
   * Reads everything back after a start or a crash, cutting off a torn tail. Throws
   * RaftLogCorruptError (naming the file and byte offset) for damage a crash cannot explain.
   */
  async load(): Promise<LoadedRaftState> {
    const repairs: string[] = [];
    const metaBytes = await this.storage.read('meta');
    if (metaBytes) {
      const meta = decodeMeta(metaBytes);
      // The meta file is replaced atomically, so a crash never tears it: any fault is damage.
      if (typeof meta === 'string') throw new RaftLogCorruptError('meta', 0, `the term and vote file cannot be read: ${meta}`);
      this.termVote = meta;
    }
    if (metaBytes?.length !== META_BYTES) {
      // Versions before format 2 check the meta file's size before they read any segment, and
      // would take a format 2 segment header for a torn record and cut the file: a meta file
      // of format 2 makes them refuse to start instead.
      await this.storage.writeAtomic('meta', encodeMeta(this.termVote.term, this.termVote.vote));
    }
    const snapshotBytes = await this.storage.read('snapshot');
    let snapshot: Snapshot | undefined;
    if (snapshotBytes) {
      const decoded = decodeSnapshotFile(snapshotBytes);
      if (typeof decoded === 'string') throw new RaftLogCorruptError('snapshot', 0, `the snapshot cannot be read: ${decoded}`);
      snapshot = decoded;
    }
    const snapshotIndex = snapshot?.meta.index ?? 0;
    const names = (await this.storage.list()).filter((n) => n.startsWith(SEGMENT_PREFIX)).sort();
    const firstIndexes = names.map((name) => {
      const firstIndex = segmentFirstIndex(name);
      if (firstIndex === undefined) throw new RaftLogCorruptError(name, 0, 'this is not a segment name this node writes');
      return firstIndex;
    });
    const all: Entry[] = [];
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      const firstIndex = firstIndexes[i]!;
      const bytes = (await this.storage.read(name)) ?? new Uint8Array(0);
      const parsed = parseSegment(bytes, firstIndex);
      if (parsed.damage) {
        const { offset, reason, proof } = parsed.damage;
        const isLast = i === names.length - 1;
        if (!isLast && firstIndexes[i + 1]! - 1 <= snapshotIndex) {
          // Every entry of this segment is in the snapshot: nothing here is ever read again.
          repairs.push(`ignored damage in ${name} at byte ${offset} (${reason}): the snapshot at index ${snapshotIndex} holds all its entries`);
          this.segments.push({ name, firstIndex, offsets: parsed.offsets, bytes: parsed.goodBytes, fileBytes: bytes.length, sealed: true, version: parsed.layout.version });
          continue;
        }
        if (!isLast) throw new RaftLogCorruptError(name, offset, `${reason}, and later segments follow it`);
        if (proof && !this.truncateOnCorruption) throw new RaftLogCorruptError(name, offset, `${reason}, and ${proof}`);
        if (parsed.goodBytes === 0) {
          // The segment's first append was torn: the file holds nothing that was acknowledged.
          await this.storage.remove(name);
          repairs.push(`removed ${name}: its first write was cut short by a crash (${reason})`);
          continue;
        }
        await this.storage.truncate(name, parsed.goodBytes);
        await this.storage.sync(name);
        repairs.push(`cut ${bytes.length - parsed.goodBytes} bytes of a write cut short by a crash off ${name} at byte ${offset} (${reason})`);
      }
      // One by one: a segment can hold more entries than a spread may pass as arguments.
      for (const entry of parsed.entries) all.push(entry);
      this.segments.push({
        name,
        firstIndex,
        offsets: parsed.offsets,
        bytes: parsed.goodBytes,
        fileBytes: parsed.damage ? parsed.goodBytes : bytes.length,
        sealed: parsed.layout.version !== 2,
        version: parsed.layout.version,
      });
    }
    let entries = this.entriesAfter(all, snapshot, repairs);
    if (!entries) {
      for (const segment of this.segments) await this.storage.remove(segment.name);
      this.segments = [];
      entries = [];
    }
    return { hardState: { term: this.termVote.term, vote: this.termVote.vote, commit: snapshotIndex }, snapshot, entries, repairs };
  }

  /**
   * The entries after the snapshot, which must continue it without a gap and with terms that
   * never go down. Gaps at or below the snapshot are harmless (a crash between writing a
   * snapshot and removing the log it replaced). Undefined when the whole log is superseded by
   * the snapshot and must go.
   */
  private entriesAfter(all: Entry[], snapshot: Snapshot | undefined, repairs: string[]): Entry[] | undefined {
    const snapshotIndex = snapshot?.meta.index ?? 0;
    const entries = all.filter((e) => e.index > snapshotIndex);
    const atSnapshot = snapshot && entries.length > 0 ? all.find((e) => e.index === snapshotIndex) : undefined;
    if (snapshot && atSnapshot && atSnapshot.term !== snapshot.meta.term) {
      // The log disagrees with the snapshot at its index, so what follows belongs to another
      // history and was never committed: a crash hit between saving a snapshot from the leader
      // and removing the log it replaced (resetToSnapshot). The caller finishes that removal.
      repairs.push(
        `removed the log the snapshot at index ${snapshotIndex} replaced (entries ${entries[0]!.index}..${entries[entries.length - 1]!.index} ` +
          `followed term ${atSnapshot.term} at index ${snapshotIndex} where the snapshot has term ${snapshot.meta.term}): a crash had interrupted its removal`,
      );
      return undefined;
    }
    let expected = snapshotIndex + 1;
    let previousTerm = snapshot?.meta.term ?? 0;
    for (const entry of entries) {
      if (entry.index !== expected) {
        const where = expected === snapshotIndex + 1 ? (snapshotIndex > 0 ? `the snapshot at index ${snapshotIndex}` : 'the start of the log') : `index ${expected - 1}`;
        const [name, offset] = this.locate(entry.index);
        throw new RaftLogCorruptError(name, offset, `entries ${expected}..${entry.index - 1} after ${where} are missing (a segment file is gone)`);
      }
      if (entry.term < previousTerm) {
        const [name, offset] = this.locate(entry.index);
        throw new RaftLogCorruptError(name, offset, `entry ${entry.index} has term ${entry.term}, lower than the term ${previousTerm} before it`);
      }
      previousTerm = entry.term;
      expected++;
    }
    return entries;
  }

  /** The segment and byte offset of entry `index`'s record. */
  private locate(index: number): [string, number] {
    const segment = this.segments.find((s) => index >= s.firstIndex && index < s.firstIndex + s.offsets.length);
    return segment ? [segment.name, segment.offsets[index - segment.firstIndex]!] : ['segment', 0];
  }

  /**
   * Entries [lo, hi) read back from the segments (entries the node's memory released), at least
   * one, then while their records add up to at most `bytesMax` (no bound without it); each
   * segment's run is read as one range. Their data are views into the bytes read. Rejects with
   * RaftLogError when an entry is in no segment (compacted meanwhile) or a record is damaged.
   */
  async readEntries(lo: number, hi: number, bytesMax: number | undefined): Promise<Entry[]> {
    const out: Entry[] = [];
    let bytes = 0;
    let index = lo;
    while (index < hi) {
      const segment = this.segments.find((s) => index >= s.firstIndex && index < s.firstIndex + s.offsets.length);
      if (!segment) throw new RaftLogError('RAFT_LOG', `entry ${index} is in no segment of the log (compacted meanwhile?)`);
      // What is needed of this segment is taken now: an append or a compaction may change it while the read waits.
      const segmentLast = segment.firstIndex + segment.offsets.length - 1;
      const recordEnd = (i: number): number => (i < segmentLast ? segment.offsets[i + 1 - segment.firstIndex]! : segment.bytes);
      const start = segment.offsets[index - segment.firstIndex]!;
      let end = index;
      let full = false;
      for (; end <= Math.min(segmentLast, hi - 1); end++) {
        const size = recordEnd(end) - segment.offsets[end - segment.firstIndex]!;
        if (bytesMax !== undefined && out.length + (end - index) > 0 && bytes + size > bytesMax) {
          full = true;
          break;
        }
        bytes += size;
      }
      const length = recordEnd(end - 1) - start;
      const range = await this.readRange(segment.name, start, length);
      const entries = decodeRecordRun(range, segment.version === 1 ? LAYOUT_V1 : LAYOUT_V2, index, end - index);
      if (typeof entries === 'string') throw new RaftLogCorruptError(segment.name, start, entries);
      for (const entry of entries) out.push(entry);
      index = end;
      if (full) break;
    }
    return out;
  }

  /** Bytes [offset, offset + length) of a segment file: a ranged read where the storage has one. */
  private async readRange(name: string, offset: number, length: number): Promise<Uint8Array> {
    if (this.storage.openReader) {
      const reader = await this.storage.openReader(name);
      if (!reader) throw new RaftLogError('RAFT_LOG', `${name} is gone (compacted meanwhile?)`);
      try {
        const bytes = await reader.read(offset, length);
        if (bytes.length !== length) throw new RaftLogError('RAFT_LOG', `${name} ends before byte ${offset + length}`);
        return bytes;
      } finally {
        await reader.close();
      }
    }
    const whole = await this.storage.read(name);
    if (!whole) throw new RaftLogError('RAFT_LOG', `${name} is gone (compacted meanwhile?)`);
    if (whole.length < offset + length) throw new RaftLogError('RAFT_LOG', `${name} ends before byte ${offset + length}`);
    // A copy: views would keep the whole segment alive while an entry of it is held.
    return whole.slice(offset, offset + length);
  }

  /** Persists term and vote when they changed; commit is re-learned from the leader after a restart. */
  async saveHardState(hardState: HardState): Promise<void> {
    if (hardState.term === this.termVote.term && hardState.vote === this.termVote.vote) return;
    await this.guard('save the term and vote', () => this.storage.writeAtomic('meta', encodeMeta(hardState.term, hardState.vote)));
    this.termVote = { term: hardState.term, vote: hardState.vote };
  }

  /**
   * Appends entries (replacing any conflicting suffix) and fsyncs them. Appends must not
   * overlap: recovery relies on each one being durable before the next begins.
   */
  async append(entries: readonly Entry[]): Promise<void> {
    if (entries.length === 0) return;
    this.assertUsable();
    if (this.appending) throw new RaftLogError('RAFT_LOG', 'append called while another append is in flight: appends must run one at a time');
    this.appending = true;
    try {
      await this.appendNow(entries);
    } finally {
      this.appending = false;
    }
  }

  private async appendNow(entries: readonly Entry[]): Promise<void> {
    const first = entries[0]!.index;
    for (let i = 0; i < entries.length; i++) {
      if (entries[i]!.index !== first + i) throw new RaftLogError('RAFT_LOG', `append of entries that are not consecutive (${first} + ${i} is ${entries[i]!.index})`);
      if (entries[i]!.data.length > ENTRY_BYTES_MAX) throw new RaftLogError('RAFT_LOG', `entry ${entries[i]!.index} has ${entries[i]!.data.length} bytes, over the ${ENTRY_BYTES_MAX}-byte limit`);
    }
    // Awaited only when there is a suffix to replace: the common append reaches the disk in this turn.
    const last = this.segments[this.segments.length - 1];
    if (last && first <= last.firstIndex + last.offsets.length - 1) await this.guard('replace the log suffix', () => this.truncateFrom(first));
    let segment: Segment | undefined = this.segments[this.segments.length - 1];
    const continues = segment !== undefined && segment.firstIndex + segment.offsets.length === first;
    if (segment && segment.offsets.length === 0 && !continues) {
      // An empty segment (its first append torn) named for another index: its name would lie.
      const empty = segment;
      await this.guard(`remove the empty ${empty.name}`, () => this.storage.remove(empty.name));
      this.segments.pop();
      segment = this.segments[this.segments.length - 1];
    }
    let recordsBytes = 0;
    for (const entry of entries) recordsBytes += recordBytes(entry);
    // A segment is closed before an append would take it past segmentBytesMax; after a snapshot
    // install the log restarts past a gap: begin a fresh segment.
    // A segment holding no record yet (new, or its first record torn by a crash and cut) takes
    // the append whatever its size: a new segment would have the same name.
    const full = segment !== undefined && segment.offsets.length > 0 && segment.bytes + recordsBytes > this.segmentBytesMax;
    if (!segment || segment.sealed || full || segment.firstIndex + segment.offsets.length !== first) {
      if (segment && segment.fileBytes > segment.bytes) await this.trimZeroTail(segment);
      segment = { name: segmentName(first), firstIndex: first, offsets: [], bytes: 0, fileBytes: 0, sealed: false, version: 2 };
      if (this.segments.some((s) => s.name === segment!.name)) throw new RaftLogError('RAFT_LOG', `segment ${segment.name} already exists`);
      this.segments.push(segment);
    }
    const target = segment;
    // An append would land after the zeros (a directory preallocated by a host that writes in
    // place, opened by one that cannot): cut them off first.
    if (this.preallocateBytes === 0 && target.fileBytes > target.bytes) await this.trimZeroTail(target);
    const withHeader = target.bytes === 0;
    const total = (withHeader ? SEGMENT_HEADER_BYTES : 0) + recordsBytes;
    // In place: past the file's end, the same write grows it by zeros for the appends to come.
    const writeAt = this.preallocateBytes > 0 ? this.storage.writeAt : undefined;
    const end = target.bytes + total;
    const grows = writeAt !== undefined && end > target.fileBytes;
    // Never past the segment's size: the zeros would be cut again when it closes.
    const fileBytes = grows ? Math.max(end, Math.min(end + this.preallocateBytes, this.segmentBytesMax)) : Math.max(target.fileBytes, end);
    const buffer = grows ? this.growthBuffer(fileBytes - target.bytes, total) : this.recordsBuffer(total);
    const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    const offsets: number[] = [];
    let offset = 0;
    if (withHeader) {
      buffer.set(encodeSegmentHeader(target.firstIndex), 0);
      offset = SEGMENT_HEADER_BYTES;
    }
    for (const entry of entries) {
      offsets.push(target.bytes + offset);
      offset = encodeRecordInto(buffer, view, offset, entry, first);
    }
    await this.guard(`append entries ${first}..${first + entries.length - 1}`, async () => {
      if (writeAt) await writeAt.call(this.storage, target.name, target.bytes, buffer);
      else await this.storage.append(target.name, buffer);
      await this.storage.sync(target.name);
    });
    for (const offset of offsets) target.offsets.push(offset);
    this.space.consumed(fileBytes - Math.max(target.fileBytes, target.bytes));
    target.bytes += total;
    target.fileBytes = fileBytes;
  }

  /**
   * A zero-filled array of `lengthBytes` for an append that grows the file, whose first
   * `recordsBytes` the caller then writes: the records, then the zeros preallocated after them.
   * One array serves every growth (appends run one at a time and the storage is done with the
   * bytes once the write resolves): only what the last one wrote is zeroed again, instead of a
   * fresh megabyte being allocated and faulted in each time.
   */
  private growthBuffer(lengthBytes: number, recordsBytes: number): Uint8Array {
    let buffer = this.growth;
    if (buffer === undefined || buffer.length < lengthBytes) {
      // One large append (a big transaction) gets an array of its own, not kept.
      if (lengthBytes > 2 * this.preallocateBytes) return new Uint8Array(lengthBytes);
      buffer = new Uint8Array(Math.max(lengthBytes, this.keptBufferBytes()));
      this.growth = buffer;
    } else {
      buffer.fill(0, 0, this.growthBufferWrittenBytes);
    }
    // Recorded before the records are written: a failed encoding leaves no stale bytes behind.
    this.growthBufferWrittenBytes = recordsBytes;
    return buffer.subarray(0, lengthBytes);
  }

  /**
   * An array for an append of `lengthBytes` that the caller writes whole (header and records):
   * a view of the growth buffer, kept for every append, so that an append does not cost a fresh
   * array buffer. Fresh ones, one per write, are external memory to V8, and their churn (tens of
   * KiB per write of a few pages) made it run a full collection every half second under writes.
   * An append larger than the kept array gets its own.
   */
  private recordsBuffer(lengthBytes: number): Uint8Array {
    const keptBytes = this.keptBufferBytes();
    if (lengthBytes > keptBytes) return new Uint8Array(lengthBytes);
    let buffer = this.growth;
    if (buffer === undefined || buffer.length < lengthBytes) {
      buffer = new Uint8Array(keptBytes);
      this.growth = buffer;
      this.growthBufferWrittenBytes = 0;
    }
    // growthBuffer zeroes what the records of the last appends left, before it serves a growth.
    this.growthBufferWrittenBytes = Math.max(this.growthBufferWrittenBytes, lengthBytes);
    return buffer.subarray(0, lengthBytes);
  }

  /** Bytes of the kept array: a growth (records and the zeros after them) of appends of up to APPEND_BUFFER_BYTES_KEPT. */
  private keptBufferBytes(): number {
    return this.preallocateBytes + APPEND_BUFFER_BYTES_KEPT;
  }

  /**
   * Cuts a segment that is no longer appended to down to its records, so that it holds no
   * preallocated zeros (versions before preallocation read every segment but the last to its end).
   */
  private async trimZeroTail(segment: Segment): Promise<void> {
    await this.guard(`trim the preallocated space off ${segment.name}`, async () => {
      await this.storage.truncate(segment.name, segment.bytes);
      await this.storage.sync(segment.name);
    });
    segment.fileBytes = segment.bytes;
  }

  /** Stores a snapshot durably, then drops the segments it makes unnecessary (up to `compactIndex`). */
  async saveSnapshot(snapshot: Snapshot, compactIndex: number): Promise<void> {
    await this.saveSnapshotData(snapshot.meta, snapshotDataInMemory(snapshot.data), compactIndex);
  }

  /**
   * Stores the snapshot of `meta` whose data `source` writes a piece at a time, then drops the
   * segments it makes unnecessary (up to `compactIndex`). The file replaces the previous snapshot
   * only once it is whole and durable: a failure or a crash before leaves the previous one.
   */
  async saveSnapshotData(meta: Snapshot['meta'], source: SnapshotDataSource, compactIndex: number): Promise<void> {
    const fileBytes = await this.writeSnapshotFile(meta, source, 'save a snapshot', { fullIsHarmless: true });
    this.space.consumed(fileBytes);
    await this.guard('remove compacted segments', () => this.compact(compactIndex));
  }

  /**
   * Writes the snapshot file and returns its size: its header, the data a piece at a time with its
   * checksum computed over the pieces as they are written, then the checksum into the header (the
   * file is renamed into place only after that, so no reader sees the header without it).
   */
  private async writeSnapshotFile(meta: Snapshot['meta'], source: SnapshotDataSource, what: string, options: { fullIsHarmless?: boolean }): Promise<number> {
    const header = encodeSnapshotFileHeader(meta, 0);
    const crcOffset = snapshotFileDataCrcOffset(header);
    const fileBytes = header.length + source.bytes;
    const pieceBytesMax = this.snapshotWriteBytesMax;
    let written = 0;
    let crc = 0;
    const counted = (piece: Uint8Array): void => {
      if (piece.length === 0 || piece.length > pieceBytesMax) {
        throw new RaftLogError('RAFT_LOG', `a piece of the snapshot's data has ${piece.length} bytes, not 1..${pieceBytesMax}`);
      }
      written += piece.length;
      if (written > source.bytes) throw new RaftLogError('RAFT_LOG', `the snapshot's data runs past its ${source.bytes} bytes`);
      crc = crc32Update(crc, piece);
    };
    const crcBytes = (): Uint8Array => {
      if (written !== source.bytes) throw new RaftLogError('RAFT_LOG', `the snapshot's data ended after ${written} of its ${source.bytes} bytes`);
      const bytes = new Uint8Array(4);
      new DataView(bytes.buffer).setUint32(0, crc >>> 0, true);
      return bytes;
    };
    const openWriter = this.storage.openAtomicWriter?.bind(this.storage);
    await this.guard(what, async () => {
      if (!openWriter) {
        // A host without a streaming writer: the file is joined in memory, as a whole.
        const file = new Uint8Array(fileBytes);
        file.set(header, 0);
        await source.writeTo(async (piece) => {
          counted(piece);
          file.set(piece, header.length + written - piece.length);
        }, pieceBytesMax);
        file.set(crcBytes(), crcOffset);
        await this.storage.writeAtomic('snapshot', file);
        return;
      }
      const writer = await openWriter('snapshot');
      try {
        await writer.write(header);
        await source.writeTo(async (piece) => {
          counted(piece);
          await writer.write(piece);
        }, pieceBytesMax);
        await writer.writeAt(crcOffset, crcBytes());
        await writer.commit();
      } catch (error) {
        await writer.abort().catch(() => undefined);
        throw error;
      }
    }, options);
    return fileBytes;
  }

  /**
   * The snapshot file opened for ranged reads (to send it to a follower a chunk at a time after
   * its data left memory); undefined when there is none. Where the storage has no ranged reads,
   * the whole file is read and held by the reader until it is closed.
   */
  async openSnapshotReader(): Promise<DurableFileReader | undefined> {
    if (this.storage.openReader) return this.storage.openReader('snapshot');
    let bytes = await this.storage.read('snapshot');
    if (!bytes) return undefined;
    const sizeBytes = bytes.length;
    return {
      sizeBytes,
      read: async (offset, length) => {
        if (!bytes) throw new RaftLogError('RAFT_LOG', 'read the snapshot: the reader is closed');
        return bytes.slice(offset, Math.min(sizeBytes, offset + length));
      },
      close: async () => {
        bytes = undefined;
      },
    };
  }

  /** After installing a snapshot from the leader, the whole local log is superseded. */
  async resetToSnapshot(snapshot: Snapshot): Promise<void> {
    await this.writeSnapshotFile(snapshot.meta, snapshotDataInMemory(snapshot.data), 'save the snapshot from the leader', {});
    await this.guard('remove the superseded log', async () => {
      for (const segment of this.segments) await this.storage.remove(segment.name);
    });
    this.segments = [];
  }

  /**
   * Undefined when a proposal of `bytes` may go ahead; otherwise the DISK_FULL error to give the
   * client. Cheap and synchronous (free space is measured in the background).
   */
  proposalRefusal(bytes: number): RaftLogError | undefined {
    const shortBytes = this.space.shortfall(bytes);
    if (shortBytes === undefined) return undefined;
    return new RaftLogError('DISK_FULL', this.space.describeShortfall(shortBytes));
  }

  private assertUsable(): void {
    if (this.failure) throw this.failure;
  }

  /**
   * Runs one write. Any failure is kept and returned by every later write, except a full disk
   * where the caller says no durable file was touched (`fullIsHarmless`: a snapshot's temporary
   * file, which is discarded).
   */
  private async guard(what: string, write: () => Promise<void>, options: { fullIsHarmless?: boolean } = {}): Promise<void> {
    this.assertUsable();
    try {
      await write();
    } catch (error) {
      const full = isDiskFullError(error);
      if (full) this.space.exhausted();
      if (full && options.fullIsHarmless) {
        throw new RaftLogError('DISK_FULL', `could not ${what}: the disk is full (${(error as Error).message}); the log is intact`, { cause: error });
      }
      this.failure = new RaftLogError(
        'RAFT_LOG_FAILED',
        `could not ${what}: ${(error as Error).message}. ` +
          (full
            ? 'The disk is full: free space on it, then restart the node (the log is consistent up to the last completed write).'
            : 'After a failed write or fsync the data on disk is unknown, so this node stops rather than retry; check the disk, then restart the node (it recovers from what is durable).'),
        { cause: error },
      );
      throw this.failure;
    }
  }

  private async compact(index: number): Promise<void> {
    while (this.segments.length > 1) {
      const [first, second] = this.segments as [Segment, Segment];
      if (second.firstIndex - 1 > index) break;
      await this.storage.remove(first.name);
      this.segments.shift();
    }
  }

  private async truncateFrom(index: number): Promise<void> {
    while (this.segments.length > 0) {
      const last = this.segments[this.segments.length - 1]!;
      const lastIndex = last.firstIndex + last.offsets.length - 1;
      if (index > lastIndex) return;
      if (index <= last.firstIndex) {
        await this.storage.remove(last.name);
        this.segments.pop();
        continue;
      }
      const keep = index - last.firstIndex;
      const cut = last.offsets[keep]!;
      await this.storage.truncate(last.name, cut);
      await this.storage.sync(last.name);
      last.offsets.length = keep;
      last.bytes = cut;
      last.fileBytes = cut;
      return;
    }
  }
}


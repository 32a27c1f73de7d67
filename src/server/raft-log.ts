/**
 * The durable half of a node's Raft state, on the host's DurableStorage:
 *   `meta`              term and vote (replaced atomically when they change)
 *   `snapshot`          the latest snapshot (metadata + state machine bytes), replaced atomically
 *   `segment-<first>`   log entries, appended and fsynced before they are acknowledged
 * A record is: u32 body length, u32 CRC-32 of the body, body = u64 term, u64 index, u8 type, data.
 * A crash can leave a torn record at the tail of the last segment; loading cuts it off.
 */
import type { DurableStorage } from '../runtime.ts';
import type { Entry, EntryType, HardState, Snapshot } from '../raft/index.ts';
import { crc32 } from '../util/crc32.ts';

export interface LoadedRaftState {
  hardState: HardState;
  snapshot: Snapshot | undefined;
  entries: Entry[];
}

export class RaftLogError extends Error {
  readonly code = 'RAFT_LOG';
  constructor(message: string) {
    super(`raft log: ${message}`);
    this.name = 'RaftLogError';
  }
}

const RECORD_HEADER_BYTES = 8;
const ENTRY_FIXED_BYTES = 17;
const SEGMENT_BYTES_TARGET = 32 * 1024 * 1024;
const ENTRY_BYTES_MAX = 256 * 1024 * 1024;
const SEGMENT_PREFIX = 'segment-';
const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

interface Segment {
  name: string;
  firstIndex: number;
  /** Byte offset of each entry's record; entry firstIndex + i starts at offsets[i]. */
  offsets: number[];
  bytes: number;
}

function segmentName(firstIndex: number): string {
  return `${SEGMENT_PREFIX}${String(firstIndex).padStart(16, '0')}`;
}

function encodeRecord(entry: Entry): Uint8Array {
  const bodyBytes = ENTRY_FIXED_BYTES + entry.data.length;
  const record = new Uint8Array(RECORD_HEADER_BYTES + bodyBytes);
  const view = new DataView(record.buffer);
  view.setUint32(0, bodyBytes, true);
  view.setBigUint64(8, BigInt(entry.term), true);
  view.setBigUint64(16, BigInt(entry.index), true);
  record[24] = entry.type;
  record.set(entry.data, 25);
  view.setUint32(4, crc32(record, RECORD_HEADER_BYTES), true);
  return record;
}

/** Parses records until the end or the first torn/corrupt one; returns entries and the good length. */
function parseSegment(bytes: Uint8Array): { entries: Entry[]; offsets: number[]; goodBytes: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const entries: Entry[] = [];
  const offsets: number[] = [];
  let offset = 0;
  while (offset + RECORD_HEADER_BYTES <= bytes.length) {
    const bodyBytes = view.getUint32(offset, true);
    if (bodyBytes < ENTRY_FIXED_BYTES || bodyBytes > ENTRY_BYTES_MAX) break;
    const end = offset + RECORD_HEADER_BYTES + bodyBytes;
    if (end > bytes.length) break;
    if (crc32(bytes, offset + RECORD_HEADER_BYTES, end) !== view.getUint32(offset + 4, true)) break;
    entries.push({
      term: Number(view.getBigUint64(offset + 8, true)),
      index: Number(view.getBigUint64(offset + 16, true)),
      type: bytes[offset + 24]! as EntryType,
      data: bytes.slice(offset + 25, end),
    });
    offsets.push(offset);
    offset = end;
  }
  return { entries, offsets, goodBytes: offset };
}

function encodeSnapshotFile(snapshot: Snapshot): Uint8Array {
  const meta = utf8Encoder.encode(JSON.stringify(snapshot.meta));
  const bytes = new Uint8Array(12 + meta.length + snapshot.data.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, meta.length, true);
  bytes.set(meta, 4);
  view.setUint32(4 + meta.length, crc32(snapshot.data), true);
  view.setUint32(8 + meta.length, crc32(meta), true);
  bytes.set(snapshot.data, 12 + meta.length);
  return bytes;
}

function decodeSnapshotFile(bytes: Uint8Array): Snapshot {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 12) throw new RaftLogError('snapshot file is truncated');
  const metaBytes = view.getUint32(0, true);
  if (12 + metaBytes > bytes.length) throw new RaftLogError('snapshot file is truncated');
  const meta = bytes.subarray(4, 4 + metaBytes);
  const data = bytes.slice(12 + metaBytes);
  if (crc32(meta) !== view.getUint32(8 + metaBytes, true) || crc32(data) !== view.getUint32(4 + metaBytes, true)) {
    throw new RaftLogError('snapshot file fails its checksum: the data directory is damaged');
  }
  const parsed = JSON.parse(utf8Decoder.decode(meta)) as Snapshot['meta'];
  return { meta: parsed, data };
}

export class RaftLog {
  private segments: Segment[] = [];
  private termVote = { term: 0, vote: 0 };

  constructor(private readonly storage: DurableStorage) {}

  /** Reads everything back after a start or a crash, cutting off a torn tail. */
  async load(): Promise<LoadedRaftState> {
    const metaBytes = await this.storage.read('meta');
    if (metaBytes) {
      if (metaBytes.length !== 16) throw new RaftLogError('meta file has the wrong size: the data directory is damaged');
      const view = new DataView(metaBytes.buffer, metaBytes.byteOffset, 16);
      this.termVote = { term: Number(view.getBigUint64(0, true)), vote: Number(view.getBigUint64(8, true)) };
    }
    const snapshotBytes = await this.storage.read('snapshot');
    const snapshot = snapshotBytes ? decodeSnapshotFile(snapshotBytes) : undefined;
    const names = (await this.storage.list()).filter((n) => n.startsWith(SEGMENT_PREFIX)).sort();
    let entries: Entry[] = [];
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      const bytes = (await this.storage.read(name)) ?? new Uint8Array(0);
      const parsed = parseSegment(bytes);
      if (parsed.goodBytes < bytes.length) {
        if (i !== names.length - 1) throw new RaftLogError(`segment ${name} is corrupt before the log's end`);
        await this.storage.truncate(name, parsed.goodBytes);
        await this.storage.sync(name);
      }
      const firstIndex = Number(name.slice(SEGMENT_PREFIX.length));
      if (parsed.entries.length > 0 && parsed.entries[0]!.index !== firstIndex) {
        throw new RaftLogError(`segment ${name} starts at index ${parsed.entries[0]!.index}`);
      }
      if (entries.length > 0 && parsed.entries.length > 0 && firstIndex !== entries[entries.length - 1]!.index + 1) {
        throw new RaftLogError(`gap before segment ${name}`);
      }
      entries = entries.concat(parsed.entries);
      this.segments.push({ name, firstIndex, offsets: parsed.offsets, bytes: parsed.goodBytes });
    }
    const snapshotIndex = snapshot?.meta.index ?? 0;
    entries = entries.filter((e) => e.index > snapshotIndex);
    return { hardState: { term: this.termVote.term, vote: this.termVote.vote, commit: snapshotIndex }, snapshot, entries };
  }

  /** Persists term and vote when they changed; commit is re-learned from the leader after a restart. */
  async saveHardState(hardState: HardState): Promise<void> {
    if (hardState.term === this.termVote.term && hardState.vote === this.termVote.vote) return;
    const bytes = new Uint8Array(16);
    const view = new DataView(bytes.buffer);
    view.setBigUint64(0, BigInt(hardState.term), true);
    view.setBigUint64(8, BigInt(hardState.vote), true);
    await this.storage.writeAtomic('meta', bytes);
    this.termVote = { term: hardState.term, vote: hardState.vote };
  }

  /** Appends entries (replacing any conflicting suffix) and fsyncs them. */
  async append(entries: readonly Entry[]): Promise<void> {
    if (entries.length === 0) return;
    await this.truncateFrom(entries[0]!.index);
    let segment: Segment | undefined = this.segments[this.segments.length - 1];
    const expected = segment ? segment.firstIndex + segment.offsets.length : entries[0]!.index;
    if (segment && segment.offsets.length > 0 && entries[0]!.index !== expected) {
      // After a snapshot install the log restarts past a gap: begin a fresh segment.
      segment = undefined;
    }
    if (!segment || segment.bytes >= SEGMENT_BYTES_TARGET) {
      segment = { name: segmentName(entries[0]!.index), firstIndex: entries[0]!.index, offsets: [], bytes: 0 };
      this.segments.push(segment);
    }
    const records = entries.map(encodeRecord);
    const total = records.reduce((sum, r) => sum + r.length, 0);
    const buffer = new Uint8Array(total);
    let offset = 0;
    for (const record of records) {
      buffer.set(record, offset);
      segment.offsets.push(segment.bytes + offset);
      offset += record.length;
    }
    await this.storage.append(segment.name, buffer);
    segment.bytes += total;
    await this.storage.sync(segment.name);
  }

  /** Stores a snapshot durably, then drops the segments it makes unnecessary (up to `compactIndex`). */
  async saveSnapshot(snapshot: Snapshot, compactIndex: number): Promise<void> {
    await this.storage.writeAtomic('snapshot', encodeSnapshotFile(snapshot));
    await this.compact(compactIndex);
  }

  /** After installing a snapshot from the leader, the whole local log is superseded. */
  async resetToSnapshot(snapshot: Snapshot): Promise<void> {
    await this.storage.writeAtomic('snapshot', encodeSnapshotFile(snapshot));
    for (const segment of this.segments) await this.storage.remove(segment.name);
    this.segments = [];
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
      return;
    }
  }
}


/**
 * The bytes of a node's Raft files (see docs/storage.md), and the parser that tells a torn write
 * from damage. Pure functions over byte arrays: no I/O.
 *
 * Segment (format 2): a 24-byte header, then records.
 *   header: "DQWLSEG2", u64 first index, u32 flags (0), u32 CRC-32 of the 20 bytes before it
 *   record: u32 body length, u32 CRC-32 of the body,
 *           body = u64 term, u64 index, u64 first index of the append that wrote it, u8 type, data
 * Format 1 segments (no header; body without the append's first index) are still read, never
 * appended to. A format 2 segment may end in zeros (space preallocated for later records, where
 * the storage writes in place): the records end at the first zero that only zeros follow.
 * Meta: "DQWM", u32 CRC-32 of the 16 bytes after it, u64 term, u64 vote (format 1: the 16 bytes).
 */
import type { Entry, EntryType, Snapshot } from '../raft/index.ts';
import { crc32 } from '../util/crc32.ts';

export const SEGMENT_PREFIX = 'segment-';
export const SEGMENT_HEADER_BYTES = 24;
const SEGMENT_MAGIC = new TextEncoder().encode('DQWLSEG2');
const META_MAGIC = new TextEncoder().encode('DQWM');
export const META_BYTES = 24;
const META_V1_BYTES = 16;
const RECORD_HEADER_BYTES = 8;
/** A single entry larger than this is refused on write and taken for damage on read. */
export const ENTRY_BYTES_MAX = 256 * 1024 * 1024;
const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

export interface SegmentLayout {
  readonly version: 1 | 2;
  readonly headerBytes: number;
  /** Body bytes before the entry's data. */
  readonly fixedBytes: number;
}

export const LAYOUT_V1: SegmentLayout = { version: 1, headerBytes: 0, fixedBytes: 17 };
export const LAYOUT_V2: SegmentLayout = { version: 2, headerBytes: SEGMENT_HEADER_BYTES, fixedBytes: 25 };

export function segmentName(firstIndex: number): string {
  return `${SEGMENT_PREFIX}${String(firstIndex).padStart(16, '0')}`;
}

/** The first index a segment's name promises, or undefined for a name that is not a segment's. */
export function segmentFirstIndex(name: string): number | undefined {
  const match = /^segment-(\d{16})$/.exec(name);
  return match ? Number(match[1]) : undefined;
}

export function encodeSegmentHeader(firstIndex: number): Uint8Array {
  const header = new Uint8Array(SEGMENT_HEADER_BYTES);
  const view = new DataView(header.buffer);
  header.set(SEGMENT_MAGIC, 0);
  view.setBigUint64(8, BigInt(firstIndex), true);
  view.setUint32(20, crc32(header, 0, 20), true);
  return header;
}

/** The header's first index, or undefined when the header is missing or damaged. */
function decodeSegmentHeader(bytes: Uint8Array): number | undefined {
  if (bytes.length < SEGMENT_HEADER_BYTES) return undefined;
  for (let i = 0; i < SEGMENT_MAGIC.length; i++) if (bytes[i] !== SEGMENT_MAGIC[i]) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, SEGMENT_HEADER_BYTES);
  if (view.getUint32(20, true) !== crc32(bytes, 0, 20)) return undefined;
  return Number(view.getBigUint64(8, true));
}

/** One record of format 2; `batchFirstIndex` is the first index of the append it belongs to. */
export function encodeRecord(entry: Entry, batchFirstIndex: number): Uint8Array {
  const record = new Uint8Array(recordBytes(entry));
  encodeRecordInto(record, new DataView(record.buffer), 0, entry, batchFirstIndex);
  return record;
}

/** The bytes of `entry`'s format 2 record. */
export function recordBytes(entry: Entry): number {
  return RECORD_HEADER_BYTES + LAYOUT_V2.fixedBytes + entry.data.length;
}

/**
 * Writes `entry`'s record at `offset` of `target` (whose view is `view`) and returns the offset
 * after it: the log encodes a whole append into one buffer, copying each payload once.
 */
export function encodeRecordInto(target: Uint8Array, view: DataView, offset: number, entry: Entry, batchFirstIndex: number): number {
  const bodyBytes = LAYOUT_V2.fixedBytes + entry.data.length;
  view.setUint32(offset, bodyBytes, true);
  setUint64(view, offset + 8, entry.term);
  setUint64(view, offset + 16, entry.index);
  setUint64(view, offset + 24, batchFirstIndex);
  target[offset + 32] = entry.type;
  target.set(entry.data, offset + 33);
  const end = offset + RECORD_HEADER_BYTES + bodyBytes;
  view.setUint32(offset + 4, crc32(target, offset + RECORD_HEADER_BYTES, end), true);
  return end;
}

/** A safe integer as a little-endian u64, in two halves: no BigInt allocated per field of every record. */
function setUint64(view: DataView, offset: number, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${value} is not an integer in 0..2^53-1`);
  view.setUint32(offset, value % 0x100000000, true);
  view.setUint32(offset + 4, Math.floor(value / 0x100000000), true);
}

interface DecodedRecord {
  entry: Entry;
  batchFirstIndex: number;
  end: number;
}

/**
 * The entries of consecutive records read back from a segment: `bytes` holds them from its
 * start, the first of index `firstIndex`. Their data are views into `bytes`, not copies. A
 * string says why they cannot be read (a checksum, a record out of place): damage.
 */
export function decodeRecordRun(bytes: Uint8Array, layout: SegmentLayout, firstIndex: number, count: number): Entry[] | string {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const entries: Entry[] = [];
  let offset = 0;
  for (let i = 0; i < count; i++) {
    const record = decodeRecordAt(bytes, view, offset, layout, true);
    if (!record) return `the record of entry ${firstIndex + i} at byte ${offset} of the range read is not whole or fails its checksum`;
    if (record.entry.index !== firstIndex + i) return `the record at byte ${offset} of the range read holds index ${record.entry.index} where index ${firstIndex + i} belongs`;
    entries.push(record.entry);
    offset = record.end;
  }
  return entries;
}

/** The record at `offset` if it is whole and its checksum holds; undefined otherwise. Its data is a copy unless `view`. */
function decodeRecordAt(bytes: Uint8Array, view: DataView, offset: number, layout: SegmentLayout, asView = false): DecodedRecord | undefined {
  if (offset + RECORD_HEADER_BYTES > bytes.length) return undefined;
  const bodyBytes = view.getUint32(offset, true);
  if (bodyBytes < layout.fixedBytes || bodyBytes > ENTRY_BYTES_MAX) return undefined;
  const end = offset + RECORD_HEADER_BYTES + bodyBytes;
  if (end > bytes.length) return undefined;
  if (crc32(bytes, offset + RECORD_HEADER_BYTES, end) !== view.getUint32(offset + 4, true)) return undefined;
  const body = offset + RECORD_HEADER_BYTES;
  const index = Number(view.getBigUint64(body + 8, true));
  const batchFirstIndex = layout.version === 2 ? Number(view.getBigUint64(body + 16, true)) : index;
  const typeOffset = body + layout.fixedBytes - 1;
  return {
    entry: {
      term: Number(view.getBigUint64(body, true)),
      index,
      type: bytes[typeOffset]! as EntryType,
      data: asView ? bytes.subarray(typeOffset + 1, end) : bytes.slice(typeOffset + 1, end),
    },
    batchFirstIndex,
    end,
  };
}

/** Why a segment cannot be read as written, and whether that can only be damage. */
export interface SegmentDamage {
  /** Byte offset of the first bad byte range (a record or the header). */
  offset: number;
  reason: string;
  /**
   * Set when the bad range is followed by a whole record that a later append wrote (or when the
   * record is whole but out of sequence): the bad range was durable and acknowledged, so this is
   * damage, not a write cut short by a crash.
   */
  proof?: string;
}

export interface ParsedSegment {
  layout: SegmentLayout;
  entries: Entry[];
  /** Byte offset of each entry's record. */
  offsets: number[];
  /** Bytes up to the end of the last good record (the header's end when there is none). */
  goodBytes: number;
  /**
   * Zero bytes after the last record up to the end of the file: space the log preallocated and
   * had not written yet. The end of the log, not damage.
   */
  zeroTailBytes?: number;
  damage?: SegmentDamage;
}

/**
 * Parses a segment whose name promises `firstIndex`. Stops at the first bad record (or header)
 * and looks past it for evidence that the bad range had been acknowledged (see SegmentDamage).
 */
export function parseSegment(bytes: Uint8Array, firstIndex: number): ParsedSegment {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let layout = LAYOUT_V2;
  const headerIndex = decodeSegmentHeader(bytes);
  if (headerIndex === undefined) {
    if (bytes.length === 0) return { layout, entries: [], offsets: [], goodBytes: 0 };
    const legacy = decodeRecordAt(bytes, view, 0, LAYOUT_V1);
    if (legacy && legacy.entry.index === firstIndex) {
      layout = LAYOUT_V1;
    } else {
      const damage: SegmentDamage = { offset: 0, reason: 'the segment header is missing or fails its checksum' };
      const later = findLaterAppend(bytes, view, 0, firstIndex, LAYOUT_V2);
      const olderFormat = later === undefined ? findLegacyRecord(bytes, view, firstIndex) : undefined;
      if (later !== undefined) damage.proof = `a whole record written by a later append follows at byte ${later}`;
      else if (olderFormat !== undefined) damage.proof = `a whole record of the older format follows at byte ${olderFormat}`;
      return { layout, entries: [], offsets: [], goodBytes: 0, damage };
    }
  } else if (headerIndex !== firstIndex) {
    return {
      layout,
      entries: [],
      offsets: [],
      goodBytes: 0,
      damage: { offset: 8, reason: `the header says the segment starts at index ${headerIndex}`, proof: 'the header checksum holds, so it was written that way' },
    };
  }
  const entries: Entry[] = [];
  const offsets: number[] = [];
  let offset = layout.headerBytes;
  let expectedIndex = firstIndex;
  while (offset < bytes.length) {
    const record = decodeRecordAt(bytes, view, offset, layout);
    if (!record) {
      // A preallocated segment ends in zeros. A record torn inside them leaves some non-zero
      // bytes, and is told apart below as before.
      if (isZeroFrom(bytes, offset)) return { layout, entries, offsets, goodBytes: offset, zeroTailBytes: bytes.length - offset };
      const damage: SegmentDamage = { offset, reason: describeBadRecord(bytes, view, offset, layout) };
      const later = findLaterAppend(bytes, view, offset, expectedIndex, layout);
      if (later !== undefined) damage.proof = `a whole record written by a later append follows at byte ${later}`;
      return { layout, entries, offsets, goodBytes: offset, damage };
    }
    if (record.entry.index !== expectedIndex) {
      return {
        layout,
        entries,
        offsets,
        goodBytes: offset,
        damage: {
          offset,
          reason: `the record holds index ${record.entry.index} where index ${expectedIndex} belongs`,
          proof: 'the record checksum holds, so it was written that way',
        },
      };
    }
    entries.push(record.entry);
    offsets.push(offset);
    offset = record.end;
    expectedIndex++;
  }
  return { layout, entries, offsets, goodBytes: offset };
}

function isZeroFrom(bytes: Uint8Array, offset: number): boolean {
  for (let i = offset; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

function describeBadRecord(bytes: Uint8Array, view: DataView, offset: number, layout: SegmentLayout): string {
  if (offset + RECORD_HEADER_BYTES > bytes.length) return `the record header is cut short (${bytes.length - offset} of ${RECORD_HEADER_BYTES} bytes)`;
  const bodyBytes = view.getUint32(offset, true);
  if (bodyBytes < layout.fixedBytes || bodyBytes > ENTRY_BYTES_MAX) return `the record length ${bodyBytes} is impossible`;
  const end = offset + RECORD_HEADER_BYTES + bodyBytes;
  if (end > bytes.length) return `the record is cut short (${bytes.length - offset} of ${end - offset} bytes)`;
  return 'the record fails its checksum';
}

/**
 * The offset of a whole record after `from` written by a later append than the one holding
 * index `badIndex`, or undefined. A crash can tear only the last append (every earlier one was
 * fsynced before the next began), so such a record proves the bad range was durable. Format 1
 * records do not name their append: any whole record after the bad range counts.
 */
function findLaterAppend(bytes: Uint8Array, view: DataView, from: number, badIndex: number, layout: SegmentLayout): number | undefined {
  const last = bytes.length - RECORD_HEADER_BYTES - layout.fixedBytes;
  let start = from + 1;
  // When only the bad record's body is damaged, its length still says where the next record
  // starts: begin there, so that its payload is never mistaken for records.
  if (from + RECORD_HEADER_BYTES <= bytes.length) {
    const next = from + RECORD_HEADER_BYTES + view.getUint32(from, true);
    if (next <= bytes.length && decodeRecordAt(bytes, view, next, layout)) start = next;
  }
  for (let offset = start; offset <= last; offset++) {
    const bodyBytes = view.getUint32(offset, true);
    if (bodyBytes < layout.fixedBytes || offset + RECORD_HEADER_BYTES + bodyBytes > bytes.length) continue;
    // Cheap filter before the checksum: the index must lie after the bad one, within the file.
    const index = Number(view.getBigUint64(offset + RECORD_HEADER_BYTES + 8, true));
    if (index <= badIndex - (layout.version === 2 ? 0 : 1) || index > badIndex + bytes.length) continue;
    const record = decodeRecordAt(bytes, view, offset, layout);
    if (!record) continue;
    if (layout.version === 1 || record.batchFirstIndex > badIndex) return offset;
    // A whole record of the torn append itself: what it holds is data, not records to look at.
    offset = record.end - 1;
  }
  return undefined;
}

/**
 * The offset of a whole format 1 record in a segment whose start is damaged, or undefined: a
 * headerless segment of an earlier version whose first record is bad. A format 2 record of the
 * segment's first append also passes a format 1 checksum (the checksum covers the body either
 * way); it is told apart by its append index, and is no proof.
 */
function findLegacyRecord(bytes: Uint8Array, view: DataView, firstIndex: number): number | undefined {
  const last = bytes.length - RECORD_HEADER_BYTES - LAYOUT_V1.fixedBytes;
  for (let offset = 0; offset <= last; offset++) {
    const bodyBytes = view.getUint32(offset, true);
    if (bodyBytes < LAYOUT_V1.fixedBytes || offset + RECORD_HEADER_BYTES + bodyBytes > bytes.length) continue;
    const index = Number(view.getBigUint64(offset + RECORD_HEADER_BYTES + 8, true));
    if (index < firstIndex || index > firstIndex + bytes.length) continue;
    const record = decodeRecordAt(bytes, view, offset, LAYOUT_V1);
    if (!record) continue;
    const asFormat2 = bodyBytes >= LAYOUT_V2.fixedBytes ? Number(view.getBigUint64(offset + RECORD_HEADER_BYTES + 16, true)) : undefined;
    if (asFormat2 !== firstIndex) return offset;
    offset = record.end - 1;
  }
  return undefined;
}

export function encodeMeta(term: number, vote: number): Uint8Array {
  const bytes = new Uint8Array(META_BYTES);
  const view = new DataView(bytes.buffer);
  bytes.set(META_MAGIC, 0);
  view.setBigUint64(8, BigInt(term), true);
  view.setBigUint64(16, BigInt(vote), true);
  view.setUint32(4, crc32(bytes, 8, META_BYTES), true);
  return bytes;
}

/** Term and vote, or a sentence saying why the bytes are not a meta file. */
export function decodeMeta(bytes: Uint8Array): { term: number; vote: number } | string {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length === META_V1_BYTES) {
    return { term: Number(view.getBigUint64(0, true)), vote: Number(view.getBigUint64(8, true)) };
  }
  if (bytes.length !== META_BYTES) return `it has ${bytes.length} bytes, not ${META_BYTES}`;
  for (let i = 0; i < META_MAGIC.length; i++) if (bytes[i] !== META_MAGIC[i]) return 'it does not start with the meta file magic';
  if (view.getUint32(4, true) !== crc32(bytes, 8, META_BYTES)) return 'it fails its checksum';
  return { term: Number(view.getBigUint64(8, true)), vote: Number(view.getBigUint64(16, true)) };
}

/**
 * The bytes of the snapshot file of `meta` before its data, whose CRC-32 is `dataCrc`: the file is
 * these, then the data (written a piece at a time after them, or joined by encodeSnapshotFile).
 */
export function encodeSnapshotFileHeader(meta: Snapshot['meta'], dataCrc: number): Uint8Array {
  const metaBytes = utf8Encoder.encode(JSON.stringify(meta));
  const header = new Uint8Array(12 + metaBytes.length);
  const view = new DataView(header.buffer);
  view.setUint32(0, metaBytes.length, true);
  header.set(metaBytes, 4);
  view.setUint32(4 + metaBytes.length, dataCrc >>> 0, true);
  view.setUint32(8 + metaBytes.length, crc32(metaBytes), true);
  return header;
}

/** Where the data's CRC-32 is in a snapshot file whose header is `header` (see encodeSnapshotFileHeader). */
export function snapshotFileDataCrcOffset(header: Uint8Array): number {
  return header.length - 8;
}

/** Snapshot file: u32 meta length, JSON meta, u32 CRC of the data, u32 CRC of the meta, data. */
export function encodeSnapshotFile(snapshot: Snapshot): Uint8Array {
  const header = encodeSnapshotFileHeader(snapshot.meta, crc32(snapshot.data));
  const bytes = new Uint8Array(header.length + snapshot.data.length);
  bytes.set(header, 0);
  bytes.set(snapshot.data, header.length);
  return bytes;
}

/** What the header of a snapshot file says, to read its data a range at a time (see encodeSnapshotFile). */
export interface SnapshotFileHeader {
  meta: Snapshot['meta'];
  /** Where the data starts in the file. */
  dataOffset: number;
  /** CRC-32 of the whole data. */
  dataCrc: number;
}

/** Bytes of a snapshot file's header before its metadata: where its length is. */
export const SNAPSHOT_FILE_META_LENGTH_BYTES = 4;

/**
 * The header of a snapshot file from its first bytes: `prefix` holds at least the first 4 (the
 * metadata's length); answers the total header length needed when `prefix` is shorter than it, or
 * a sentence saying why the bytes are not a snapshot file's header.
 */
export function decodeSnapshotFileHeader(prefix: Uint8Array): SnapshotFileHeader | { headerBytes: number } | string {
  if (prefix.length < SNAPSHOT_FILE_META_LENGTH_BYTES) return `it has only ${prefix.length} bytes`;
  const view = new DataView(prefix.buffer, prefix.byteOffset, prefix.byteLength);
  const metaBytes = view.getUint32(0, true);
  if (prefix.length < 12 + metaBytes) return { headerBytes: 12 + metaBytes };
  const meta = prefix.subarray(4, 4 + metaBytes);
  if (crc32(meta) !== view.getUint32(8 + metaBytes, true)) return 'its metadata fails its checksum';
  let parsed: Snapshot['meta'];
  try {
    parsed = JSON.parse(utf8Decoder.decode(meta)) as Snapshot['meta'];
  } catch (error) {
    return `its metadata is not JSON (${(error as Error).message})`;
  }
  if (!Number.isSafeInteger(parsed.index) || !Number.isSafeInteger(parsed.term) || !parsed.configuration) {
    return 'its metadata lacks an index, a term or a configuration';
  }
  return { meta: parsed, dataOffset: 12 + metaBytes, dataCrc: view.getUint32(4 + metaBytes, true) };
}

/** The snapshot, or a sentence saying why the bytes are not a whole snapshot file. */
export function decodeSnapshotFile(bytes: Uint8Array): Snapshot | string {
  const header = decodeSnapshotFileHeader(bytes);
  if (typeof header === 'string') return header;
  if (!('meta' in header)) return `its metadata length ${header.headerBytes - 12} runs past the end of the file`;
  // A view, not a copy: the file's bytes are read for this snapshot alone.
  const data = bytes.subarray(header.dataOffset);
  if (crc32(data) !== header.dataCrc) return 'its data fails its checksum';
  return { meta: header.meta, data };
}

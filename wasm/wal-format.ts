// SQLite WAL file format: a 32-byte file header, then frames of a 24-byte frame header plus one
// page image. All header fields are big-endian; the checksum words are read in the byte order
// named by the magic number (0x377f0682: little-endian words, 0x377f0683: big-endian words).
// Reference: https://www.sqlite.org/fileformat2.html#walformat

export const WAL_HEADER_BYTES = 32;
export const WAL_FRAME_HEADER_BYTES = 24;
export const WAL_MAGIC_LITTLE_ENDIAN = 0x377f0682;
export const WAL_MAGIC_BIG_ENDIAN = 0x377f0683;
export const WAL_FORMAT_VERSION = 3007000;
export const PAGE_SIZE_MIN = 512;
export const PAGE_SIZE_MAX = 65536;

export interface WalChecksum {
  s1: number;
  s2: number;
}

export interface WalHeader {
  magic: number;
  formatVersion: number;
  pageSize: number;
  checkpointSequence: number;
  salt1: number;
  salt2: number;
  checksum1: number;
  checksum2: number;
}

export interface WalFrameHeader {
  pageNumber: number;
  /** Database size in pages after this frame's transaction commits; 0 for non-commit frames. */
  commitPageCount: number;
  salt1: number;
  salt2: number;
  checksum1: number;
  checksum2: number;
}

export function isValidPageSize(pageSize: number): boolean {
  return (
    Number.isInteger(pageSize) &&
    pageSize >= PAGE_SIZE_MIN &&
    pageSize <= PAGE_SIZE_MAX &&
    (pageSize & (pageSize - 1)) === 0
  );
}

export function isBigEndianChecksum(magic: number): boolean {
  return (magic & 1) === 1;
}

/**
 * SQLite's running WAL checksum, continued chunk by chunk without allocating: a follower runs it
 * over every replicated byte. DataView reads cost the same aligned or not (a payload inside a
 * Raft entry sits at any offset), and a literal byte order in each loop keeps V8 on its fast path.
 */
export class RunningWalChecksum {
  /**
   * s1, s2 as int32: the sums wrap like the C u32 sums and stay in V8's integer fast path. An
   * Int32Array, not two fields: a field holding an int32 past the small-integer range boxes it.
   */
  private readonly sums = new Int32Array(2);

  constructor(seed: WalChecksum) {
    this.sums[0] = seed.s1;
    this.sums[1] = seed.s2;
  }

  /** Continues over bytes `[start, end)` of `view` (a multiple of 8 long). */
  add(view: DataView, start: number, end: number, bigEndianWords: boolean): void {
    let a = this.sums[0]!;
    let b = this.sums[1]!;
    if (bigEndianWords) {
      for (let i = start; i < end; i += 8) {
        a = (a + view.getInt32(i) + b) | 0;
        b = (b + view.getInt32(i + 4) + a) | 0;
      }
    } else {
      for (let i = start; i < end; i += 8) {
        a = (a + view.getInt32(i, true) + b) | 0;
        b = (b + view.getInt32(i + 4, true) + a) | 0;
      }
    }
    this.sums[0] = a;
    this.sums[1] = b;
  }

  /** Continues over the frame at `frameOffset`: its first 8 header bytes, then its page. */
  addFrame(view: DataView, frameOffset: number, pageSize: number, bigEndianWords: boolean): void {
    this.add(view, frameOffset, frameOffset + 8, bigEndianWords);
    // Header bytes 8..23 are the salts and the checksum itself: not covered.
    this.add(view, frameOffset + WAL_FRAME_HEADER_BYTES, frameOffset + WAL_FRAME_HEADER_BYTES + pageSize, bigEndianWords);
  }

  /** Whether the two big-endian words at `offset` of `view` hold this checksum. */
  matches(view: DataView, offset: number): boolean {
    return view.getInt32(offset) === this.sums[0] && view.getInt32(offset + 4) === this.sums[1];
  }

  value(): WalChecksum {
    return { s1: this.sums[0]! >>> 0, s2: this.sums[1]! >>> 0 };
  }
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * SQLite's WAL checksum over `length` bytes (a multiple of 8) of `bytes` from `offset`,
 * continuing from `seed`. Returns a new value; `seed` is not modified.
 */
export function walChecksum(
  bytes: Uint8Array,
  offset: number,
  length: number,
  bigEndianWords: boolean,
  seed: WalChecksum,
): WalChecksum {
  if ((length & 7) !== 0) throw new RangeError(`WAL checksum length ${length} is not a multiple of 8`);
  if (offset < 0 || offset + length > bytes.length) {
    throw new RangeError(`WAL checksum range ${offset}+${length} outside ${bytes.length} bytes`);
  }
  const running = new RunningWalChecksum(seed);
  running.add(viewOf(bytes), offset, offset + length, bigEndianWords);
  return running.value();
}

/**
 * The running checksum after one frame at `frameOffset`: its first 8 header bytes, then its page,
 * continuing from `seed` (the previous frame's checksum, or the WAL header's for the first).
 */
export function walFrameChecksum(
  bytes: Uint8Array,
  frameOffset: number,
  pageSize: number,
  bigEndianWords: boolean,
  seed: WalChecksum,
): WalChecksum {
  if (frameOffset < 0 || frameOffset + WAL_FRAME_HEADER_BYTES + pageSize > bytes.length) {
    throw new RangeError(`WAL frame at ${frameOffset} of ${pageSize}-byte pages runs past ${bytes.length} bytes`);
  }
  const running = new RunningWalChecksum(seed);
  running.addFrame(viewOf(bytes), frameOffset, pageSize, bigEndianWords);
  return running.value();
}

export function decodeWalHeader(bytes: Uint8Array, offset = 0): WalHeader {
  if (offset + WAL_HEADER_BYTES > bytes.length) throw new RangeError('WAL header truncated');
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, WAL_HEADER_BYTES);
  return {
    magic: view.getUint32(0),
    formatVersion: view.getUint32(4),
    pageSize: view.getUint32(8),
    checkpointSequence: view.getUint32(12),
    salt1: view.getUint32(16),
    salt2: view.getUint32(20),
    checksum1: view.getUint32(24),
    checksum2: view.getUint32(28),
  };
}

/** Encodes a header, computing its checksum (the `checksum1/2` fields of `header` are ignored). */
export function encodeWalHeader(header: Omit<WalHeader, 'checksum1' | 'checksum2'>): Uint8Array {
  const bytes = new Uint8Array(WAL_HEADER_BYTES);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, header.magic);
  view.setUint32(4, header.formatVersion);
  view.setUint32(8, header.pageSize === 65536 ? 1 : header.pageSize);
  view.setUint32(12, header.checkpointSequence);
  view.setUint32(16, header.salt1);
  view.setUint32(20, header.salt2);
  const sum = walChecksum(bytes, 0, 24, isBigEndianChecksum(header.magic), { s1: 0, s2: 0 });
  view.setUint32(24, sum.s1);
  view.setUint32(28, sum.s2);
  return bytes;
}

/** The page size a header declares (the field stores 1 for 65536). */
export function walHeaderPageSize(header: WalHeader): number {
  return header.pageSize === 1 ? 65536 : header.pageSize;
}

export type WalHeaderProblem = 'magic' | 'version' | 'page-size' | 'checksum';

/** Checks a decoded header against its own checksum; returns the first problem or null. */
export function checkWalHeader(bytes: Uint8Array, offset = 0): WalHeaderProblem | null {
  const header = decodeWalHeader(bytes, offset);
  if (header.magic !== WAL_MAGIC_LITTLE_ENDIAN && header.magic !== WAL_MAGIC_BIG_ENDIAN) return 'magic';
  if (header.formatVersion !== WAL_FORMAT_VERSION) return 'version';
  if (!isValidPageSize(walHeaderPageSize(header))) return 'page-size';
  const sum = walChecksum(bytes, offset, 24, isBigEndianChecksum(header.magic), { s1: 0, s2: 0 });
  if (sum.s1 !== header.checksum1 || sum.s2 !== header.checksum2) return 'checksum';
  return null;
}

export function decodeWalFrameHeader(bytes: Uint8Array, offset: number): WalFrameHeader {
  if (offset + WAL_FRAME_HEADER_BYTES > bytes.length) throw new RangeError('WAL frame header truncated');
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, WAL_FRAME_HEADER_BYTES);
  return {
    pageNumber: view.getUint32(0),
    commitPageCount: view.getUint32(4),
    salt1: view.getUint32(8),
    salt2: view.getUint32(12),
    checksum1: view.getUint32(16),
    checksum2: view.getUint32(20),
  };
}

/** Reads only the commit field of the frame header at `offset` (cheap commit detection). */
export function readFrameCommitPageCount(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset + 4]! << 24) | (bytes[offset + 5]! << 16) | (bytes[offset + 6]! << 8) | bytes[offset + 7]!) >>> 0;
}

export function readUint32BigEndian(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!) >>> 0;
}

/**
 * Encodes one frame (header + page) whose checksum continues from `previous`; returns the
 * frame bytes and the running checksum after it.
 */
export function encodeWalFrame(
  frame: { pageNumber: number; commitPageCount: number; salt1: number; salt2: number },
  page: Uint8Array,
  bigEndianWords: boolean,
  previous: WalChecksum,
): { bytes: Uint8Array; checksum: WalChecksum } {
  const bytes = new Uint8Array(WAL_FRAME_HEADER_BYTES + page.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, frame.pageNumber);
  view.setUint32(4, frame.commitPageCount);
  view.setUint32(8, frame.salt1);
  view.setUint32(12, frame.salt2);
  bytes.set(page, WAL_FRAME_HEADER_BYTES);
  let sum = walChecksum(bytes, 0, 8, bigEndianWords, previous);
  sum = walChecksum(bytes, WAL_FRAME_HEADER_BYTES, page.length, bigEndianWords, sum);
  view.setUint32(16, sum.s1);
  view.setUint32(20, sum.s2);
  return { bytes, checksum: sum };
}

/** Byte offset in the WAL file of frame `index` (0-based). */
export function walFrameOffset(index: number, pageSize: number): number {
  return WAL_HEADER_BYTES + index * (WAL_FRAME_HEADER_BYTES + pageSize);
}

/** Number of whole frames in a WAL of `walBytes` bytes (0 for an empty or header-only WAL). */
export function walFrameCount(walBytes: number, pageSize: number): number {
  if (walBytes <= WAL_HEADER_BYTES) return 0;
  return Math.floor((walBytes - WAL_HEADER_BYTES) / (WAL_FRAME_HEADER_BYTES + pageSize));
}

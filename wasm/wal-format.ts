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

// One loop per byte order, each in a function of its own: TurboFan compiles either tighter than
// one function holding both. Four word pairs per iteration: the
// sums form one dependency chain, and fewer loop tests leave more of each cycle to the loads.
// `sums` holds s1, s2 as int32 (see RunningWalChecksum); `end - start` is a multiple of 8.
function sumLittleEndianWords(view: DataView, start: number, end: number, sums: Int32Array): void {
  let a = sums[0]!;
  let b = sums[1]!;
  let i = start;
  for (const unrolledEnd = end - 24; i < unrolledEnd; i += 32) {
    a = (a + view.getInt32(i, true) + b) | 0;
    b = (b + view.getInt32(i + 4, true) + a) | 0;
    a = (a + view.getInt32(i + 8, true) + b) | 0;
    b = (b + view.getInt32(i + 12, true) + a) | 0;
    a = (a + view.getInt32(i + 16, true) + b) | 0;
    b = (b + view.getInt32(i + 20, true) + a) | 0;
    a = (a + view.getInt32(i + 24, true) + b) | 0;
    b = (b + view.getInt32(i + 28, true) + a) | 0;
  }
  for (; i < end; i += 8) {
    a = (a + view.getInt32(i, true) + b) | 0;
    b = (b + view.getInt32(i + 4, true) + a) | 0;
  }
  sums[0] = a;
  sums[1] = b;
}

function sumBigEndianWords(view: DataView, start: number, end: number, sums: Int32Array): void {
  let a = sums[0]!;
  let b = sums[1]!;
  let i = start;
  for (const unrolledEnd = end - 24; i < unrolledEnd; i += 32) {
    a = (a + view.getInt32(i) + b) | 0;
    b = (b + view.getInt32(i + 4) + a) | 0;
    a = (a + view.getInt32(i + 8) + b) | 0;
    b = (b + view.getInt32(i + 12) + a) | 0;
    a = (a + view.getInt32(i + 16) + b) | 0;
    b = (b + view.getInt32(i + 20) + a) | 0;
    a = (a + view.getInt32(i + 24) + b) | 0;
    b = (b + view.getInt32(i + 28) + a) | 0;
  }
  for (; i < end; i += 8) {
    a = (a + view.getInt32(i) + b) | 0;
    b = (b + view.getInt32(i + 4) + a) | 0;
  }
  sums[0] = a;
  sums[1] = b;
}

/**
 * SQLite's checksum over a page, in WebAssembly. A follower checks every replicated page, and in
 * JS that loop costs about 0.7 µs per 4 KiB page in the engine (each DataView or typed-array read
 * checks its bounds, and each pair of words waits for the one before). Here the page is cut into
 * four lanes summed side by side from zero and joined after: one pair of words maps the sums
 * (a, b) to M·(a, b) + (x0, x0 + x1) with M = [[1, 1], [1, 2]], so a lane of L pairs maps them to
 * M^L·(a, b) + (the lane's sums from zero), all mod 2^32. Copying the page into the module's
 * memory and summing it there costs about a third of the JS loop.
 *
 * `sum(start, pairs, a, b, m00, m01, m10, m11)` sums `pairs` (a multiple of 4) little-endian word
 * pairs from byte `start` continuing from (a, b), M^(pairs/4) given as m00..m11, and stores the
 * sums as two words at byte 0. Hand-assembled (no toolchain); the tests compare it with the loop.
 */
const CHECKSUM_KERNEL_PAGE_OFFSET = 64;
const CHECKSUM_KERNEL_BYTES = (() => {
  const get = (index: number) => [0x20, index];
  const set = (index: number) => [0x21, index];
  const tee = (index: number) => [0x22, index];
  const add = 0x6a;
  const mul = 0x6c;
  const load = (offset: number) => [0x28, 2, offset];
  const constant = (value: number) => [0x41, value];
  // Locals: params 0 p, 1 pairs, 2 a, 3 b, 4..7 m00 m01 m10 m11; 8 q (lane bytes), 9..11 lane
  // pointers, 12 end, 13..20 the lanes' (a, b), 21 t.
  const lanePointer = [0, 9, 10, 11];
  const laneSums = [13, 15, 17, 19];
  const step: number[] = [];
  for (let lane = 0; lane < 4; lane++) {
    const pointer = lanePointer[lane]!;
    const a = laneSums[lane]!;
    const b = a + 1;
    step.push(...get(a), ...get(pointer), ...load(0), add, ...get(b), add, ...set(a));
    step.push(...get(b), ...get(pointer), ...load(4), add, ...get(a), add, ...set(b));
  }
  for (const pointer of lanePointer) step.push(...get(pointer), ...constant(8), add, ...set(pointer));
  const join: number[] = [];
  for (const a of laneSums) {
    join.push(...get(4), ...get(2), mul, ...get(5), ...get(3), mul, add, ...get(a), add, ...set(21));
    join.push(...get(6), ...get(2), mul, ...get(7), ...get(3), mul, add, ...get(a + 1), add, ...set(3));
    join.push(...get(21), ...set(2));
  }
  const body = [
    1, 14, 0x7f, // 14 i32 locals
    ...get(1), ...constant(1), 0x74, ...set(8), // q = pairs * 2 (pairs / 4 lanes, 8 bytes a pair)
    ...get(0), ...get(8), add, ...tee(9), ...set(12),
    ...get(9), ...get(8), add, ...set(10),
    ...get(10), ...get(8), add, ...set(11),
    0x02, 0x40, ...get(0), ...get(12), 0x4f, 0x0d, 0, // block; br_if p >= end
    0x03, 0x40, ...step, ...get(0), ...get(12), 0x49, 0x0d, 0, 0x0b, // loop ... br_if p < end
    0x0b,
    ...join,
    ...constant(0), ...get(2), 0x36, 2, 0,
    ...constant(0), ...get(3), 0x36, 2, 4,
    0x0b,
  ];
  const leb = (value: number) => {
    const out: number[] = [];
    do {
      let byte = value & 0x7f;
      value >>>= 7;
      if (value !== 0) byte |= 0x80;
      out.push(byte);
    } while (value !== 0);
    return out;
  };
  const section = (id: number, content: number[]) => [id, ...leb(content.length), ...content];
  const name = (text: string) => [text.length, ...Array.from(text, (c) => c.charCodeAt(0))];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 8, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0]),
    ...section(3, [1, 0]),
    ...section(5, [1, 0, 2]), // 2 pages: a 64 KiB page after the 64-byte header
    ...section(7, [2, ...name('memory'), 2, 0, ...name('sum'), 0, 0]),
    ...section(10, [1, ...leb(body.length), ...body]),
  ]);
})();

interface ChecksumKernel {
  readonly sum: (start: number, pairs: number, a: number, b: number, m00: number, m01: number, m10: number, m11: number) => void;
  readonly bytes: Uint8Array;
  readonly words: Int32Array;
}

/** The kernel, or undefined where WebAssembly is missing or the host is big-endian (the loop then serves). */
const checksumKernel: ChecksumKernel | undefined = (() => {
  if (typeof WebAssembly !== 'object' || new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) return undefined;
  try {
    const instance = new WebAssembly.Instance(new WebAssembly.Module(CHECKSUM_KERNEL_BYTES));
    const memory = instance.exports['memory'] as WebAssembly.Memory;
    return {
      sum: instance.exports['sum'] as ChecksumKernel['sum'],
      bytes: new Uint8Array(memory.buffer),
      words: new Int32Array(memory.buffer, 0, 2),
    };
  } catch {
    return undefined;
  }
})();

/** M^n mod 2^32 (see the kernel), for the lane length of the last page size asked for. */
let lanePowerPairs = -1;
const lanePower = new Int32Array(4);
function setLanePower(pairs: number): void {
  let r0 = 1, r1 = 0, r2 = 0, r3 = 1;
  let m0 = 1, m1 = 1, m2 = 1, m3 = 2;
  for (let n = pairs; n > 0; n >>>= 1) {
    if ((n & 1) !== 0) {
      const t0 = (Math.imul(r0, m0) + Math.imul(r1, m2)) | 0;
      const t1 = (Math.imul(r0, m1) + Math.imul(r1, m3)) | 0;
      const t2 = (Math.imul(r2, m0) + Math.imul(r3, m2)) | 0;
      r3 = (Math.imul(r2, m1) + Math.imul(r3, m3)) | 0;
      r0 = t0;
      r1 = t1;
      r2 = t2;
    }
    const s0 = (Math.imul(m0, m0) + Math.imul(m1, m2)) | 0;
    const s1 = (Math.imul(m0, m1) + Math.imul(m1, m3)) | 0;
    const s2 = (Math.imul(m2, m0) + Math.imul(m3, m2)) | 0;
    m3 = (Math.imul(m2, m1) + Math.imul(m3, m3)) | 0;
    m0 = s0;
    m1 = s1;
    m2 = s2;
  }
  lanePower[0] = r0;
  lanePower[1] = r1;
  lanePower[2] = r2;
  lanePower[3] = r3;
  lanePowerPairs = pairs;
}

/** Continues `sums` over the little-endian words of the page at `pageStart` of `view`, in the kernel. */
function sumPageInKernel(kernel: ChecksumKernel, view: DataView, pageStart: number, pageSize: number, sums: Int32Array): void {
  const lanePairs = pageSize >>> 5;
  if (lanePairs !== lanePowerPairs) setLanePower(lanePairs);
  kernel.bytes.set(new Uint8Array(view.buffer, view.byteOffset + pageStart, pageSize), CHECKSUM_KERNEL_PAGE_OFFSET);
  kernel.sum(CHECKSUM_KERNEL_PAGE_OFFSET, pageSize >>> 3, sums[0]!, sums[1]!, lanePower[0]!, lanePower[1]!, lanePower[2]!, lanePower[3]!);
  sums[0] = kernel.words[0]!;
  sums[1] = kernel.words[1]!;
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
    this.reset(seed.s1, seed.s2);
  }

  /** Starts over from the checksum (s1, s2). */
  reset(s1: number, s2: number): void {
    this.sums[0] = s1;
    this.sums[1] = s2;
  }

  /** Continues over bytes `[start, end)` of `view` (a multiple of 8 long). */
  add(view: DataView, start: number, end: number, bigEndianWords: boolean): void {
    if (bigEndianWords) sumBigEndianWords(view, start, end, this.sums);
    else sumLittleEndianWords(view, start, end, this.sums);
  }

  /** Continues over the frame at `frameOffset`: its first 8 header bytes, then its page. */
  addFrame(view: DataView, frameOffset: number, pageSize: number, bigEndianWords: boolean): void {
    // Header bytes 8..23 are the salts and the checksum itself: not covered. The sum functions
    // are called here directly: through add() TurboFan inlines them worse (a third slower).
    const pageStart = frameOffset + WAL_FRAME_HEADER_BYTES;
    if (bigEndianWords) {
      sumBigEndianWords(view, frameOffset, frameOffset + 8, this.sums);
      sumBigEndianWords(view, pageStart, pageStart + pageSize, this.sums);
    } else {
      sumLittleEndianWords(view, frameOffset, frameOffset + 8, this.sums);
      if (checksumKernel !== undefined && pageSize <= PAGE_SIZE_MAX) sumPageInKernel(checksumKernel, view, pageStart, pageSize, this.sums);
      else sumLittleEndianWords(view, pageStart, pageStart + pageSize, this.sums);
    }
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

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
 * checks its bounds, and each pair of words waits for the one before). The checksum is linear:
 * one pair of words maps the sums (a, b) to M·(a, b) + (x0, x0 + x1), M = [[1, 1], [1, 2]], so
 * over n pairs (a, b) becomes M^n·(a, b) + Σ_k M^(n-1-k)·(x_2k, x_2k + x_2k+1), all mod 2^32: a
 * fixed weight per word and page size. The kernel sums word × weight four words at a time (SIMD
 * multiplies, no chain between the words) and adds M^n·(a, b); copying the page into its memory
 * and summing it there costs about a third of the JS loop.
 *
 * `sum(start, end, a, b, m00, m01, m10, m11)` sums the little-endian words of bytes [start, end)
 * (a multiple of 16 long) continuing from (a, b), M^n given as m00..m11, with the weights of the
 * word at byte i at i + 64 KiB (a's) and i + 128 KiB (b's), and stores the sums as two words at
 * byte 0. Hand-assembled (no toolchain); the tests compare it with the loop for every page size.
 */
const KERNEL_PAGE_OFFSET = 64;
const KERNEL_WEIGHTS_A_DISTANCE = 65536;
const KERNEL_WEIGHTS_B_DISTANCE = 2 * 65536;
const CHECKSUM_KERNEL_BYTES = (() => {
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
  const get = (index: number) => [0x20, ...leb(index)];
  const set = (index: number) => [0x21, ...leb(index)];
  const tee = (index: number) => [0x22, ...leb(index)];
  const add = 0x6a;
  const mul = 0x6c;
  const simd = (op: number) => [0xfd, ...leb(op)];
  const v128Load = (offset: number) => [...simd(0x00), 0, ...leb(offset)];
  const i32x4Add = simd(0xae);
  const i32x4Mul = simd(0xb5);
  const laneSum = (local: number) => [
    ...get(local), ...simd(0x1b), 0,
    ...get(local), ...simd(0x1b), 1, add,
    ...get(local), ...simd(0x1b), 2, add,
    ...get(local), ...simd(0x1b), 3, add,
  ];
  // Params: 0 p, 1 end, 2 a, 3 b, 4..7 m00 m01 m10 m11; v128 locals: 8 words, 9 a's sums, 10 b's.
  const body = [
    1, 3, 0x7b,
    0x02, 0x40, ...get(0), ...get(1), 0x4f, 0x0d, 0, // block; br_if p >= end
    0x03, 0x40,
    ...get(0), ...v128Load(0), ...set(8),
    ...get(9), ...get(0), ...v128Load(KERNEL_WEIGHTS_A_DISTANCE), ...get(8), ...i32x4Mul, ...i32x4Add, ...set(9),
    ...get(10), ...get(0), ...v128Load(KERNEL_WEIGHTS_B_DISTANCE), ...get(8), ...i32x4Mul, ...i32x4Add, ...set(10),
    ...get(0), 0x41, 16, add, ...tee(0), ...get(1), 0x49, 0x0d, 0, // br_if p < end
    0x0b, 0x0b,
    0x41, 0, ...get(4), ...get(2), mul, ...get(5), ...get(3), mul, add, ...laneSum(9), add, 0x36, 2, 0,
    0x41, 0, ...get(6), ...get(2), mul, ...get(7), ...get(3), mul, add, ...laneSum(10), add, 0x36, 2, 4,
    0x0b,
  ];
  const section = (id: number, content: number[]) => [id, ...leb(content.length), ...content];
  const name = (text: string) => [text.length, ...Array.from(text, (c) => c.charCodeAt(0))];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 8, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0]),
    ...section(3, [1, 0]),
    ...section(5, [1, 0, 4]), // 4 pages: the page at 64, its weights at 64 KiB + 64 and 128 KiB + 64
    ...section(7, [2, ...name('memory'), 2, 0, ...name('sum'), 0, 0]),
    ...section(10, [1, ...leb(body.length), ...body]),
  ]);
})();

interface ChecksumKernel {
  readonly sum: (start: number, end: number, a: number, b: number, m00: number, m01: number, m10: number, m11: number) => void;
  readonly bytes: Uint8Array;
  readonly words: Int32Array;
  /** The page size the weights in memory and `power` are for (0: none yet). */
  pageSize: number;
  /** M^(pageSize / 8). */
  readonly power: Int32Array;
}

/** The kernel, or undefined where WebAssembly (with SIMD) is missing or the host is big-endian: the loop serves then. */
const checksumKernel: ChecksumKernel | undefined = (() => {
  if (typeof WebAssembly !== 'object' || new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) return undefined;
  try {
    const instance = new WebAssembly.Instance(new WebAssembly.Module(CHECKSUM_KERNEL_BYTES));
    const memory = instance.exports['memory'] as WebAssembly.Memory;
    return {
      sum: instance.exports['sum'] as ChecksumKernel['sum'],
      bytes: new Uint8Array(memory.buffer),
      words: new Int32Array(memory.buffer),
      pageSize: 0,
      power: new Int32Array(4),
    };
  } catch {
    return undefined;
  }
})();

/** Writes the kernel's weights for `pageSize`-byte pages and M^(pageSize / 8). */
function setKernelPageSize(kernel: ChecksumKernel, pageSize: number): void {
  const words = kernel.words;
  const weightsA = (KERNEL_PAGE_OFFSET + KERNEL_WEIGHTS_A_DISTANCE) >>> 2;
  const weightsB = (KERNEL_PAGE_OFFSET + KERNEL_WEIGHTS_B_DISTANCE) >>> 2;
  // [p, q; r, s] = M^(n-1-k) for pair k, from the last pair back: pair k adds
  // (p + q)·x_2k + q·x_2k+1 to a and (r + s)·x_2k + s·x_2k+1 to b.
  let p = 1, q = 0, r = 0, s = 1;
  for (let k = (pageSize >>> 3) - 1; k >= 0; k--) {
    words[weightsA + 2 * k] = (p + q) | 0;
    words[weightsA + 2 * k + 1] = q;
    words[weightsB + 2 * k] = (r + s) | 0;
    words[weightsB + 2 * k + 1] = s;
    // Times M = [[1, 1], [1, 2]] on the right.
    const nextQ = (p + 2 * q) | 0;
    const nextS = (r + 2 * s) | 0;
    p = (p + q) | 0;
    q = nextQ;
    r = (r + s) | 0;
    s = nextS;
  }
  kernel.power[0] = p;
  kernel.power[1] = q;
  kernel.power[2] = r;
  kernel.power[3] = s;
  kernel.pageSize = pageSize;
}

/** Continues `sums` over the little-endian words of the page at `pageStart` of `view`, in the kernel. */
function sumPageInKernel(kernel: ChecksumKernel, view: DataView, pageStart: number, pageSize: number, sums: Int32Array): void {
  if (pageSize !== kernel.pageSize) setKernelPageSize(kernel, pageSize);
  kernel.bytes.set(new Uint8Array(view.buffer, view.byteOffset + pageStart, pageSize), KERNEL_PAGE_OFFSET);
  const power = kernel.power;
  kernel.sum(KERNEL_PAGE_OFFSET, KERNEL_PAGE_OFFSET + pageSize, sums[0]!, sums[1]!, power[0]!, power[1]!, power[2]!, power[3]!);
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

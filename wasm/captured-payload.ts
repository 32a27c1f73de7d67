// The binary form of one captured transaction (a Raft entry's payload):
//
//   offset 0  u32  magic 0x44515458 ("DQTX")
//          4  u8   format version (1)
//          5  u8   flags: bit 0 = a 32-byte WAL header follows (the transaction starts a new WAL)
//          6  u16  reserved, 0
//          8  u32  page size
//         12  u32  frame count (>= 1)
//         16  [32-byte WAL header], then frame count × (24-byte frame header + page)
//
// Everything after byte 16 is copied verbatim from the leader's WAL, so a follower appends it
// verbatim and ends up byte-identical; the frame headers carry the page numbers, the commit
// size, the salts and the checksums used to validate the bytes before appending them.

import type { CapturedChanges } from './change-capture.ts';
import { ByteSlab } from './byte-slab.ts';
import { EngineError } from './errors.ts';
import {
  WAL_FRAME_HEADER_BYTES,
  WAL_HEADER_BYTES,
  checkWalHeader,
  decodeWalHeader,
  isBigEndianChecksum,
  isValidPageSize,
  readUint32BigEndian,
  RunningWalChecksum,
  walHeaderPageSize,
  type WalChecksum,
} from './wal-format.ts';

export const PAYLOAD_MAGIC = 0x44515458;
const PAYLOAD_MAGIC_BYTES = new Uint8Array([PAYLOAD_MAGIC >>> 24, (PAYLOAD_MAGIC >>> 16) & 0xff, (PAYLOAD_MAGIC >>> 8) & 0xff, PAYLOAD_MAGIC & 0xff]);
export const PAYLOAD_VERSION = 1;
export const PAYLOAD_HEADER_BYTES = 16;
export const PAYLOAD_FLAG_WAL_HEADER = 1;
/** Upper bound on frames per transaction (4 GiB of 4 KiB pages); larger payloads are refused. */
export const PAYLOAD_FRAMES_MAX = 1 << 20;

export interface CapturedTransaction {
  /**
   * Compact binary form, ready to be a Raft entry (see captured-payload.ts for the layout). Valid
   * until the transaction is confirmed or aborted: the engine then takes the memory of a small
   * payload back, detaching this array (length 0). Copy it to keep it longer.
   */
  readonly payload: Uint8Array;
  /** Bytes of `payload`. */
  readonly payloadBytes: number;
  /**
   * Copies `length` bytes of the payload from `offset` into `target` at `targetOffset`, without
   * making the whole payload (a transaction larger than takeCaptured's `copyBytesMax` is not
   * copied when taken: it is read from the WAL, while it is pending or confirmed and not yet
   * checkpointed).
   */
  readPayload(target: Uint8Array, targetOffset: number, offset: number, length: number): void;
  readonly frames: number;
  readonly pageNumbers?: readonly number[];
  /** What it changed, when the database captures changes (change-capture.ts). */
  readonly changes?: CapturedChanges | undefined;
  /**
   * The same changes as the change set body a log entry carries (wasm/change-set.ts), when the
   * database captures changes; the caller's to keep. `changes` is this body decoded.
   */
  readonly encodedChanges?: Uint8Array | undefined;
}

/** One commit's payload of a few pages is one slice of a shared block (see byte-slab.ts). */
const payloadSlab = new ByteSlab(64 * 1024, 16 * 1024);

/** Something WAL bytes can be copied out of (a MemoryFile, or a byte array via `bytesSource`). */
export interface ByteSource {
  readInto(target: Uint8Array, targetOffset: number, offset: number, length: number): void;
}

export function bytesSource(bytes: Uint8Array): ByteSource {
  return {
    readInto: (target, targetOffset, offset, length) => target.set(bytes.subarray(offset, offset + length), targetOffset),
  };
}

/** Copies WAL bytes `[start, end)` into a new payload; `start` 0 means the WAL header is included. */
export function encodePayload(wal: ByteSource, start: number, end: number, pageSize: number): Uint8Array {
  return encodePayloadInto(payloadSlab.take(PAYLOAD_HEADER_BYTES + end - start), wal, start, end, pageSize);
}

/**
 * encodePayload into `target`, exactly `PAYLOAD_HEADER_BYTES + end - start` long (every byte is
 * written: its contents do not matter); returns it. The caller allocates: a callback passed in
 * would be a new function per database, and V8 drops optimized code at each new call target.
 */
export function encodePayloadInto(target: Uint8Array, wal: ByteSource, start: number, end: number, pageSize: number): Uint8Array {
  if (target.length !== PAYLOAD_HEADER_BYTES + end - start) {
    throw new RangeError(`a payload of WAL bytes ${start}..${end} is ${PAYLOAD_HEADER_BYTES + end - start} bytes, not ${target.length}`);
  }
  writePayloadHeader(target, 0, start, end, pageSize);
  wal.readInto(target, PAYLOAD_HEADER_BYTES, start, end - start);
  return target;
}

function writePayloadHeader(target: Uint8Array, targetOffset: number, start: number, end: number, pageSize: number): void {
  const hasHeader = start === 0;
  const frameBytes = WAL_FRAME_HEADER_BYTES + pageSize;
  const frames = (end - start - (hasHeader ? WAL_HEADER_BYTES : 0)) / frameBytes;
  // Byte by byte, not through a DataView: making one costs more than these sixteen stores. The
  // magic as literal bytes: as a value it is past V8's small integers, unlike the other fields.
  target[targetOffset] = PAYLOAD_MAGIC_BYTES[0]!;
  target[targetOffset + 1] = PAYLOAD_MAGIC_BYTES[1]!;
  target[targetOffset + 2] = PAYLOAD_MAGIC_BYTES[2]!;
  target[targetOffset + 3] = PAYLOAD_MAGIC_BYTES[3]!;
  target[targetOffset + 4] = PAYLOAD_VERSION;
  target[targetOffset + 5] = hasHeader ? PAYLOAD_FLAG_WAL_HEADER : 0;
  // Written, not assumed zero: a recycled array holds an earlier payload's bytes.
  target[targetOffset + 6] = 0;
  target[targetOffset + 7] = 0;
  writeUint32BigEndian(target, targetOffset + 8, pageSize);
  writeUint32BigEndian(target, targetOffset + 12, frames);
}

function writeUint32BigEndian(target: Uint8Array, offset: number, value: number): void {
  target[offset] = value >>> 24;
  target[offset + 1] = value >>> 16;
  target[offset + 2] = value >>> 8;
  target[offset + 3] = value;
}

/**
 * Copies bytes `[offset, offset + length)` of the payload `encodePayload(wal, start, end,
 * pageSize)` would make into `target` at `targetOffset`, reading the WAL directly.
 */
export function readPayloadRange(wal: ByteSource, start: number, end: number, pageSize: number, target: Uint8Array, targetOffset: number, offset: number, length: number): void {
  const payloadBytes = PAYLOAD_HEADER_BYTES + end - start;
  if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > payloadBytes) {
    throw new EngineError('LIMIT', `payload bytes ${offset}..${offset + length} are outside its ${payloadBytes} bytes`);
  }
  if (offset < PAYLOAD_HEADER_BYTES && length > 0) {
    const header = new Uint8Array(PAYLOAD_HEADER_BYTES);
    writePayloadHeader(header, 0, start, end, pageSize);
    const n = Math.min(length, PAYLOAD_HEADER_BYTES - offset);
    target.set(header.subarray(offset, offset + n), targetOffset);
    targetOffset += n;
    offset += n;
    length -= n;
  }
  if (length > 0) wal.readInto(target, targetOffset, start + offset - PAYLOAD_HEADER_BYTES, length);
}

export interface DecodedPayload {
  readonly pageSize: number;
  readonly frames: number;
  readonly hasWalHeader: boolean;
  /** The bytes to append to the WAL: the optional header and the frames. */
  readonly walBytes: Uint8Array;
}

/** What the 16-byte payload header says. */
export interface PayloadHeader {
  readonly pageSize: number;
  readonly frames: number;
  readonly hasWalHeader: boolean;
  /** Bytes of the whole payload, header included. */
  readonly payloadBytes: number;
}

/** Checks the 16-byte header at the start of `bytes` (at least 16 bytes long). Throws EngineError. */
export function decodePayloadHeader(bytes: Uint8Array): PayloadHeader {
  const magic = readUint32BigEndian(bytes, 0);
  if (magic !== PAYLOAD_MAGIC) {
    throw new EngineError('BAD_PAYLOAD', `transaction payload has magic 0x${magic.toString(16)}, expected 0x${PAYLOAD_MAGIC.toString(16)}`);
  }
  if (bytes[4] !== PAYLOAD_VERSION) {
    throw new EngineError('BAD_PAYLOAD', `transaction payload format version ${bytes[4]} is not supported (expected ${PAYLOAD_VERSION})`);
  }
  const flags = bytes[5]!;
  if ((flags & ~PAYLOAD_FLAG_WAL_HEADER) !== 0 || bytes[6] !== 0 || bytes[7] !== 0) {
    throw new EngineError('BAD_PAYLOAD', `transaction payload has unknown flags 0x${flags.toString(16)} or non-zero reserved bytes`);
  }
  const pageSize = readUint32BigEndian(bytes, 8);
  if (!isValidPageSize(pageSize)) {
    throw new EngineError('PAGE_SIZE', `transaction payload declares page size ${pageSize}, not a power of two in 512..65536`);
  }
  const frames = readUint32BigEndian(bytes, 12);
  if (frames < 1) throw new EngineError('BAD_PAYLOAD', 'transaction payload holds no frames');
  if (frames > PAYLOAD_FRAMES_MAX) {
    throw new EngineError('LIMIT', `transaction payload holds ${frames} frames, above the limit of ${PAYLOAD_FRAMES_MAX}`);
  }
  const hasWalHeader = (flags & PAYLOAD_FLAG_WAL_HEADER) !== 0;
  const payloadBytes = PAYLOAD_HEADER_BYTES + (hasWalHeader ? WAL_HEADER_BYTES : 0) + frames * (WAL_FRAME_HEADER_BYTES + pageSize);
  return { pageSize, frames, hasWalHeader, payloadBytes };
}

/** Checks the payload's own framing (not its fit with a replica). Throws EngineError. */
export function decodePayload(payload: Uint8Array): DecodedPayload {
  if (payload.length < PAYLOAD_HEADER_BYTES) {
    throw new EngineError('TRUNCATED', `transaction payload is ${payload.length} bytes, shorter than its ${PAYLOAD_HEADER_BYTES}-byte header`);
  }
  const { pageSize, frames, hasWalHeader, payloadBytes: expectedBytes } = decodePayloadHeader(payload);
  if (payload.length < expectedBytes) {
    throw new EngineError('TRUNCATED', `transaction payload is ${payload.length} bytes, but its ${frames} frames of ${pageSize}-byte pages need ${expectedBytes}`);
  }
  if (payload.length > expectedBytes) {
    throw new EngineError('BAD_PAYLOAD', `transaction payload has ${payload.length - expectedBytes} bytes after its last frame`);
  }
  return { pageSize, frames, hasWalHeader, walBytes: payload.subarray(PAYLOAD_HEADER_BYTES) };
}

/** The page numbers of the payload's frames, in order (pages may repeat; the last wins). */
export function payloadPageNumbers(payload: Uint8Array): number[] {
  const decoded = decodePayload(payload);
  const pageNumbers: number[] = [];
  let offset = decoded.hasWalHeader ? WAL_HEADER_BYTES : 0;
  for (let i = 0; i < decoded.frames; i++) {
    pageNumbers.push(readUint32BigEndian(decoded.walBytes, offset));
    offset += WAL_FRAME_HEADER_BYTES + decoded.pageSize;
  }
  return pageNumbers;
}

/** What checkAppend needs to know about the replica's WAL. */
export interface ReplicaWal {
  readonly sizeBytes: number;
  /** The replica's 32-byte WAL header (ignored when `sizeBytes` is 0). */
  readonly header: Uint8Array;
  /** The running checksum at the WAL's end: the last frame's, or the header's without frames. */
  readonly endChecksum: WalChecksum;
}

/** Big-endian 32-bit values of a WAL (a MemoryFile has them). */
export interface WalWords {
  uint32(offset: number): number;
}

/**
 * Describes the first `sizeBytes` of the WAL `wal`. An object with a method, not a callback: the
 * method is one function for every file, a callback a new one per database (and a deopt at each).
 */
export function describeReplicaWal(sizeBytes: number, pageSize: number, wal: WalWords, header: Uint8Array): ReplicaWal {
  if (sizeBytes < WAL_HEADER_BYTES) return { sizeBytes, header, endChecksum: { s1: 0, s2: 0 } };
  const frameBytes = WAL_FRAME_HEADER_BYTES + pageSize;
  const checksumOffset = sizeBytes === WAL_HEADER_BYTES ? 24 : sizeBytes - frameBytes + 16;
  return { sizeBytes, header, endChecksum: { s1: wal.uint32(checksumOffset), s2: wal.uint32(checksumOffset + 4) } };
}

/**
 * Checks that `decoded` continues the replica's WAL and that every frame is intact: page size,
 * WAL presence, salts, checksum chain, commit marker. Throws EngineError naming the problem;
 * reads but never modifies the replica.
 */
export function checkAppend(decoded: DecodedPayload, replicaPageSize: number, replica: ReplicaWal): void {
  const { pageSize, frames, hasWalHeader, walBytes } = decoded;
  // One chain serves every call (a follower checks one payload per transaction): no allocation.
  const chain = startFrameChain(decoded, replicaPageSize, replica, walBytes, appendChain);
  const frameBytes = WAL_FRAME_HEADER_BYTES + pageSize;
  const view = new DataView(walBytes.buffer, walBytes.byteOffset, walBytes.byteLength);
  for (let i = 0, offset = hasWalHeader ? WAL_HEADER_BYTES : 0; i < frames; i++, offset += frameBytes) chain.check(view, offset);
}

/**
 * The checks before the first frame: page size, WAL presence, and the WAL header the payload
 * carries (`walHeader`, its first 32 bytes, when it has one). The chain then checks each frame.
 */
function startFrameChain(header: Omit<PayloadHeader, 'payloadBytes'>, replicaPageSize: number, replica: ReplicaWal, walHeader: Uint8Array, chain: FrameChain): FrameChain {
  const walSizeBytes = replica.sizeBytes;
  const { pageSize, frames, hasWalHeader } = header;
  if (pageSize !== replicaPageSize) {
    throw new EngineError('PAGE_SIZE', `transaction has ${pageSize}-byte pages but this database uses ${replicaPageSize}-byte pages`);
  }
  const frameBytes = WAL_FRAME_HEADER_BYTES + pageSize;
  if (hasWalHeader) {
    if (walSizeBytes !== 0) {
      const existing = Math.max(0, Math.floor((walSizeBytes - WAL_HEADER_BYTES) / frameBytes));
      throw new EngineError('HAS_WAL', `transaction starts a new WAL but this replica's WAL already holds ${existing} frames (checkpoint missed?)`);
    }
    const problem = checkWalHeader(walHeader, 0);
    if (problem === 'checksum') throw new EngineError('WAL_CHECKSUM', 'the WAL header in the transaction fails its checksum');
    if (problem !== null) throw new EngineError('WAL_HEADER', `the WAL header in the transaction is invalid (${problem})`);
    const headerPageSize = walHeaderPageSize(decodeWalHeader(walHeader, 0));
    if (headerPageSize !== pageSize) {
      throw new EngineError('PAGE_SIZE', `the transaction's WAL header says ${headerPageSize}-byte pages, its payload says ${pageSize}`);
    }
    return chain.start(walHeader, readUint32BigEndian(walHeader, 24), readUint32BigEndian(walHeader, 28), frames, pageSize);
  }
  if (walSizeBytes === 0) {
    throw new EngineError('NO_WAL', 'transaction continues a WAL that this replica does not have (its WAL is empty: missed the transaction that started it?)');
  }
  if (walSizeBytes < WAL_HEADER_BYTES || (walSizeBytes - WAL_HEADER_BYTES) % frameBytes !== 0) {
    throw new EngineError('WAL_HEADER', `this replica's WAL is ${walSizeBytes} bytes, not a header plus whole ${pageSize}-byte frames`);
  }
  return chain.start(replica.header, replica.endChecksum.s1, replica.endChecksum.s2, frames, pageSize);
}

/** Checks a transaction's frames one after the other: salts, page number, commit marker, checksum chain. */
class FrameChain {
  private salt1 = 0;
  private salt2 = 0;
  private bigEndianWords = false;
  private readonly running = new RunningWalChecksum({ s1: 0, s2: 0 });
  frames = 0;
  private pageSize = 0;
  /** Frames checked so far. */
  checked = 0;

  /** Starts over for `frames` frames continuing the WAL whose header is `headerSource`, from the running checksum (s1, s2). */
  start(headerSource: Uint8Array, s1: number, s2: number, frames: number, pageSize: number): this {
    this.salt1 = readUint32BigEndian(headerSource, 16) | 0;
    this.salt2 = readUint32BigEndian(headerSource, 20) | 0;
    this.bigEndianWords = isBigEndianChecksum(readUint32BigEndian(headerSource, 0));
    this.running.reset(s1, s2);
    this.frames = frames;
    this.pageSize = pageSize;
    this.checked = 0;
    return this;
  }

  /** Checks the next frame, at `offset` of `view`. */
  check(view: DataView, offset: number): void {
    const i = this.checked;
    const frames = this.frames;
    const pageNumber = view.getUint32(offset);
    const commitPageCount = view.getUint32(offset + 4);
    if (view.getInt32(offset + 8) !== this.salt1 || view.getInt32(offset + 12) !== this.salt2) {
      throw new EngineError('WAL_SALT', `frame ${i + 1} of ${frames} (page ${pageNumber}) carries salts of another WAL than this replica's`);
    }
    if (pageNumber === 0) throw new EngineError('BAD_PAYLOAD', `frame ${i + 1} of ${frames} names page 0`);
    const isLast = i === frames - 1;
    if (isLast ? commitPageCount === 0 : commitPageCount !== 0) {
      throw new EngineError('NO_COMMIT', `frame ${i + 1} of ${frames}: ${isLast ? 'the last frame is not a commit frame' : 'a commit marker before the last frame'}`);
    }
    this.running.addFrame(view, offset, this.pageSize, this.bigEndianWords);
    if (!this.running.matches(view, offset + 16)) {
      throw new EngineError('WAL_CHECKSUM', `frame ${i + 1} of ${frames} (page ${pageNumber}) fails its checksum`);
    }
    this.checked = i + 1;
  }
}

const appendChain = new FrameChain();

/** Where the WAL bytes of a staged payload go, and what the replica it continues looks like. */
export interface StagingTarget {
  /** Called once, when the payload header is known: the replica's page size and WAL then. */
  begin(header: PayloadHeader): { pageSize: number; replica: ReplicaWal };
  /** Appends checked WAL bytes after those appended before. */
  append(bytes: Uint8Array): void;
}

/**
 * A payload that arrives a slice at a time (the parts of a transaction larger than one Raft
 * entry, cut anywhere), checked as it comes with exactly the checks of decodePayload and
 * checkAppend, and appended to the replica's WAL frame by frame. The last frame, the commit
 * frame, is held back until `finish()`: until then the WAL holds no commit of this transaction,
 * so no connection that opens it sees any of it. Throws EngineError on bad input; what was
 * appended before stays for the caller to cut off.
 */
export class StagedPayload {
  private header: PayloadHeader | undefined;
  private chain: FrameChain | undefined;
  /** A unit (payload header, WAL header, frame) split across slices, gathered here. */
  private carry = new Uint8Array(PAYLOAD_HEADER_BYTES);
  private carried = 0;
  private walHeaderTaken = false;
  private lastFrame: Uint8Array | undefined;
  /** Payload bytes taken so far. */
  receivedBytes = 0;

  constructor(private readonly target: StagingTarget) {}

  /** The payload's next bytes. */
  take(slice: Uint8Array): void {
    let at = 0;
    // Whole frames lying in `slice` are appended as one run, straight from it.
    let runStart = -1;
    const flush = (end: number): void => {
      if (runStart >= 0 && end > runStart) this.target.append(slice.subarray(runStart, end));
      runStart = -1;
    };
    while (at < slice.length) {
      const need = this.unitBytes();
      if (need === 0) {
        flush(at);
        throw new EngineError('BAD_PAYLOAD', `transaction payload has ${this.receivedBytes + slice.length - at - this.header!.payloadBytes} bytes after its last frame`);
      }
      if (this.carried > 0 || slice.length - at < need) {
        flush(at);
        const n = Math.min(need - this.carried, slice.length - at);
        if (this.carry.length < need) {
          const grown = new Uint8Array(need);
          grown.set(this.carry.subarray(0, this.carried));
          this.carry = grown;
        }
        this.carry.set(slice.subarray(at, at + n), this.carried);
        this.carried += n;
        at += n;
        this.receivedBytes += n;
        if (this.carried === need) {
          this.carried = 0;
          // The carry is reused: what is kept or appended from it is copied.
          const unit = this.carry.slice(0, need);
          if (this.unit(unit)) this.target.append(unit);
        }
        continue;
      }
      const unit = slice.subarray(at, at + need);
      const append = this.unit(unit);
      if (append && runStart < 0) runStart = at;
      if (!append) flush(at);
      at += need;
      this.receivedBytes += need;
    }
    flush(at);
  }

  /** Every byte arrived: the held-back commit frame is appended. Throws when the payload is short. */
  finish(): void {
    const header = this.header;
    if (!header || this.receivedBytes !== header.payloadBytes || !this.lastFrame) {
      const expected = header ? `, but its ${header.frames} frames of ${header.pageSize}-byte pages need ${header.payloadBytes}` : `, shorter than its ${PAYLOAD_HEADER_BYTES}-byte header`;
      throw new EngineError('TRUNCATED', `transaction payload is ${this.receivedBytes} bytes${expected}`);
    }
    this.target.append(this.lastFrame);
    this.lastFrame = undefined;
  }

  /** Bytes of the next unit to check; 0 once the payload is complete. */
  private unitBytes(): number {
    const header = this.header;
    if (!header) return PAYLOAD_HEADER_BYTES;
    if (header.hasWalHeader && !this.walHeaderTaken) return WAL_HEADER_BYTES;
    return this.chain && this.chain.checked === header.frames ? 0 : WAL_FRAME_HEADER_BYTES + header.pageSize;
  }

  /** Checks one whole unit; true when it is to be appended now. */
  private unit(bytes: Uint8Array): boolean {
    if (!this.header) {
      this.header = decodePayloadHeader(bytes);
      if (!this.header.hasWalHeader) this.chain = this.startChain(new Uint8Array(0));
      return false;
    }
    if (!this.chain) {
      this.walHeaderTaken = true;
      this.chain = this.startChain(bytes);
      return true;
    }
    this.chain.check(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), 0);
    if (this.chain.checked < this.chain.frames) return true;
    this.lastFrame = bytes.slice();
    return false;
  }

  private startChain(walHeader: Uint8Array): FrameChain {
    const header = this.header!;
    const { pageSize, replica } = this.target.begin(header);
    return startFrameChain(header, pageSize, replica, walHeader, new FrameChain());
  }
}

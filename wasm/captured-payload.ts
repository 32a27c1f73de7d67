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

const takeFromSlab = (lengthBytes: number): Uint8Array => payloadSlab.take(lengthBytes);

/**
 * Copies WAL bytes `[start, end)` into a new payload; `start` 0 means the WAL header is included.
 * `allocate` gives the array to fill (every byte is written: its contents do not matter).
 */
export function encodePayload(wal: ByteSource, start: number, end: number, pageSize: number, allocate = takeFromSlab): Uint8Array {
  const hasHeader = start === 0;
  const frameBytes = WAL_FRAME_HEADER_BYTES + pageSize;
  const frames = (end - start - (hasHeader ? WAL_HEADER_BYTES : 0)) / frameBytes;
  const payload = allocate(PAYLOAD_HEADER_BYTES + end - start);
  const view = new DataView(payload.buffer, payload.byteOffset, PAYLOAD_HEADER_BYTES);
  view.setUint32(0, PAYLOAD_MAGIC);
  payload[4] = PAYLOAD_VERSION;
  payload[5] = hasHeader ? PAYLOAD_FLAG_WAL_HEADER : 0;
  payload[6] = 0;
  payload[7] = 0;
  view.setUint32(8, pageSize);
  view.setUint32(12, frames);
  wal.readInto(payload, PAYLOAD_HEADER_BYTES, start, end - start);
  return payload;
}

export interface DecodedPayload {
  readonly pageSize: number;
  readonly frames: number;
  readonly hasWalHeader: boolean;
  /** The bytes to append to the WAL: the optional header and the frames. */
  readonly walBytes: Uint8Array;
}

/** Checks the payload's own framing (not its fit with a replica). Throws EngineError. */
export function decodePayload(payload: Uint8Array): DecodedPayload {
  if (payload.length < PAYLOAD_HEADER_BYTES) {
    throw new EngineError('TRUNCATED', `transaction payload is ${payload.length} bytes, shorter than its ${PAYLOAD_HEADER_BYTES}-byte header`);
  }
  const magic = readUint32BigEndian(payload, 0);
  if (magic !== PAYLOAD_MAGIC) {
    throw new EngineError('BAD_PAYLOAD', `transaction payload has magic 0x${magic.toString(16)}, expected 0x${PAYLOAD_MAGIC.toString(16)}`);
  }
  if (payload[4] !== PAYLOAD_VERSION) {
    throw new EngineError('BAD_PAYLOAD', `transaction payload format version ${payload[4]} is not supported (expected ${PAYLOAD_VERSION})`);
  }
  const flags = payload[5]!;
  if ((flags & ~PAYLOAD_FLAG_WAL_HEADER) !== 0 || payload[6] !== 0 || payload[7] !== 0) {
    throw new EngineError('BAD_PAYLOAD', `transaction payload has unknown flags 0x${flags.toString(16)} or non-zero reserved bytes`);
  }
  const pageSize = readUint32BigEndian(payload, 8);
  if (!isValidPageSize(pageSize)) {
    throw new EngineError('PAGE_SIZE', `transaction payload declares page size ${pageSize}, not a power of two in 512..65536`);
  }
  const frames = readUint32BigEndian(payload, 12);
  if (frames < 1) throw new EngineError('BAD_PAYLOAD', 'transaction payload holds no frames');
  if (frames > PAYLOAD_FRAMES_MAX) {
    throw new EngineError('LIMIT', `transaction payload holds ${frames} frames, above the limit of ${PAYLOAD_FRAMES_MAX}`);
  }
  const hasWalHeader = (flags & PAYLOAD_FLAG_WAL_HEADER) !== 0;
  const expectedBytes = PAYLOAD_HEADER_BYTES + (hasWalHeader ? WAL_HEADER_BYTES : 0) + frames * (WAL_FRAME_HEADER_BYTES + pageSize);
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

/** Describes the first `sizeBytes` of a WAL held as `read(offset, length)`. */
export function describeReplicaWal(sizeBytes: number, pageSize: number, readUint32: (offset: number) => number, header: Uint8Array): ReplicaWal {
  if (sizeBytes < WAL_HEADER_BYTES) return { sizeBytes, header, endChecksum: { s1: 0, s2: 0 } };
  const frameBytes = WAL_FRAME_HEADER_BYTES + pageSize;
  const checksumOffset = sizeBytes === WAL_HEADER_BYTES ? 24 : sizeBytes - frameBytes + 16;
  return { sizeBytes, header, endChecksum: { s1: readUint32(checksumOffset), s2: readUint32(checksumOffset + 4) } };
}

/**
 * Checks that `decoded` continues the replica's WAL and that every frame is intact: page size,
 * WAL presence, salts, checksum chain, commit marker. Throws EngineError naming the problem;
 * reads but never modifies the replica.
 */
export function checkAppend(decoded: DecodedPayload, replicaPageSize: number, replica: ReplicaWal): void {
  const walSizeBytes = replica.sizeBytes;
  const { pageSize, frames, hasWalHeader, walBytes } = decoded;
  if (pageSize !== replicaPageSize) {
    throw new EngineError('PAGE_SIZE', `transaction has ${pageSize}-byte pages but this database uses ${replicaPageSize}-byte pages`);
  }
  const frameBytes = WAL_FRAME_HEADER_BYTES + pageSize;
  let headerSource: Uint8Array;
  let seed: WalChecksum;
  let offset: number;
  if (hasWalHeader) {
    if (walSizeBytes !== 0) {
      const existing = Math.max(0, Math.floor((walSizeBytes - WAL_HEADER_BYTES) / frameBytes));
      throw new EngineError('HAS_WAL', `transaction starts a new WAL but this replica's WAL already holds ${existing} frames (checkpoint missed?)`);
    }
    const problem = checkWalHeader(walBytes, 0);
    if (problem === 'checksum') throw new EngineError('WAL_CHECKSUM', 'the WAL header in the transaction fails its checksum');
    if (problem !== null) throw new EngineError('WAL_HEADER', `the WAL header in the transaction is invalid (${problem})`);
    const headerPageSize = walHeaderPageSize(decodeWalHeader(walBytes, 0));
    if (headerPageSize !== pageSize) {
      throw new EngineError('PAGE_SIZE', `the transaction's WAL header says ${headerPageSize}-byte pages, its payload says ${pageSize}`);
    }
    headerSource = walBytes;
    seed = { s1: readUint32BigEndian(walBytes, 24), s2: readUint32BigEndian(walBytes, 28) };
    offset = WAL_HEADER_BYTES;
  } else {
    if (walSizeBytes === 0) {
      throw new EngineError('NO_WAL', 'transaction continues a WAL that this replica does not have (its WAL is empty: missed the transaction that started it?)');
    }
    if (walSizeBytes < WAL_HEADER_BYTES || (walSizeBytes - WAL_HEADER_BYTES) % frameBytes !== 0) {
      throw new EngineError('WAL_HEADER', `this replica's WAL is ${walSizeBytes} bytes, not a header plus whole ${pageSize}-byte frames`);
    }
    headerSource = replica.header;
    seed = replica.endChecksum;
    offset = 0;
  }
  const magic = readUint32BigEndian(headerSource, 0);
  const salt1 = readUint32BigEndian(headerSource, 16) | 0;
  const salt2 = readUint32BigEndian(headerSource, 20) | 0;
  const bigEndianWords = isBigEndianChecksum(magic);
  const view = new DataView(walBytes.buffer, walBytes.byteOffset, walBytes.byteLength);
  const running = new RunningWalChecksum(seed);
  for (let i = 0; i < frames; i++, offset += frameBytes) {
    const pageNumber = view.getUint32(offset);
    const commitPageCount = view.getUint32(offset + 4);
    if (view.getInt32(offset + 8) !== salt1 || view.getInt32(offset + 12) !== salt2) {
      throw new EngineError('WAL_SALT', `frame ${i + 1} of ${frames} (page ${pageNumber}) carries salts of another WAL than this replica's`);
    }
    if (pageNumber === 0) throw new EngineError('BAD_PAYLOAD', `frame ${i + 1} of ${frames} names page 0`);
    const isLast = i === frames - 1;
    if (isLast ? commitPageCount === 0 : commitPageCount !== 0) {
      throw new EngineError('NO_COMMIT', `frame ${i + 1} of ${frames}: ${isLast ? 'the last frame is not a commit frame' : 'a commit marker before the last frame'}`);
    }
    running.addFrame(view, offset, pageSize, bigEndianWords);
    if (!running.matches(view, offset + 16)) {
      throw new EngineError('WAL_CHECKSUM', `frame ${i + 1} of ${frames} (page ${pageNumber}) fails its checksum`);
    }
  }
}

/**
 * The state machine's snapshot: every database's main file and WAL. Raft carries it opaquely
 * (the cluster configuration travels in Raft's own snapshot metadata).
 *
 * Layout (little-endian): magic "DQWS", u32 version, u32 database count, then per database:
 * u32 name length, name, u64 main length, main bytes, u64 wal length, wal bytes.
 */

export interface DatabaseFiles {
  name: string;
  main: Uint8Array;
  wal: Uint8Array;
}

/**
 * A file's bytes to encode: one array, or a frozen view of the engine's file (wasm/memory-file.ts),
 * which copies its bytes out on request. With `releaseBelow`, the encoding lets go of the bytes
 * it copied out as it goes (see encodeSnapshotInPieces).
 */
export type FileBytes = Uint8Array | FrozenFileBytes;

export interface FrozenFileBytes {
  readonly length: number;
  /** Copies `length` bytes from `offset` (within the first `this.length`) into `target` at `targetOffset`. */
  readInto(target: Uint8Array, targetOffset: number, offset: number, length: number): void;
  /** The bytes below `offset` were copied out: they are not read again. */
  releaseBelow?(offset: number): void;
}

/** A database's files to encode into a snapshot. */
export interface DatabaseFilesToEncode {
  name: string;
  main: FileBytes;
  wal: FileBytes;
}

/** Copies `length` bytes of `bytes` from `offset` into `target` at `targetOffset`. */
function copyOut(bytes: FileBytes, target: Uint8Array, targetOffset: number, offset: number, length: number): void {
  if (bytes instanceof Uint8Array) target.set(bytes.subarray(offset, offset + length), targetOffset);
  else bytes.readInto(target, targetOffset, offset, length);
}

export class SnapshotCodecError extends Error {
  readonly code = 'BAD_SNAPSHOT';
  constructor(message: string) {
    super(`state snapshot: ${message}`);
    this.name = 'SnapshotCodecError';
  }
}

const MAGIC = 0x53575144; // "DQWS" read as a little-endian u32
const VERSION = 1;
export const SNAPSHOT_DATABASES_MAX = 4096;
const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeSnapshot(databases: readonly DatabaseFilesToEncode[]): Uint8Array {
  const bytes = new Uint8Array(snapshotEncodedBytes(databases));
  let offset = 0;
  for (const part of snapshotEncodingParts(databases)) {
    copyOut(part, bytes, offset, 0, part.length);
    offset += part.length;
  }
  return bytes;
}

/** Bytes encoded between two pauses of encodeSnapshotInPieces. */
export const SNAPSHOT_ENCODE_SLICE_BYTES = 4 * 1024 * 1024;

/** Bytes of the encoding of `databases` (the length of what `encodeSnapshot` returns), without encoding them. */
export function snapshotEncodedBytes(databases: readonly DatabaseFilesToEncode[]): number {
  let size = 12;
  for (const d of databases) size += 4 + utf8Encoder.encode(d.name).length + 8 + d.main.length + 8 + d.wal.length;
  return size;
}

/**
 * The encoding of `databases` as consecutive parts, copying nothing: small arrays for the
 * headers, and the files' own bytes. Concatenated, they are the bytes `encodeSnapshot` returns.
 */
function* snapshotEncodingParts(databases: readonly DatabaseFilesToEncode[]): Generator<FileBytes> {
  const header = new Uint8Array(12);
  const view = new DataView(header.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, VERSION, true);
  view.setUint32(8, databases.length, true);
  yield header;
  for (const d of databases) {
    const name = utf8Encoder.encode(d.name);
    const before = new Uint8Array(4 + name.length + 8);
    const beforeView = new DataView(before.buffer);
    beforeView.setUint32(0, name.length, true);
    before.set(name, 4);
    beforeView.setBigUint64(4 + name.length, BigInt(d.main.length), true);
    yield before;
    yield d.main;
    const walLength = new Uint8Array(8);
    new DataView(walLength.buffer).setBigUint64(0, BigInt(d.wal.length), true);
    yield walLength;
    yield d.wal;
  }
}

/**
 * Encodes `databases` a piece at a time into `piece` (reused for every piece): `write` gets each
 * full piece, then the last, shorter one, and must be done with it when its promise resolves.
 * `pause()` runs after every `sliceBytes` encoded. Returns the bytes encoded: what the node holds
 * of the encoding at any time is one piece, whatever the databases' size. A frozen file's bytes
 * are released (`releaseBelow`) as soon as they are in the piece, before its write: writes to the
 * database meanwhile then save nothing for them.
 */
export async function encodeSnapshotInPieces(
  databases: readonly DatabaseFilesToEncode[],
  piece: Uint8Array,
  write: (piece: Uint8Array) => Promise<void>,
  pause: () => Promise<void>,
  sliceBytes = SNAPSHOT_ENCODE_SLICE_BYTES,
): Promise<number> {
  if (piece.length === 0) throw new RangeError('the piece to encode into must not be empty');
  if (!(sliceBytes > 0)) throw new RangeError(`sliceBytes must be positive, got ${sliceBytes}`);
  let filled = 0;
  let total = 0;
  let sincePause = 0;
  for (const part of snapshotEncodingParts(databases)) {
    const release = part instanceof Uint8Array ? undefined : part.releaseBelow?.bind(part);
    let offset = 0;
    while (offset < part.length) {
      const n = Math.min(part.length - offset, piece.length - filled);
      copyOut(part, piece, filled, offset, n);
      filled += n;
      offset += n;
      if (filled === piece.length) {
        release?.(offset);
        await write(piece);
        total += filled;
        sincePause += filled;
        filled = 0;
        if (sincePause >= sliceBytes) {
          sincePause = 0;
          await pause();
        }
      }
    }
    release?.(part.length);
  }
  if (filled > 0) {
    await write(piece.subarray(0, filled));
    total += filled;
  }
  return total;
}

export function decodeSnapshot(bytes: Uint8Array): DatabaseFiles[] {
  if (bytes.length === 0) return [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const need = (offset: number, length: number, what: string): void => {
    if (offset + length > bytes.length) throw new SnapshotCodecError(`truncated at ${what} (offset ${offset})`);
  };
  need(0, 12, 'header');
  if (view.getUint32(0, true) !== MAGIC) throw new SnapshotCodecError('bad magic: not a dqlite-wasm snapshot');
  const version = view.getUint32(4, true);
  if (version !== VERSION) throw new SnapshotCodecError(`unknown version ${version}`);
  const count = view.getUint32(8, true);
  if (count > SNAPSHOT_DATABASES_MAX) throw new SnapshotCodecError(`${count} databases exceeds ${SNAPSHOT_DATABASES_MAX}`);
  const databases: DatabaseFiles[] = [];
  let offset = 12;
  for (let i = 0; i < count; i++) {
    need(offset, 4, 'name length');
    const nameLength = view.getUint32(offset, true);
    need(offset + 4, nameLength, 'name');
    let name: string;
    try {
      name = utf8Decoder.decode(bytes.subarray(offset + 4, offset + 4 + nameLength));
    } catch {
      throw new SnapshotCodecError('database name is not valid UTF-8');
    }
    offset += 4 + nameLength;
    const files: Uint8Array[] = [];
    for (const what of ['main file', 'WAL']) {
      need(offset, 8, `${what} length`);
      const length = view.getBigUint64(offset, true);
      if (length > BigInt(bytes.length - offset - 8)) throw new SnapshotCodecError(`truncated ${what} of ${name}`);
      const n = Number(length);
      // Views: the engine copies them into its own files, and a copy here would double the peak.
      files.push(bytes.subarray(offset + 8, offset + 8 + n));
      offset += 8 + n;
    }
    databases.push({ name, main: files[0]!, wal: files[1]! });
  }
  if (offset !== bytes.length) throw new SnapshotCodecError(`${bytes.length - offset} trailing bytes`);
  return databases;
}

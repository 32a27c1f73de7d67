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
 * A file's bytes to encode: one array, or the chunks of a frozen view of the engine's file
 * (wasm/memory-file.ts), of which the first `length` bytes count.
 */
export type FileBytes = Uint8Array | { readonly length: number; readonly chunks: readonly Uint8Array[] };

/** A database's files to encode into a snapshot. */
export interface DatabaseFilesToEncode {
  name: string;
  main: FileBytes;
  wal: FileBytes;
}

/** The bytes of `file` as consecutive views of at most `sliceBytes` each. */
function* pieces(file: FileBytes, sliceBytes: number): Generator<Uint8Array> {
  const arrays = file instanceof Uint8Array ? [file] : file.chunks;
  let left = file.length;
  for (const array of arrays) {
    if (left <= 0) return;
    const n = Math.min(left, array.length);
    for (let offset = 0; offset < n; offset += sliceBytes) yield array.subarray(offset, Math.min(n, offset + sliceBytes));
    left -= n;
  }
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
  const { bytes, copies } = layOut(databases);
  for (const { at, file } of copies) {
    let offset = at;
    for (const piece of pieces(file, SNAPSHOT_ENCODE_SLICE_BYTES)) {
      bytes.set(piece, offset);
      offset += piece.length;
    }
  }
  return bytes;
}

/** Bytes copied between two pauses of `encodeSnapshotGradually`. */
export const SNAPSHOT_ENCODE_SLICE_BYTES = 4 * 1024 * 1024;

/**
 * The same bytes as `encodeSnapshot`, copied a slice at a time with `pause()` between slices,
 * so that encoding a large snapshot never holds the thread for long. With `prefixBytes`, the
 * result has that many bytes before the snapshot (left zero, for a file header: the snapshot
 * then goes to disk without another copy).
 */
export async function encodeSnapshotGradually(
  databases: readonly DatabaseFilesToEncode[],
  pause: () => Promise<void>,
  sliceBytes = SNAPSHOT_ENCODE_SLICE_BYTES,
  prefixBytes = 0,
): Promise<Uint8Array> {
  const { bytes, copies } = layOut(databases, prefixBytes);
  let sincePause = 0;
  for (const { at, file } of copies) {
    let offset = at;
    for (const piece of pieces(file, sliceBytes)) {
      bytes.set(piece, offset);
      offset += piece.length;
      sincePause += piece.length;
      if (sincePause >= sliceBytes) {
        sincePause = 0;
        await pause();
      }
    }
  }
  return bytes;
}

/** The encoded snapshot (after `prefixBytes`) with every header written, and where each file's bytes go. */
function layOut(databases: readonly DatabaseFilesToEncode[], prefixBytes = 0): { bytes: Uint8Array; copies: { at: number; file: FileBytes }[] } {
  const names = databases.map((d) => utf8Encoder.encode(d.name));
  let size = 12;
  databases.forEach((d, i) => {
    size += 4 + names[i]!.length + 8 + d.main.length + 8 + d.wal.length;
  });
  const whole = new Uint8Array(prefixBytes + size);
  const bytes = whole.subarray(prefixBytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, VERSION, true);
  view.setUint32(8, databases.length, true);
  const copies: { at: number; file: FileBytes }[] = [];
  let offset = 12;
  databases.forEach((d, i) => {
    const name = names[i]!;
    view.setUint32(offset, name.length, true);
    bytes.set(name, offset + 4);
    offset += 4 + name.length;
    for (const file of [d.main, d.wal]) {
      view.setBigUint64(offset, BigInt(file.length), true);
      copies.push({ at: prefixBytes + offset + 8, file });
      offset += 8 + file.length;
    }
  });
  return { bytes: whole, copies };
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

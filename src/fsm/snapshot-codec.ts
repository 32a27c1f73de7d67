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

export function encodeSnapshot(databases: readonly DatabaseFiles[]): Uint8Array {
  const { bytes, copies } = layOut(databases);
  for (const { at, file } of copies) bytes.set(file, at);
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
  databases: readonly DatabaseFiles[],
  pause: () => Promise<void>,
  sliceBytes = SNAPSHOT_ENCODE_SLICE_BYTES,
  prefixBytes = 0,
): Promise<Uint8Array> {
  const { bytes, copies } = layOut(databases, prefixBytes);
  for (const { at, file } of copies) {
    for (let offset = 0; offset < file.length; offset += sliceBytes) {
      bytes.set(file.subarray(offset, Math.min(file.length, offset + sliceBytes)), at + offset);
      await pause();
    }
  }
  return bytes;
}

/** The encoded snapshot (after `prefixBytes`) with every header written, and where each file's bytes go. */
function layOut(databases: readonly DatabaseFiles[], prefixBytes = 0): { bytes: Uint8Array; copies: { at: number; file: Uint8Array }[] } {
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
  const copies: { at: number; file: Uint8Array }[] = [];
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

/**
 * A snapshot encoded a piece at a time, from the files' own chunks (as the frozen views of the
 * engine's files give them), is the same bytes as the whole-buffer encoding, with the same
 * checksum, and every piece goes through one buffer of the piece size.
 */
import { describe, expect, it } from 'vitest';
import {
  decodeSnapshot,
  encodeSnapshot,
  encodeSnapshotInPieces,
  snapshotEncodedBytes,
  type DatabaseFilesToEncode,
  type FileBytes,
} from '../../src/fsm/snapshot-codec.ts';
import { decodeSnapshotFile, encodeSnapshotFile, encodeSnapshotFileHeader } from '../../src/server/raft-log-format.ts';
import { crc32 } from '../../src/util/crc32.ts';
import { concatBytes } from '../../src/util/bytes.ts';
import { CHUNK_BYTES, GRANULE_BYTES, MemoryFile } from '../../wasm/memory-file.ts';

/** `bytes` as a frozen view gives them: copied out on request, released as the encoding goes, never read below what it released. */
function frozenLike(bytes: Uint8Array): FileBytes {
  let releasedBelow = 0;
  return {
    length: bytes.length,
    readInto(target, targetOffset, offset, length) {
      expect(offset).toBeGreaterThanOrEqual(releasedBelow);
      expect(offset + length).toBeLessThanOrEqual(bytes.length);
      target.set(bytes.subarray(offset, offset + length), targetOffset);
    },
    releaseBelow(offset) {
      expect(offset).toBeGreaterThanOrEqual(releasedBelow);
      releasedBelow = offset;
    },
  };
}

const main = new Uint8Array(5000).map((_, i) => (i * 31) & 0xff);
const wal = new Uint8Array(3001).map((_, i) => (i * 7) & 0xff);
const whole = [
  { name: 'app', main, wal },
  { name: 'émoji-db', main: new Uint8Array(1).fill(9), wal: new Uint8Array(0) },
  { name: 'empty', main: new Uint8Array(0), wal: new Uint8Array(0) },
];
const asViews = (): DatabaseFilesToEncode[] => whole.map((d) => ({ name: d.name, main: frozenLike(d.main), wal: frozenLike(d.wal) }));
const meta = { index: 42, term: 3, configuration: { members: [{ id: 1, address: '127.0.0.1:9001', role: 'voter' as const }] } };

async function inPieces(databases: readonly DatabaseFilesToEncode[], pieceBytes: number): Promise<{ bytes: Uint8Array; sizes: number[]; buffers: Set<ArrayBufferLike>; pauses: number }> {
  const written: Uint8Array[] = [];
  const sizes: number[] = [];
  const buffers = new Set<ArrayBufferLike>();
  let pauses = 0;
  const total = await encodeSnapshotInPieces(
    databases,
    new Uint8Array(pieceBytes),
    async (piece) => {
      sizes.push(piece.length);
      buffers.add(piece.buffer);
      written.push(piece.slice());
    },
    async () => void pauses++,
    2048,
  );
  const bytes = concatBytes(written);
  expect(total).toBe(bytes.length);
  return { bytes, sizes, buffers, pauses };
}

describe('a snapshot encoded in pieces', () => {
  it('is the whole-buffer encoding, whatever the piece size, from frozen views or whole arrays', async () => {
    const expected = encodeSnapshot(whole);
    expect(snapshotEncodedBytes(asViews())).toBe(expected.length);
    expect(encodeSnapshot(asViews())).toEqual(expected);
    for (const pieceBytes of [1, 7, 512, 1024, 4096, expected.length, expected.length + 100]) {
      for (const databases of [whole, asViews()]) {
        const { bytes, sizes, buffers } = await inPieces(databases, pieceBytes);
        expect(bytes).toEqual(expected);
        // Every piece but the last is full, and all are views of the one buffer.
        expect(sizes.slice(0, -1).every((size) => size === pieceBytes)).toBe(true);
        expect(sizes[sizes.length - 1]).toBeGreaterThan(0);
        expect(sizes[sizes.length - 1]).toBeLessThanOrEqual(pieceBytes);
        expect(buffers.size).toBe(1);
      }
    }
    expect(decodeSnapshot(expected)).toEqual(whole);
  });

  it('pauses between slices', async () => {
    const expected = encodeSnapshot(whole);
    const { pauses } = await inPieces(asViews(), 512);
    expect(pauses).toBeGreaterThanOrEqual(Math.floor(expected.length / 2048) - 1);
  });

  it('behind its file header, is the file the whole-buffer encoding gives, and reads back', async () => {
    const data = encodeSnapshot(whole);
    const { bytes } = await inPieces(asViews(), 1000);
    const file = concatBytes([encodeSnapshotFileHeader(meta, crc32(bytes)), bytes]);
    expect(file).toEqual(encodeSnapshotFile({ meta, data }));
    const decoded = decodeSnapshotFile(file);
    if (typeof decoded === 'string') throw new Error(decoded);
    expect(decoded.meta).toEqual(meta);
    expect(decodeSnapshot(decoded.data)).toEqual(whole);
  });

  it('from a frozen engine file written meanwhile, is the frozen bytes; bytes are released once in a piece, not before', async () => {
    const file = new MemoryFile(64 * CHUNK_BYTES, new Uint8Array(4 * CHUNK_BYTES).map((_, i) => i % 253));
    const before = file.copy();
    const frozen = file.freeze();
    const expected = encodeSnapshot([{ name: 'app', main: before, wal: new Uint8Array(0) }]);
    const written: Uint8Array[] = [];
    await encodeSnapshotInPieces(
      [{ name: 'app', main: frozen, wal: new Uint8Array(0) }],
      new Uint8Array(CHUNK_BYTES / 2),
      async (piece) => {
        if (written.length === 0) {
          // A write to the last chunk, which the encoding has not reached: its old bytes are saved.
          file.write(new Uint8Array([0xaa]), 3 * CHUNK_BYTES + 7);
          expect(frozen.savedBytes).toBe(GRANULE_BYTES);
          // A write to bytes already in this piece: released, nothing saved.
          file.write(new Uint8Array([0xbb]), 7);
          expect(frozen.savedBytes).toBe(GRANULE_BYTES);
        }
        written.push(piece.slice());
      },
      async () => {},
    );
    expect(concatBytes(written)).toEqual(expected);
    // Encoded to the end, the view shares nothing: writes save nothing, and its blocks are gone.
    expect(frozen.heldBytes).toBe(0);
    file.write(new Uint8Array([0xcc]), 2 * CHUNK_BYTES);
    expect(frozen.savedBytes).toBe(0);
    expect(file.slice(0, 8)[7]).toBe(0xbb);
    frozen.release();
  });

  it('a damaged byte in the data is caught by the file checksum', () => {
    const file = encodeSnapshotFile({ meta, data: encodeSnapshot(whole) });
    file[file.length - 10]! ^= 1;
    expect(decodeSnapshotFile(file)).toMatch(/data fails its checksum/);
  });
});

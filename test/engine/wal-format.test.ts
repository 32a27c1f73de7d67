import { describe, expect, it } from 'vitest';
import { Engine } from '../../wasm/index.ts';
import {
  WAL_FORMAT_VERSION,
  WAL_FRAME_HEADER_BYTES,
  WAL_HEADER_BYTES,
  WAL_MAGIC_BIG_ENDIAN,
  WAL_MAGIC_LITTLE_ENDIAN,
  checkWalHeader,
  decodeWalFrameHeader,
  decodeWalHeader,
  encodeWalFrame,
  encodeWalHeader,
  isBigEndianChecksum,
  walChecksum,
  walFrameChecksum,
  walFrameCount,
  walFrameOffset,
  walHeaderPageSize,
  type WalChecksum,
} from '../../wasm/wal-format.ts';

/** SQLite's checksum written out independently of the module under test (one word at a time). */
function referenceChecksum(bytes: Uint8Array, bigEndian: boolean, seed: WalChecksum): WalChecksum {
  let s1 = seed.s1;
  let s2 = seed.s2;
  const word = (i: number) =>
    bigEndian
      ? bytes[i]! * 0x1000000 + bytes[i + 1]! * 0x10000 + bytes[i + 2]! * 0x100 + bytes[i + 3]!
      : bytes[i + 3]! * 0x1000000 + bytes[i + 2]! * 0x10000 + bytes[i + 1]! * 0x100 + bytes[i]!;
  for (let i = 0; i < bytes.length; i += 8) {
    s1 = (s1 + word(i) + s2) % 2 ** 32;
    s2 = (s2 + word(i + 4) + s1) % 2 ** 32;
  }
  return { s1, s2 };
}

function pseudoRandomBytes(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

describe('WAL checksum', () => {
  it('matches known answers in both byte orders', () => {
    const bytes = new Uint8Array([1, 0, 0, 0, 2, 0, 0, 0]);
    expect(walChecksum(bytes, 0, 8, false, { s1: 0, s2: 0 })).toEqual({ s1: 1, s2: 3 });
    expect(walChecksum(bytes, 0, 8, true, { s1: 0, s2: 0 })).toEqual({ s1: 0x01000000, s2: 0x03000000 });
  });

  it('wraps at 32 bits and continues from a seed', () => {
    const bytes = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    const seed = { s1: 0xfffffff0, s2: 0x12345678 };
    expect(walChecksum(bytes, 0, 8, true, seed)).toEqual(referenceChecksum(bytes, true, seed));
    expect(walChecksum(bytes, 0, 8, false, seed)).toEqual(referenceChecksum(bytes, false, seed));
  });

  it('agrees with the reference on random pages, aligned and unaligned, both orders', () => {
    for (const seed of [1, 2, 3]) {
      const page = pseudoRandomBytes(4096, seed);
      const unaligned = new Uint8Array(4096 + 3).subarray(3);
      unaligned.set(page);
      for (const bigEndian of [false, true]) {
        const expected = referenceChecksum(page, bigEndian, { s1: seed, s2: seed * 7 });
        expect(walChecksum(page, 0, 4096, bigEndian, { s1: seed, s2: seed * 7 })).toEqual(expected);
        expect(walChecksum(unaligned, 0, 4096, bigEndian, { s1: seed, s2: seed * 7 })).toEqual(expected);
      }
    }
  });

  it('computes frame checksums (header words, then page) like the two-step reference, aligned or not', () => {
    for (const bigEndian of [false, true]) {
      const frame = pseudoRandomBytes(24 + 1024, bigEndian ? 5 : 6);
      const seed = { s1: 0xfffffff0, s2: 0x80000001 };
      const expected = referenceChecksum(frame.subarray(24), bigEndian, referenceChecksum(frame.subarray(0, 8), bigEndian, seed));
      expect(walFrameChecksum(frame, 0, 1024, bigEndian, seed)).toEqual(expected);
      const unaligned = new Uint8Array(frame.length + 1).subarray(1);
      unaligned.set(frame);
      expect(walFrameChecksum(unaligned, 0, 1024, bigEndian, seed)).toEqual(expected);
    }
  });

  it('agrees with the reference for every kind of length: short, long, a multiple of 32 or not', () => {
    const bytes = pseudoRandomBytes(65536 + 40, 9);
    for (const length of [8, 24, 32, 248, 256, 264, 288, 512, 1000, 1024, 1056, 4096, 4104, 8192, 65536]) {
      for (const offset of [0, 8, 3]) {
        for (const bigEndian of [false, true]) {
          const seed = { s1: (length * 2654435761) >>> 0, s2: 0xfffffff7 };
          const expected = referenceChecksum(bytes.subarray(offset, offset + length), bigEndian, seed);
          expect(walChecksum(bytes, offset, length, bigEndian, seed), `length ${length} at ${offset}`).toEqual(expected);
        }
      }
    }
  });

  it('computes frame checksums like the reference for every page size, seeds that wrap, aligned or not', () => {
    // Little-endian pages go through the WebAssembly kernel (four lanes joined by a matrix power),
    // big-endian ones through the loop: both must be SQLite's checksum, for every lane length.
    for (let pageSize = 512; pageSize <= 65536; pageSize *= 2) {
      for (const bigEndian of [false, true]) {
        const frame = pseudoRandomBytes(24 + pageSize, pageSize + (bigEndian ? 1 : 0));
        for (const seed of [{ s1: 0, s2: 0 }, { s1: 0xffffffff, s2: 0xfffffffe }, { s1: pageSize * 2654435761 >>> 0, s2: 0x80000000 }]) {
          const expected = referenceChecksum(frame.subarray(24), bigEndian, referenceChecksum(frame.subarray(0, 8), bigEndian, seed));
          expect(walFrameChecksum(frame, 0, pageSize, bigEndian, seed), `${pageSize}-byte page`).toEqual(expected);
          const unaligned = new Uint8Array(frame.length + 5).subarray(5);
          unaligned.set(frame);
          expect(walFrameChecksum(unaligned, 0, pageSize, bigEndian, seed), `${pageSize}-byte page, unaligned`).toEqual(expected);
        }
      }
    }
  });

  it('refuses lengths that are not a multiple of 8 and ranges outside the buffer', () => {
    expect(() => walChecksum(new Uint8Array(12), 0, 12, false, { s1: 0, s2: 0 })).toThrow(RangeError);
    expect(() => walChecksum(new Uint8Array(8), 4, 8, false, { s1: 0, s2: 0 })).toThrow(RangeError);
  });
});

describe('WAL header', () => {
  for (const magic of [WAL_MAGIC_LITTLE_ENDIAN, WAL_MAGIC_BIG_ENDIAN]) {
    it(`round-trips and self-checks with magic 0x${magic.toString(16)}`, () => {
      const fields = { magic, formatVersion: WAL_FORMAT_VERSION, pageSize: 4096, checkpointSequence: 7, salt1: 0xdeadbeef, salt2: 0x01020304 };
      const bytes = encodeWalHeader(fields);
      expect(bytes.length).toBe(WAL_HEADER_BYTES);
      const decoded = decodeWalHeader(bytes);
      expect(decoded).toMatchObject(fields);
      expect(isBigEndianChecksum(decoded.magic)).toBe(magic === WAL_MAGIC_BIG_ENDIAN);
      expect({ s1: decoded.checksum1, s2: decoded.checksum2 }).toEqual(
        referenceChecksum(bytes.subarray(0, 24), magic === WAL_MAGIC_BIG_ENDIAN, { s1: 0, s2: 0 }),
      );
      expect(checkWalHeader(bytes)).toBeNull();
      const corrupt = bytes.slice();
      corrupt[20] ^= 1;
      expect(checkWalHeader(corrupt)).toBe('checksum');
    });
  }

  it('stores 65536-byte pages as 1 and names bad fields', () => {
    const bytes = encodeWalHeader({ magic: WAL_MAGIC_LITTLE_ENDIAN, formatVersion: WAL_FORMAT_VERSION, pageSize: 65536, checkpointSequence: 0, salt1: 1, salt2: 2 });
    expect(decodeWalHeader(bytes).pageSize).toBe(1);
    expect(walHeaderPageSize(decodeWalHeader(bytes))).toBe(65536);
    const badMagic = encodeWalHeader({ magic: 0x12345678, formatVersion: WAL_FORMAT_VERSION, pageSize: 4096, checkpointSequence: 0, salt1: 1, salt2: 2 });
    expect(checkWalHeader(badMagic)).toBe('magic');
    const badVersion = encodeWalHeader({ magic: WAL_MAGIC_LITTLE_ENDIAN, formatVersion: 1, pageSize: 4096, checkpointSequence: 0, salt1: 1, salt2: 2 });
    expect(checkWalHeader(badVersion)).toBe('version');
    const badPage = encodeWalHeader({ magic: WAL_MAGIC_LITTLE_ENDIAN, formatVersion: WAL_FORMAT_VERSION, pageSize: 1000, checkpointSequence: 0, salt1: 1, salt2: 2 });
    expect(checkWalHeader(badPage)).toBe('page-size');
    expect(() => decodeWalHeader(new Uint8Array(31))).toThrow(RangeError);
  });
});

describe('WAL frames', () => {
  it('encodes a checksum chain that continues from the header, in both orders', () => {
    for (const magic of [WAL_MAGIC_LITTLE_ENDIAN, WAL_MAGIC_BIG_ENDIAN]) {
      const header = encodeWalHeader({ magic, formatVersion: WAL_FORMAT_VERSION, pageSize: 512, checkpointSequence: 0, salt1: 5, salt2: 6 });
      const h = decodeWalHeader(header);
      const bigEndian = isBigEndianChecksum(magic);
      let running: WalChecksum = { s1: h.checksum1, s2: h.checksum2 };
      for (let i = 0; i < 3; i++) {
        const page = pseudoRandomBytes(512, 10 + i);
        const frame = encodeWalFrame({ pageNumber: i + 1, commitPageCount: i === 2 ? 3 : 0, salt1: 5, salt2: 6 }, page, bigEndian, running);
        const expected = referenceChecksum(page, bigEndian, referenceChecksum(frame.bytes.subarray(0, 8), bigEndian, running));
        expect(frame.checksum).toEqual(expected);
        const decoded = decodeWalFrameHeader(frame.bytes, 0);
        expect(decoded).toEqual({ pageNumber: i + 1, commitPageCount: i === 2 ? 3 : 0, salt1: 5, salt2: 6, checksum1: expected.s1, checksum2: expected.s2 });
        running = frame.checksum;
      }
    }
  });

  it('computes frame offsets and counts', () => {
    expect(walFrameOffset(0, 4096)).toBe(32);
    expect(walFrameOffset(2, 4096)).toBe(32 + 2 * (WAL_FRAME_HEADER_BYTES + 4096));
    expect(walFrameCount(0, 4096)).toBe(0);
    expect(walFrameCount(32, 4096)).toBe(0);
    expect(walFrameCount(32 + 3 * 4120, 4096)).toBe(3);
  });

  it('validates a WAL written by SQLite itself: header and every frame checksum', async () => {
    const engine = await Engine.create();
    const db = engine.open('format');
    for (const sql of ['CREATE TABLE t(x)', "INSERT INTO t VALUES(randomblob(9000))", 'INSERT INTO t VALUES(1)']) {
      const statement = db.prepare(sql)!;
      statement.step();
      statement.finalize();
    }
    const wal = db.files().wal;
    expect(checkWalHeader(wal)).toBeNull();
    const header = decodeWalHeader(wal);
    expect(header.magic).toBe(WAL_MAGIC_LITTLE_ENDIAN);
    expect(walHeaderPageSize(header)).toBe(4096);
    let running: WalChecksum = { s1: header.checksum1, s2: header.checksum2 };
    const frames = walFrameCount(wal.length, 4096);
    expect(frames).toBeGreaterThanOrEqual(4);
    let commits = 0;
    for (let i = 0; i < frames; i++) {
      const offset = walFrameOffset(i, 4096);
      const frame = decodeWalFrameHeader(wal, offset);
      expect([frame.salt1, frame.salt2]).toEqual([header.salt1, header.salt2]);
      running = walChecksum(wal, offset, 8, false, running);
      running = walChecksum(wal, offset + WAL_FRAME_HEADER_BYTES, 4096, false, running);
      expect([frame.checksum1, frame.checksum2]).toEqual([running.s1, running.s2]);
      if (frame.commitPageCount !== 0) commits++;
    }
    expect(commits).toBe(3);
    db.close();
  });
});

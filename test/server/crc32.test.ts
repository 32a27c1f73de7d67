import fc from 'fast-check';
import { afterEach, describe, expect, test } from 'vitest';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { crc32, crc32Update, useNativeCrc32 } from '../../src/util/crc32.ts';

const reference = (bytes: Uint8Array): number => {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? 0xedb88320 ^ (crc >>> 1) : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
};

describe('crc32', () => {
  test('known vectors', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    expect(crc32(new TextEncoder().encode('The quick brown fox jumps over the lazy dog'))).toBe(0x414fa339);
  });

  test('matches a bitwise CRC-32 on any bytes and any sub-range', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.nat(), (bytes, a, b) => {
        const start = bytes.length === 0 ? 0 : a % bytes.length;
        const end = start + (bytes.length === 0 ? 0 : b % (bytes.length - start + 1));
        expect(crc32(bytes, start, end)).toBe(reference(bytes.subarray(start, end)));
      }),
    );
  });

  test('over pieces one after the other, the same as over the whole', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat(), { maxLength: 5 }), (bytes, cuts) => {
        const points = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)))].sort((x, y) => x - y);
        let crc = 0;
        let from = 0;
        for (const point of [...points, bytes.length]) {
          crc = crc32Update(crc, bytes.subarray(from, point));
          from = Math.max(from, point);
        }
        expect(crc).toBe(reference(bytes));
      }),
    );
  });

  describe('with a native implementation', () => {
    const calls: number[] = [];
    const counted = (bytes: Uint8Array, previous: number): number => {
      calls.push(bytes.length);
      return zlibCrc32(bytes, previous);
    };
    // A wrong implementation is refused, which also puts the tables back for the other tests.
    afterEach(() => expect(useNativeCrc32(() => 0)).toBe(false));

    test('is used for long ranges, agreeing with the bitwise CRC-32, and short ones keep the tables', () => {
      expect(useNativeCrc32(counted)).toBe(true);
      calls.length = 0;
      fc.assert(
        fc.property(fc.uint8Array({ minLength: 1, maxLength: 3000, size: 'max' }), fc.nat(), fc.nat(), fc.nat(), (bytes, a, b, p) => {
          const start = a % bytes.length;
          const end = start + (b % (bytes.length - start + 1));
          const previous = p % 2 === 0 ? 0 : reference(bytes.subarray(0, start));
          const expected = previous === 0 ? reference(bytes.subarray(start, end)) : reference(bytes.subarray(0, end));
          expect(previous === 0 ? crc32(bytes, start, end) : crc32Update(previous, bytes, start, end)).toBe(expected);
        }),
      );
      const record = new Uint8Array(10 * 1024).map((_, i) => (i * 31) & 0xff);
      expect(crc32(record, 8)).toBe(reference(record.subarray(8)));
      expect(calls.length).toBeGreaterThan(1);
      expect(Math.min(...calls)).toBeGreaterThanOrEqual(256);
    });

    test('one that disagrees on the check values is refused and never called for a checksum', () => {
      const wrong = (bytes: Uint8Array, previous: number): number => (zlibCrc32(bytes, previous) ^ 1) >>> 0;
      expect(useNativeCrc32(wrong)).toBe(false);
      const bytes = new Uint8Array(4096).fill(7);
      expect(crc32(bytes)).toBe(reference(bytes));
    });
  });
});

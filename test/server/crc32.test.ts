import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { crc32, crc32Update } from '../../src/util/crc32.ts';

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
});

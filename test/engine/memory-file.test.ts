import { describe, expect, it } from 'vitest';
import { CHUNK_BYTES, MemoryFile } from '../../wasm/memory-file.ts';
import { EngineError } from '../../wasm/index.ts';
import { Random, bytesEqual } from './helpers.ts';

describe('MemoryFile', () => {
  it('matches a plain byte-array model through random writes, reads and truncations across chunk boundaries', () => {
    const random = new Random(7);
    const limit = 4 * CHUNK_BYTES;
    const file = new MemoryFile(limit);
    let model = new Uint8Array(0);
    for (let op = 0; op < 400; op++) {
      const kind = random.int(3);
      if (kind === 0) {
        // Writes cluster around chunk boundaries, where the splitting logic lives.
        const boundary = CHUNK_BYTES * (1 + random.int(2));
        const offset = Math.max(0, boundary - 5000 + random.int(10000));
        const data = random.bytes(1 + random.int(9000));
        file.write(data, offset);
        const end = offset + data.length;
        if (end > model.length) {
          const grown = new Uint8Array(end);
          grown.set(model);
          model = grown;
        }
        model.set(data, offset);
      } else if (kind === 1 && model.length > 0) {
        const size = random.int(model.length + 20000);
        file.truncate(size);
        const resized = new Uint8Array(size);
        resized.set(model.subarray(0, Math.min(size, model.length)));
        model = resized;
      } else if (model.length > 0) {
        const offset = random.int(model.length);
        const length = random.int(model.length - offset);
        const target = new Uint8Array(length + 3);
        file.readInto(target, 3, offset, length);
        expect(bytesEqual(target.subarray(3), model.subarray(offset, offset + length))).toBe(true);
        if (offset + 4 <= model.length) {
          const expected = new DataView(model.buffer, offset, 4).getUint32(0);
          expect(file.uint32(offset)).toBe(expected);
        }
      }
      expect(file.size).toBe(model.length);
    }
    expect(bytesEqual(file.copy(), model)).toBe(true);
    const joined = new Uint8Array(file.size);
    let at = 0;
    for (const view of file.views()) {
      joined.set(view, at);
      at += view.length;
    }
    expect(bytesEqual(joined, model)).toBe(true);
  });

  it('reads zeros where a truncated region regrows and where a write leaves a gap', () => {
    const file = new MemoryFile(CHUNK_BYTES * 2);
    file.write(new Uint8Array(100).fill(7), 0);
    file.truncate(10);
    file.truncate(50);
    expect(file.slice(0, 50)).toEqual(new Uint8Array(50).fill(7, 0, 10));
    file.truncate(10);
    file.write(new Uint8Array([1]), 60);
    expect(file.slice(0, 61)).toEqual(Object.assign(new Uint8Array(61).fill(7, 0, 10), { 60: 1 }));
  });

  it('refuses to grow past its limit with a clear error', () => {
    const file = new MemoryFile(1000);
    expect(file.reserve(1001)).toBe(false);
    expect(() => file.write(new Uint8Array(10), 995)).toThrow(EngineError);
    expect(() => file.truncate(2000)).toThrow(/limit/);
    expect(() => new MemoryFile(0)).toThrow(EngineError);
  });
});

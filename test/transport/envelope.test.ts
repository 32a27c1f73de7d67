import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  constantTimeEqual,
  decodeFrame,
  encodeData,
  encodeHello,
  writeDataHeader,
  DATA_HEADER_BYTES,
  HELLO_KEY_BYTES_MAX,
} from '../../src/transport/index.ts';

const nodeId = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });

describe('peer envelope codec', () => {
  it('round-trips data frames', () => {
    fc.assert(
      fc.property(nodeId, nodeId, fc.integer({ min: 0, max: 1 }), fc.uint8Array({ maxLength: 512 }), (from, to, hops, payload) => {
        const decoded = decodeFrame(encodeData({ from, to, hops, payload }), 1 << 20);
        expect(decoded).toEqual({ ok: true, frame: { kind: 'data', from, to, hops, payload } });
      }),
    );
  });

  it('writes the data header of earlier versions (u64 little-endian ids) in place', () => {
    fc.assert(
      fc.property(nodeId, nodeId, fc.integer({ min: 0, max: 1 }), fc.uint8Array({ maxLength: 64 }), (from, to, hops, payload) => {
        const reference = new Uint8Array(DATA_HEADER_BYTES + payload.length);
        const view = new DataView(reference.buffer);
        reference[0] = 0xd2;
        reference[1] = hops;
        view.setBigUint64(2, BigInt(from), true);
        view.setBigUint64(10, BigInt(to), true);
        reference.set(payload, DATA_HEADER_BYTES);
        expect(encodeData({ from, to, hops, payload })).toEqual(reference);
        const inPlace = new Uint8Array(DATA_HEADER_BYTES + payload.length);
        inPlace.set(payload, DATA_HEADER_BYTES);
        writeDataHeader(inPlace, hops, from, to);
        expect(inPlace).toEqual(reference);
      }),
    );
    expect(() => writeDataHeader(new Uint8Array(DATA_HEADER_BYTES), 0, 0, 1)).toThrow(RangeError);
    expect(() => writeDataHeader(new Uint8Array(DATA_HEADER_BYTES - 1), 0, 1, 2)).toThrow(RangeError);
  });

  it('rejects node ids of zero or above 2^53 - 1 in data frames', () => {
    for (const id of [0n, 2n ** 53n, 2n ** 64n - 1n]) {
      const bytes = encodeData({ from: 1, to: 2, hops: 0, payload: new Uint8Array(1) });
      new DataView(bytes.buffer).setBigUint64(2, id, true);
      expect(decodeFrame(bytes, 1 << 20)).toEqual({ ok: false, reason: 'data frame node id out of range' });
    }
    const largest = encodeData({ from: Number.MAX_SAFE_INTEGER, to: 2, hops: 0, payload: new Uint8Array(0) });
    expect(decodeFrame(largest, 1 << 20)).toMatchObject({ ok: true, frame: { from: Number.MAX_SAFE_INTEGER } });
  });

  it('round-trips hello frames', () => {
    fc.assert(
      fc.property(nodeId, fc.string({ maxLength: 60 }), fc.string({ minLength: 1, maxLength: 200 }), (id, address, clusterKey) => {
        const decoded = decodeFrame(encodeHello({ nodeId: id, address, clusterKey }), 1 << 20);
        expect(decoded).toEqual({ ok: true, frame: { kind: 'hello', version: 1, nodeId: id, address, clusterKey } });
      }),
    );
  });

  it('never throws on arbitrary bytes, and rejects truncated frames with a reason', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const decoded = decodeFrame(bytes, 256);
        if (!decoded.ok) expect(decoded.reason.length).toBeGreaterThan(0);
      }),
      { numRuns: 2000 },
    );
    const hello = encodeHello({ nodeId: 7, address: '127.0.0.1:9001', clusterKey: 'k' });
    for (let length = 0; length < hello.byteLength; length++) {
      expect(decodeFrame(hello.subarray(0, length), 1024).ok).toBe(false);
    }
    const data = encodeData({ from: 1, to: 2, hops: 0, payload: new Uint8Array(0) });
    for (let length = 0; length < DATA_HEADER_BYTES; length++) {
      expect(decodeFrame(data.subarray(0, length), 1024).ok).toBe(false);
    }
  });

  it('enforces its bounds: size, hop count, ids, key length, version, UTF-8', () => {
    expect(decodeFrame(encodeData({ from: 1, to: 2, hops: 0, payload: new Uint8Array(100) }), 100)).toMatchObject({
      ok: false,
      reason: expect.stringContaining('exceeds the limit'),
    });
    const twoHops = encodeData({ from: 1, to: 2, hops: 1, payload: new Uint8Array(1) });
    twoHops[1] = 2;
    expect(decodeFrame(twoHops, 1024)).toMatchObject({ ok: false, reason: expect.stringContaining('hop') });
    const zeroId = encodeData({ from: 1, to: 2, hops: 0, payload: new Uint8Array(1) });
    zeroId.fill(0, 2, 10);
    expect(decodeFrame(zeroId, 1024).ok).toBe(false);
    const hugeId = encodeData({ from: 1, to: 2, hops: 0, payload: new Uint8Array(1) });
    hugeId.fill(0xff, 10, 18);
    expect(decodeFrame(hugeId, 1024).ok).toBe(false);
    expect(() => encodeHello({ nodeId: 1, address: '', clusterKey: 'k'.repeat(HELLO_KEY_BYTES_MAX + 1) })).toThrow(RangeError);
    expect(() => encodeData({ from: 0, to: 1, hops: 0, payload: new Uint8Array() })).toThrow(RangeError);
    const badVersion = encodeHello({ nodeId: 1, address: '', clusterKey: 'k' });
    badVersion[1] = 9;
    expect(decodeFrame(badVersion, 1024)).toMatchObject({ ok: false, reason: expect.stringContaining('version 9') });
    const badUtf8 = encodeHello({ nodeId: 1, address: 'ab', clusterKey: 'k' });
    badUtf8[12] = 0xff;
    expect(decodeFrame(badUtf8, 1024)).toMatchObject({ ok: false, reason: expect.stringContaining('UTF-8') });
    const trailing = new Uint8Array([...encodeHello({ nodeId: 1, address: '', clusterKey: 'k' }), 0]);
    expect(decodeFrame(trailing, 1024).ok).toBe(false);
    expect(decodeFrame(new Uint8Array([0x42]), 1024)).toMatchObject({ ok: false, reason: 'unknown frame kind 0x42' });
  });

  it('compares keys by content and length', () => {
    expect(constantTimeEqual('secret', 'secret')).toBe(true);
    expect(constantTimeEqual('secret', 'secreT')).toBe(false);
    expect(constantTimeEqual('secret', 'secret2')).toBe(false);
    expect(constantTimeEqual('', 'x')).toBe(false);
    expect(constantTimeEqual('é', 'e\u0301')).toBe(false);
  });
});

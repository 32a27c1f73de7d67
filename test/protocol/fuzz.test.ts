import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  FrameReader,
  ProtocolError,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
} from '../../src/protocol/index.ts';
import { request, response } from './arbitraries.ts';

/** Runs `decode`; anything thrown must be a ProtocolError. */
function onlyProtocolErrors(decode: () => unknown): void {
  try {
    decode();
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw new Error(`decoder threw a non-ProtocolError: ${String(error)}`, { cause: error });
  }
}

/** A whole message with a random type and a random body of whole words. */
const randomMessage = fc
  .tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 200 }))
  .map(([type, schema, body]) => {
    const words = Math.ceil(body.length / 8);
    const message = new Uint8Array(8 + words * 8);
    new DataView(message.buffer).setUint32(0, words, true);
    message[4] = type % 24;
    message[5] = schema % 3;
    message.set(body, 8);
    return message;
  });

/** A valid message with a few bytes overwritten, or cut short, or with its word count changed. */
function mutated(valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(valid, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), fc.boolean())
    .map(([bytes, edits, keepLength]) => {
      const copy = new Uint8Array(bytes);
      for (const [at, value] of edits) copy[8 + (at % Math.max(1, copy.length - 8))] = value;
      if (keepLength) return copy;
      // Lengths inside the body (counts, blob sizes) were mutated above; also try a body shortened
      // to a whole number of words with a matching header.
      const words = Math.max(0, Math.floor((copy.length - 8) / 8) - 1);
      const short = copy.slice(0, 8 + words * 8);
      new DataView(short.buffer).setUint32(0, words, true);
      return short;
    });
}

describe('decoders reject bad bytes with ProtocolError only', () => {
  it('random messages', () => {
    fc.assert(
      fc.property(randomMessage, (message) => {
        onlyProtocolErrors(() => decodeRequest(message));
        onlyProtocolErrors(() => decodeResponse(message));
        onlyProtocolErrors(() => decodeResponse(message, { clusterFormat: 0, legacyLeader: true }));
      }),
      { numRuns: 5000 },
    );
  });

  it('mutated valid requests', () => {
    fc.assert(
      fc.property(mutated(request.map((r) => encodeRequest(r))), (message) => {
        onlyProtocolErrors(() => decodeRequest(message));
      }),
      { numRuns: 5000 },
    );
  });

  it('mutated valid responses', () => {
    fc.assert(
      fc.property(mutated(response.map((r) => encodeResponse(r))), (message) => {
        onlyProtocolErrors(() => decodeResponse(message));
      }),
      { numRuns: 5000 },
    );
  });

  it('arbitrary byte strings, including ones that are not whole messages', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        onlyProtocolErrors(() => decodeRequest(bytes));
        onlyProtocolErrors(() => decodeResponse(bytes));
      }),
      { numRuns: 3000 },
    );
  });

  it('huge counts and lengths are rejected without allocating them', () => {
    // Rows claiming 2^60 columns, Files claiming a 2^62-byte file, Nodes claiming 2^40 nodes.
    const rows = new Uint8Array(16);
    new DataView(rows.buffer).setUint32(0, 1, true);
    rows[4] = 7;
    new DataView(rows.buffer).setBigUint64(8, 1n << 60n, true);
    expect(() => decodeResponse(rows)).toThrow(ProtocolError);

    const files = encodeResponse({ type: 'files', files: [{ name: 'db', data: new Uint8Array(8) }] });
    new DataView(files.buffer).setBigUint64(24, 1n << 62n, true);
    expect(() => decodeResponse(files)).toThrow(/claims/);

    const nodes = encodeResponse({ type: 'nodes', nodes: [] });
    new DataView(nodes.buffer).setBigUint64(8, 1n << 40n, true);
    expect(() => decodeResponse(nodes)).toThrow(/node count/);
  });
});

describe('frame reader bounds', () => {
  it('rejects a words field over the maximum before allocating, and stays failed', () => {
    const reader = new FrameReader({ messageBytesMax: 1024 });
    const header = new Uint8Array(8);
    new DataView(header.buffer).setUint32(0, 0xffffffff, true);
    let caught: unknown;
    try {
      reader.feed(header);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ProtocolError);
    expect((caught as ProtocolError).code).toBe('too_large');
    expect(() => reader.feed(new Uint8Array(8))).toThrow(ProtocolError);
  });

  it('holds only the bytes received so far of an announced large message', () => {
    const reader = new FrameReader();
    const header = new Uint8Array(8);
    new DataView(header.buffer).setUint32(0, (32 * 1024 * 1024) / 8, true);
    expect(reader.feed(header)).toEqual([]);
    expect(reader.feed(new Uint8Array(16))).toEqual([]);
    expect(reader.bufferedBytes).toBe(24);
  });

  it('accepts a message exactly at the maximum', () => {
    const reader = new FrameReader({ messageBytesMax: 16 });
    const message = new Uint8Array(24);
    new DataView(message.buffer).setUint32(0, 2, true);
    message[4] = 8;
    expect(reader.feed(message)).toHaveLength(1);
  });

  it('server side: rejects an unknown protocol version, accepts version 1', () => {
    const legacy = new Uint8Array([0xe5, 0x3f, 0x43, 0x60, 0xd7, 0x4d, 0x10, 0x86]);
    expect(() => new FrameReader({ expectVersion: true }).feed(legacy)).toThrow(/unsupported dqlite protocol version 0x86104dd760433fe5/);
    const reader = new FrameReader({ expectVersion: true });
    expect(reader.feed(new Uint8Array([1, 0, 0, 0]))).toEqual([]);
    expect(reader.feed(new Uint8Array([0, 0, 0, 0]))).toEqual([]);
    expect(reader.version).toBe(1n);
  });

  it('feeding random chunks never throws anything but ProtocolError', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 10 }), fc.boolean(), (chunks, expectVersion) => {
        const reader = new FrameReader({ messageBytesMax: 4096, expectVersion });
        for (const chunk of chunks) {
          try {
            for (const message of reader.feed(chunk)) {
              expect(message.length).toBeLessThanOrEqual(4096 + 8);
              onlyProtocolErrors(() => decodeRequest(message));
            }
          } catch (error) {
            expect(error).toBeInstanceOf(ProtocolError);
            return;
          }
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('encoders refuse what the wire cannot carry', () => {
  it('text with NUL, too many params, oversized messages, zero-column rows', () => {
    expect(() => encodeRequest({ type: 'exec_sql', db: 0, sql: 'a\0b', params: [] })).toThrow(ProtocolError);
    const params = Array.from({ length: 256 }, () => ({ type: 5, value: null }) as const);
    expect(() => encodeRequest({ type: 'exec_sql', db: 0, sql: 'x', params })).toThrow(/at most 255/);
    expect(encodeRequest({ type: 'exec_sql', db: 0, sql: 'x', params }, { paramsSchema: 1 })[5]).toBe(1);
    expect(() => encodeRequest({ type: 'dump', name: 'x'.repeat(100) }, { messageBytesMax: 64 })).toThrow(/exceeds the limit/);
    expect(() => encodeResponse({ type: 'rows', columns: [], rows: [], more: false })).toThrow(/at least one column/);
    expect(() => encodeResponse({ type: 'rows', columns: ['a'], rows: [[]], more: false })).toThrow(/0 values for 1 columns/);
  });
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  FrameReader,
  HEADER_BYTES,
  ValueType,
  WORD_BYTES,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  encodeVersion,
  readHeader,
} from '../../src/protocol/index.ts';
import { request, response } from './arbitraries.ts';

/** Splits `bytes` at the given cut points (any order, duplicates fine). */
function chunked(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let last = 0;
  for (const point of points) {
    chunks.push(bytes.subarray(last, point));
    last = point;
  }
  chunks.push(bytes.subarray(last));
  return chunks;
}

describe('round trips', () => {
  it('every request decodes to what was encoded, with a word-aligned body', () => {
    fc.assert(
      fc.property(request, (req) => {
        const bytes = encodeRequest(req);
        const header = readHeader(bytes);
        expect(bytes.length).toBe(HEADER_BYTES + header.words * WORD_BYTES);
        expect(header.words).toBeGreaterThan(0);
        expect(decodeRequest(bytes)).toEqual(req);
      }),
      { numRuns: 2000 },
    );
  });

  it('numeric fields written while the buffer grows land in the grown buffer (regression)', () => {
    // Every size from tiny to several growth steps, so some u32/u64/i64/f64 field straddles each
    // reallocation: a write through a stale DataView would be lost.
    for (let count = 0; count <= 255; count++) {
      const params = Array.from({ length: count }, (_, i) =>
        i % 2 === 0 ? ({ type: ValueType.Integer, value: BigInt(i) - 100n } as const) : ({ type: ValueType.Float, value: i + 0.5 } as const),
      );
      const req = { type: 'exec' as const, db: 7, stmt: count, params };
      expect(decodeRequest(encodeRequest(req))).toEqual(req);
      const nodes = Array.from({ length: count % 40 }, (_, i) => ({ id: BigInt(i) * 0x100000001n, address: 'x'.repeat(i % 9), role: i % 3 }));
      expect(decodeResponse(encodeResponse({ type: 'nodes', nodes }))).toEqual({ type: 'nodes', nodes });
    }
  });

  it('exec/query requests with the schema-1 tuple (u32 count) decode too', () => {
    fc.assert(
      fc.property(request, (req) => {
        expect(decodeRequest(encodeRequest(req, { paramsSchema: 1 }))).toEqual(req);
      }),
      { numRuns: 500 },
    );
  });

  it('every response decodes to what was encoded', () => {
    fc.assert(
      fc.property(response, (res) => {
        const bytes = encodeResponse(res);
        expect(readHeader(bytes).words).toBeGreaterThan(0);
        expect(decodeResponse(bytes)).toEqual(res);
      }),
      { numRuns: 2000 },
    );
  });

  it('Nodes in cluster format 0 carry no roles', () => {
    fc.assert(
      fc.property(response, (res) => {
        if (res.type !== 'nodes') return;
        const bytes = encodeResponse(res, { clusterFormat: 0 });
        const decoded = decodeResponse(bytes, { clusterFormat: 0 });
        expect(decoded).toEqual({ type: 'nodes', nodes: res.nodes.map((n) => ({ ...n, role: 0 })) });
      }),
    );
  });

  it('a server-side frame reader returns the same messages however the stream is chunked', () => {
    fc.assert(
      fc.property(fc.array(request, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 12 }), (requests, cuts) => {
        const encoded = requests.map((r) => encodeRequest(r));
        const stream = new Uint8Array(encoded.reduce((n, e) => n + e.length, WORD_BYTES));
        stream.set(encodeVersion(), 0);
        let at = WORD_BYTES;
        for (const e of encoded) {
          stream.set(e, at);
          at += e.length;
        }
        const reader = new FrameReader({ expectVersion: true });
        const messages = chunked(stream, cuts).flatMap((chunk) => reader.feed(chunk));
        expect(reader.version).toBe(1n);
        expect(messages).toEqual(encoded);
        expect(messages.map((m) => decodeRequest(m))).toEqual(requests);
        expect(reader.bufferedBytes).toBe(0);
      }),
      { numRuns: 500 },
    );
  });
});

describe('buffers', () => {
  it('messages cut from a chunk are copies: the chunk may be reused once feed returns', () => {
    const first = encodeRequest({ type: 'exec_sql', db: 1, sql: 'INSERT INTO t VALUES(?)', params: [{ type: ValueType.Blob, value: new Uint8Array([1, 2, 3]) }] });
    const second = encodeRequest({ type: 'finalize', db: 1, stmt: 2 });
    const chunk = new Uint8Array(first.length + second.length + 3);
    chunk.set(first, 0);
    chunk.set(second, first.length);
    chunk.set(second.subarray(0, 3), first.length + second.length); // the start of a third message's header
    const reader = new FrameReader();
    const messages = reader.feed(chunk);
    const requests = messages.map((m) => decodeRequest(m));
    chunk.fill(0xee);
    expect(messages).toEqual([first, second]);
    expect(requests.map((r) => r.type)).toEqual(['exec_sql', 'finalize']);
    expect(decodeRequest(messages[0]!)).toEqual(requests[0]);
    expect(reader.bufferedBytes).toBe(3);
  });

  it('an encoding that fails part-way leaves the next ones whole, and earlier messages unchanged', () => {
    const before = encodeRequest({ type: 'exec_sql', db: 3, sql: 'SELECT ?', params: [{ type: ValueType.Text, value: 'été ✓ 𝄞' }] });
    const copy = before.slice();
    expect(() =>
      encodeRequest({ type: 'exec_sql', db: 3, sql: 'SELECT ?, ?', params: [{ type: ValueType.Text, value: 'x'.repeat(500) }, { type: ValueType.Text, value: 'a\0b' }] }),
    ).toThrow(/NUL/);
    const after = encodeRequest({ type: 'prepare', db: 4, sql: 'SELECT 1' });
    expect(decodeRequest(after)).toEqual({ type: 'prepare', db: 4, sql: 'SELECT 1' });
    expect(before).toEqual(copy);
    expect(decodeRequest(before)).toEqual({ type: 'exec_sql', db: 3, sql: 'SELECT ?', params: [{ type: ValueType.Text, value: 'été ✓ 𝄞' }] });
    // A message larger than any before it grows the buffer; the next small one is exact again.
    const large = encodeRequest({ type: 'exec_sql', db: 0, sql: 'y'.repeat(100_000), params: [] });
    expect(decodeRequest(large)).toMatchObject({ sql: 'y'.repeat(100_000) });
    expect(encodeRequest({ type: 'leader' }).length).toBe(HEADER_BYTES + WORD_BYTES);
  });
});

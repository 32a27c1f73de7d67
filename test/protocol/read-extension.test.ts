// Our protocol extension for reads (docs/reads.md): round trips, exact bytes, bad input, and the
// feature bit a real dqlite server never sets.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  EXTENSION_READS,
  ExtensionRequestType,
  ExtensionResponseType,
  HEADER_BYTES,
  ProtocolError,
  ReadConsistencyCode,
  WORD_BYTES,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  readHeader,
  type Request,
} from '../../src/protocol/index.ts';
import {
  decodeReadIndexMessage,
  encodeReadIndexMessage,
  isReadIndexMessage,
} from '../../src/server/follower-read-index.ts';
import { safeU64, text, typedValue, u32, u64 } from './arbitraries.ts';

const params = fc.array(typedValue, { maxLength: 12 });
const readSql: fc.Arbitrary<Request> = fc.record({
  type: fc.constant('read_sql' as const),
  db: u32,
  sql: text,
  params,
  consistency: fc.integer({ min: 0, max: ReadConsistencyCode.Stale }),
  bookmark: u64,
  maxStalenessMs: safeU64,
});
const execSqlBookmarked: fc.Arbitrary<Request> = fc.record({
  type: fc.constant('exec_sql_bookmarked' as const),
  db: u32,
  sql: text,
  params,
});

describe('read extension codec', () => {
  it('ReadSql and ExecSqlBookmarked round-trip, word-aligned, with their own type codes', () => {
    fc.assert(
      fc.property(fc.oneof(readSql, execSqlBookmarked), (request) => {
        const bytes = encodeRequest(request);
        const header = readHeader(bytes);
        expect(bytes.length).toBe(HEADER_BYTES + header.words * WORD_BYTES);
        expect(header.type).toBe(request.type === 'read_sql' ? ExtensionRequestType.ReadSql : ExtensionRequestType.ExecSqlBookmarked);
        expect(decodeRequest(bytes)).toEqual(request);
      }),
      { numRuns: 1000 },
    );
  });

  it('ReadSql bytes: db u32, consistency u32, bookmark u64, bound u64, sql text', () => {
    const bytes = encodeRequest({ type: 'read_sql', db: 2, sql: 'SELECT 1', params: [], consistency: 3, bookmark: 258n, maxStalenessMs: 5000 });
    expect([...bytes]).toEqual([
      5, 0, 0, 0, 200, 0, 0, 0,
      2, 0, 0, 0, 3, 0, 0, 0,
      2, 1, 0, 0, 0, 0, 0, 0,
      0x88, 0x13, 0, 0, 0, 0, 0, 0,
      ...new TextEncoder().encode('SELECT 1'), 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
  });

  it('an unknown consistency code is a protocol error naming the codes', () => {
    const bytes = encodeRequest({ type: 'read_sql', db: 0, sql: 'SELECT 1', params: [], consistency: 1, bookmark: 0n, maxStalenessMs: 0 });
    bytes[HEADER_BYTES + 4] = 9;
    expect(() => decodeRequest(bytes)).toThrow(ProtocolError);
    expect(() => decodeRequest(bytes)).toThrow(/consistency code 9/);
  });

  it('Bookmark round-trips; the feature bit rides only on the Node answer', () => {
    fc.assert(
      fc.property(u64, (index) => {
        const bytes = encodeResponse({ type: 'bookmark', index });
        expect(readHeader(bytes).type).toBe(ExtensionResponseType.Bookmark);
        expect(decodeResponse(bytes)).toEqual({ type: 'bookmark', index });
      }),
    );
    const node = encodeResponse({ type: 'node', id: 1n, address: '127.0.0.1:9001' }, { features: EXTENSION_READS });
    expect(readHeader(node).extra).toBe(EXTENSION_READS);
    expect(decodeResponse(node)).toEqual({ type: 'node', id: 1n, address: '127.0.0.1:9001' });
    expect(readHeader(encodeResponse({ type: 'empty' }, { features: EXTENSION_READS })).extra).toBe(0);
    expect(readHeader(encodeResponse({ type: 'node', id: 1n, address: 'a' })).extra).toBe(0);
  });
});

describe('follower read-index messages', () => {
  it('round-trip and are told apart from Raft messages by their first byte', () => {
    fc.assert(
      fc.property(safeU64, safeU64, fc.boolean(), (requestId, index, ok) => {
        const request = encodeReadIndexMessage({ kind: 'request', requestId });
        const answer = encodeReadIndexMessage({ kind: 'answer', requestId, index, ok });
        expect(isReadIndexMessage(request) && isReadIndexMessage(answer)).toBe(true);
        expect(decodeReadIndexMessage(request)).toEqual({ kind: 'request', requestId });
        expect(decodeReadIndexMessage(answer)).toEqual({ kind: 'answer', requestId, index, ok });
      }),
    );
    expect(isReadIndexMessage(new Uint8Array([1, 7, 0]))).toBe(false);
  });

  it('refuses truncated, oversized and unknown-status messages', () => {
    const answer = encodeReadIndexMessage({ kind: 'answer', requestId: 1, index: 2, ok: true });
    expect(() => decodeReadIndexMessage(answer.subarray(0, 10))).toThrow(/expected 18/);
    const bad = answer.slice();
    bad[17] = 7;
    expect(() => decodeReadIndexMessage(bad)).toThrow(/unknown status 7/);
    const huge = encodeReadIndexMessage({ kind: 'request', requestId: 1 });
    huge.fill(0xff, 1);
    expect(() => decodeReadIndexMessage(huge)).toThrow(/beyond 2\^53/);
  });
});

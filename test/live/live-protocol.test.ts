// The live-query extension's request (src/protocol/live-requests.ts): round trips, its type code,
// a bad consistency refused, and the feature bit distinct from the reads extension's.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  EXTENSION_LIVE_QUERIES,
  EXTENSION_READS,
  LiveRequestType,
  ProtocolError,
  ReadConsistencyCode,
  decodeRequest,
  encodeRequest,
  readHeader,
  type Request,
} from '../../src/protocol/index.ts';
import { safeU64, text, typedValue, u32, u64 } from '../protocol/arbitraries.ts';

const liveSubscribe: fc.Arbitrary<Request> = fc.record({
  type: fc.constant('live_subscribe' as const),
  db: u32,
  sql: text,
  params: fc.array(typedValue, { maxLength: 12 }),
  consistency: fc.integer({ min: 0, max: ReadConsistencyCode.Stale }),
  bookmark: u64,
  maxStalenessMs: safeU64,
});

describe('LIVE_SUBSCRIBE', () => {
  it('round-trips in both tuple schemas, as request type 220', () => {
    fc.assert(
      fc.property(liveSubscribe, fc.constantFrom(0 as const, 1 as const), (request, paramsSchema) => {
        const bytes = encodeRequest(request, { paramsSchema });
        expect(readHeader(bytes).type).toBe(LiveRequestType.Subscribe);
        expect(decodeRequest(bytes)).toEqual(request);
      }),
    );
  });

  it('refuses an unknown consistency code', () => {
    const bytes = encodeRequest({ type: 'live_subscribe', db: 0, sql: 'SELECT 1', params: [], consistency: 9, bookmark: 0n, maxStalenessMs: 0 });
    expect(() => decodeRequest(bytes)).toThrow(ProtocolError);
    expect(() => decodeRequest(bytes)).toThrow(/consistency code 9/);
  });

  it('has a feature bit of its own', () => {
    expect(EXTENSION_LIVE_QUERIES & EXTENSION_READS).toBe(0);
    expect(LiveRequestType.Subscribe).toBeGreaterThanOrEqual(220);
    expect(LiveRequestType.Subscribe).toBeLessThanOrEqual(229);
  });
});

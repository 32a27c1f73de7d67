import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ProtocolError,
  RowsBatcher,
  type TypedValue,
  ValueType,
  decodeResponse,
  encodeRowsBatches,
} from '../../src/protocol/index.ts';
import { typedValue } from './arbitraries.ts';

type Rows = Extract<ReturnType<typeof decodeResponse>, { type: 'rows' }>;
const decodeRows = (message: Uint8Array): Rows => decodeResponse(message) as Rows;

describe('Rows batches', () => {
  it('split at the byte budget, repeat the columns, end with PART except the last (DONE)', () => {
    const row = (i: number): TypedValue[] => [
      { type: ValueType.Integer, value: BigInt(i) },
      { type: ValueType.Text, value: `row ${i} `.repeat(5) },
    ];
    const rows = Array.from({ length: 5000 }, (_, i) => row(i));
    const messages = encodeRowsBatches(['id', 'label'], rows, { batchBytes: 4096 });
    expect(messages.length).toBeGreaterThan(50);
    const decoded = messages.map(decodeRows);
    decoded.forEach((batch, i) => {
      expect(batch.columns).toEqual(['id', 'label']);
      expect(batch.more).toBe(i < decoded.length - 1);
      expect(batch.rows.length).toBeGreaterThan(0);
    });
    // A batch stops taking rows once its body reaches the budget: at most one row beyond it.
    for (const message of messages) expect(message.length).toBeLessThan(8 + 4096 + 128);
    expect(decoded.flatMap((b) => b.rows)).toEqual(rows);
  });

  it('an empty result is one DONE message with the columns', () => {
    expect(encodeRowsBatches(['a'], []).map(decodeRows)).toEqual([{ type: 'rows', columns: ['a'], rows: [], more: false }]);
  });

  it('keeps every row in order for any rows and budget', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }).chain((n) => fc.array(fc.array(typedValue, { minLength: n, maxLength: n }), { maxLength: 30 }).map((rows) => ({ n, rows }))),
        fc.integer({ min: 1, max: 512 }),
        ({ n, rows }, batchBytes) => {
          const columns = Array.from({ length: n }, (_, i) => `c${i}`);
          const decoded = encodeRowsBatches(columns, rows, { batchBytes }).map(decodeRows);
          expect(decoded.flatMap((b) => b.rows)).toEqual(rows);
          expect(decoded.filter((b) => !b.more)).toHaveLength(1);
          expect(decoded.at(-1)!.more).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a row larger than the message bound is a ProtocolError', () => {
    const batcher = new RowsBatcher(['b'], { messageBytesMax: 1024 });
    expect(() => batcher.add([{ type: ValueType.Blob, value: new Uint8Array(2048) }])).toThrow(ProtocolError);
  });
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ProtocolError, ValueType, formatIso8601, fromTypedValue, parseIso8601, toTypedValue } from '../../src/protocol/index.ts';

describe('application values <-> wire values', () => {
  it('maps JS values like go-dqlite maps Go values', () => {
    expect(toTypedValue(42)).toEqual({ type: ValueType.Integer, value: 42n });
    expect(toTypedValue(1.5)).toEqual({ type: ValueType.Float, value: 1.5 });
    expect(toTypedValue(2n ** 63n - 1n)).toEqual({ type: ValueType.Integer, value: 2n ** 63n - 1n });
    expect(toTypedValue('x')).toEqual({ type: ValueType.Text, value: 'x' });
    expect(toTypedValue(null)).toEqual({ type: ValueType.Null, value: null });
    expect(toTypedValue(true)).toEqual({ type: ValueType.Boolean, value: true });
    expect(toTypedValue(new Uint8Array([1]))).toEqual({ type: ValueType.Blob, value: new Uint8Array([1]) });
    expect(toTypedValue(new Date(Date.UTC(2024, 4, 6, 7, 8, 9, 120)))).toEqual({ type: ValueType.Iso8601, value: '2024-05-06 07:08:09.12+00:00' });
    expect(toTypedValue({ type: ValueType.Float, value: 1 })).toEqual({ type: ValueType.Float, value: 1 });
    expect(() => toTypedValue(2n ** 63n)).toThrow(ProtocolError);
    expect(() => toTypedValue(new Date(NaN))).toThrow(ProtocolError);
  });

  it('integers come back as numbers when safe, bigints beyond 2^53', () => {
    expect(fromTypedValue({ type: ValueType.Integer, value: 2n ** 53n - 1n })).toBe(2 ** 53 - 1);
    expect(fromTypedValue({ type: ValueType.Integer, value: 2n ** 53n })).toBe(2n ** 53n);
    expect(fromTypedValue({ type: ValueType.Integer, value: -(2n ** 63n) })).toBe(-(2n ** 63n));
  });

  it('time types become Dates; empty ISO-8601 is NULL', () => {
    expect(fromTypedValue({ type: ValueType.UnixTime, value: 1700000000n })).toEqual(new Date(1700000000 * 1000));
    expect(fromTypedValue({ type: ValueType.Iso8601, value: '' })).toBeNull();
    expect(fromTypedValue({ type: ValueType.Iso8601, value: '2024-05-06 07:08:09' })).toEqual(new Date(Date.UTC(2024, 4, 6, 7, 8, 9)));
    expect(parseIso8601('2024-05-06T07:08:09.5-02:30')).toEqual(new Date(Date.UTC(2024, 4, 6, 9, 38, 9, 500)));
    expect(parseIso8601('2024-05-06 07:08:09Z')).toEqual(new Date(Date.UTC(2024, 4, 6, 7, 8, 9)));
    expect(parseIso8601('2024-05-06')).toEqual(new Date(Date.UTC(2024, 4, 6)));
    expect(parseIso8601('not a date')).toBe('not a date');
    expect(parseIso8601('0050-01-02 03:04:05')).toEqual(new Date('0050-01-02T03:04:05Z'));
  });

  it('formatted dates parse back to the same instant', () => {
    fc.assert(
      fc.property(fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }), (date) => {
        expect(parseIso8601(formatIso8601(date))).toEqual(date);
      }),
    );
  });
});

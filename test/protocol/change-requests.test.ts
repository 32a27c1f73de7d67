import { describe, expect, test } from 'vitest';
import {
  decodeChangeRequest,
  decodeChangeResponse,
  encodeChangeRequest,
  encodeChangeResponse,
  isChangeRequest,
  isChangeResponse,
  type ChangeRequest,
  type ChangeResponse,
} from '../../src/protocol/change-requests.ts';
import { encodeRequest, ProtocolError } from '../../src/protocol/index.ts';

describe('change feed messages (extension 210-212)', () => {
  test('requests and responses round trip', () => {
    const requests: ChangeRequest[] = [
      { type: 'watch_changes', database: 'app', since: undefined, credit: 256, tables: [] },
      { type: 'watch_changes', database: 'äpp', since: 0, credit: 1, tables: ['a', 'b c'] },
      { type: 'watch_changes', database: 'app', since: 2 ** 40, credit: 9, tables: ['t'] },
      { type: 'changes_ack', consumed: 128 },
    ];
    for (const request of requests) {
      const bytes = encodeChangeRequest(request);
      expect(isChangeRequest(bytes)).toBe(true);
      expect(decodeChangeRequest(bytes)).toEqual(request);
    }
    const responses: ChangeResponse[] = [
      { type: 'watching', since: 41, applied: 57 },
      { type: 'change_transaction', index: 42, changes: undefined },
      { type: 'change_transaction', index: 43, changes: { timeMs: 1.5e12, tables: ['t'], rows: [{ operation: 'update', table: 't', primaryKey: [1], values: [1, 'x', null] }], rowsOmitted: false } },
      { type: 'change_transaction', index: 44, changes: { timeMs: 1.5e12, tables: ['t', 'u'], rowsOmitted: true } },
      { type: 'change_gap', since: 3, firstAvailableIndex: 900, message: 'compacted' },
    ];
    for (const response of responses) {
      const bytes = encodeChangeResponse(response);
      expect(isChangeResponse(bytes)).toBe(true);
      expect(decodeChangeResponse(bytes)).toEqual(response);
    }
    expect(isChangeRequest(encodeRequest({ type: 'leader' }))).toBe(false);
  });

  test('malformed messages are protocol errors', () => {
    const watch = encodeChangeRequest({ type: 'watch_changes', database: 'app', since: undefined, credit: 4, tables: ['t'] });
    expect(() => decodeChangeRequest(watch.subarray(0, watch.length - 8))).toThrow(ProtocolError);
    const noCredit = encodeChangeRequest({ type: 'watch_changes', database: 'app', since: undefined, credit: 0, tables: [] });
    expect(() => decodeChangeRequest(noCredit)).toThrow(/credit must be at least 1/);
    const tx = encodeChangeResponse({ type: 'change_transaction', index: 1, changes: { timeMs: 0, tables: ['t'], rows: [], rowsOmitted: false } });
    const damaged = tx.slice();
    damaged[damaged.length - 9] = 0x7f; // inside the change blob
    expect(() => decodeChangeResponse(damaged)).toThrow(ProtocolError);
  });
});

import { describe, expect, it } from 'vitest';
import {
  type TypedValue,
  ValueType,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  encodeVersion,
} from '../../src/protocol/index.ts';

/** Bytes from the hex notation of PROTOCOL.md §8 ("01 00 | 02 ..." with any separators). */
function bytes(hexText: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hexText.replace(/[^0-9a-f]/gi, ''), 'hex'));
}

describe('PROTOCOL.md §8 worked examples, byte for byte', () => {
  const cases: { name: string; hex: string; request?: Parameters<typeof encodeRequest>[0]; response?: Parameters<typeof encodeResponse>[0] }[] = [
    { name: 'Leader', hex: '01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00', request: { type: 'leader' } },
    {
      name: 'Node leader 1 at 127.0.0.1:9001',
      hex: '03 00 00 00 01 00 00 00 | 01 00 00 00 00 00 00 00 | 31 32 37 2e 30 2e 30 2e | 31 3a 39 30 30 31 00 00',
      response: { type: 'node', id: 1n, address: '127.0.0.1:9001' },
    },
    { name: 'Client', hex: '01 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00', request: { type: 'client', id: 0n } },
    { name: 'Welcome', hex: '01 00 00 00 02 00 00 00 | 98 3a 00 00 00 00 00 00', response: { type: 'welcome', heartbeatTimeoutMs: 15000 } },
    {
      name: 'Open demo',
      hex: '04 00 00 00 03 00 00 00 64 65 6d 6f 00 00 00 00 00 00 00 00 00 00 00 00 76 6f 6c 61 74 69 6c 65 00 00 00 00 00 00 00 00',
      request: { type: 'open', name: 'demo', flags: 0, vfs: 'volatile' },
    },
    { name: 'Db 0', hex: '01 00 00 00 04 00 00 00 00 00 00 00 00 00 00 00', response: { type: 'db', id: 0 } },
    {
      name: 'ExecSQL CREATE TABLE',
      hex: '04 00 00 00 08 00 00 00 00 00 00 00 00 00 00 00 43 52 45 41 54 45 20 54 41 42 4c 45 20 74 28 78 29 00 00 00 00 00 00 00',
      request: { type: 'exec_sql', db: 0, sql: 'CREATE TABLE t(x)', params: [] },
    },
    {
      name: 'Result',
      hex: '02 00 00 00 06 00 00 00' + ' 00'.repeat(16),
      response: { type: 'result', lastInsertId: 0n, rowsAffected: 0n },
    },
    {
      name: 'QuerySQL',
      hex: '03 00 00 00 09 00 00 00 00 00 00 00 00 00 00 00 53 45 4c 45 43 54 20 78 20 46 52 4f 4d 20 74 00',
      request: { type: 'query_sql', db: 0, sql: 'SELECT x FROM t', params: [] },
    },
    {
      name: 'Rows',
      hex: '05 00 00 00 07 00 00 00 01 00 00 00 00 00 00 00 78 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 2a 00 00 00 00 00 00 00 ff ff ff ff ff ff ff ff',
      response: { type: 'rows', columns: ['x'], rows: [[{ type: ValueType.Integer, value: 42n }]], more: false },
    },
    {
      name: 'ExecSQL with a parameter',
      hex:
        '07 00 00 00 08 00 00 00 00 00 00 00 00 00 00 00 49 4e 53 45 52 54 20 49 4e 54 4f 20 74 28 78 29 ' +
        '20 56 41 4c 55 45 53 28 3f 29 00 00 00 00 00 00 01 01 00 00 00 00 00 00 2a 00 00 00 00 00 00 00',
      request: { type: 'exec_sql', db: 0, sql: 'INSERT INTO t(x) VALUES(?)', params: [{ type: ValueType.Integer, value: 42n }] },
    },
    {
      name: 'Failure not leader',
      hex: '03 00 00 00 00 00 00 00 0a 28 00 00 00 00 00 00 6e 6f 74 20 6c 65 61 64 65 72 00 00 00 00 00 00',
      response: { type: 'failure', code: 10250, message: 'not leader' },
    },
    { name: 'Empty', hex: '01 00 00 00 08 00 00 00 00 00 00 00 00 00 00 00', response: { type: 'empty' } },
    { name: 'Node no leader', hex: '02 00 00 00 01 00 00 00' + ' 00'.repeat(16), response: { type: 'node', id: 0n, address: '' } },
  ];

  for (const c of cases) {
    it(c.name, () => {
      const expected = bytes(c.hex);
      if (c.request) {
        expect(encodeRequest(c.request)).toEqual(expected);
        expect(decodeRequest(expected)).toEqual(c.request);
      } else if (c.response) {
        expect(encodeResponse(c.response)).toEqual(expected);
        expect(decodeResponse(expected)).toEqual(c.response);
      }
    });
  }

  it('version word', () => {
    expect(encodeVersion()).toEqual(bytes('01 00 00 00 00 00 00 00'));
  });

  it('ignores stale parameter-header padding, as the Go client leaves it', () => {
    const message = bytes(cases.find((c) => c.name === 'ExecSQL with a parameter')!.hex);
    message.fill(0xab, 0x32, 0x38);
    expect(decodeRequest(message)).toEqual({ type: 'exec_sql', db: 0, sql: 'INSERT INTO t(x) VALUES(?)', params: [{ type: 1, value: 42n }] });
  });

  it('text fields: length 7 takes one word, length 8 two, empty one word of zeros', () => {
    const size = (sql: string) => encodeRequest({ type: 'prepare', db: 0, sql }).length - 16;
    expect(size('abcdefg')).toBe(8);
    expect(size('abcdefgh')).toBe(16);
    expect(size('')).toBe(8);
  });

  it('blob fields: length word plus bytes padded, empty blob is only the length', () => {
    const size = (value: Uint8Array) =>
      encodeRequest({ type: 'exec', db: 0, stmt: 0, params: [{ type: ValueType.Blob, value }] }).length - 8 - 8 - 8;
    expect(size(new Uint8Array(0))).toBe(8);
    expect(size(new Uint8Array(3))).toBe(16);
    expect(size(new Uint8Array(8))).toBe(16);
  });

  it('row headers pack two 4-bit codes per byte, low nibble first, padded to words', () => {
    const columns = Array.from({ length: 17 }, (_, i) => `c${i}`);
    const row: TypedValue[] = columns.map((_, i) => (i % 2 === 0 ? { type: ValueType.Null, value: null } : { type: ValueType.Boolean, value: true }));
    const message = encodeResponse({ type: 'rows', columns, rows: [row], more: true });
    const headerAt = 8 + 8 + columns.reduce((n, c) => n + Math.ceil((c.length + 1) / 8) * 8, 0);
    expect([...message.subarray(headerAt, headerAt + 16)]).toEqual([...Array(8).fill(0xb5), 0x05, 0, 0, 0, 0, 0, 0, 0]);
    expect([...message.subarray(message.length - 8)]).toEqual(Array(8).fill(0xee));
  });

  it('Assign without a role word (legacy promote) means voter; a longer body is tolerated', () => {
    expect(decodeRequest(bytes('01 00 00 00 0d 00 00 00 07 00 00 00 00 00 00 00'))).toEqual({ type: 'assign', id: 7n, role: 0 });
    expect(decodeRequest(bytes('02 00 00 00 00 00 00 00' + ' 00'.repeat(16)))).toEqual({ type: 'leader' });
  });

  it('a legacy Node response carries the address only', () => {
    const legacy = encodeResponse({ type: 'node', id: 9n, address: '1.2.3.4:5' }, { legacyLeader: true });
    expect(decodeResponse(legacy, { legacyLeader: true })).toEqual({ type: 'node', id: 0n, address: '1.2.3.4:5' });
  });
});

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  FrameReader,
  type Request,
  type Response,
  ValueType,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
} from '../../src/protocol/index.ts';

/** Bytes of the real `dqlite` shell and a real dqlite-demo node; see test/fixtures/capture-dqlite-shell.ts. */
const fixture = new URL('../fixtures/dqlite-shell-conversation.hex', import.meta.url);

interface Conversation {
  requests: { bytes: Uint8Array; decoded: Request }[];
  responses: { bytes: Uint8Array; decoded: Response }[];
}

function load(): Conversation[] {
  const streams = new Map<string, { client?: Uint8Array; server?: Uint8Array }>();
  for (const line of readFileSync(fixture, 'utf8').split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const [connection, direction, hex] = line.split(' ') as [string, 'client' | 'server', string];
    const entry = streams.get(connection) ?? {};
    entry[direction] = Uint8Array.from(Buffer.from(hex, 'hex'));
    streams.set(connection, entry);
  }
  return [...streams.values()].map(({ client, server }) => {
    const clientMessages = new FrameReader({ expectVersion: true }).feed(client!);
    const serverMessages = new FrameReader().feed(server!);
    return {
      requests: clientMessages.map((bytes) => ({ bytes, decoded: decodeRequest(bytes) })),
      responses: serverMessages.map((bytes) => ({ bytes, decoded: decodeResponse(bytes) })),
    };
  });
}

describe('a conversation captured between the real dqlite shell and dqlite-demo', () => {
  const conversations = load();
  const requests = conversations.flatMap((c) => c.requests);
  const responses = conversations.flatMap((c) => c.responses);

  it('holds a full set of message kinds', () => {
    expect(conversations.length).toBeGreaterThanOrEqual(10);
    expect(new Set(requests.map((r) => r.decoded.type))).toEqual(
      new Set(['leader', 'client', 'open', 'exec_sql', 'query_sql', 'cluster', 'describe', 'weight', 'dump']),
    );
    expect(new Set(responses.map((r) => r.decoded.type))).toEqual(
      new Set(['node', 'welcome', 'db', 'result', 'rows', 'failure', 'nodes', 'metadata', 'empty', 'files']),
    );
  });

  it('every request re-encodes to the exact bytes the Go client sent', () => {
    for (const { bytes, decoded } of requests) expect(encodeRequest(decoded)).toEqual(bytes);
  });

  it('every response re-encodes to the exact bytes the server sent', () => {
    for (const { bytes, decoded } of responses) expect(encodeResponse(decoded)).toEqual(bytes);
  });

  it('the 302-row SELECT arrived in several PART batches ending with DONE, with every value type', () => {
    const rows = responses.map((r) => r.decoded).filter((r): r is Extract<Response, { type: 'rows' }> => r.type === 'rows');
    const parts = rows.filter((r) => r.more).length;
    expect(parts).toBeGreaterThan(1);
    expect(rows.at(-1)!.more).toBe(false);
    const all = rows.flatMap((r) => r.rows);
    expect(all).toHaveLength(302);
    expect(rows[0]!.columns).toEqual(['i', 'f', 's', 'b', 'n', 'd', 'ok']);
    expect(all[0]).toEqual([
      { type: ValueType.Integer, value: -(2n ** 63n) },
      { type: ValueType.Float, value: 3.25 },
      { type: ValueType.Text, value: 'héllo ✓ 😀' },
      { type: ValueType.Blob, value: new Uint8Array([0x00, 0xff, 0x10]) },
      { type: ValueType.Null, value: null },
      { type: ValueType.Iso8601, value: '2024-05-06 07:08:09' },
      { type: ValueType.Boolean, value: true },
    ]);
    expect(all[1]).toEqual([
      { type: ValueType.Integer, value: 2n ** 63n - 1n },
      { type: ValueType.Float, value: -0.5 },
      { type: ValueType.Text, value: '' },
      { type: ValueType.Blob, value: new Uint8Array(0) },
      { type: ValueType.Null, value: null },
      { type: ValueType.UnixTime, value: 1700000000n },
      { type: ValueType.Boolean, value: false },
    ]);
    // A NULL in a DATETIME column travels as an empty ISO-8601 string, in BOOLEAN as false.
    expect(all[2]![5]).toEqual({ type: ValueType.Iso8601, value: '' });
    expect(all[2]![6]).toEqual({ type: ValueType.Boolean, value: false });
  });

  it('SQL errors carry SQLite codes: 1 for a missing table, 2067 for a UNIQUE violation', () => {
    const failures = responses.map((r) => r.decoded).filter((r) => r.type === 'failure');
    expect(failures).toContainEqual({ type: 'failure', code: 1, message: 'no such table: missing_table' });
    expect(failures.map((f) => f.code)).toContain(2067);
  });

  it('Dump returned the database file and its WAL', () => {
    const files = responses.map((r) => r.decoded).find((r) => r.type === 'files');
    expect(files?.files.map((f) => f.name)).toEqual(['capture', 'capture-wal']);
    expect(new TextDecoder().decode(files!.files[0]!.data.subarray(0, 16))).toBe('SQLite format 3\0');
  });
});

/**
 * The live-query extension (docs/live-queries.md), request type 220 of the range 220–229 kept for
 * it. A client sends LIVE_SUBSCRIBE only to a server whose Leader answer announced
 * `EXTENSION_LIVE_QUERIES`, on a connection of its own: the server answers with the first result
 * as a read_sql answer is (a Bookmark with the index it reflects, then Rows), and from then on
 * pushes another such answer whenever the result changes, unasked, until the client closes the
 * connection. A Failure ends the subscription (bad SQL, or the query stopped evaluating). No
 * other request may follow on that connection. Real dqlite clients never see any of this.
 */
import type { Reader, Writer } from './buffer.ts';
import { ReadConsistencyCode } from './constants.ts';
import { ProtocolError } from './errors.ts';
import { readParams, writeParams, type TypedValue } from './values.ts';

export const LiveRequestType = {
  Subscribe: 220,
} as const;

/** Feature bit in the Leader answer's `extra` header field: the server keeps live queries. */
export const EXTENSION_LIVE_QUERIES = 0x0004;

export interface LiveSubscribeRequest {
  readonly type: 'live_subscribe';
  readonly db: number;
  readonly sql: string;
  readonly params: readonly TypedValue[];
  /** A ReadConsistencyCode for the first result; later ones follow this replica's commits. */
  readonly consistency: number;
  readonly bookmark: bigint;
  readonly maxStalenessMs: number;
}

/** Writes the body (the layout of ReadSql); returns the tuple schema used. */
export function writeLiveSubscribe(writer: Writer, request: LiveSubscribeRequest, paramsSchema: 0 | 1): number {
  writer.u32(request.db);
  writer.u32(request.consistency);
  writer.u64(request.bookmark);
  writer.u64(BigInt(request.maxStalenessMs));
  writer.text(request.sql);
  writeParams(writer, request.params, paramsSchema);
  return request.params.length > 0 ? paramsSchema : 0;
}

export function readLiveSubscribe(reader: Reader, schema: number): LiveSubscribeRequest {
  const db = reader.u32('db id');
  const consistency = reader.u32('consistency');
  if (consistency > ReadConsistencyCode.Stale) {
    throw new ProtocolError('bad_value', `unknown consistency code ${consistency} (0 default, 1 linearizable, 2 lease, 3 session, 4 stale)`);
  }
  const bookmark = reader.u64('bookmark');
  const maxStalenessMs = reader.u64Number('max staleness');
  const sql = reader.text('sql');
  const params = readParams(reader, schema);
  return { type: 'live_subscribe', db, sql, params, consistency, bookmark, maxStalenessMs };
}

import { Reader } from './buffer.ts';
import { ExtensionRequestType, HEADER_BYTES, MESSAGE_BYTES_MAX_DEFAULT, ReadConsistencyCode, RequestType, Role } from './constants.ts';
import { ProtocolError } from './errors.ts';
import { beginMessage, checkWholeMessage, finishMessage } from './header.ts';
import { LiveRequestType, readLiveSubscribe, writeLiveSubscribe, type LiveSubscribeRequest } from './live-requests.ts';
import { type TypedValue, readParams, writeParams } from './values.ts';

/** Requests a client sends, as a discriminated union on `type`. Node ids are u64 (bigint). */
export type Request =
  | { readonly type: 'leader' }
  | { readonly type: 'client'; readonly id: bigint }
  | { readonly type: 'heartbeat'; readonly timestamp: bigint }
  | { readonly type: 'open'; readonly name: string; readonly flags: number; readonly vfs: string }
  | { readonly type: 'prepare'; readonly db: number; readonly sql: string }
  | { readonly type: 'exec'; readonly db: number; readonly stmt: number; readonly params: readonly TypedValue[] }
  | { readonly type: 'query'; readonly db: number; readonly stmt: number; readonly params: readonly TypedValue[] }
  | { readonly type: 'finalize'; readonly db: number; readonly stmt: number }
  | { readonly type: 'exec_sql'; readonly db: number; readonly sql: string; readonly params: readonly TypedValue[] }
  | { readonly type: 'query_sql'; readonly db: number; readonly sql: string; readonly params: readonly TypedValue[] }
  | { readonly type: 'interrupt'; readonly db: number }
  | { readonly type: 'add'; readonly id: bigint; readonly address: string }
  | { readonly type: 'assign'; readonly id: bigint; readonly role: number }
  | { readonly type: 'remove'; readonly id: bigint }
  | { readonly type: 'dump'; readonly name: string }
  | { readonly type: 'cluster'; readonly format: number }
  | { readonly type: 'transfer'; readonly id: bigint }
  | { readonly type: 'describe'; readonly format: number }
  | { readonly type: 'weight'; readonly weight: number }
  // Extension requests (ExtensionRequestType): only for servers that announced EXTENSION_READS.
  | {
      readonly type: 'read_sql';
      readonly db: number;
      readonly sql: string;
      readonly params: readonly TypedValue[];
      /** A ReadConsistencyCode. */
      readonly consistency: number;
      /** Session level: the log index the node must have applied first. */
      readonly bookmark: bigint;
      /** Stale level: the longest time since the node heard from a leader. */
      readonly maxStalenessMs: number;
    }
  | { readonly type: 'exec_sql_bookmarked'; readonly db: number; readonly sql: string; readonly params: readonly TypedValue[] }
  // Live-query extension (live-requests.ts): only for servers that announced EXTENSION_LIVE_QUERIES.
  | LiveSubscribeRequest;

export type RequestName = Request['type'];

export interface EncodeOptions {
  /** Bound on the body; exceeding it is a ProtocolError('too_large'). */
  messageBytesMax?: number;
  /** Tuple schema for exec/query/exec_sql/query_sql: 1 uses a u32 parameter count (newer dqlite). */
  paramsSchema?: 0 | 1;
}

export interface DecodeOptions {
  messageBytesMax?: number;
}

const U32_MAX = 0xffffffff;

export function encodeRequest(request: Request, options: EncodeOptions = {}): Uint8Array {
  const writer = beginMessage((options.messageBytesMax ?? MESSAGE_BYTES_MAX_DEFAULT) + HEADER_BYTES);
  const paramsSchema = options.paramsSchema ?? 0;
  let schema = 0;
  let code: number;
  switch (request.type) {
    case 'leader':
      code = RequestType.Leader;
      writer.u64(0n);
      break;
    case 'client':
      code = RequestType.Client;
      writer.u64(request.id);
      break;
    case 'heartbeat':
      code = RequestType.Heartbeat;
      writer.u64(request.timestamp);
      break;
    case 'open':
      code = RequestType.Open;
      writer.text(request.name);
      writer.u64(request.flags);
      writer.text(request.vfs);
      break;
    case 'prepare':
      code = RequestType.Prepare;
      writer.u64(request.db);
      writer.text(request.sql);
      break;
    case 'exec':
    case 'query':
      code = request.type === 'exec' ? RequestType.Exec : RequestType.Query;
      writer.u32(request.db);
      writer.u32(request.stmt);
      writeParams(writer, request.params, paramsSchema);
      schema = request.params.length > 0 ? paramsSchema : 0;
      break;
    case 'finalize':
      code = RequestType.Finalize;
      writer.u32(request.db);
      writer.u32(request.stmt);
      break;
    case 'exec_sql':
    case 'query_sql':
      code = request.type === 'exec_sql' ? RequestType.ExecSql : RequestType.QuerySql;
      writer.u64(request.db);
      writer.text(request.sql);
      writeParams(writer, request.params, paramsSchema);
      schema = request.params.length > 0 ? paramsSchema : 0;
      break;
    case 'interrupt':
      code = RequestType.Interrupt;
      writer.u64(request.db);
      break;
    case 'read_sql':
      code = ExtensionRequestType.ReadSql;
      writer.u32(request.db);
      writer.u32(request.consistency);
      writer.u64(request.bookmark);
      writer.u64(BigInt(request.maxStalenessMs));
      writer.text(request.sql);
      writeParams(writer, request.params, paramsSchema);
      schema = request.params.length > 0 ? paramsSchema : 0;
      break;
    case 'exec_sql_bookmarked':
      code = ExtensionRequestType.ExecSqlBookmarked;
      writer.u64(request.db);
      writer.text(request.sql);
      writeParams(writer, request.params, paramsSchema);
      schema = request.params.length > 0 ? paramsSchema : 0;
      break;
    case 'live_subscribe':
      code = LiveRequestType.Subscribe;
      schema = writeLiveSubscribe(writer, request, paramsSchema);
      break;
    case 'add':
      code = RequestType.Add;
      writer.u64(request.id);
      writer.text(request.address);
      break;
    case 'assign':
      code = RequestType.Assign;
      writer.u64(request.id);
      writer.u64(request.role);
      break;
    case 'remove':
      code = RequestType.Remove;
      writer.u64(request.id);
      break;
    case 'dump':
      code = RequestType.Dump;
      writer.text(request.name);
      break;
    case 'cluster':
      code = RequestType.Cluster;
      writer.u64(request.format);
      break;
    case 'transfer':
      code = RequestType.Transfer;
      writer.u64(request.id);
      break;
    case 'describe':
      code = RequestType.Describe;
      writer.u64(request.format);
      break;
    case 'weight':
      code = RequestType.Weight;
      writer.u64(request.weight);
      break;
  }
  return finishMessage(writer, code, schema);
}

/**
 * Decodes one whole request (header + body). Trailing bytes after the known fields are ignored:
 * a newer schema may only append fields. Blob parameters are views of `message`, not copies:
 * the caller must not change it while the request is in use.
 */
export function decodeRequest(message: Uint8Array, options: DecodeOptions = {}): Request {
  const header = checkWholeMessage(message, 'request');
  const bodyBytesMax = options.messageBytesMax ?? MESSAGE_BYTES_MAX_DEFAULT;
  if (message.length - HEADER_BYTES > bodyBytesMax) {
    throw new ProtocolError('too_large', `request body of ${message.length - HEADER_BYTES} bytes exceeds ${bodyBytesMax}`);
  }
  const reader = new Reader(message, `request type ${header.type}`, HEADER_BYTES, message.length, { viewBlobs: true });
  switch (header.type) {
    case RequestType.Leader:
      return { type: 'leader' };
    case RequestType.Client:
      return { type: 'client', id: reader.u64('client id') };
    case RequestType.Heartbeat:
      return { type: 'heartbeat', timestamp: reader.u64('timestamp') };
    case RequestType.Open: {
      const name = reader.text('database name');
      const flags = reader.u64Number('flags', U32_MAX);
      const vfs = reader.text('vfs name');
      return { type: 'open', name, flags, vfs };
    }
    case RequestType.Prepare: {
      const db = reader.u64Number('db id', U32_MAX);
      return { type: 'prepare', db, sql: reader.text('sql') };
    }
    case RequestType.Exec:
    case RequestType.Query: {
      const db = reader.u32('db id');
      const stmt = reader.u32('stmt id');
      const params = readParams(reader, header.schema);
      return { type: header.type === RequestType.Exec ? 'exec' : 'query', db, stmt, params };
    }
    case RequestType.Finalize: {
      const db = reader.u32('db id');
      return { type: 'finalize', db, stmt: reader.u32('stmt id') };
    }
    case RequestType.ExecSql:
    case RequestType.QuerySql: {
      const db = reader.u64Number('db id', U32_MAX);
      const sql = reader.text('sql');
      const params = readParams(reader, header.schema);
      return { type: header.type === RequestType.ExecSql ? 'exec_sql' : 'query_sql', db, sql, params };
    }
    case RequestType.Interrupt:
      return { type: 'interrupt', db: reader.u64Number('db id', U32_MAX) };
    case ExtensionRequestType.ReadSql: {
      const db = reader.u32('db id');
      const consistency = reader.u32('consistency');
      if (consistency > ReadConsistencyCode.Stale) {
        throw new ProtocolError('bad_value', `unknown consistency code ${consistency} (0 default, 1 linearizable, 2 lease, 3 session, 4 stale)`);
      }
      const bookmark = reader.u64('bookmark');
      const maxStalenessMs = reader.u64Number('max staleness');
      const sql = reader.text('sql');
      const params = readParams(reader, header.schema);
      return { type: 'read_sql', db, sql, params, consistency, bookmark, maxStalenessMs };
    }
    case ExtensionRequestType.ExecSqlBookmarked: {
      const db = reader.u64Number('db id', U32_MAX);
      const sql = reader.text('sql');
      const params = readParams(reader, header.schema);
      return { type: 'exec_sql_bookmarked', db, sql, params };
    }
    case LiveRequestType.Subscribe:
      return readLiveSubscribe(reader, header.schema);
    case RequestType.Add: {
      const id = reader.u64('node id');
      return { type: 'add', id, address: reader.text('address') };
    }
    case RequestType.Assign: {
      const id = reader.u64('node id');
      // Legacy "promote" has no role word and means voter.
      const role = reader.atEnd() ? Role.Voter : reader.u64Number('role', U32_MAX);
      return { type: 'assign', id, role };
    }
    case RequestType.Remove:
      return { type: 'remove', id: reader.u64('node id') };
    case RequestType.Dump:
      return { type: 'dump', name: reader.text('database name') };
    case RequestType.Cluster:
      return { type: 'cluster', format: reader.u64Number('format', U32_MAX) };
    case RequestType.Transfer:
      return { type: 'transfer', id: reader.u64('node id') };
    case RequestType.Describe:
      return { type: 'describe', format: reader.u64Number('format', U32_MAX) };
    case RequestType.Weight:
      return { type: 'weight', weight: reader.u64Number('weight') };
    default:
      throw new ProtocolError('bad_type', `unknown request type ${header.type}`);
  }
}

import { Reader, type Writer } from './buffer.ts';
import {
  ClusterFormat,
  ExtensionResponseType,
  HEADER_BYTES,
  MESSAGE_BYTES_MAX_DEFAULT,
  ROWS_DONE_BYTE,
  ROWS_PART_BYTE,
  ResponseType,
  WORD_BYTES,
} from './constants.ts';
import { ProtocolError } from './errors.ts';
import { beginMessage, checkWholeMessage, finishMessage } from './header.ts';
import { type TypedValue, readRow, rowHeaderBytes, writeRow } from './values.ts';

export interface NodeInfo {
  readonly id: bigint;
  readonly address: string;
  /** Role code (see `Role`); 0 when the Cluster request used format 0. */
  readonly role: number;
}

export interface FileData {
  readonly name: string;
  readonly data: Uint8Array;
}

/** Responses a server sends, as a discriminated union on `type`. */
export type Response =
  | { readonly type: 'failure'; readonly code: number; readonly message: string }
  /** Leader: id 0 and empty address when no leader is known. */
  | { readonly type: 'node'; readonly id: bigint; readonly address: string }
  | { readonly type: 'welcome'; readonly heartbeatTimeoutMs: number }
  | { readonly type: 'nodes'; readonly nodes: readonly NodeInfo[] }
  | { readonly type: 'db'; readonly id: number }
  | { readonly type: 'stmt'; readonly db: number; readonly id: number; readonly paramCount: number }
  | { readonly type: 'result'; readonly lastInsertId: bigint; readonly rowsAffected: bigint }
  /** One batch of a result set; `more` (a PART marker) says another Rows message follows. */
  | {
      readonly type: 'rows';
      readonly columns: readonly string[];
      readonly rows: readonly (readonly TypedValue[])[];
      readonly more: boolean;
    }
  | { readonly type: 'empty' }
  | { readonly type: 'files'; readonly files: readonly FileData[] }
  | { readonly type: 'metadata'; readonly failureDomain: bigint; readonly weight: bigint }
  /** Extension (ExtensionResponseType.Bookmark): the log index the answer that follows reflects. */
  | { readonly type: 'bookmark'; readonly index: bigint };

export type ResponseName = Response['type'];

export interface ResponseEncodeOptions {
  messageBytesMax?: number;
  /** Format of the Cluster request being answered: 0 omits roles. */
  clusterFormat?: number;
  /** Answer a pre-1.0 client's Leader request with the address only. */
  legacyLeader?: boolean;
  /** Feature bits for the header's `extra` field (EXTENSION_READS on our Leader answers). */
  features?: number;
}

export interface ResponseDecodeOptions {
  messageBytesMax?: number;
  /** Format the Cluster request used: 0 means nodes carry no role. Default 1. */
  clusterFormat?: number;
  /** The connection uses the legacy protocol: Node carries the address only. */
  legacyLeader?: boolean;
}

const U32_MAX = 0xffffffff;

export function encodeResponse(response: Response, options: ResponseEncodeOptions = {}): Uint8Array {
  const writer = beginMessage((options.messageBytesMax ?? MESSAGE_BYTES_MAX_DEFAULT) + HEADER_BYTES);
  let code: number;
  switch (response.type) {
    case 'failure':
      code = ResponseType.Failure;
      writer.u64(response.code);
      writer.text(response.message);
      break;
    case 'node':
      code = ResponseType.Node;
      if (!options.legacyLeader) writer.u64(response.id);
      writer.text(response.address);
      break;
    case 'welcome':
      code = ResponseType.Welcome;
      writer.u64(response.heartbeatTimeoutMs);
      break;
    case 'nodes':
      code = ResponseType.Nodes;
      writer.u64(response.nodes.length);
      for (const node of response.nodes) {
        writer.u64(node.id);
        writer.text(node.address);
        if ((options.clusterFormat ?? ClusterFormat.V1) !== ClusterFormat.V0) writer.u64(node.role);
      }
      break;
    case 'db':
      code = ResponseType.Db;
      writer.u32(response.id);
      writer.u32(0);
      break;
    case 'stmt':
      code = ResponseType.Stmt;
      writer.u32(response.db);
      writer.u32(response.id);
      writer.u64(response.paramCount);
      break;
    case 'result':
      code = ResponseType.Result;
      writer.i64(response.lastInsertId);
      writer.u64(response.rowsAffected);
      break;
    case 'rows':
      code = ResponseType.Rows;
      writeRowsPreamble(writer, response.columns);
      for (const row of response.rows) writeCheckedRow(writer, row, response.columns.length);
      writeRowsEnd(writer, response.more);
      break;
    case 'empty':
      code = ResponseType.Empty;
      writer.u64(0n);
      break;
    case 'files':
      code = ResponseType.Files;
      writer.u64(response.files.length);
      for (const file of response.files) {
        if (file.name === '') throw new ProtocolError('bad_value', 'a dumped file needs a name');
        writer.text(file.name);
        writer.u64(file.data.length);
        // go-dqlite reads the next name right after the data, so no padding between files.
        writer.raw(file.data);
      }
      break;
    case 'metadata':
      code = ResponseType.Metadata;
      writer.u64(response.failureDomain);
      writer.u64(response.weight);
      break;
    case 'bookmark':
      code = ExtensionResponseType.Bookmark;
      writer.u64(response.index);
      break;
  }
  return finishMessage(writer, code, 0, response.type === 'node' ? (options.features ?? 0) : 0);
}

export function writeRowsPreamble(writer: Writer, columns: readonly string[]): void {
  if (columns.length === 0) {
    // go-dqlite 1.11.5 could never see the end marker of a zero-column result.
    throw new ProtocolError('bad_value', 'a Rows response needs at least one column');
  }
  writer.u64(columns.length);
  for (const column of columns) writer.text(column);
}

export function writeCheckedRow(writer: Writer, row: readonly TypedValue[], columnCount: number): void {
  if (row.length !== columnCount) {
    throw new ProtocolError('bad_value', `a row has ${row.length} values for ${columnCount} columns`);
  }
  writeRow(writer, row);
}

export function writeRowsEnd(writer: Writer, more: boolean): void {
  const marker = more ? ROWS_PART_BYTE : ROWS_DONE_BYTE;
  writer.raw(new Uint8Array(WORD_BYTES).fill(marker));
}

/** Decodes one whole response (header + body). */
export function decodeResponse(message: Uint8Array, options: ResponseDecodeOptions = {}): Response {
  const header = checkWholeMessage(message, 'response');
  const bodyBytesMax = options.messageBytesMax ?? MESSAGE_BYTES_MAX_DEFAULT;
  if (message.length - HEADER_BYTES > bodyBytesMax) {
    throw new ProtocolError('too_large', `response body of ${message.length - HEADER_BYTES} bytes exceeds ${bodyBytesMax}`);
  }
  const reader = new Reader(message, `response type ${header.type}`, HEADER_BYTES);
  switch (header.type) {
    case ResponseType.Failure: {
      const code = reader.u64Number('error code', U32_MAX);
      return { type: 'failure', code, message: reader.text('error message') };
    }
    case ResponseType.Node: {
      const id = options.legacyLeader ? 0n : reader.u64('node id');
      return { type: 'node', id, address: reader.text('address') };
    }
    case ResponseType.Welcome:
      return { type: 'welcome', heartbeatTimeoutMs: reader.u64Number('heartbeat timeout') };
    case ResponseType.Nodes: {
      const withRole = (options.clusterFormat ?? ClusterFormat.V1) !== ClusterFormat.V0;
      const count = reader.count('node count', withRole ? 3 * WORD_BYTES : 2 * WORD_BYTES);
      const nodes: NodeInfo[] = [];
      for (let i = 0; i < count; i++) {
        const id = reader.u64('node id');
        const address = reader.text('node address');
        const role = withRole ? reader.u64Number('node role', U32_MAX) : 0;
        nodes.push({ id, address, role });
      }
      return { type: 'nodes', nodes };
    }
    case ResponseType.Db: {
      const id = reader.u32('db id');
      reader.u32('unused');
      return { type: 'db', id };
    }
    case ResponseType.Stmt: {
      const db = reader.u32('db id');
      const id = reader.u32('stmt id');
      return { type: 'stmt', db, id, paramCount: reader.u64Number('parameter count', U32_MAX) };
    }
    case ResponseType.Result: {
      const lastInsertId = reader.i64('last insert id');
      return { type: 'result', lastInsertId, rowsAffected: reader.u64('rows affected') };
    }
    case ResponseType.Rows:
      return decodeRows(reader);
    case ResponseType.Empty:
      return { type: 'empty' };
    case ResponseType.Files: {
      const count = reader.count('file count', 2 * WORD_BYTES);
      const files: FileData[] = [];
      for (let i = 0; i < count; i++) {
        const name = reader.text('file name');
        if (name === '') break;
        const size = reader.u64('file size');
        if (size > BigInt(reader.remaining)) {
          throw new ProtocolError('truncated', `file ${name} claims ${size} bytes, only ${reader.remaining} left`);
        }
        files.push({ name, data: reader.raw(Number(size), 'file data') });
      }
      return { type: 'files', files };
    }
    case ResponseType.Metadata: {
      const failureDomain = reader.u64('failure domain');
      return { type: 'metadata', failureDomain, weight: reader.u64('weight') };
    }
    case ExtensionResponseType.Bookmark:
      return { type: 'bookmark', index: reader.u64('bookmark') };
    default:
      throw new ProtocolError('bad_type', `unknown response type ${header.type}`);
  }
}

function decodeRows(reader: Reader): Response {
  const columnCount = reader.count('column count', WORD_BYTES);
  const columns: string[] = [];
  for (let i = 0; i < columnCount; i++) columns.push(reader.text('column name'));
  const rows: TypedValue[][] = [];
  for (;;) {
    const first = reader.peekU8(0);
    if (first === undefined) {
      throw new ProtocolError('truncated', 'Rows response ends without a DONE or PART marker');
    }
    if (first === ROWS_DONE_BYTE || first === ROWS_PART_BYTE) {
      if (reader.remaining !== WORD_BYTES) {
        throw new ProtocolError('bad_value', `Rows end marker is followed by ${reader.remaining - WORD_BYTES} more bytes`);
      }
      for (let i = 1; i < WORD_BYTES; i++) {
        if (reader.peekU8(i) !== first) throw new ProtocolError('bad_value', 'Rows end marker word is not uniform');
      }
      return { type: 'rows', columns, rows, more: first === ROWS_PART_BYTE };
    }
    if (columnCount === 0 || rowHeaderBytes(columnCount) > reader.remaining) {
      throw new ProtocolError('truncated', 'Rows response has bytes that are neither a row nor an end marker');
    }
    rows.push(readRow(reader, columnCount));
  }
}

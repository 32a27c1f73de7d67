/** The dqlite client wire protocol: framing, tuples, requests and responses. Pure functions. */
export {
  ClusterFormat,
  EXTENSION_READS,
  ErrorCode,
  ExtensionRequestType,
  ExtensionResponseType,
  HEADER_BYTES,
  MESSAGE_BYTES_MAX_DEFAULT,
  PARAMS_MAX_SCHEMA0,
  PROTOCOL_VERSION,
  PROTOCOL_VERSION_LEGACY,
  ROWS_DONE_BYTE,
  ROWS_PART_BYTE,
  ReadConsistencyCode,
  RequestType,
  ResponseType,
  Role,
  SQLITE_IOERR_LEADERSHIP_LOST,
  SQLITE_IOERR_NOT_LEADER,
  ValueType,
  WORD_BYTES,
  isValueTypeCode,
  roleName,
} from './constants.ts';
export type { ReadConsistencyCodeValue, RequestTypeCode, ResponseTypeCode, RoleCode, ValueTypeCode } from './constants.ts';
export { ProtocolError } from './errors.ts';
export type { ProtocolErrorCode } from './errors.ts';
export { readHeader } from './header.ts';
export type { MessageHeader } from './header.ts';
export { FrameReader, encodeVersion } from './frame-reader.ts';
export type { FrameReaderOptions } from './frame-reader.ts';
export { decodeRequest, encodeRequest } from './requests.ts';
export { EXTENSION_LIVE_QUERIES, LiveRequestType, type LiveSubscribeRequest } from './live-requests.ts';
export type { DecodeOptions, EncodeOptions, Request, RequestName } from './requests.ts';
export { decodeResponse, encodeResponse } from './responses.ts';
export type { FileData, NodeInfo, Response, ResponseDecodeOptions, ResponseEncodeOptions, ResponseName } from './responses.ts';
export { ROWS_BATCH_BYTES_DEFAULT, RowsBatcher, encodeRowsBatches } from './rows-batcher.ts';
export type { RowsBatcherOptions } from './rows-batcher.ts';
export { bigintToValue, formatIso8601, fromTypedValue, parseIso8601, toTypedValue } from './values.ts';
export type { TypedValue, Value } from './values.ts';

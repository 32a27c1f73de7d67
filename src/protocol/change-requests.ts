/**
 * The change feed over our protocol (extension types 210–219, docs/live-queries.md): sent only
 * to servers that announced EXTENSION_READS. A WatchChanges request turns its connection into a
 * subscription: the server answers Watching, then pushes ChangeTransaction and ChangeGap
 * messages, at most `credit` ahead of the ChangesAck messages the client sends as it consumes
 * them (flow control: the server never queues more than that for a slow reader). The client
 * ends it by closing the connection.
 *
 *   request 210 WatchChanges: database text, since u64 (index + 1; 0 = from now), credit u64,
 *                             table count u64, tables (text each)
 *   request 211 ChangesAck:   consumed u64 (more events the server may send)
 *   response 210 Watching:    since u64 (the bookmark the feed starts after), applied u64
 *   response 211 ChangeTransaction: index u64, has changes u64 (0/1), changes blob (change-codec.ts)
 *   response 212 ChangeGap:   since u64, first available index u64, message text
 */
import { decodeChanges, encodeChanges } from '../fsm/change-codec.ts';
import type { TransactionChanges } from '../fsm/commit-events.ts';
import { Reader } from './buffer.ts';
import { HEADER_BYTES, MESSAGE_BYTES_MAX_DEFAULT } from './constants.ts';
import { ProtocolError } from './errors.ts';
import { beginMessage, checkWholeMessage, finishMessage, readHeader } from './header.ts';

export const ChangeRequestType = {
  WatchChanges: 210,
  ChangesAck: 211,
} as const;

export const ChangeResponseType = {
  Watching: 210,
  ChangeTransaction: 211,
  ChangeGap: 212,
} as const;

export type ChangeRequest =
  | { type: 'watch_changes'; database: string; since: number | undefined; credit: number; tables: readonly string[] }
  | { type: 'changes_ack'; consumed: number };

export type ChangeResponse =
  | { type: 'watching'; since: number; applied: number }
  | { type: 'change_transaction'; index: number; changes: TransactionChanges | undefined }
  | { type: 'change_gap'; since: number; firstAvailableIndex: number; message: string };

const TABLES_MAX = 4096;

/** Whether `message` (a whole request) is one of the change feed's. */
export function isChangeRequest(message: Uint8Array): boolean {
  const type = message.length >= HEADER_BYTES ? message[4]! : 0;
  return type === ChangeRequestType.WatchChanges || type === ChangeRequestType.ChangesAck;
}

/** Whether `message` (a whole response) is one of the change feed's. */
export function isChangeResponse(message: Uint8Array): boolean {
  const type = message.length >= HEADER_BYTES ? message[4]! : 0;
  return type >= ChangeResponseType.Watching && type <= ChangeResponseType.ChangeGap;
}

export function encodeChangeRequest(request: ChangeRequest): Uint8Array {
  const writer = beginMessage(MESSAGE_BYTES_MAX_DEFAULT + HEADER_BYTES);
  if (request.type === 'watch_changes') {
    writer.text(request.database);
    writer.u64(request.since === undefined ? 0 : request.since + 1);
    writer.u64(request.credit);
    writer.u64(request.tables.length);
    for (const table of request.tables) writer.text(table);
    return finishMessage(writer, ChangeRequestType.WatchChanges);
  }
  writer.u64(request.consumed);
  return finishMessage(writer, ChangeRequestType.ChangesAck);
}

export function decodeChangeRequest(message: Uint8Array): ChangeRequest {
  const header = checkWholeMessage(message, 'change request');
  const reader = new Reader(message, `request type ${header.type}`, HEADER_BYTES);
  switch (header.type) {
    case ChangeRequestType.WatchChanges: {
      const database = reader.text('database name');
      const sincePlusOne = reader.u64Number('since');
      const credit = reader.u64Number('credit');
      const count = reader.u64Number('table count', TABLES_MAX);
      const tables: string[] = [];
      for (let i = 0; i < count; i++) tables.push(reader.text('table name'));
      if (credit < 1) throw new ProtocolError('bad_value', 'credit must be at least 1 event');
      return { type: 'watch_changes', database, since: sincePlusOne === 0 ? undefined : sincePlusOne - 1, credit, tables };
    }
    case ChangeRequestType.ChangesAck:
      return { type: 'changes_ack', consumed: reader.u64Number('consumed') };
    default:
      throw new ProtocolError('bad_type', `unknown change request type ${header.type}`);
  }
}

export function encodeChangeResponse(response: ChangeResponse): Uint8Array {
  const writer = beginMessage(MESSAGE_BYTES_MAX_DEFAULT + HEADER_BYTES);
  switch (response.type) {
    case 'watching':
      writer.u64(response.since);
      writer.u64(response.applied);
      return finishMessage(writer, ChangeResponseType.Watching);
    case 'change_transaction':
      writer.u64(response.index);
      writer.u64(response.changes ? 1 : 0);
      if (response.changes) writer.blob(encodeChanges(response.changes));
      return finishMessage(writer, ChangeResponseType.ChangeTransaction);
    case 'change_gap':
      writer.u64(response.since);
      writer.u64(response.firstAvailableIndex);
      writer.text(response.message);
      return finishMessage(writer, ChangeResponseType.ChangeGap);
  }
}

export function decodeChangeResponse(message: Uint8Array): ChangeResponse {
  const header = readHeader(message);
  const reader = new Reader(message, `response type ${header.type}`, HEADER_BYTES);
  switch (header.type) {
    case ChangeResponseType.Watching:
      return { type: 'watching', since: reader.u64Number('since'), applied: reader.u64Number('applied') };
    case ChangeResponseType.ChangeTransaction: {
      const index = reader.u64Number('index');
      const hasChanges = reader.u64Number('has changes', 1);
      if (hasChanges === 0) return { type: 'change_transaction', index, changes: undefined };
      try {
        return { type: 'change_transaction', index, changes: decodeChanges(reader.blob('changes')) };
      } catch (error) {
        if (error instanceof ProtocolError) throw error;
        throw new ProtocolError('bad_value', error instanceof Error ? error.message : String(error));
      }
    }
    case ChangeResponseType.ChangeGap: {
      const since = reader.u64Number('since');
      const firstAvailableIndex = reader.u64Number('first available index');
      return { type: 'change_gap', since, firstAvailableIndex, message: reader.text('message') };
    }
    default:
      throw new ProtocolError('bad_type', `unknown change response type ${header.type}`);
  }
}

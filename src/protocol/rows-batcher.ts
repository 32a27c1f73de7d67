import type { Writer } from './buffer.ts';
import { HEADER_BYTES, MESSAGE_BYTES_MAX_DEFAULT, ResponseType } from './constants.ts';
import { ProtocolError } from './errors.ts';
import { beginMessage, finishMessage } from './header.ts';
import { writeCheckedRow, writeRowsEnd, writeRowsPreamble } from './responses.ts';
import type { TypedValue } from './values.ts';

/** Body size after which the C server starts a new batch (one memory page). */
export const ROWS_BATCH_BYTES_DEFAULT = 4096;

export interface RowsBatcherOptions {
  /** Start a new batch once a batch's body reaches this many bytes. */
  batchBytes?: number;
  /** Hard bound on one message body; a single row larger than this is a ProtocolError. */
  messageBytesMax?: number;
}

/**
 * Streams a result set into Rows messages. Each batch repeats the column names (go-dqlite
 * decodes every batch in full). A batch ends with PART only when another row is known to
 * follow, so the final batch always ends with DONE and is never empty unless the result is.
 */
export class RowsBatcher {
  private readonly columns: readonly string[];
  private readonly batchBytes: number;
  private readonly messageBytesMax: number;
  private writer: Writer;
  private rowsInBatch = 0;
  private finished = false;

  constructor(columns: readonly string[], options: RowsBatcherOptions = {}) {
    this.columns = columns;
    this.batchBytes = options.batchBytes ?? ROWS_BATCH_BYTES_DEFAULT;
    this.messageBytesMax = options.messageBytesMax ?? MESSAGE_BYTES_MAX_DEFAULT;
    this.writer = this.startBatch();
  }

  private startBatch(): Writer {
    const writer = beginMessage(this.messageBytesMax + HEADER_BYTES);
    writeRowsPreamble(writer, this.columns);
    this.rowsInBatch = 0;
    return writer;
  }

  /** Adds a row; returns a finished PART message when the previous batch was full. */
  add(row: readonly TypedValue[]): Uint8Array | undefined {
    if (this.finished) throw new ProtocolError('bad_value', 'RowsBatcher.add after finish');
    let full: Uint8Array | undefined;
    if (this.rowsInBatch > 0 && this.writer.length - HEADER_BYTES >= this.batchBytes) {
      full = this.closeBatch(true);
      this.writer = this.startBatch();
    }
    writeCheckedRow(this.writer, row, this.columns.length);
    this.rowsInBatch++;
    return full;
  }

  /** The last message, ending with DONE. */
  finish(): Uint8Array {
    if (this.finished) throw new ProtocolError('bad_value', 'RowsBatcher.finish called twice');
    this.finished = true;
    return this.closeBatch(false);
  }

  private closeBatch(more: boolean): Uint8Array {
    writeRowsEnd(this.writer, more);
    return finishMessage(this.writer, ResponseType.Rows);
  }
}

/** Encodes a whole result set as Rows messages split at `batchBytes`. */
export function encodeRowsBatches(
  columns: readonly string[],
  rows: Iterable<readonly TypedValue[]>,
  options: RowsBatcherOptions = {},
): Uint8Array[] {
  const batcher = new RowsBatcher(columns, options);
  const messages: Uint8Array[] = [];
  for (const row of rows) {
    const full = batcher.add(row);
    if (full) messages.push(full);
  }
  messages.push(batcher.finish());
  return messages;
}

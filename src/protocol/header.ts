import { type Writer, Writer as BodyWriter } from './buffer.ts';
import { HEADER_BYTES, MESSAGE_BYTES_MAX_DEFAULT, WORD_BYTES } from './constants.ts';
import { ProtocolError } from './errors.ts';

/** The 8-byte header in front of every request and response. */
export interface MessageHeader {
  /** Body size in 8-byte words. */
  readonly words: number;
  readonly type: number;
  /** Body schema revision (go-dqlite calls it flags; always 0 from go-dqlite 1.11.5). */
  readonly schema: number;
  /** Unused; go-dqlite writes 0. */
  readonly extra: number;
}

export function readHeader(bytes: Uint8Array, offset = 0): MessageHeader {
  if (bytes.length - offset < HEADER_BYTES) {
    throw new ProtocolError('truncated', `message header needs ${HEADER_BYTES} bytes, got ${bytes.length - offset}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, HEADER_BYTES);
  return { words: view.getUint32(0, true), type: view.getUint8(4), schema: view.getUint8(5), extra: view.getUint16(6, true) };
}

/** Checks that `message` is exactly one whole message and returns its header. */
export function checkWholeMessage(message: Uint8Array, what: string): MessageHeader {
  const header = readHeader(message);
  const expected = HEADER_BYTES + header.words * WORD_BYTES;
  if (message.length !== expected) {
    throw new ProtocolError(
      message.length < expected ? 'truncated' : 'bad_value',
      `${what}: header says ${header.words} words (${expected} bytes in all), got ${message.length} bytes`,
    );
  }
  return header;
}

/** Starts a message: a placeholder header, then the body goes into the same writer. */
export function beginMessage(bytesMax: number = MESSAGE_BYTES_MAX_DEFAULT + HEADER_BYTES): Writer {
  const writer = new BodyWriter(bytesMax);
  writer.u64(0n);
  return writer;
}

/** Fills in the header. An empty body gets one zero word: go-dqlite cannot read empty bodies. */
export function finishMessage(writer: Writer, type: number, schema = 0, extra = 0): Uint8Array {
  if (writer.length === HEADER_BYTES) writer.u64(0n);
  writer.padToWord();
  const words = (writer.length - HEADER_BYTES) / WORD_BYTES;
  const bytes = writer.finish();
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  view.setUint32(0, words, true);
  view.setUint8(4, type);
  view.setUint8(5, schema);
  view.setUint16(6, extra, true);
  return bytes;
}

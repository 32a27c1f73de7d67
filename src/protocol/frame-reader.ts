import { HEADER_BYTES, MESSAGE_BYTES_MAX_DEFAULT, PROTOCOL_VERSION, WORD_BYTES } from './constants.ts';
import { ProtocolError } from './errors.ts';
import { ByteSlab } from '../../wasm/byte-slab.ts';

/**
 * Where whole messages are cut from: a request or answer of a few hundred bytes to a few KiB
 * each, each its own array buffer would cost a backing store and GC pressure (byte-slab.ts).
 * Messages are short-lived (decoded values that outlive them are copies or small), so a block
 * is held little longer than the messages in it.
 */
const messageSlab = new ByteSlab(64 * 1024, 8 * 1024);
/** A typed array this small lives on V8's heap, cheaper than any slab piece. */
const ON_HEAP_BYTES_MAX = 64;

export interface FrameReaderOptions {
  /** Reject a message whose body exceeds this, before allocating it. Default 64 MiB. */
  messageBytesMax?: number;
  /**
   * Server side: the stream starts with the client's 8-byte protocol version word; it is
   * checked against `acceptedVersions` (default: version 1 only) and not returned as a message.
   */
  expectVersion?: boolean;
  acceptedVersions?: readonly bigint[];
}

/**
 * Cuts a byte stream into whole messages (header + body). Feed chunks in order; each call
 * returns the messages completed by that chunk. After a ProtocolError the stream is unusable.
 */
export class FrameReader {
  private readonly messageBytesMax: number;
  private readonly acceptedVersions: readonly bigint[];
  private awaitingVersion: boolean;
  private readonly headerBytes = new Uint8Array(HEADER_BYTES);
  private headerFill = 0;
  /**
   * Parts of the message being received (header first). The whole message is allocated only
   * once all of it has arrived, so a peer that announces a large message and sends little
   * costs little memory.
   */
  private parts: Uint8Array[] = [];
  private partsBytes = 0;
  /** Size of the message being received (header + body), or 0 between messages. */
  private messageBytes = 0;
  private failed: ProtocolError | undefined;
  /** The protocol version the client announced (server side), once read. */
  version: bigint | undefined;

  constructor(options: FrameReaderOptions = {}) {
    this.messageBytesMax = options.messageBytesMax ?? MESSAGE_BYTES_MAX_DEFAULT;
    this.awaitingVersion = options.expectVersion ?? false;
    this.acceptedVersions = options.acceptedVersions ?? [PROTOCOL_VERSION];
  }

  /** Bytes held for an incomplete message. */
  get bufferedBytes(): number {
    return this.messageBytes > 0 ? this.partsBytes : this.headerFill;
  }

  feed(chunk: Uint8Array): Uint8Array[] {
    if (this.failed) throw this.failed;
    try {
      return this.consume(chunk);
    } catch (error) {
      if (error instanceof ProtocolError) this.failed = error;
      throw error;
    }
  }

  private consume(chunk: Uint8Array): Uint8Array[] {
    const messages: Uint8Array[] = [];
    let at = 0;
    while (at < chunk.length) {
      if (this.messageBytes > 0) {
        const take = Math.min(chunk.length - at, this.messageBytes - this.partsBytes);
        // Copy: the caller may reuse its chunk buffer after feed returns.
        this.parts.push(chunk.slice(at, at + take));
        this.partsBytes += take;
        at += take;
        if (this.partsBytes === this.messageBytes) messages.push(this.takeMessage());
        continue;
      }
      const take = Math.min(chunk.length - at, HEADER_BYTES - this.headerFill);
      this.headerBytes.set(chunk.subarray(at, at + take), this.headerFill);
      this.headerFill += take;
      at += take;
      if (this.headerFill < HEADER_BYTES) break;
      this.headerFill = 0;
      const view = new DataView(this.headerBytes.buffer);
      if (this.awaitingVersion) {
        this.awaitingVersion = false;
        const version = view.getBigUint64(0, true);
        if (!this.acceptedVersions.includes(version)) {
          throw new ProtocolError('bad_version', `unsupported dqlite protocol version 0x${version.toString(16)}`);
        }
        this.version = version;
        continue;
      }
      const words = view.getUint32(0, true);
      const bodyBytes = words * WORD_BYTES;
      if (bodyBytes > this.messageBytesMax) {
        throw new ProtocolError(
          'too_large',
          `message of ${bodyBytes} bytes (type ${view.getUint8(4)}) exceeds the limit of ${this.messageBytesMax} bytes`,
        );
      }
      const headerStart = at - HEADER_BYTES;
      if (take === HEADER_BYTES && chunk.length - headerStart >= HEADER_BYTES + bodyBytes) {
        // The whole message is in this chunk (nearly always): one copy, no parts.
        const end = headerStart + HEADER_BYTES + bodyBytes;
        if (end - headerStart <= ON_HEAP_BYTES_MAX) {
          messages.push(chunk.slice(headerStart, end));
        } else {
          const message = messageSlab.take(end - headerStart);
          message.set(chunk.subarray(headerStart, end));
          messages.push(message);
        }
        at = headerStart + HEADER_BYTES + bodyBytes;
        continue;
      }
      this.parts = [this.headerBytes.slice()];
      this.partsBytes = HEADER_BYTES;
      this.messageBytes = HEADER_BYTES + bodyBytes;
      if (bodyBytes === 0) messages.push(this.takeMessage());
    }
    return messages;
  }

  private takeMessage(): Uint8Array {
    const message = new Uint8Array(this.messageBytes);
    let at = 0;
    for (const part of this.parts) {
      message.set(part, at);
      at += part.length;
    }
    this.parts = [];
    this.partsBytes = 0;
    this.messageBytes = 0;
    return message;
  }
}

/** The 8 bytes a client sends right after connecting. */
export function encodeVersion(version: bigint = PROTOCOL_VERSION): Uint8Array {
  const bytes = new Uint8Array(WORD_BYTES);
  new DataView(bytes.buffer).setBigUint64(0, version, true);
  return bytes;
}

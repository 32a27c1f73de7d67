import { WORD_BYTES } from './constants.ts';
import { ProtocolError } from './errors.ts';

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8');

const U64_MAX = (1n << 64n) - 1n;

export function padToWord(bytes: number): number {
  return Math.ceil(bytes / WORD_BYTES) * WORD_BYTES;
}

/** Bytes a text field takes: UTF-8, NUL, zero padding to a word. */
export function textFieldBytes(utf8Bytes: number): number {
  return padToWord(utf8Bytes + 1);
}

export function utf8Encode(text: string): Uint8Array {
  return textEncoder.encode(text);
}

/**
 * The buffer messages are built in, lent to one Writer at a time: encoding is synchronous, so
 * nearly every message is built in it and only `finish` allocates (one array of the message's
 * size). A Writer that is dropped unfinished (an encoding error) keeps it; the next one makes a
 * new one. Grown buffers beyond SCRATCH_BYTES_KEPT are not kept.
 */
let scratch: { bytes: Uint8Array; view: DataView } | undefined;
const SCRATCH_BYTES_KEPT = 64 * 1024;

/** Appends word-aligned little-endian fields to a growing buffer bounded by `bytesMax`. */
export class Writer {
  private bytes: Uint8Array;
  private view: DataView;
  private offset = 0;
  private readonly bytesMax: number;
  /** Whether `bytes` is the lent scratch buffer, given back by `finish`. */
  private borrowed = false;

  constructor(bytesMax: number, initialBytes = 256) {
    this.bytesMax = bytesMax;
    const lent = scratch;
    if (lent) {
      scratch = undefined;
      this.borrowed = true;
      this.bytes = lent.bytes;
      this.view = lent.view;
    } else {
      this.borrowed = initialBytes <= 256;
      this.bytes = new Uint8Array(this.borrowed ? 256 : Math.min(initialBytes, bytesMax));
      this.view = new DataView(this.bytes.buffer);
    }
  }

  get length(): number {
    return this.offset;
  }

  private reserve(extraBytes: number): number {
    const start = this.offset;
    const needed = start + extraBytes;
    if (needed > this.bytesMax) {
      throw new ProtocolError(
        'too_large',
        `message of at least ${needed} bytes exceeds the limit of ${this.bytesMax} bytes`,
      );
    }
    if (needed > this.bytes.length) this.grow(needed);
    this.offset = needed;
    return start;
  }

  private grow(needed: number): void {
    let size = Math.max(this.bytes.length * 2, 64);
    while (size < needed) size *= 2;
    // The lent buffer may be larger than bytesMax (another message grew it): never shrink.
    const grown = new Uint8Array(Math.max(needed, Math.min(size, this.bytesMax)));
    grown.set(this.bytes.subarray(0, this.offset));
    this.bytes = grown;
    this.view = new DataView(grown.buffer);
  }

  u8(value: number): void {
    const at = this.reserve(1);
    this.bytes[at] = value;
  }

  u32(value: number): void {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
      throw new ProtocolError('bad_value', `${value} is not a 32-bit unsigned integer`);
    }
    const at = this.reserve(4);
    this.view.setUint32(at, value, true);
  }

  u64(value: number | bigint): void {
    const big = typeof value === 'bigint' ? value : safeIntegerToBigInt(value);
    if (big < 0n || big > U64_MAX) {
      throw new ProtocolError('bad_value', `${value} is not a 64-bit unsigned integer`);
    }
    const at = this.reserve(8);
    this.view.setBigUint64(at, big, true);
  }

  i64(value: bigint): void {
    if (value < -(1n << 63n) || value >= 1n << 63n) {
      throw new ProtocolError('bad_value', `${value} is not a 64-bit signed integer`);
    }
    const at = this.reserve(8);
    this.view.setBigInt64(at, value, true);
  }

  f64(value: number): void {
    const at = this.reserve(8);
    this.view.setFloat64(at, value, true);
  }

  /** UTF-8, a NUL terminator, zero padding to a word. */
  text(value: string): void {
    if (value.includes('\u0000')) {
      throw new ProtocolError('bad_value', 'text values cannot contain NUL characters on the dqlite wire');
    }
    // Encoded in place when the longest encoding fits (3 bytes per UTF-16 unit): no copy.
    const longest = textFieldBytes(value.length * 3);
    if (this.offset + longest <= this.bytesMax) {
      if (this.offset + longest > this.bytes.length) this.grow(this.offset + longest);
      const { written } = textEncoder.encodeInto(value, this.bytes.subarray(this.offset));
      const at = this.reserve(textFieldBytes(written));
      this.bytes.fill(0, at + written, this.offset);
      return;
    }
    const utf8 = textEncoder.encode(value);
    const at = this.reserve(textFieldBytes(utf8.length));
    this.bytes.set(utf8, at);
    this.bytes.fill(0, at + utf8.length, this.offset);
  }

  /** u64 length, the bytes, zero padding to a word. */
  blob(value: Uint8Array): void {
    this.u64(value.length);
    this.raw(value);
    this.padToWord();
  }

  raw(value: Uint8Array): void {
    const at = this.reserve(value.length);
    this.bytes.set(value, at);
  }

  padToWord(): void {
    const padded = padToWord(this.offset);
    const at = this.reserve(padded - this.offset);
    this.bytes.fill(0, at, this.offset);
  }

  /** Overwrite 4 bytes already written (the header's word count). */
  patchU32(at: number, value: number): void {
    this.view.setUint32(at, value, true);
  }

  /** The message's bytes, a copy of its own; the Writer is not used after. */
  finish(): Uint8Array {
    // Its own buffer, not a piece of a shared one: a host's stream may transfer it (postMessage).
    const message = this.bytes.slice(0, this.offset);
    if (this.borrowed && this.bytes.length <= SCRATCH_BYTES_KEPT) scratch = { bytes: this.bytes, view: this.view };
    this.borrowed = false;
    return message;
  }
}

function safeIntegerToBigInt(value: number): bigint {
  if (!Number.isSafeInteger(value)) {
    throw new ProtocolError('bad_value', `${value} is not an integer that fits in 53 bits`);
  }
  return BigInt(value);
}

/** Reads fields from a message body; every read is bounds-checked and throws ProtocolError. */
export class Reader {
  private readonly bytes: Uint8Array;
  private readonly view: DataView;
  private offset: number;
  private readonly end: number;
  /** What is being decoded, for error messages. */
  private readonly what: string;

  /** Blobs as views of `bytes` instead of copies (a request: its message is its own copy, and short-lived). */
  private readonly viewBlobs: boolean;

  constructor(bytes: Uint8Array, what: string, start = 0, end = bytes.length, options: { viewBlobs?: boolean } = {}) {
    this.viewBlobs = options.viewBlobs ?? false;
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.offset = start;
    this.end = end;
    this.what = what;
  }

  get position(): number {
    return this.offset;
  }

  get remaining(): number {
    return this.end - this.offset;
  }

  atEnd(): boolean {
    return this.offset >= this.end;
  }

  private take(byteCount: number, field: string): number {
    if (byteCount > this.end - this.offset) {
      throw new ProtocolError(
        'truncated',
        `${this.what}: ${field} needs ${byteCount} bytes at offset ${this.offset}, only ${this.end - this.offset} left`,
      );
    }
    const at = this.offset;
    this.offset += byteCount;
    return at;
  }

  u8(field: string): number {
    return this.bytes[this.take(1, field)]!;
  }

  u32(field: string): number {
    return this.view.getUint32(this.take(4, field), true);
  }

  u64(field: string): bigint {
    return this.view.getBigUint64(this.take(8, field), true);
  }

  /** A u64 that must fit in a JS number (ids, counts, codes). */
  u64Number(field: string, max: number = Number.MAX_SAFE_INTEGER): number {
    const value = this.u64(field);
    if (value > BigInt(max)) {
      throw new ProtocolError('bad_value', `${this.what}: ${field} is ${value}, more than the maximum ${max}`);
    }
    return Number(value);
  }

  i64(field: string): bigint {
    return this.view.getBigInt64(this.take(8, field), true);
  }

  f64(field: string): number {
    return this.view.getFloat64(this.take(8, field), true);
  }

  text(field: string): string {
    const start = this.offset;
    const at = this.bytes.indexOf(0, start);
    const nul = at < 0 || at >= this.end ? -1 : at - start;
    if (nul < 0) {
      throw new ProtocolError('bad_text', `${this.what}: ${field} at offset ${start} has no NUL terminator`);
    }
    const value = textDecoder.decode(this.bytes.subarray(start, start + nul));
    this.take(textFieldBytes(nul), field);
    return value;
  }

  blob(field: string): Uint8Array {
    const length = this.u64(field);
    if (length > BigInt(this.remaining)) {
      throw new ProtocolError(
        'truncated',
        `${this.what}: ${field} claims ${length} bytes, only ${this.remaining} left in the message`,
      );
    }
    const byteCount = Number(length);
    const data = this.viewBlobs ? this.bytes.subarray(this.take(byteCount, field), this.offset) : this.raw(byteCount, field);
    this.skipToWord(field);
    return data;
  }

  /** A copy, so decoded values do not pin the receive buffer. */
  raw(byteCount: number, field: string): Uint8Array {
    const at = this.take(byteCount, field);
    return this.bytes.slice(at, at + byteCount);
  }

  skip(byteCount: number, field: string): void {
    this.take(byteCount, field);
  }

  skipToWord(field: string): void {
    const padded = padToWord(this.offset);
    this.take(padded - this.offset, field);
  }

  /** Look at a byte without consuming it (Rows end markers). */
  peekU8(at: number): number | undefined {
    return this.offset + at < this.end ? this.bytes[this.offset + at] : undefined;
  }

  /** A count of items each taking at least `itemBytesMin`; rejects counts the body cannot hold. */
  count(field: string, itemBytesMin: number): number {
    const value = this.u64(field);
    if (value > BigInt(Math.floor(this.remaining / itemBytesMin))) {
      throw new ProtocolError(
        'too_large',
        `${this.what}: ${field} is ${value}, but only ${this.remaining} bytes are left in the message`,
      );
    }
    return Number(value);
  }
}

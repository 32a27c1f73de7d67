/**
 * A DER (ASN.1 Distinguished Encoding Rules) writer and reader, just large enough for X.509
 * certificates: what `node:crypto` and WebCrypto lack is a way to *issue* one. Host-neutral.
 */
import { concatBytes } from '../util/bytes.ts';

export const TAG = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  utf8String: 0x0c,
  printableString: 0x13,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
} as const;

/** Bound on one encoded value: certificates are a few kilobytes; anything near this is a bug. */
export const DER_VALUE_BYTES_MAX = 1024 * 1024;

export class DerError extends Error {
  readonly code = 'DER_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'DerError';
  }
}

function encodeLength(length: number): Uint8Array {
  if (length > DER_VALUE_BYTES_MAX) throw new DerError(`a DER value of ${length} bytes exceeds the ${DER_VALUE_BYTES_MAX}-byte bound`);
  if (length < 0x80) return Uint8Array.of(length);
  const bytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

/** One tag-length-value. */
export function tlv(tag: number, content: Uint8Array): Uint8Array {
  return concatBytes([Uint8Array.of(tag), encodeLength(content.byteLength), content]);
}

export function sequence(...items: Uint8Array[]): Uint8Array {
  return tlv(TAG.sequence, concatBytes(items));
}

/** A SET OF in DER order (elements sorted by their encodings). */
export function setOf(...items: Uint8Array[]): Uint8Array {
  const sorted = [...items].sort(compareBytes);
  return tlv(TAG.set, concatBytes(sorted));
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.byteLength, b.byteLength);
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.byteLength - b.byteLength;
}

/** A non-negative INTEGER from its big-endian magnitude (leading zeros dropped, sign byte added). */
export function unsignedInteger(magnitude: Uint8Array): Uint8Array {
  let start = 0;
  while (start < magnitude.byteLength - 1 && magnitude[start] === 0) start++;
  const trimmed = magnitude.subarray(start);
  const body = trimmed.byteLength === 0 ? Uint8Array.of(0) : (trimmed[0]! & 0x80) !== 0 ? concatBytes([Uint8Array.of(0), trimmed]) : trimmed;
  return tlv(TAG.integer, body);
}

export function smallInteger(value: number): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) throw new DerError(`smallInteger takes 0..2^32-1, got ${value}`);
  const bytes: number[] = [];
  for (let rest = value; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest & 0xff);
  return unsignedInteger(Uint8Array.from(bytes));
}

export function boolean(value: boolean): Uint8Array {
  return tlv(TAG.boolean, Uint8Array.of(value ? 0xff : 0x00));
}

export function nullValue(): Uint8Array {
  return tlv(TAG.null, new Uint8Array(0));
}

/** An OBJECT IDENTIFIER from dotted text ("1.2.840.10045.2.1"). */
export function oid(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map((arc) => {
    if (!/^\d+$/.test(arc)) throw new DerError(`"${dotted}" is not a dotted object identifier`);
    return Number(arc);
  });
  if (arcs.length < 2 || arcs[0]! > 2 || (arcs[0]! < 2 && arcs[1]! > 39)) throw new DerError(`"${dotted}" is not a valid object identifier`);
  const body: number[] = [];
  const pushArc = (arc: number): void => {
    const groups: number[] = [arc & 0x7f];
    for (let rest = Math.floor(arc / 128); rest > 0; rest = Math.floor(rest / 128)) groups.unshift((rest & 0x7f) | 0x80);
    body.push(...groups);
  };
  pushArc(arcs[0]! * 40 + arcs[1]!);
  for (const arc of arcs.slice(2)) pushArc(arc);
  return tlv(TAG.oid, Uint8Array.from(body));
}

export function octetString(bytes: Uint8Array): Uint8Array {
  return tlv(TAG.octetString, bytes);
}

/** A BIT STRING holding whole bytes (keys, signatures). */
export function bitString(bytes: Uint8Array): Uint8Array {
  return tlv(TAG.bitString, concatBytes([Uint8Array.of(0), bytes]));
}

/**
 * A BIT STRING of named bits (bit 0 is the most significant bit of the first byte), encoded as
 * DER wants it: trailing zero bits removed and counted in the first content byte.
 */
export function namedBits(bits: readonly number[]): Uint8Array {
  if (bits.length === 0) return tlv(TAG.bitString, Uint8Array.of(0));
  const highest = Math.max(...bits);
  const bytes = new Uint8Array(Math.floor(highest / 8) + 1);
  for (const bit of bits) bytes[Math.floor(bit / 8)]! |= 0x80 >> bit % 8;
  const unused = 7 - (highest % 8);
  return tlv(TAG.bitString, concatBytes([Uint8Array.of(unused), bytes]));
}

export function utf8String(text: string): Uint8Array {
  return tlv(TAG.utf8String, new TextEncoder().encode(text));
}

/** X.509 validity times: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5). */
export function time(date: Date): Uint8Array {
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '');
  const year = date.getUTCFullYear();
  if (year < 1950 || year > 9999) throw new DerError(`certificate time ${iso} is outside 1950..9999`);
  if (year < 2050) return tlv(TAG.utcTime, new TextEncoder().encode(digits.slice(2) + 'Z'));
  return tlv(TAG.generalizedTime, new TextEncoder().encode(digits + 'Z'));
}

/** `[n]` EXPLICIT: a constructed context tag wrapping one whole value. */
export function explicit(tagNumber: number, value: Uint8Array): Uint8Array {
  return tlv(0xa0 | tagNumber, value);
}

/** `[n]` IMPLICIT over a primitive value: the content bytes under a context tag. */
export function implicitPrimitive(tagNumber: number, content: Uint8Array): Uint8Array {
  return tlv(0x80 | tagNumber, content);
}

// ------------------------------------------------------------------------------ reading

export interface DerNode {
  tag: number;
  /** The whole encoding (tag, length and content). */
  bytes: Uint8Array;
  content: Uint8Array;
}

/** Reads one TLV at `offset`; throws a DerError on truncated or non-DER lengths. */
export function readNode(input: Uint8Array, offset = 0): DerNode {
  if (offset + 2 > input.byteLength) throw new DerError('truncated DER: no tag and length');
  const tag = input[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte DER tags are not used in certificates');
  let length = input[offset + 1]!;
  let header = 2;
  if (length & 0x80) {
    const lengthBytes = length & 0x7f;
    if (lengthBytes === 0 || lengthBytes > 4) throw new DerError(`unsupported DER length of ${lengthBytes} bytes`);
    if (offset + 2 + lengthBytes > input.byteLength) throw new DerError('truncated DER length');
    length = 0;
    for (let i = 0; i < lengthBytes; i++) length = length * 256 + input[offset + 2 + i]!;
    header += lengthBytes;
  }
  const end = offset + header + length;
  if (end > input.byteLength) throw new DerError(`truncated DER value: ${length} bytes announced, ${input.byteLength - offset - header} present`);
  return { tag, bytes: input.subarray(offset, end), content: input.subarray(offset + header, end) };
}

/** The elements of a constructed value (SEQUENCE, SET, explicit tag). */
export function children(node: DerNode): DerNode[] {
  const out: DerNode[] = [];
  for (let offset = 0; offset < node.content.byteLength; ) {
    const child = readNode(node.content, offset);
    out.push(child);
    offset += child.bytes.byteLength;
  }
  return out;
}

/**
 * The peer wire format: one WebSocket message = one frame. All integers little-endian.
 *
 *   HELLO  [0xD1][version u8][nodeId u64][addressLength u16][address utf8][keyLength u16][key utf8]
 *   DATA   [0xD2][hops u8][from u64][to u64][payload ...rest of the message]
 *   PING   [0xD3]   (keeps an idle connection observably alive)
 *
 * A dialer sends HELLO first; the acceptor answers with its own HELLO once the key matched.
 * Node ids are positive safe integers (dqlite's ids are u64; ours stay below 2^53).
 */

export const FRAME_KIND_HELLO = 0xd1;
export const FRAME_KIND_DATA = 0xd2;
export const FRAME_KIND_PING = 0xd3;
export const PROTOCOL_VERSION = 1;
export const HELLO_ADDRESS_BYTES_MAX = 255;
export const HELLO_KEY_BYTES_MAX = 1024;
export const DATA_HEADER_BYTES = 1 + 1 + 8 + 8;
/** Relayed at most once: a listening node forwards between two nodes that cannot reach each other. */
export const HOPS_MAX = 1;

export interface HelloFrame {
  kind: 'hello';
  version: number;
  nodeId: number;
  /** `host:port`, or '' for a node that cannot listen (a browser). */
  address: string;
  clusterKey: string;
}

export interface DataFrame {
  kind: 'data';
  hops: number;
  from: number;
  to: number;
  payload: Uint8Array;
}

export interface PingFrame {
  kind: 'ping';
}

export type Frame = HelloFrame | DataFrame | PingFrame;

export type DecodeResult = { ok: true; frame: Frame } | { ok: false; reason: string };

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

export function isNodeId(value: number): boolean {
  return Number.isSafeInteger(value) && value > 0;
}

export function encodeHello(hello: Omit<HelloFrame, 'kind' | 'version'>): Uint8Array {
  if (!isNodeId(hello.nodeId)) throw new RangeError(`node id must be a positive safe integer, got ${hello.nodeId}`);
  const address = textEncoder.encode(hello.address);
  const key = textEncoder.encode(hello.clusterKey);
  if (address.byteLength > HELLO_ADDRESS_BYTES_MAX) {
    throw new RangeError(`node address is ${address.byteLength} bytes, at most ${HELLO_ADDRESS_BYTES_MAX} allowed`);
  }
  if (key.byteLength > HELLO_KEY_BYTES_MAX) {
    throw new RangeError(`cluster key is ${key.byteLength} bytes, at most ${HELLO_KEY_BYTES_MAX} allowed`);
  }
  const bytes = new Uint8Array(1 + 1 + 8 + 2 + address.byteLength + 2 + key.byteLength);
  const view = new DataView(bytes.buffer);
  let offset = 0;
  bytes[offset++] = FRAME_KIND_HELLO;
  bytes[offset++] = PROTOCOL_VERSION;
  view.setBigUint64(offset, BigInt(hello.nodeId), true);
  offset += 8;
  view.setUint16(offset, address.byteLength, true);
  offset += 2;
  bytes.set(address, offset);
  offset += address.byteLength;
  view.setUint16(offset, key.byteLength, true);
  offset += 2;
  bytes.set(key, offset);
  return bytes;
}

export function encodeData(data: Omit<DataFrame, 'kind'>): Uint8Array {
  const bytes = new Uint8Array(DATA_HEADER_BYTES + data.payload.byteLength);
  writeDataHeader(bytes, data.hops, data.from, data.to);
  bytes.set(data.payload, DATA_HEADER_BYTES);
  return bytes;
}

/**
 * Writes a DATA header into the first DATA_HEADER_BYTES of `frame`, whose payload its producer
 * already put after them: the payload reaches the wire without a copy into a new frame.
 */
export function writeDataHeader(frame: Uint8Array, hops: number, from: number, to: number): void {
  if (!isNodeId(from) || !isNodeId(to)) {
    throw new RangeError(`node ids must be positive safe integers, got from=${from} to=${to}`);
  }
  if (!Number.isInteger(hops) || hops < 0 || hops > HOPS_MAX) {
    throw new RangeError(`hops must be 0..${HOPS_MAX}, got ${hops}`);
  }
  if (frame.byteLength < DATA_HEADER_BYTES) throw new RangeError(`a data frame needs ${DATA_HEADER_BYTES} header bytes, got ${frame.byteLength}`);
  frame[0] = FRAME_KIND_DATA;
  frame[1] = hops;
  writeNodeId(frame, 2, from);
  writeNodeId(frame, 10, to);
}

/** A u64 little-endian node id (a safe integer) without a DataView or a BigInt. */
function writeNodeId(bytes: Uint8Array, offset: number, id: number): void {
  let low = id % 0x100000000;
  let high = Math.floor(id / 0x100000000);
  for (let i = 0; i < 4; i++) {
    bytes[offset + i] = low & 0xff;
    low >>>= 8;
    bytes[offset + 4 + i] = high & 0xff;
    high >>>= 8;
  }
}

export function encodePing(): Uint8Array {
  return new Uint8Array([FRAME_KIND_PING]);
}

/** Re-encodes a DATA frame with one more hop, without copying through a decoded object. */
export function withNextHop(encodedData: Uint8Array): Uint8Array {
  const copy = encodedData.slice();
  copy[1] = copy[1]! + 1;
  return copy;
}

/** Never throws: malformed input gives a reason fit for a close message. */
export function decodeFrame(bytes: Uint8Array, messageBytesMax: number): DecodeResult {
  if (bytes.byteLength > messageBytesMax) {
    return { ok: false, reason: `message of ${bytes.byteLength} bytes exceeds the limit of ${messageBytesMax}` };
  }
  if (bytes.byteLength === 0) return { ok: false, reason: 'empty message' };
  const kind = bytes[0];
  if (kind === FRAME_KIND_DATA) {
    if (bytes.byteLength < DATA_HEADER_BYTES) return { ok: false, reason: 'truncated data frame header' };
    const hops = bytes[1]!;
    if (hops > HOPS_MAX) return { ok: false, reason: `data frame hop count ${hops} exceeds ${HOPS_MAX}` };
    const from = readNodeId(bytes, 2);
    const to = readNodeId(bytes, 10);
    if (from === undefined || to === undefined) return { ok: false, reason: 'data frame node id out of range' };
    return { ok: true, frame: { kind: 'data', hops, from, to, payload: bytes.subarray(DATA_HEADER_BYTES) } };
  }
  if (kind === FRAME_KIND_PING) {
    if (bytes.byteLength !== 1) return { ok: false, reason: 'trailing bytes after ping frame' };
    return { ok: true, frame: { kind: 'ping' } };
  }
  if (kind === FRAME_KIND_HELLO) {
    let offset = 1;
    if (bytes.byteLength < 1 + 1 + 8 + 2) return { ok: false, reason: 'truncated hello frame' };
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const version = bytes[offset++]!;
    if (version !== PROTOCOL_VERSION) {
      return { ok: false, reason: `peer protocol version ${version} is not supported (this node speaks ${PROTOCOL_VERSION})` };
    }
    const nodeId = readNodeId(bytes, offset);
    if (nodeId === undefined) return { ok: false, reason: 'hello node id out of range' };
    offset += 8;
    const address = readString(bytes, view, offset, HELLO_ADDRESS_BYTES_MAX);
    if (!address.ok) return { ok: false, reason: `hello address: ${address.reason}` };
    offset = address.end;
    const key = readString(bytes, view, offset, HELLO_KEY_BYTES_MAX);
    if (!key.ok) return { ok: false, reason: `hello key: ${key.reason}` };
    if (key.end !== bytes.byteLength) return { ok: false, reason: 'trailing bytes after hello frame' };
    return { ok: true, frame: { kind: 'hello', version, nodeId, address: address.value, clusterKey: key.value } };
  }
  return { ok: false, reason: `unknown frame kind 0x${kind!.toString(16).padStart(2, '0')}` };
}

function readNodeId(bytes: Uint8Array, offset: number): number | undefined {
  const low = readU32(bytes, offset);
  const high = readU32(bytes, offset + 4);
  // Above 2^53 - 1 (high word past 21 bits) or zero: not a node id.
  if (high >= 0x200000 || (high === 0 && low === 0)) return undefined;
  return high * 0x100000000 + low;
}

function readU32(bytes: Uint8Array, offset: number): number {
  return (bytes[offset]! | (bytes[offset + 1]! << 8) | (bytes[offset + 2]! << 16) | (bytes[offset + 3]! << 24)) >>> 0;
}

function readString(
  bytes: Uint8Array,
  view: DataView,
  offset: number,
  bytesMax: number,
): { ok: true; value: string; end: number } | { ok: false; reason: string } {
  if (offset + 2 > bytes.byteLength) return { ok: false, reason: 'truncated length' };
  const length = view.getUint16(offset, true);
  if (length > bytesMax) return { ok: false, reason: `length ${length} exceeds ${bytesMax}` };
  const start = offset + 2;
  if (start + length > bytes.byteLength) return { ok: false, reason: 'truncated text' };
  try {
    return { ok: true, value: textDecoder.decode(bytes.subarray(start, start + length)), end: start + length };
  } catch {
    return { ok: false, reason: 'invalid UTF-8' };
  }
}

/**
 * Compares secrets in time that depends only on their lengths, not on where they differ, so a
 * remote peer cannot find the key byte by byte from response times.
 */
export function constantTimeEqual(a: string, b: string): boolean {
  const left = textEncoder.encode(a);
  const right = textEncoder.encode(b);
  const length = Math.max(left.byteLength, right.byteLength);
  let difference = left.byteLength ^ right.byteLength;
  for (let index = 0; index < length; index++) {
    difference |= (left[index] ?? 0) ^ (right[index] ?? 0);
  }
  return difference === 0;
}

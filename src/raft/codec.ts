/**
 * Binary codecs for peer messages (entries and snapshot chunks included), ConfChange entry data
 * and whole configurations. Little-endian; integers are u64 holding values up to 2^53-1.
 * Decoders validate every field and bound every length; bad input throws RaftCodecError.
 */
import { RaftCodecError } from './errors.ts';
import { ADDRESS_BYTES_MAX, MEMBERS_MAX } from './membership.ts';
import type { ConfChange, Configuration, Entry, Member, Message, Role, SnapshotChunk } from './types.ts';
import { EntryType, MessageType } from './types.ts';

const MESSAGE_VERSION = 1;
const CONF_CHANGE_VERSION = 1;
const CONFIGURATION_VERSION = 1;
/** Upper bound of an encoded message: a peer cannot make us allocate more than this. */
export const MESSAGE_BYTES_MAX = 64 * 1024 * 1024;
export const MESSAGE_ENTRIES_MAX = 65536;

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/** Little-endian writes straight into the bytes: no DataView to allocate per message. */
class Writer {
  private buf: Uint8Array;
  private pos = 0;

  /** `startBytes`: bytes left at the front for the caller (finish() includes them); `into`: the buffer to write, else a new one. */
  constructor(capacityBytes = 256, startBytes = 0, into?: Uint8Array) {
    this.buf = into ?? new Uint8Array(Math.max(capacityBytes, startBytes));
    this.pos = startBytes;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = Math.max(1, this.buf.length * 2);
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  u16(v: number): void {
    this.ensure(2);
    const b = this.buf;
    b[this.pos] = v & 0xff;
    b[this.pos + 1] = (v >>> 8) & 0xff;
    this.pos += 2;
  }

  u32(v: number): void {
    this.ensure(4);
    this.put32(v);
  }

  u64(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RaftCodecError(`cannot encode ${v}: not an integer in 0..2^53-1`);
    this.ensure(8);
    this.put32(v % 0x100000000);
    this.put32(Math.floor(v / 0x100000000));
  }

  private put32(v: number): void {
    const b = this.buf;
    const p = this.pos;
    b[p] = v & 0xff;
    b[p + 1] = (v >>> 8) & 0xff;
    b[p + 2] = (v >>> 16) & 0xff;
    b[p + 3] = (v >>> 24) & 0xff;
    this.pos = p + 4;
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** The written bytes (no copy: the writer is not used afterwards). */
  finish(): Uint8Array {
    return this.pos === this.buf.length ? this.buf : this.buf.subarray(0, this.pos);
  }
}

class Reader {
  private pos = 0;
  constructor(private readonly buf: Uint8Array, private readonly what: string) {}

  private need(n: number, field: string): void {
    if (this.pos + n > this.buf.length) {
      throw new RaftCodecError(`${this.what} truncated: ${field} needs ${n} bytes at offset ${this.pos}, only ${this.buf.length - this.pos} left`);
    }
  }

  u8(field: string): number {
    this.need(1, field);
    return this.buf[this.pos++]!;
  }

  u16(field: string): number {
    this.need(2, field);
    const b = this.buf;
    const v = b[this.pos]! | (b[this.pos + 1]! << 8);
    this.pos += 2;
    return v;
  }

  u32(field: string): number {
    this.need(4, field);
    return this.get32();
  }

  u64(field: string): number {
    this.need(8, field);
    const lo = this.get32();
    const hi = this.get32();
    if (hi >= 0x200000) throw new RaftCodecError(`${this.what}: ${field} exceeds 2^53-1`);
    return hi * 0x100000000 + lo;
  }

  private get32(): number {
    const b = this.buf;
    const p = this.pos;
    this.pos = p + 4;
    return (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
  }

  /** A view into the reader's buffer (a private copy of the input, or input handed over). */
  bytes(n: number, field: string): Uint8Array {
    this.need(n, field);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  end(): void {
    if (this.pos !== this.buf.length) throw new RaftCodecError(`${this.what}: ${this.buf.length - this.pos} unexpected trailing bytes`);
  }
}

const ROLES: Role[] = ['voter', 'standby', 'spare'];

function writeRole(w: Writer, role: Role): void {
  const i = ROLES.indexOf(role);
  if (i < 0) throw new RaftCodecError(`cannot encode role ${String(role)}`);
  w.u8(i);
}

function readRole(r: Reader, field: string): Role {
  const v = r.u8(field);
  const role = ROLES[v];
  if (role === undefined) throw new RaftCodecError(`unknown role ${v} in ${field}`);
  return role;
}

function writeAddress(w: Writer, address: string): void {
  const b = utf8Encoder.encode(address);
  if (b.length > ADDRESS_BYTES_MAX) throw new RaftCodecError(`address longer than ${ADDRESS_BYTES_MAX} bytes`);
  w.u16(b.length);
  w.bytes(b);
}

function readAddress(r: Reader): string {
  const n = r.u16('address length');
  if (n > ADDRESS_BYTES_MAX) throw new RaftCodecError(`address length ${n} exceeds ${ADDRESS_BYTES_MAX}`);
  try {
    return utf8Decoder.decode(r.bytes(n, 'address'));
  } catch (e) {
    if (e instanceof RaftCodecError) throw e;
    throw new RaftCodecError('address is not valid UTF-8');
  }
}

function readNodeId(r: Reader, field: string, allowZero: boolean): number {
  const v = r.u64(field);
  if (v === 0 && !allowZero) throw new RaftCodecError(`${field} must be a node id >= 1`);
  return v;
}

function writeConfigurationBody(w: Writer, c: Configuration): void {
  if (c.members.length > MEMBERS_MAX) throw new RaftCodecError(`configuration has more than ${MEMBERS_MAX} members`);
  w.u32(c.members.length);
  for (const m of c.members) {
    w.u64(m.id);
    writeRole(w, m.role);
    writeAddress(w, m.address);
  }
}

function readConfigurationBody(r: Reader): Configuration {
  const n = r.u32('member count');
  if (n > MEMBERS_MAX) throw new RaftCodecError(`member count ${n} exceeds ${MEMBERS_MAX}`);
  const members: Member[] = [];
  const seen = new Set<number>();
  for (let i = 0; i < n; i++) {
    const id = readNodeId(r, 'member id', false);
    if (seen.has(id)) throw new RaftCodecError(`member id ${id} appears twice in the configuration`);
    seen.add(id);
    const role = readRole(r, 'member role');
    const address = readAddress(r);
    members.push({ id, address, role });
  }
  return { members };
}

export function encodeConfiguration(c: Configuration): Uint8Array {
  const w = new Writer();
  w.u8(CONFIGURATION_VERSION);
  writeConfigurationBody(w, c);
  return w.finish();
}

export function decodeConfiguration(bytes: Uint8Array): Configuration {
  const r = new Reader(bytes.slice(), 'configuration');
  const v = r.u8('version');
  if (v !== CONFIGURATION_VERSION) throw new RaftCodecError(`configuration version ${v} is not supported (expected ${CONFIGURATION_VERSION})`);
  const c = readConfigurationBody(r);
  r.end();
  return c;
}

const CONF_CHANGE_TYPES = ['add', 'assign', 'remove'] as const;

export function encodeConfChange(c: ConfChange): Uint8Array {
  const w = new Writer();
  w.u8(CONF_CHANGE_VERSION);
  w.u8(CONF_CHANGE_TYPES.indexOf(c.type) + 1);
  w.u64(c.id);
  if (c.type === 'add') {
    writeRole(w, c.role);
    writeAddress(w, c.address);
  } else if (c.type === 'assign') {
    writeRole(w, c.role);
  }
  return w.finish();
}

export function decodeConfChange(bytes: Uint8Array): ConfChange {
  const r = new Reader(bytes.slice(), 'conf change');
  const v = r.u8('version');
  if (v !== CONF_CHANGE_VERSION) throw new RaftCodecError(`conf change version ${v} is not supported (expected ${CONF_CHANGE_VERSION})`);
  const t = r.u8('type');
  const id = readNodeId(r, 'node id', false);
  let c: ConfChange;
  if (t === 1) {
    const role = readRole(r, 'role');
    c = { type: 'add', id, address: readAddress(r), role };
  } else if (t === 2) {
    c = { type: 'assign', id, role: readRole(r, 'role') };
  } else if (t === 3) {
    c = { type: 'remove', id };
  } else {
    throw new RaftCodecError(`unknown conf change type ${t}`);
  }
  r.end();
  return c;
}

function isMessageType(v: number): v is MessageType {
  return v >= MessageType.Append && v <= MessageType.TimeoutNow;
}

function isEntryType(v: number): v is EntryType {
  return v >= EntryType.Normal && v <= EntryType.Configuration;
}

/** Bytes of a message before its entries and snapshot: 2 u8, 6 u64, u8 reject, 2 u64, u32 entry count. */
const MESSAGE_HEADER_BYTES = 1 + 1 + 6 * 8 + 1 + 2 * 8 + 4;
/** Bytes of an entry besides its data: term, index, type, data length. */
const ENTRY_HEADER_BYTES = 8 + 8 + 1 + 4;

export function encodeMessage(m: Message): Uint8Array {
  return encodeMessageWithHeadroom(m, 0);
}

/**
 * The message's encoding after `headroomBytes` zero bytes that the caller fills (a transport's
 * frame header): the encoding goes to the wire in the buffer it was written into, uncopied.
 * Without a snapshot chunk the buffer is exactly as large as it must be.
 */
export function encodeMessageWithHeadroom(m: Message, headroomBytes: number): Uint8Array {
  return encodeMessageParts(m, headroomBytes, true);
}

/**
 * The encoding of a Snapshot message up to its chunk's data, after `headroomBytes` zero bytes:
 * encodeMessageWithHeadroom's bytes are these followed by the chunk's data. A sender whose chunk
 * has this many free bytes in front of it in its own buffer writes them there and sends the
 * chunk where it was read, uncopied.
 */
export function encodeSnapshotMessagePrefix(m: Message, headroomBytes: number): Uint8Array {
  if (!m.snapshot) throw new RaftCodecError('a snapshot message prefix needs a message with a snapshot chunk');
  if (m.entries.length > 0) throw new RaftCodecError('a snapshot message prefix needs a message without entries');
  return encodeMessageParts(m, headroomBytes, false);
}

/**
 * Bytes of the encoding of `m`, a message without a snapshot chunk (whose configuration's size is
 * only known once written): what encodeMessageInto needs after the headroom.
 */
export function encodedMessageBytes(m: Message): number {
  if (m.snapshot) throw new RaftCodecError('the encoded size of a message with a snapshot chunk is known once it is encoded');
  return bytesWithoutChunk(m);
}

/** The encoding's bytes but for a snapshot chunk's: header, entries, and the chunk flag. */
function bytesWithoutChunk(m: Message): number {
  let size = MESSAGE_HEADER_BYTES + m.entries.length * ENTRY_HEADER_BYTES + 1;
  for (const e of m.entries) size += e.data.length;
  return size;
}

/**
 * As encodeMessageWithHeadroom, into the front of `buffer` (a sender's reused frame buffer, of at
 * least `headroomBytes` + encodedMessageBytes(m)): the view of it that holds the frame. The
 * headroom's bytes are left as they were, for the caller to overwrite.
 */
export function encodeMessageInto(m: Message, headroomBytes: number, buffer: Uint8Array): Uint8Array {
  const needed = headroomBytes + encodedMessageBytes(m);
  if (buffer.length < needed) throw new RaftCodecError(`a ${buffer.length}-byte buffer cannot hold a ${needed}-byte frame`);
  const out = encodeMessageParts(m, headroomBytes, true, buffer.subarray(0, needed));
  if (out.buffer !== buffer.buffer) throw new RaftCodecError('the message outgrew the buffer it was encoded into');
  return out;
}

function encodeMessageParts(m: Message, headroomBytes: number, withChunkData: boolean, into?: Uint8Array): Uint8Array {
  if (m.entries.length > MESSAGE_ENTRIES_MAX) throw new RaftCodecError(`message has more than ${MESSAGE_ENTRIES_MAX} entries`);
  let size = bytesWithoutChunk(m);
  // Addresses are measured as they are written: the Writer grows for a chunk's configuration.
  if (m.snapshot) size += (withChunkData ? m.snapshot.data.length : 0) + 64 + m.snapshot.meta.configuration.members.length * 48;
  const w = new Writer(headroomBytes + size, headroomBytes, into);
  w.u8(MESSAGE_VERSION);
  w.u8(m.type);
  w.u64(m.from);
  w.u64(m.to);
  w.u64(m.term);
  w.u64(m.logTerm);
  w.u64(m.index);
  w.u64(m.commit);
  w.u8(m.reject ? 1 : 0);
  w.u64(m.rejectHint);
  w.u64(m.context);
  w.u32(m.entries.length);
  for (const e of m.entries) {
    w.u64(e.term);
    w.u64(e.index);
    w.u8(e.type);
    w.u32(e.data.length);
    w.bytes(e.data);
  }
  const s = m.snapshot;
  w.u8(s ? 1 : 0);
  if (s) {
    w.u64(s.meta.index);
    w.u64(s.meta.term);
    writeConfigurationBody(w, s.meta.configuration);
    w.u64(s.offset);
    w.u64(s.totalBytes);
    w.u32(s.data.length);
    if (withChunkData) w.bytes(s.data);
  }
  const out = w.finish();
  const encodedBytes = out.length - headroomBytes + (withChunkData ? 0 : (s?.data.length ?? 0));
  if (encodedBytes > MESSAGE_BYTES_MAX) throw new RaftCodecError(`encoded message is ${encodedBytes} bytes, over the ${MESSAGE_BYTES_MAX} limit`);
  return out;
}

/**
 * How decodeMessage may hold on to its input. 'copy': it decodes from a private copy, so the
 * caller may reuse its buffer. 'adopt': the caller hands the bytes over (a transport's freshly
 * received message) and entries and chunks are views into them, unless they are a small part
 * of a larger buffer that the views would keep alive, which is copied still.
 */
export type MessageInput = 'copy' | 'adopt';

export function decodeMessage(bytes: Uint8Array, input: MessageInput = 'copy'): Message {
  if (bytes.length > MESSAGE_BYTES_MAX) throw new RaftCodecError(`message is ${bytes.length} bytes, over the ${MESSAGE_BYTES_MAX} limit`);
  const adopt = input === 'adopt' && bytes.byteLength * 2 >= bytes.buffer.byteLength;
  const r = new Reader(adopt ? bytes : bytes.slice(), 'raft message');
  const v = r.u8('version');
  if (v !== MESSAGE_VERSION) throw new RaftCodecError(`raft message version ${v} is not supported (expected ${MESSAGE_VERSION})`);
  const type = r.u8('type');
  if (!isMessageType(type)) throw new RaftCodecError(`unknown raft message type ${type}`);
  const from = readNodeId(r, 'from', false);
  const to = readNodeId(r, 'to', false);
  const term = r.u64('term');
  const logTerm = r.u64('logTerm');
  const index = r.u64('index');
  const commit = r.u64('commit');
  const rejectByte = r.u8('reject');
  if (rejectByte > 1) throw new RaftCodecError(`reject flag must be 0 or 1, got ${rejectByte}`);
  const rejectHint = r.u64('rejectHint');
  const context = r.u64('context');
  const count = r.u32('entry count');
  if (count > MESSAGE_ENTRIES_MAX) throw new RaftCodecError(`entry count ${count} exceeds ${MESSAGE_ENTRIES_MAX}`);
  // Each entry takes at least 21 bytes: reject counts the input cannot hold before allocating.
  if (count * 21 > bytes.length) throw new RaftCodecError(`entry count ${count} cannot fit in ${bytes.length} bytes`);
  const entries: Entry[] = [];
  for (let i = 0; i < count; i++) {
    const eTerm = r.u64('entry term');
    const eIndex = r.u64('entry index');
    const eType = r.u8('entry type');
    if (!isEntryType(eType)) throw new RaftCodecError(`unknown entry type ${eType}`);
    const len = r.u32('entry data length');
    const data = r.bytes(len, 'entry data');
    if (i > 0 && eIndex !== entries[i - 1]!.index + 1) throw new RaftCodecError(`entry indexes are not consecutive at entry ${i}`);
    entries.push({ term: eTerm, index: eIndex, type: eType, data });
  }
  const hasSnapshot = r.u8('snapshot flag');
  if (hasSnapshot > 1) throw new RaftCodecError(`snapshot flag must be 0 or 1, got ${hasSnapshot}`);
  let snapshot: SnapshotChunk | undefined;
  if (hasSnapshot === 1) {
    const sIndex = r.u64('snapshot index');
    const sTerm = r.u64('snapshot term');
    const configuration = readConfigurationBody(r);
    const offset = r.u64('snapshot offset');
    const totalBytes = r.u64('snapshot total bytes');
    const len = r.u32('snapshot chunk length');
    const data = r.bytes(len, 'snapshot chunk');
    if (offset + len > totalBytes) throw new RaftCodecError(`snapshot chunk ends at ${offset + len}, past the total ${totalBytes} bytes`);
    snapshot = { meta: { index: sIndex, term: sTerm, configuration }, offset, totalBytes, data };
  }
  r.end();
  const m: Message = { type, from, to, term, logTerm, index, commit, reject: rejectByte === 1, rejectHint, context, entries };
  if (snapshot) m.snapshot = snapshot;
  return m;
}

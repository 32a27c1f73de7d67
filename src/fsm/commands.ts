/**
 * The replicated commands: what one Raft entry of type Normal carries. Each is applied by every
 * node, in log order, to its copy of the databases.
 *
 * Layout (little-endian): u8 kind, u8 version, u16 name length, name (UTF-8), then, in version 2
 * only (a FRAMES or TX_COMMIT that carries the transaction's changes, change-codec.ts), u32
 * changes length and the changes; then per kind:
 *   FRAMES:     the engine's captured-transaction payload (opaque here, validated by the engine)
 *   CHECKPOINT: nothing
 *   BARRIER:    nothing (an empty command a new leader commits to learn its commit index)
 *   TX_PART:    u32 part number (from 0), u32 part count, then a slice of a FRAMES payload
 *   TX_COMMIT:  u32 part count, u32 payload bytes (low word), u32 payload bytes (high word)
 *
 * A transaction whose FRAMES command would exceed proposalBytesMax goes as TX_PART entries
 * (each at most proposalBytesMax) followed by one TX_COMMIT; replicas stage the parts and apply
 * the transaction only at the commit (see state-machine.ts for the staging rules).
 *
 * Entries without changes are written in version 1, byte for byte as before changes existed, and
 * version 1 entries decode with `changes` undefined.
 */
import { ByteSlab } from '../../wasm/byte-slab.ts';
import { decodeChanges, encodeChanges } from './change-codec.ts';
import type { TransactionChanges } from './commit-events.ts';


export const enum CommandKind {
  Frames = 1,
  Checkpoint = 2,
  Barrier = 3,
  TransactionPart = 4,
  TransactionCommit = 5,
}

export type Command =
  | { kind: CommandKind.Frames; database: string; payload: Uint8Array; changes?: TransactionChanges }
  | { kind: CommandKind.Checkpoint; database: string }
  | { kind: CommandKind.Barrier }
  | { kind: CommandKind.TransactionPart; database: string; part: number; parts: number; bytes: Uint8Array }
  | { kind: CommandKind.TransactionCommit; database: string; parts: number; payloadBytes: number; changes?: TransactionChanges };

export class CommandCodecError extends Error {
  readonly code = 'BAD_COMMAND';
  constructor(message: string) {
    super(`replicated command: ${message}`);
    this.name = 'CommandCodecError';
  }
}

const HEADER_BYTES = 4;
const PART_FIELDS_BYTES = 8;
const COMMIT_FIELDS_BYTES = 12;
const WORD = 2 ** 32;
const COMMAND_VERSION = 1;
/** A FRAMES or TX_COMMIT carrying its transaction's changes. */
const COMMAND_VERSION_WITH_CHANGES = 2;
const CHANGES_LENGTH_BYTES = 4;
export const DATABASE_NAME_BYTES_MAX = 1024;

const utf8Encoder = new TextEncoder();
/**
 * Where commands are cut from: one per write, a few KiB each, each its own array buffer would
 * cost a backing store and GC pressure (byte-slab.ts). Log entries are released in log order,
 * so a block is held about as long as its last entry.
 */
const commandSlab = new ByteSlab(64 * 1024, 16 * 1024);
/** The UTF-8 of recent database names: encoded twice per write otherwise. */
const encodedNames = new Map<string, Uint8Array>();
const ENCODED_NAMES_MAX = 64;

function encodedName(database: string): Uint8Array {
  let name = encodedNames.get(database);
  if (name === undefined) {
    name = utf8Encoder.encode(database);
    if (encodedNames.size >= ENCODED_NAMES_MAX) encodedNames.clear();
    encodedNames.set(database, name);
  }
  return name;
}
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeCommand(command: Command): Uint8Array {
  const body = commandBody(command);
  const changes = (command.kind === CommandKind.Frames || command.kind === CommandKind.TransactionCommit) ? command.changes : undefined;
  const { bytes, bodyOffset } = commandWithHead(command.kind, command.kind === CommandKind.Barrier ? '' : command.database, changes, body?.length ?? 0);
  if (body) bytes.set(body, bodyOffset);
  return bytes;
}

/**
 * A command's array, `bodyBytes` long past its head (kind, version, database name, change set),
 * with the head written: the caller writes the body at `bodyOffset`.
 */
function commandWithHead(kind: CommandKind, database: string, changes: TransactionChanges | undefined, bodyBytes: number): { bytes: Uint8Array; bodyOffset: number } {
  const name = encodedName(database);
  if (name.length > DATABASE_NAME_BYTES_MAX) {
    throw new CommandCodecError(`database name is ${name.length} bytes, at most ${DATABASE_NAME_BYTES_MAX} allowed`);
  }
  const encodedChanges = changes ? encodeChanges(changes) : undefined;
  const changesBytes = encodedChanges ? CHANGES_LENGTH_BYTES + encodedChanges.length : 0;
  const bodyOffset = HEADER_BYTES + name.length + changesBytes;
  const bytes = commandSlab.take(bodyOffset + bodyBytes);
  bytes[0] = kind;
  bytes[1] = encodedChanges ? COMMAND_VERSION_WITH_CHANGES : COMMAND_VERSION;
  bytes[2] = name.length & 0xff;
  bytes[3] = name.length >>> 8;
  bytes.set(name, HEADER_BYTES);
  if (encodedChanges) {
    new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setUint32(HEADER_BYTES + name.length, encodedChanges.length, true);
    bytes.set(encodedChanges, HEADER_BYTES + name.length + CHANGES_LENGTH_BYTES);
  }
  return { bytes, bodyOffset };
}

function commandBody(command: Command): Uint8Array | undefined {
  switch (command.kind) {
    case CommandKind.Frames:
      return command.payload;
    case CommandKind.TransactionPart: {
      const body = new Uint8Array(PART_FIELDS_BYTES + command.bytes.length);
      const view = new DataView(body.buffer);
      view.setUint32(0, command.part, true);
      view.setUint32(4, command.parts, true);
      body.set(command.bytes, PART_FIELDS_BYTES);
      return body;
    }
    case CommandKind.TransactionCommit: {
      const body = new Uint8Array(COMMIT_FIELDS_BYTES);
      const view = new DataView(body.buffer);
      view.setUint32(0, command.parts, true);
      view.setUint32(4, command.payloadBytes % WORD, true);
      view.setUint32(8, Math.floor(command.payloadBytes / WORD), true);
      return body;
    }
    default:
      return undefined;
  }
}

/** A transaction's payload, read a range at a time (the engine's CapturedTransaction is one). */
export interface PayloadSource {
  readonly payloadBytes: number;
  readPayload(target: Uint8Array, targetOffset: number, offset: number, length: number): void;
}

function payloadSource(payload: Uint8Array): PayloadSource {
  return {
    payloadBytes: payload.length,
    readPayload: (target, targetOffset, offset, length) => target.set(payload.subarray(offset, offset + length), targetOffset),
  };
}

/**
 * How one captured transaction goes into entries: one FRAMES command (`frames`) when it fits
 * `proposalBytesMax`, else `parts` TX_PART commands of at most `proposalBytesMax` bytes each,
 * made one at a time by `part(i)` (each copies its slice of the payload once), and a TX_COMMIT.
 * Parts are plain slices of the payload (not frame-aligned): only the whole payload means
 * anything, and the engine checks it as the parts arrive.
 */
export interface TransactionEntries {
  readonly frames?: Uint8Array;
  readonly parts: number;
  part(index: number): Uint8Array;
  commit(): Uint8Array;
}

export function planTransaction(database: string, payload: Uint8Array | PayloadSource, proposalBytesMax: number, changes?: TransactionChanges): TransactionEntries {
  const source = payload instanceof Uint8Array ? payloadSource(payload) : payload;
  const payloadBytes = source.payloadBytes;
  const nameBytes = encodedName(database).length;
  const framesBytesMin = HEADER_BYTES + nameBytes + payloadBytes;
  // Only a payload that could fit is made whole to find out: a load of hundreds of MiB would
  // otherwise be copied here, only to be thrown away.
  if (framesBytesMin + (changes ? CHANGES_LENGTH_BYTES : 0) <= proposalBytesMax) {
    // What encodeCommand makes of a FRAMES command, byte for byte, with the payload read into it
    // straight from the source: one array and one copy per transaction, not two of each.
    const { bytes: frames, bodyOffset } = commandWithHead(CommandKind.Frames, database, changes, payloadBytes);
    source.readPayload(frames, bodyOffset, 0, payloadBytes);
    if (frames.length <= proposalBytesMax) return { frames, parts: 0, part: () => { throw new CommandCodecError('a FRAMES entry has no parts'); }, commit: () => frames };
  }
  const sliceBytes = proposalBytesMax - HEADER_BYTES - nameBytes - PART_FIELDS_BYTES;
  if (sliceBytes < 1) throw new CommandCodecError(`proposalBytesMax ${proposalBytesMax} leaves no room for a transaction part`);
  const parts = Math.ceil(payloadBytes / sliceBytes);
  // The header and name every part starts with (a CHECKPOINT is exactly that: no body).
  const head = encodeCommand({ kind: CommandKind.Checkpoint, database });
  return {
    parts,
    part(index) {
      if (!Number.isInteger(index) || index < 0 || index >= parts) throw new CommandCodecError(`part ${index} of ${parts} does not exist`);
      const offset = index * sliceBytes;
      const length = Math.min(payloadBytes, offset + sliceBytes) - offset;
      // Written in place (what encodeCommand gives for this part, byte for byte): the slice is
      // copied once, straight from the source.
      const command = new Uint8Array(head.length + PART_FIELDS_BYTES + length);
      command.set(head);
      command[0] = CommandKind.TransactionPart;
      const view = new DataView(command.buffer, head.length, PART_FIELDS_BYTES);
      view.setUint32(0, index, true);
      view.setUint32(4, parts, true);
      source.readPayload(command, head.length + PART_FIELDS_BYTES, offset, length);
      return command;
    },
    commit() {
      let commit = encodeCommand({ kind: CommandKind.TransactionCommit, database, parts, payloadBytes, ...(changes && { changes }) });
      if (commit.length > proposalBytesMax && changes) {
        // changeSetBytesMax keeps rows well below a proposal; a huge table list still must not stop the write.
        commit = encodeCommand({ kind: CommandKind.TransactionCommit, database, parts, payloadBytes, changes: { timeMs: changes.timeMs, tables: changes.tables, rowsOmitted: true } });
      }
      if (commit.length > proposalBytesMax) commit = encodeCommand({ kind: CommandKind.TransactionCommit, database, parts, payloadBytes });
      return commit;
    },
  };
}

/** Every entry of `planTransaction` at once: the FRAMES command, or the parts and the commit. */
export function encodeTransaction(database: string, payload: Uint8Array | PayloadSource, proposalBytesMax: number, changes?: TransactionChanges): Uint8Array[] {
  const plan = planTransaction(database, payload, proposalBytesMax, changes);
  if (plan.frames) return [plan.frames];
  const commands: Uint8Array[] = [];
  for (let part = 0; part < plan.parts; part++) commands.push(plan.part(part));
  commands.push(plan.commit());
  return commands;
}

export interface DecodeCommandOptions {
  /** Leave a carried change set undecoded (nobody listens): `changes` stays undefined. */
  skipChanges?: boolean;
}

export function decodeCommand(bytes: Uint8Array, options: DecodeCommandOptions = {}): Command {
  if (bytes.length < HEADER_BYTES) throw new CommandCodecError(`${bytes.length} bytes is shorter than the 4-byte header`);
  const kind = bytes[0]!;
  const version = bytes[1]!;
  if (version !== COMMAND_VERSION && version !== COMMAND_VERSION_WITH_CHANGES) throw new CommandCodecError(`unknown command version ${version}`);
  if (version === COMMAND_VERSION_WITH_CHANGES && kind !== CommandKind.Frames && kind !== CommandKind.TransactionCommit) {
    throw new CommandCodecError(`command kind ${kind} cannot carry changes`);
  }
  const nameBytes = bytes[2]! | (bytes[3]! << 8);
  if (nameBytes > DATABASE_NAME_BYTES_MAX) throw new CommandCodecError(`database name length ${nameBytes} exceeds ${DATABASE_NAME_BYTES_MAX}`);
  if (HEADER_BYTES + nameBytes > bytes.length) throw new CommandCodecError('truncated database name');
  let database: string;
  try {
    database = utf8Decoder.decode(bytes.subarray(HEADER_BYTES, HEADER_BYTES + nameBytes));
  } catch {
    throw new CommandCodecError('database name is not valid UTF-8');
  }
  let rest = bytes.subarray(HEADER_BYTES + nameBytes);
  let changes: TransactionChanges | undefined;
  if (version === COMMAND_VERSION_WITH_CHANGES) {
    if (rest.length < CHANGES_LENGTH_BYTES) throw new CommandCodecError('truncated changes length');
    const changesBytes = new DataView(rest.buffer, rest.byteOffset, rest.byteLength).getUint32(0, true);
    if (CHANGES_LENGTH_BYTES + changesBytes > rest.length) throw new CommandCodecError(`changes of ${changesBytes} bytes overrun the command`);
    if (!options.skipChanges) {
      try {
        changes = decodeChanges(rest.subarray(CHANGES_LENGTH_BYTES, CHANGES_LENGTH_BYTES + changesBytes));
      } catch (error) {
        throw new CommandCodecError(error instanceof Error ? error.message : String(error));
      }
    }
    rest = rest.subarray(CHANGES_LENGTH_BYTES + changesBytes);
  }
  switch (kind) {
    case CommandKind.Frames:
      if (database.length === 0) throw new CommandCodecError('FRAMES without a database name');
      if (rest.length === 0) throw new CommandCodecError('FRAMES without a payload');
      return changes ? { kind, database, payload: rest, changes } : { kind, database, payload: rest };
    case CommandKind.Checkpoint:
      if (database.length === 0) throw new CommandCodecError('CHECKPOINT without a database name');
      if (rest.length !== 0) throw new CommandCodecError(`CHECKPOINT carries ${rest.length} unexpected bytes`);
      return { kind, database };
    case CommandKind.Barrier:
      if (nameBytes !== 0 || rest.length !== 0) throw new CommandCodecError('BARRIER carries unexpected bytes');
      return { kind };
    case CommandKind.TransactionPart: {
      if (database.length === 0) throw new CommandCodecError('TX_PART without a database name');
      if (rest.length <= PART_FIELDS_BYTES) throw new CommandCodecError(`TX_PART of ${rest.length} bytes carries no transaction bytes`);
      const view = new DataView(rest.buffer, rest.byteOffset, rest.byteLength);
      const part = view.getUint32(0, true);
      const parts = view.getUint32(4, true);
      if (parts < 1 || part >= parts) throw new CommandCodecError(`TX_PART ${part} of ${parts} is out of range`);
      return { kind, database, part, parts, bytes: rest.subarray(PART_FIELDS_BYTES) };
    }
    case CommandKind.TransactionCommit: {
      if (database.length === 0) throw new CommandCodecError('TX_COMMIT without a database name');
      if (rest.length !== COMMIT_FIELDS_BYTES) throw new CommandCodecError(`TX_COMMIT carries ${rest.length} bytes, expected ${COMMIT_FIELDS_BYTES}`);
      const view = new DataView(rest.buffer, rest.byteOffset, rest.byteLength);
      const parts = view.getUint32(0, true);
      const payloadBytes = view.getUint32(4, true) + view.getUint32(8, true) * WORD;
      if (parts < 1 || !Number.isSafeInteger(payloadBytes) || payloadBytes < parts) {
        throw new CommandCodecError(`TX_COMMIT of ${parts} parts and ${payloadBytes} bytes is malformed`);
      }
      return changes ? { kind, database, parts, payloadBytes, changes } : { kind, database, parts, payloadBytes };
    }
    default:
      throw new CommandCodecError(`unknown command kind ${kind}`);
  }
}

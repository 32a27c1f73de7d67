/**
 * The replicated commands: what one Raft entry of type Normal carries. Each is applied by every
 * node, in log order, to its copy of the databases.
 *
 * Layout (little-endian): u8 kind, u8 version, u16 name length, name (UTF-8), then per kind:
 *   FRAMES:     the engine's captured-transaction payload (opaque here, validated by the engine)
 *   CHECKPOINT: nothing
 *   BARRIER:    nothing (an empty command a new leader commits to learn its commit index)
 */

export const enum CommandKind {
  Frames = 1,
  Checkpoint = 2,
  Barrier = 3,
}

export type Command =
  | { kind: CommandKind.Frames; database: string; payload: Uint8Array }
  | { kind: CommandKind.Checkpoint; database: string }
  | { kind: CommandKind.Barrier };

export class CommandCodecError extends Error {
  readonly code = 'BAD_COMMAND';
  constructor(message: string) {
    super(`replicated command: ${message}`);
    this.name = 'CommandCodecError';
  }
}

const HEADER_BYTES = 4;
const COMMAND_VERSION = 1;
export const DATABASE_NAME_BYTES_MAX = 1024;

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeCommand(command: Command): Uint8Array {
  const name = command.kind === CommandKind.Barrier ? new Uint8Array(0) : utf8Encoder.encode(command.database);
  if (name.length > DATABASE_NAME_BYTES_MAX) {
    throw new CommandCodecError(`database name is ${name.length} bytes, at most ${DATABASE_NAME_BYTES_MAX} allowed`);
  }
  const body = command.kind === CommandKind.Frames ? command.payload : undefined;
  const bytes = new Uint8Array(HEADER_BYTES + name.length + (body?.length ?? 0));
  bytes[0] = command.kind;
  bytes[1] = COMMAND_VERSION;
  bytes[2] = name.length & 0xff;
  bytes[3] = name.length >>> 8;
  bytes.set(name, HEADER_BYTES);
  if (body) bytes.set(body, HEADER_BYTES + name.length);
  return bytes;
}

export function decodeCommand(bytes: Uint8Array): Command {
  if (bytes.length < HEADER_BYTES) throw new CommandCodecError(`${bytes.length} bytes is shorter than the 4-byte header`);
  const kind = bytes[0]!;
  const version = bytes[1]!;
  if (version !== COMMAND_VERSION) throw new CommandCodecError(`unknown command version ${version}`);
  const nameBytes = bytes[2]! | (bytes[3]! << 8);
  if (nameBytes > DATABASE_NAME_BYTES_MAX) throw new CommandCodecError(`database name length ${nameBytes} exceeds ${DATABASE_NAME_BYTES_MAX}`);
  if (HEADER_BYTES + nameBytes > bytes.length) throw new CommandCodecError('truncated database name');
  let database: string;
  try {
    database = utf8Decoder.decode(bytes.subarray(HEADER_BYTES, HEADER_BYTES + nameBytes));
  } catch {
    throw new CommandCodecError('database name is not valid UTF-8');
  }
  const rest = bytes.subarray(HEADER_BYTES + nameBytes);
  switch (kind) {
    case CommandKind.Frames:
      if (database.length === 0) throw new CommandCodecError('FRAMES without a database name');
      if (rest.length === 0) throw new CommandCodecError('FRAMES without a payload');
      return { kind, database, payload: rest };
    case CommandKind.Checkpoint:
      if (database.length === 0) throw new CommandCodecError('CHECKPOINT without a database name');
      if (rest.length !== 0) throw new CommandCodecError(`CHECKPOINT carries ${rest.length} unexpected bytes`);
      return { kind, database };
    case CommandKind.Barrier:
      if (nameBytes !== 0 || rest.length !== 0) throw new CommandCodecError('BARRIER carries unexpected bytes');
      return { kind };
    default:
      throw new CommandCodecError(`unknown command kind ${kind}`);
  }
}

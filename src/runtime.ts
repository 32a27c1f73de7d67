/**
 * What a node needs from its host. Each folder under `runtimes/` implements this; nothing in
 * `src/` knows which host it runs on.
 */

/** A reliable, ordered byte stream (a TCP socket, or a WebSocket carrying binary messages). */
export interface ByteStream {
  /** Queue bytes for sending. Returns false once the stream is closed. */
  write(bytes: Uint8Array): boolean;
  /** Called for every chunk received, in order. Chunk boundaries carry no meaning. */
  onData(handler: (chunk: Uint8Array) => void): void;
  /** Called once, when either side closed the stream or it failed. */
  onClose(handler: (error?: Error) => void): void;
  close(): void;
  /** Where the other side is, for logs and errors. */
  readonly remoteAddress: string;
  /**
   * Set by the host when the other side proved the cluster's credentials on this connection: a
   * client certificate of the cluster CA verified by TLS, or the cluster key in the upgrade of a
   * `/dqlite` WebSocket. Membership changes need it (or an address on `--admin-allow`).
   */
  readonly authenticated?: boolean;
}

/** A message-oriented duplex (a WebSocket, or an in-page channel): each send arrives whole. */
export interface MessageChannel {
  /**
   * Sends `message` whole. `released`, where the channel can tell: called once the channel no
   * longer reads `message` (it is on the network, or dropped), so the sender may reuse its
   * buffer. A channel that hands the bytes themselves to the other side never calls it.
   */
  send(message: Uint8Array, released?: () => void): boolean;
  /** `send` calls `released` (else never: the bytes are the channel's for good). */
  readonly reportsWrites?: boolean;
  onMessage(handler: (message: Uint8Array) => void): void;
  onClose(handler: (error?: Error) => void): void;
  /** Bytes accepted by `send` but not yet handed to the network, where the host can tell. */
  readonly bufferedBytes?: number;
  /** `reason` (a short sentence) reaches the other side where the channel can carry it. */
  close(reason?: string): void;
  readonly remoteAddress: string;
}

/** Dials a TCP-like byte stream to `address` ("host:port"). */
export type DialStream = (address: string, options?: { timeoutMs?: number }) => Promise<ByteStream>;

/** Dials a WebSocket to `url`, sending `headers` in the upgrade where the host allows it. */
export type DialWebSocket = (
  url: string,
  options?: { headers?: Record<string, string>; protocols?: string[]; timeoutMs?: number },
) => Promise<MessageChannel>;

/** A file opened for reads at any offset (`DurableStorage.openReader`). */
export interface DurableFileReader {
  /** The file's size in bytes when it was opened. */
  readonly sizeBytes: number;
  /**
   * Bytes [offset, offset + length) of the file as it was opened, fewer where it ends. Where the
   * host can keep a replaced or removed file readable while it is open (a POSIX file system, an
   * in-memory store) the reader goes on reading the old file; elsewhere such reads reject.
   */
  read(offset: number, length: number): Promise<Uint8Array>;
  /**
   * Optional: fills `bytes` with the file's bytes from `offset` (as `read` of `bytes.length`),
   * rejecting where the file ends before. The caller reuses one buffer across reads: a snapshot
   * sent a chunk at a time then allocates nothing per chunk.
   */
  readInto?(offset: number, bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/**
 * A file written a piece at a time that replaces its name atomically when committed
 * (`DurableStorage.openAtomicWriter`): the same result as one `writeAtomic` of all the pieces, with
 * no more than a piece in memory.
 */
export interface DurableFileWriter {
  /**
   * Appends `bytes` to the file being written; the caller may reuse them once this resolves.
   * Nothing of it is visible under the name before `commit`.
   */
  write(bytes: Uint8Array): Promise<void>;
  /**
   * Overwrites bytes [offset, offset + bytes.length) of what was already written (a header whose
   * checksum is known only at the end); the caller may reuse `bytes` once this resolves.
   */
  writeAt(offset: number, bytes: Uint8Array): Promise<void>;
  /** Makes the file durable, then replaces the name's file with it atomically. */
  commit(): Promise<void>;
  /** Throws away what was written; the name keeps its file. Harmless after a failed write or commit. */
  abort(): Promise<void>;
}

/** Durable storage under one directory (a data dir, an OPFS directory, an IndexedDB store). */
export interface DurableStorage {
  /** Whole file contents, or undefined when the file does not exist. */
  read(name: string): Promise<Uint8Array | undefined>;
  /**
   * Optional: opens `name` for ranged reads, undefined when it does not exist. Where a host offers
   * it, the leader sends a snapshot to a follower a chunk at a time from its file instead of
   * reading the whole file back into memory.
   */
  openReader?(name: string): Promise<DurableFileReader | undefined>;
  /** Replace a file atomically (write to a temporary name, fsync, rename). */
  writeAtomic(name: string, bytes: Uint8Array): Promise<void>;
  /**
   * Optional: begins replacing `name` atomically by a file written a piece at a time (a temporary
   * file, appended to, then fsynced and renamed over the name on `commit`). Where a host offers it,
   * a snapshot is written a piece at a time and never held whole in memory; elsewhere it is
   * joined into one buffer for `writeAtomic`. One writer per name at a time, and no `writeAtomic`
   * of that name while it is open.
   */
  openAtomicWriter?(name: string): Promise<DurableFileWriter>;
  /** Append to a file, creating it. Not durable until `sync`. The caller reuses `bytes` once this resolves: copy what is kept. */
  append(name: string, bytes: Uint8Array): Promise<void>;
  /**
   * Optional: writes `bytes` at byte `offset` of `name` (creating it), over what is there. Not
   * durable until `sync`. Where a host offers it, the Raft log writes into preallocated segments
   * (an overwrite needs no file-size change in the file system's journal, so it is durable sooner).
   * As with `append`, the caller reuses `bytes` once this resolves.
   */
  writeAt?(name: string, offset: number, bytes: Uint8Array): Promise<void>;
  /** Make everything written to `name` durable. */
  sync(name: string): Promise<void>;
  /** Cut a file down to `size` bytes. */
  truncate(name: string, size: number): Promise<void>;
  remove(name: string): Promise<void>;
  list(): Promise<string[]>;
  /**
   * Free bytes on the device holding this storage, where the host can tell (undefined: unknown).
   * The node refuses client writes when this falls below its reserve.
   */
  freeBytes?(): Promise<number | undefined>;
}

export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds on a monotonic clock. */
  nowMs(): number;
  setTimeout(callback: () => void, delayMs: number): TimerHandle;
  setInterval(callback: () => void, periodMs: number): TimerHandle;
  /**
   * Optional: runs `callback` once the I/O callbacks of this turn of the event loop ran (Node's
   * setImmediate), before any timer. The node hands the proposals of the client requests that
   * arrived together to Raft as one Ready there: one append per follower for all of them.
   */
  afterIo?(callback: () => void): void;
}

export interface Runtime {
  readonly name: 'node' | 'deno' | 'browser';
  readonly clock: Clock;
  randomBytes(length: number): Uint8Array;
  dialStream?: DialStream;
  dialWebSocket: DialWebSocket;
  /**
   * A full garbage collection, where the host allows one (Node.js). The node asks right after it
   * drops a snapshot's bytes (tens or hundreds of MiB), which the collector's heuristics would
   * otherwise keep resident for long.
   */
  collectGarbage?(): void;
}

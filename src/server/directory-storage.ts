/**
 * `DurableStorage` on one directory of a host's file system, the same on every host that has
 * one (Node, Deno): the file layout, the atomic replace, the order of syncs and the refusal to
 * go on after a failed write. Hosts give only the file primitives (`HostFileSystem`), so a data
 * directory written under one runtime opens under the other.
 *
 * Layout: one file per storage name; `LOCK` (the directory lock) is never one; a replace
 * writes `.tmp-<pid>-<n>-<name>`, syncs it, renames it over the name and syncs the directory (a
 * writer that replaces it a piece at a time appends to such a file).
 * Every operation on a file runs after the previous one on that file finished, because
 * concurrent writes to one file may land in any order.
 */
import type { DurableFileReader, DurableFileWriter, DurableStorage } from '../runtime.ts';

/** File names longer than this are refused (most file systems stop at 255 bytes). */
export const STORAGE_NAME_BYTES_MAX = 200;
/** The directory lock's file; never a storage name. */
export const LOCK_FILE_NAME = 'LOCK';
const TEMP_PREFIX = '.tmp-';

/** One open file, as the storage uses it. */
export interface HostFile {
  /** Writes at the file's position (its end, for an append handle); returns the bytes written. */
  write(bytes: Uint8Array): Promise<number>;
  /**
   * Writes at byte `position` (handles from `openInPlace` and `openEmpty` only: an append handle
   * writes at the end whatever the position); returns the bytes written.
   */
  writeAt?(bytes: Uint8Array, position: number): Promise<number>;
  /** Makes the file's data and size durable (fdatasync). */
  syncData(): Promise<void>;
  truncate(size: number): Promise<void>;
  close(): Promise<void>;
}

/** A file opened for reading at any position. */
export interface HostReadFile {
  /** The file's size when it was opened. */
  readonly sizeBytes: number;
  /** Reads into `bytes` from byte `position`; returns the bytes read (0 at the end of the file). */
  readAt(bytes: Uint8Array, position: number): Promise<number>;
  close(): Promise<void>;
}

/** The file primitives a host gives the storage. Paths are the host's; `join` builds them. */
export interface HostFileSystem {
  /** This process's id: temporary files carry it, so that a later start knows whose they are. */
  readonly pid: number;
  /**
   * Each write of an append handle is durable when it returns (Node opens them with O_DSYNC):
   * `sync` then needs an fdatasync only after a truncate.
   */
  readonly appendsDurable: boolean;
  join(directory: string, name: string): string;
  makeDirectory(directory: string): Promise<void>;
  /** The whole file, or undefined when there is none. */
  readFile(path: string): Promise<Uint8Array | undefined>;
  /**
   * Optional: opens `path` for reads at any position, undefined when it does not exist. The open
   * file stays readable after a rename over it or its removal (POSIX keeps the inode).
   */
  openRead?(path: string): Promise<HostReadFile | undefined>;
  /** Opens `path` for appending, creating it if missing. */
  openAppend(path: string): Promise<HostFile>;
  /**
   * Optional: opens `path` for writes at any position, creating it if missing; its writes are
   * durable when they return where `appendsDurable` says so for append handles.
   */
  openInPlace?(path: string): Promise<HostFile>;
  /** Creates `path`, or empties it, for writing from the start (its handle has `writeAt`). */
  openEmpty(path: string): Promise<HostFile>;
  /** Opens an existing file to sync or truncate it. */
  openExisting(path: string): Promise<HostFile>;
  rename(from: string, to: string): Promise<void>;
  /** False when there was nothing to remove. */
  remove(path: string): Promise<boolean>;
  /** The names of the regular files in `directory`. */
  listFiles(directory: string): Promise<string[]>;
  syncDirectory(directory: string): Promise<void>;
  /** Free bytes for this user on the directory's file system, when the host can tell. */
  freeBytes(directory: string): Promise<number | undefined>;
  isDiskFull(error: unknown): boolean;
  /** False only when the process `pid` surely cannot write any more (gone, or a zombie). */
  processMayRun(pid: number): Promise<boolean>;
}

/**
 * IO: an operation failed. FULL: it failed because the disk (or a quota) is full. FAILED: an
 * earlier write or fsync failed, so this storage refuses every further change (see `failure`).
 */
export type StorageErrorCode = 'INVALID_NAME' | 'CLOSED' | 'IO' | 'FULL' | 'FAILED';

export class StorageError extends Error {
  constructor(
    readonly code: StorageErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StorageError';
  }
}

export class DirectoryStorage implements DurableStorage {
  /** Open write handles, by name: appending ones, or in-place ones (`writeAt`). */
  private readonly appendHandles = new Map<string, HostFile>();
  private readonly inPlaceHandles = new Map<string, HostFile>();
  /** Set where the host can write in place (see DurableStorage.writeAt). */
  readonly writeAt?: (name: string, offset: number, bytes: Uint8Array) => Promise<void>;
  /** Set where the host can read at any position (see DurableStorage.openReader). */
  readonly openReader?: (name: string) => Promise<DurableFileReader | undefined>;
  /** Truncated through an append handle since its last fdatasync (appends alone may not need one). */
  private readonly namesNeedingDataSync = new Set<string>();
  /** Files created by this process whose directory entry is not yet durable. */
  private readonly namesNeedingDirectorySync = new Set<string>();
  private readonly tails = new Map<string, Promise<unknown>>();
  /** The open atomic writers, by name, each with what discards its temporary file. */
  private readonly writers = new Map<string, () => Promise<void>>();
  private closed = false;
  private tempCounter = 0;
  /**
   * The first write or fsync that failed on a file the log relies on. After a failed fsync the
   * kernel may have marked the unwritten pages clean, so a second fsync would succeed without
   * the data on disk ("fsyncgate"): nothing is retried, every later change fails with this.
   */
  private failure: StorageError | undefined;

  constructor(
    readonly directory: string,
    private readonly files: HostFileSystem,
  ) {
    if (files.openInPlace) this.writeAt = (name, offset, bytes) => this.writeInPlace(name, offset, bytes);
    if (files.openRead) this.openReader = (name) => this.openRangeReader(name);
  }

  /** Free bytes for this user on the directory's file system. */
  freeBytes(): Promise<number | undefined> {
    return this.files.freeBytes(this.directory);
  }

  read(name: string): Promise<Uint8Array | undefined> {
    return this.serialize(name, { changes: false }, async () => {
      try {
        return await this.files.readFile(this.path(name));
      } catch (error) {
        throw this.ioError(`read ${name}`, error);
      }
    });
  }

  /**
   * The open file is the one `name` held when the open's turn came (after the operations on
   * `name` called before it); a later replace or removal leaves it readable. Its reads are not
   * queued behind other operations on `name`: they read that file, not the name.
   */
  private openRangeReader(name: string): Promise<DurableFileReader | undefined> {
    return this.serialize(name, { changes: false }, async () => {
      let file: HostReadFile | undefined;
      try {
        file = await this.files.openRead!(this.path(name));
      } catch (error) {
        throw this.ioError(`open ${name} for reading`, error);
      }
      if (!file) return undefined;
      return rangeReader(name, file, (what, error) => this.ioError(what, error), () => this.assertOpen());
    });
  }

  writeAtomic(name: string, bytes: Uint8Array): Promise<void> {
    if (this.writers.has(name)) return Promise.reject(new StorageError('IO', `replace ${name}: a writer of it is open`));
    return this.serialize(name, { changes: true }, async () => {
      const tempPath = this.temporaryPath(name);
      try {
        const file = await this.files.openEmpty(tempPath);
        try {
          await writeAll(file, bytes);
          await file.syncData();
        } finally {
          await file.close();
        }
      } catch (error) {
        // Only the temporary file saw the failure, and it is thrown away: `name` is untouched.
        await this.files.remove(tempPath).catch(() => undefined);
        throw this.ioError(`replace ${name}`, error);
      }
      await this.renameOver(tempPath, name);
    });
  }

  /**
   * The pieces go to a temporary file as they come (outside `name`'s queue: nothing reads that
   * file); the commit syncs it and takes its turn on `name` to rename it over, as writeAtomic does.
   * A failure before the rename harms nothing but the temporary file, which is removed.
   */
  async openAtomicWriter(name: string): Promise<DurableFileWriter> {
    this.assertOpen();
    validateStorageName(name);
    this.assertNotFailed();
    if (this.writers.has(name)) throw new StorageError('IO', `replace ${name}: a writer of it is already open`);
    const tempPath = this.temporaryPath(name);
    let file: HostFile;
    try {
      file = await this.files.openEmpty(tempPath);
    } catch (error) {
      await this.files.remove(tempPath).catch(() => undefined);
      throw this.ioError(`replace ${name}`, error);
    }
    const writeAt = file.writeAt?.bind(file);
    // Checked again: another writer of the name may have opened while this one waited.
    if (!writeAt || this.writers.has(name)) {
      await file.close().catch(() => undefined);
      await this.files.remove(tempPath).catch(() => undefined);
      throw new StorageError('IO', writeAt ? `replace ${name}: a writer of it is already open` : `replace ${name}: this host's new files cannot be written at a position`);
    }
    let state: 'open' | 'committing' | 'done' = 'open';
    let tail: Promise<unknown> = Promise.resolve();
    let sizeBytes = 0;
    const discard = async (): Promise<void> => {
      state = 'done';
      if (this.writers.get(name) !== discard) return;
      this.writers.delete(name);
      await file.close().catch(() => undefined);
      await this.files.remove(tempPath).catch(() => undefined);
    };
    this.writers.set(name, discard);
    const assertWritable = (what: string): void => {
      this.assertOpen();
      if (state !== 'open') throw new StorageError('CLOSED', `${what} ${name}: the writer is ${state === 'done' ? 'closed' : 'committing'}`);
      this.assertNotFailed();
    };
    return {
      write: (bytes) => {
        const result = tail.then(async () => {
          assertWritable('write');
          try {
            await writeAll(file, bytes);
          } catch (error) {
            await discard();
            throw this.ioError(`replace ${name}`, error);
          }
          sizeBytes += bytes.byteLength;
        });
        tail = result.catch(() => undefined);
        return result;
      },
      writeAt: (offset, bytes) => {
        const result = tail.then(async () => {
          assertWritable('write');
          if (!Number.isSafeInteger(offset) || offset < 0 || offset + bytes.byteLength > sizeBytes) {
            throw new StorageError('IO', `write ${name}: bytes ${offset}..${offset + bytes.byteLength} are not all written yet (${sizeBytes} are)`);
          }
          try {
            let done = 0;
            while (done < bytes.byteLength) done += await writeAt(bytes.subarray(done), offset + done);
          } catch (error) {
            await discard();
            throw this.ioError(`replace ${name}`, error);
          }
        });
        tail = result.catch(() => undefined);
        return result;
      },
      commit: async () => {
        await tail;
        assertWritable('commit');
        state = 'committing';
        try {
          await file.syncData();
          await file.close();
        } catch (error) {
          await discard();
          throw this.ioError(`replace ${name}`, error);
        }
        // The file is closed: from here only the rename is left, and renameOver cleans up after it.
        this.writers.delete(name);
        try {
          await this.serialize(name, { changes: true }, () => this.renameOver(tempPath, name));
        } catch (error) {
          // Refused before its turn (the storage closed or failed meanwhile): the name is untouched.
          await this.files.remove(tempPath).catch(() => undefined);
          throw error;
        } finally {
          state = 'done';
        }
      },
      abort: async () => {
        await tail;
        if (state === 'committing') return;
        await discard();
      },
    };
  }

  private temporaryPath(name: string): string {
    return this.path(`${TEMP_PREFIX}${this.files.pid}-${this.tempCounter++}-${name}`);
  }

  /** Renames the synced temporary file over `name` (in `name`'s turn); a failure poisons the storage. */
  private async renameOver(tempPath: string, name: string): Promise<void> {
    // The rename replaces the inode: an append handle on the old one would write into the void.
    await this.closeAppendHandle(name);
    try {
      await this.files.rename(tempPath, this.path(name));
      await this.files.syncDirectory(this.directory);
      this.namesNeedingDirectorySync.delete(name);
    } catch (error) {
      await this.files.remove(tempPath).catch(() => undefined);
      throw this.fail(`replace ${name}`, error);
    }
  }

  append(name: string, bytes: Uint8Array): Promise<void> {
    return this.serialize(name, { changes: true }, async () => {
      try {
        // An open handle is used at once: the write reaches the disk before this turn's other work.
        await writeAll(this.appendHandles.get(name) ?? (await this.appendHandle(name)), bytes);
      } catch (error) {
        // With durable appends a failed write may be a failed flush, and a part of it may have landed.
        throw this.fail(`append to ${name}`, error);
      }
    });
  }

  private writeInPlace(name: string, offset: number, bytes: Uint8Array): Promise<void> {
    if (!Number.isSafeInteger(offset) || offset < 0) {
      return Promise.reject(new StorageError('IO', `write to ${name}: offset must be a non-negative integer, got ${offset}`));
    }
    return this.serialize(name, { changes: true }, async () => {
      try {
        const handle = this.inPlaceHandles.get(name) ?? (await this.inPlaceHandle(name));
        let done = 0;
        while (done < bytes.byteLength) done += await handle.writeAt!(bytes.subarray(done), offset + done);
      } catch (error) {
        // As for appends: a failed durable write may have landed in part.
        throw this.fail(`write to ${name}`, error);
      }
    });
  }

  sync(name: string): Promise<void> {
    return this.serialize(name, { changes: true }, async () => {
      try {
        const handle = this.appendHandles.get(name) ?? this.inPlaceHandles.get(name);
        if (handle) {
          // Cleared only once the fsync succeeded; a failed one poisons the storage anyway.
          if (!this.files.appendsDurable || this.namesNeedingDataSync.has(name)) await handle.syncData();
          this.namesNeedingDataSync.delete(name);
        } else {
          const other = await this.files.openExisting(this.path(name));
          try {
            await other.syncData();
          } finally {
            await other.close();
          }
        }
        if (this.namesNeedingDirectorySync.has(name)) {
          await this.files.syncDirectory(this.directory);
          this.namesNeedingDirectorySync.delete(name);
        }
      } catch (error) {
        throw this.fail(`sync ${name}`, error);
      }
    });
  }

  truncate(name: string, size: number): Promise<void> {
    if (!Number.isSafeInteger(size) || size < 0) {
      return Promise.reject(new StorageError('IO', `truncate ${name}: size must be a non-negative integer, got ${size}`));
    }
    return this.serialize(name, { changes: true }, async () => {
      try {
        const handle = this.appendHandles.get(name) ?? this.inPlaceHandles.get(name);
        if (handle) {
          await handle.truncate(size);
          this.namesNeedingDataSync.add(name);
        } else {
          const other = await this.files.openExisting(this.path(name));
          try {
            await other.truncate(size);
          } finally {
            await other.close();
          }
        }
      } catch (error) {
        throw this.fail(`truncate ${name}`, error);
      }
    });
  }

  remove(name: string): Promise<void> {
    return this.serialize(name, { changes: true }, async () => {
      await this.closeAppendHandle(name);
      let removed: boolean;
      try {
        removed = await this.files.remove(this.path(name));
      } catch (error) {
        throw this.ioError(`remove ${name}`, error);
      }
      if (!removed) return;
      this.namesNeedingDirectorySync.delete(name);
      try {
        await this.files.syncDirectory(this.directory);
      } catch (error) {
        throw this.fail(`remove ${name}`, error);
      }
    });
  }

  async list(): Promise<string[]> {
    this.assertOpen();
    const names = await this.files.listFiles(this.directory);
    return names.filter((name) => name !== LOCK_FILE_NAME && !name.startsWith('.')).sort();
  }

  /** Waits for pending operations and closes open files. Further calls fail with CLOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.tails.values()]);
    await Promise.allSettled([...this.writers.values()].map((discard) => discard()));
    const handles = [...this.appendHandles.values(), ...this.inPlaceHandles.values()];
    this.appendHandles.clear();
    this.inPlaceHandles.clear();
    await Promise.allSettled(handles.map((handle) => handle.close()));
  }

  private serialize<T>(name: string, kind: { changes: boolean }, operation: () => Promise<T>): Promise<T> {
    try {
      this.assertOpen();
      validateStorageName(name);
      if (kind.changes) this.assertNotFailed();
    } catch (error) {
      return Promise.reject(error);
    }
    const previous = this.tails.get(name);
    const guarded = async (): Promise<T> => {
      // Re-checked when the operation's turn comes: an operation queued before a failure
      // must not run after it.
      if (kind.changes) this.assertNotFailed();
      return operation();
    };
    // Nothing queued on this file: start now rather than a microtask later (the log's append
    // then reaches the disk before the sends of the same Ready).
    const result = previous ? previous.then(guarded, guarded) : guarded();
    const tail = result.catch(() => undefined);
    this.tails.set(name, tail);
    void tail.then(() => {
      if (this.tails.get(name) === tail) this.tails.delete(name);
    });
    return result;
  }

  private async appendHandle(name: string): Promise<HostFile> {
    let handle = this.appendHandles.get(name);
    if (!handle) {
      // One kind of handle per file: an append handle's writes ignore positions.
      await this.closeHandle(this.inPlaceHandles, name);
      handle = await this.files.openAppend(this.path(name));
      this.appendHandles.set(name, handle);
      // The file may have just been created; its name is durable only once the directory is synced.
      this.namesNeedingDirectorySync.add(name);
    }
    return handle;
  }

  private async inPlaceHandle(name: string): Promise<HostFile> {
    let handle = this.inPlaceHandles.get(name);
    if (!handle) {
      await this.closeHandle(this.appendHandles, name);
      handle = await this.files.openInPlace!(this.path(name));
      this.inPlaceHandles.set(name, handle);
      this.namesNeedingDirectorySync.add(name);
    }
    return handle;
  }

  /** Closes the write handles of `name` (after an fdatasync they still owe). */
  private async closeAppendHandle(name: string): Promise<void> {
    await this.closeHandle(this.appendHandles, name);
    await this.closeHandle(this.inPlaceHandles, name);
  }

  private async closeHandle(handles: Map<string, HostFile>, name: string): Promise<void> {
    const handle = handles.get(name);
    if (!handle) return;
    handles.delete(name);
    try {
      if (this.namesNeedingDataSync.has(name)) await handle.syncData();
      this.namesNeedingDataSync.delete(name);
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw this.fail(`sync ${name}`, error);
    }
    await handle.close();
  }

  private path(name: string): string {
    return this.files.join(this.directory, name);
  }

  private assertOpen(): void {
    if (this.closed) throw new StorageError('CLOSED', `storage on ${this.directory} is closed`);
  }

  private assertNotFailed(): void {
    if (!this.failure) return;
    throw new StorageError(
      'FAILED',
      `storage on ${this.directory} refuses further writes since an earlier write or fsync failed (${this.failure.message}); ` +
        'what is on disk is unknown until the process restarts and recovers from it',
      { cause: this.failure },
    );
  }

  private ioError(what: string, cause: unknown): StorageError {
    if (cause instanceof StorageError) return cause;
    const detail = cause instanceof Error ? cause.message : String(cause);
    if (this.files.isDiskFull(cause)) {
      return new StorageError('FULL', `${what} in ${this.directory} failed: the disk is full (${detail}); free space on it`, { cause });
    }
    return new StorageError('IO', `${what} in ${this.directory} failed: ${detail}`, { cause });
  }

  /** A failure after which the files may not hold what this process believes: poison the storage. */
  private fail(what: string, cause: unknown): StorageError {
    const error = this.ioError(what, cause);
    if (error.code !== 'FAILED' && error.code !== 'CLOSED' && error.code !== 'INVALID_NAME') this.failure ??= error;
    return error;
  }
}

/** Names found valid already: the log's few names are checked on each of its operations. */
const validNames = new Set<string>();
const VALID_NAMES_KEPT_MAX = 1024;

export function validateStorageName(name: string): void {
  if (validNames.has(name)) return;
  const ok =
    name.length > 0 &&
    new TextEncoder().encode(name).byteLength <= STORAGE_NAME_BYTES_MAX &&
    !name.startsWith('.') &&
    name !== LOCK_FILE_NAME &&
    !/[/\\\0]/.test(name);
  if (!ok) {
    throw new StorageError(
      'INVALID_NAME',
      `invalid storage file name ${JSON.stringify(name)}: use 1..${STORAGE_NAME_BYTES_MAX} bytes without '/', '\\' or NUL, not starting with '.', not ${LOCK_FILE_NAME}`,
    );
  }
  if (validNames.size >= VALID_NAMES_KEPT_MAX) validNames.clear();
  validNames.add(name);
}

function rangeReader(
  name: string,
  file: HostReadFile,
  ioError: (what: string, error: unknown) => StorageError,
  assertOpen: () => void,
): DurableFileReader {
  let closed = false;
  // One read at a time: a host may implement a positioned read as seek, then read.
  let tail: Promise<unknown> = Promise.resolve();
  const fill = async (offset: number, bytes: Uint8Array): Promise<void> => {
    assertOpen();
    if (closed) throw new StorageError('CLOSED', `read ${name}: the reader is closed`);
    let done = 0;
    try {
      while (done < bytes.length) {
        const n = await file.readAt(bytes.subarray(done), offset + done);
        if (n <= 0) break;
        done += n;
      }
    } catch (error) {
      throw ioError(`read ${name} at byte ${offset}`, error);
    }
    if (done < bytes.length) throw new StorageError('IO', `read ${name}: it ended at byte ${offset + done}, before ${offset + bytes.length}`);
  };
  const queued = <T>(run: () => Promise<T>): Promise<T> => {
    const result = tail.then(run);
    tail = result.catch(() => undefined);
    return result;
  };
  const invalid = (offset: number, length: number): Promise<never> | undefined =>
    !Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0
      ? Promise.reject(new StorageError('IO', `read ${name}: offset and length must be non-negative integers, got ${offset} and ${length}`))
      : undefined;
  return {
    sizeBytes: file.sizeBytes,
    read(offset, length) {
      return (
        invalid(offset, length) ??
        queued(async () => {
          const bytes = new Uint8Array(Math.max(0, Math.min(file.sizeBytes, offset + length) - offset));
          await fill(offset, bytes);
          return bytes;
        })
      );
    },
    readInto(offset, bytes) {
      return invalid(offset, bytes.length) ?? queued(() => fill(offset, bytes));
    },
    async close() {
      if (closed) return;
      closed = true;
      await tail;
      await file.close();
    },
  };
}

async function writeAll(file: HostFile, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.byteLength) offset += await file.write(bytes.subarray(offset));
}

/** Creates `directory` if needed and removes what crashed replaces left behind: run before opening storage on it. */
export async function prepareStorageDirectory(directory: string, files: HostFileSystem): Promise<void> {
  await files.makeDirectory(directory);
  await removeLeftoverTemporaries(directory, files);
}

/**
 * A crash during `writeAtomic` leaves its temporary file (as large as a snapshot) behind. Its
 * name holds the writer's pid: files of processes that can no longer write are removed, so
 * they do not fill the disk over many crashes.
 */
async function removeLeftoverTemporaries(directory: string, files: HostFileSystem): Promise<void> {
  for (const name of await files.listFiles(directory)) {
    const pid = temporaryWriterPid(name);
    if (pid === undefined || pid === files.pid || (await files.processMayRun(pid))) continue;
    await files.remove(files.join(directory, name)).catch(() => undefined);
  }
}

/** The pid in a temporary file's name (`.tmp-<pid>-<n>-<name>`), or undefined for other names. */
export function temporaryWriterPid(name: string): number | undefined {
  const match = /^\.tmp-(\d{1,10})-\d+-/.exec(name);
  return match ? Number(match[1]) : undefined;
}

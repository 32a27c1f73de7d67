import { open, mkdir, readFile, readdir, rename, statfs, unlink, type FileHandle } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { join } from 'node:path';
import type { DurableStorage } from '../../src/runtime.ts';
import { isProcessAlive } from './process-liveness.ts';

/** File names longer than this are refused (most file systems stop at 255 bytes). */
export const STORAGE_NAME_BYTES_MAX = 200;
/** The directory lock's file; never a storage name. */
export const LOCK_FILE_NAME = 'LOCK';
const TEMP_PREFIX = '.tmp-';

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

function isErrnoError(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}

function isDiskFull(error: unknown): boolean {
  return isErrnoError(error, 'ENOSPC') || isErrnoError(error, 'EDQUOT');
}

/**
 * `DurableStorage` on one directory. Appends go through one open handle per file and every
 * operation on a file runs after the previous one on that file finished, because concurrent
 * libuv writes to one file may land in any order.
 */
const APPEND_DURABLE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_CREAT | fsConstants.O_DSYNC;

export class NodeDirectoryStorage implements DurableStorage {
  private readonly appendHandles = new Map<string, FileHandle>();
  /**
   * Append handles are opened with O_DSYNC, so each append is durable when it returns and `sync`
   * saves a second trip to the disk; a truncate is not covered and marks the file for fdatasync.
   */
  private readonly namesNeedingDataSync = new Set<string>();
  /** Files created by this process whose directory entry is not yet durable. */
  private readonly namesNeedingDirectorySync = new Set<string>();
  private readonly tails = new Map<string, Promise<unknown>>();
  private closed = false;
  private tempCounter = 0;
  /**
   * The first write or fsync that failed on a file the log relies on. After a failed fsync the
   * kernel may have marked the unwritten pages clean, so a second fsync would succeed without
   * the data on disk ("fsyncgate"): nothing is retried, every later change fails with this.
   */
  private failure: StorageError | undefined;

  constructor(readonly directory: string) {}

  /** Free bytes for this user on the directory's file system. */
  async freeBytes(): Promise<number | undefined> {
    const stats = await statfs(this.directory);
    return Number(stats.bavail) * Number(stats.bsize);
  }

  read(name: string): Promise<Uint8Array | undefined> {
    return this.serialize(name, { changes: false }, async () => {
      try {
        const buffer = await readFile(this.path(name));
        return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
      } catch (error) {
        if (isErrnoError(error, 'ENOENT')) return undefined;
        throw this.ioError(`read ${name}`, error);
      }
    });
  }

  writeAtomic(name: string, bytes: Uint8Array): Promise<void> {
    return this.serialize(name, { changes: true }, async () => {
      // The rename replaces the inode: an append handle on the old one would write into the void.
      await this.closeAppendHandle(name);
      const tempPath = join(this.directory, `${TEMP_PREFIX}${process.pid}-${this.tempCounter++}-${name}`);
      try {
        const handle = await open(tempPath, 'w');
        try {
          await writeAll(handle, bytes);
          await handle.sync();
        } finally {
          await handle.close();
        }
      } catch (error) {
        // Only the temporary file saw the failure, and it is thrown away: `name` is untouched.
        await unlink(tempPath).catch(() => undefined);
        throw this.ioError(`replace ${name}`, error);
      }
      try {
        await rename(tempPath, this.path(name));
        await this.syncDirectory();
        this.namesNeedingDirectorySync.delete(name);
      } catch (error) {
        await unlink(tempPath).catch(() => undefined);
        throw this.fail(`replace ${name}`, error);
      }
    });
  }

  append(name: string, bytes: Uint8Array): Promise<void> {
    return this.serialize(name, { changes: true }, async () => {
      try {
        const handle = await this.appendHandle(name);
        await writeAll(handle, bytes);
      } catch (error) {
        // With O_DSYNC a failed write may be a failed flush, and a part of it may have landed.
        throw this.fail(`append to ${name}`, error);
      }
    });
  }

  sync(name: string): Promise<void> {
    return this.serialize(name, { changes: true }, async () => {
      try {
        const handle = this.appendHandles.get(name);
        if (handle) {
          // Cleared only once the fsync succeeded; a failed one poisons the storage anyway.
          if (this.namesNeedingDataSync.has(name)) await handle.datasync();
          this.namesNeedingDataSync.delete(name);
        } else {
          const other = await open(this.path(name), 'r+');
          try {
            await other.datasync();
          } finally {
            await other.close();
          }
        }
        if (this.namesNeedingDirectorySync.has(name)) {
          await this.syncDirectory();
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
        const handle = this.appendHandles.get(name);
        if (handle) {
          await handle.truncate(size);
          this.namesNeedingDataSync.add(name);
        } else {
          const other = await open(this.path(name), 'r+');
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
      try {
        await unlink(this.path(name));
      } catch (error) {
        if (isErrnoError(error, 'ENOENT')) return;
        throw this.ioError(`remove ${name}`, error);
      }
      this.namesNeedingDirectorySync.delete(name);
      try {
        await this.syncDirectory();
      } catch (error) {
        throw this.fail(`remove ${name}`, error);
      }
    });
  }

  async list(): Promise<string[]> {
    this.assertOpen();
    const names = await readdir(this.directory);
    return names.filter((name) => name !== LOCK_FILE_NAME && !name.startsWith('.')).sort();
  }

  /** Waits for pending operations and closes open files. Further calls fail with CLOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.tails.values()]);
    const handles = [...this.appendHandles.values()];
    this.appendHandles.clear();
    await Promise.allSettled(handles.map((handle) => handle.close()));
  }

  private serialize<T>(name: string, kind: { changes: boolean }, operation: () => Promise<T>): Promise<T> {
    try {
      this.assertOpen();
      validateName(name);
      if (kind.changes) this.assertNotFailed();
    } catch (error) {
      return Promise.reject(error);
    }
    const previous = this.tails.get(name) ?? Promise.resolve();
    const guarded = async (): Promise<T> => {
      // Re-checked when the operation's turn comes: an operation queued before a failure
      // must not run after it.
      if (kind.changes) this.assertNotFailed();
      return operation();
    };
    const result = previous.then(guarded, guarded);
    const tail = result.catch(() => undefined);
    this.tails.set(name, tail);
    void tail.then(() => {
      if (this.tails.get(name) === tail) this.tails.delete(name);
    });
    return result;
  }

  private async appendHandle(name: string): Promise<FileHandle> {
    let handle = this.appendHandles.get(name);
    if (!handle) {
      handle = await open(this.path(name), APPEND_DURABLE_FLAGS, 0o644);
      this.appendHandles.set(name, handle);
      // The file may have just been created; its name is durable only once the directory is synced.
      this.namesNeedingDirectorySync.add(name);
    }
    return handle;
  }

  private async closeAppendHandle(name: string): Promise<void> {
    const handle = this.appendHandles.get(name);
    if (!handle) return;
    this.appendHandles.delete(name);
    try {
      if (this.namesNeedingDataSync.has(name)) await handle.datasync();
      this.namesNeedingDataSync.delete(name);
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw this.fail(`sync ${name}`, error);
    }
    await handle.close();
  }

  private async syncDirectory(): Promise<void> {
    const handle = await open(this.directory, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  private path(name: string): string {
    return join(this.directory, name);
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
    if (isDiskFull(cause)) {
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

function validateName(name: string): void {
  const ok =
    name.length > 0 &&
    Buffer.byteLength(name) <= STORAGE_NAME_BYTES_MAX &&
    !name.startsWith('.') &&
    name !== LOCK_FILE_NAME &&
    !/[/\\\0]/.test(name);
  if (!ok) {
    throw new StorageError(
      'INVALID_NAME',
      `invalid storage file name ${JSON.stringify(name)}: use 1..${STORAGE_NAME_BYTES_MAX} bytes without '/', '\\' or NUL, not starting with '.', not ${LOCK_FILE_NAME}`,
    );
  }
}

async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.byteLength) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.byteLength - offset);
    offset += bytesWritten;
  }
}

/** Creates `directory` if needed, removes what crashed replaces left behind, and returns storage on it. */
export async function openDirectoryStorage(directory: string): Promise<NodeDirectoryStorage> {
  await mkdir(directory, { recursive: true });
  await removeLeftoverTemporaries(directory);
  return new NodeDirectoryStorage(directory);
}

/**
 * A crash during `writeAtomic` leaves its temporary file (as large as a snapshot) behind. Its
 * name holds the writer's pid: files of processes that can no longer write are removed, so
 * they do not fill the disk over many crashes.
 */
async function removeLeftoverTemporaries(directory: string): Promise<void> {
  for (const name of await readdir(directory)) {
    const pid = temporaryWriterPid(name);
    if (pid === undefined || pid === process.pid || isProcessAlive(pid)) continue;
    await unlink(join(directory, name)).catch(() => undefined);
  }
}

/** The pid in a temporary file's name (`.tmp-<pid>-<n>-<name>`), or undefined for other names. */
export function temporaryWriterPid(name: string): number | undefined {
  const match = /^\.tmp-(\d{1,10})-\d+-/.exec(name);
  return match ? Number(match[1]) : undefined;
}

/**
 * `DurableStorage` on one directory through Deno's own file APIs. Same layout and rules as the
 * Node storage (a data directory works under either runtime): one append handle per file, and
 * every operation on a file runs after the previous one on that file finished.
 */
import { statfs } from 'node:fs/promises';
import type { DurableStorage } from '../../src/runtime.ts';

/** File names longer than this are refused (most file systems stop at 255 bytes). */
export const STORAGE_NAME_BYTES_MAX = 200;
/** The directory lock's file; never a storage name. */
export const LOCK_FILE_NAME = 'LOCK';
const TEMP_PREFIX = '.tmp-';

/**
 * IO: an operation failed. FULL: it failed because the disk (or a quota) is full. FAILED: an
 * earlier write or fsync failed, so this storage refuses every further change (see `failure`).
 */
export type DenoStorageErrorCode = 'INVALID_NAME' | 'CLOSED' | 'IO' | 'FULL' | 'FAILED';

function isDiskFull(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' || (error instanceof Error && /No space left on device|Disk quota exceeded/.test(error.message));
}

export class DenoStorageError extends Error {
  constructor(
    readonly code: DenoStorageErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DenoStorageError';
  }
}

export class DenoDirectoryStorage implements DurableStorage {
  private readonly appendHandles = new Map<string, Deno.FsFile>();
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
  private failure: DenoStorageError | undefined;

  constructor(readonly directory: string) {}

  /** Free bytes for this user on the directory's file system. */
  async freeBytes(): Promise<number | undefined> {
    const stats = await statfs(this.directory);
    return Number(stats.bavail) * Number(stats.bsize);
  }

  read(name: string): Promise<Uint8Array | undefined> {
    return this.serialize(name, { changes: false }, async () => {
      try {
        return await Deno.readFile(this.path(name));
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) return undefined;
        throw this.ioError(`read ${name}`, error);
      }
    });
  }

  writeAtomic(name: string, bytes: Uint8Array): Promise<void> {
    return this.serialize(name, { changes: true }, async () => {
      // The rename replaces the inode: an append handle on the old one would write into the void.
      this.closeAppendHandle(name);
      const tempPath = `${this.directory}/${TEMP_PREFIX}${Deno.pid}-${this.tempCounter++}-${name}`;
      try {
        const file = await Deno.open(tempPath, { write: true, create: true, truncate: true });
        try {
          await writeAll(file, bytes);
          await file.syncData();
        } finally {
          file.close();
        }
      } catch (error) {
        // Only the temporary file saw the failure, and it is thrown away: `name` is untouched.
        await Deno.remove(tempPath).catch(() => undefined);
        throw this.ioError(`replace ${name}`, error);
      }
      try {
        await Deno.rename(tempPath, this.path(name));
        await this.syncDirectory();
        this.namesNeedingDirectorySync.delete(name);
      } catch (error) {
        await Deno.remove(tempPath).catch(() => undefined);
        throw this.fail(`replace ${name}`, error);
      }
    });
  }

  append(name: string, bytes: Uint8Array): Promise<void> {
    return this.serialize(name, { changes: true }, async () => {
      try {
        await writeAll(await this.appendHandle(name), bytes);
      } catch (error) {
        throw this.fail(`append to ${name}`, error);
      }
    });
  }

  sync(name: string): Promise<void> {
    return this.serialize(name, { changes: true }, async () => {
      try {
        const handle = this.appendHandles.get(name);
        if (handle) {
          await handle.syncData();
        } else {
          const other = await Deno.open(this.path(name), { read: true, write: true });
          try {
            await other.syncData();
          } finally {
            other.close();
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
      return Promise.reject(new DenoStorageError('IO', `truncate ${name}: size must be a non-negative integer, got ${size}`));
    }
    return this.serialize(name, { changes: true }, async () => {
      try {
        const handle = this.appendHandles.get(name);
        if (handle) await handle.truncate(size);
        else await Deno.truncate(this.path(name), size);
      } catch (error) {
        throw this.fail(`truncate ${name}`, error);
      }
    });
  }

  remove(name: string): Promise<void> {
    return this.serialize(name, { changes: true }, async () => {
      this.closeAppendHandle(name);
      try {
        await Deno.remove(this.path(name));
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) return;
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
    const names: string[] = [];
    for await (const entry of Deno.readDir(this.directory)) {
      if (entry.isFile && entry.name !== LOCK_FILE_NAME && !entry.name.startsWith('.')) names.push(entry.name);
    }
    return names.sort();
  }

  /** Waits for pending operations and closes open files. Further calls fail with CLOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.tails.values()]);
    for (const handle of this.appendHandles.values()) handle.close();
    this.appendHandles.clear();
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

  private async appendHandle(name: string): Promise<Deno.FsFile> {
    let handle = this.appendHandles.get(name);
    if (!handle) {
      handle = await Deno.open(this.path(name), { append: true, create: true });
      this.appendHandles.set(name, handle);
      // The file may have just been created; its name is durable only once the directory is synced.
      this.namesNeedingDirectorySync.add(name);
    }
    return handle;
  }

  private closeAppendHandle(name: string): void {
    const handle = this.appendHandles.get(name);
    if (!handle) return;
    this.appendHandles.delete(name);
    handle.close();
  }

  private async syncDirectory(): Promise<void> {
    const handle = await Deno.open(this.directory, { read: true });
    try {
      await handle.sync();
    } finally {
      handle.close();
    }
  }

  private path(name: string): string {
    return `${this.directory}/${name}`;
  }

  private assertOpen(): void {
    if (this.closed) throw new DenoStorageError('CLOSED', `storage on ${this.directory} is closed`);
  }

  private assertNotFailed(): void {
    if (!this.failure) return;
    throw new DenoStorageError(
      'FAILED',
      `storage on ${this.directory} refuses further writes since an earlier write or fsync failed (${this.failure.message}); ` +
        'what is on disk is unknown until the process restarts and recovers from it',
      { cause: this.failure },
    );
  }

  private ioError(what: string, cause: unknown): DenoStorageError {
    if (cause instanceof DenoStorageError) return cause;
    const detail = cause instanceof Error ? cause.message : String(cause);
    if (isDiskFull(cause)) {
      return new DenoStorageError('FULL', `${what} in ${this.directory} failed: the disk is full (${detail}); free space on it`, { cause });
    }
    return new DenoStorageError('IO', `${what} in ${this.directory} failed: ${detail}`, { cause });
  }

  /** A failure after which the files may not hold what this process believes: poison the storage. */
  private fail(what: string, cause: unknown): DenoStorageError {
    const error = this.ioError(what, cause);
    if (error.code !== 'FAILED' && error.code !== 'CLOSED' && error.code !== 'INVALID_NAME') this.failure ??= error;
    return error;
  }
}

function validateName(name: string): void {
  const ok =
    name.length > 0 &&
    new TextEncoder().encode(name).byteLength <= STORAGE_NAME_BYTES_MAX &&
    !name.startsWith('.') &&
    name !== LOCK_FILE_NAME &&
    !/[/\\\0]/.test(name);
  if (!ok) {
    throw new DenoStorageError(
      'INVALID_NAME',
      `invalid storage file name ${JSON.stringify(name)}: use 1..${STORAGE_NAME_BYTES_MAX} bytes without '/', '\\' or NUL, not starting with '.', not ${LOCK_FILE_NAME}`,
    );
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.byteLength) offset += await file.write(bytes.subarray(offset));
}

/** Creates `directory` if needed, removes what crashed replaces left behind, and returns storage on it. */
export async function openDenoDirectoryStorage(directory: string): Promise<DenoDirectoryStorage> {
  await Deno.mkdir(directory, { recursive: true });
  await removeLeftoverTemporaries(directory);
  return new DenoDirectoryStorage(directory);
}

/**
 * A crash during `writeAtomic` leaves its temporary file (as large as a snapshot) behind. Its
 * name holds the writer's pid (same names as the Node storage): files of processes that can no
 * longer write are removed, so they do not fill the disk over many crashes.
 */
async function removeLeftoverTemporaries(directory: string): Promise<void> {
  for await (const entry of Deno.readDir(directory)) {
    const match = /^\.tmp-(\d{1,10})-\d+-/.exec(entry.name);
    if (!entry.isFile || !match || Number(match[1]) === Deno.pid || (await writerMayRun(Number(match[1])))) continue;
    await Deno.remove(`${directory}/${entry.name}`).catch(() => undefined);
  }
}

/** False only when /proc says the process is gone or a zombie; true when it cannot tell. */
async function writerMayRun(pid: number): Promise<boolean> {
  let stat: string;
  try {
    stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) return true;
    try {
      await Deno.stat('/proc/self/stat');
      return false;
    } catch {
      return true;
    }
  }
  const state = stat.slice(stat.lastIndexOf(')') + 1).trimStart()[0];
  return state !== 'Z' && state !== 'X' && state !== 'x';
}

/**
 * `DurableStorage` in the Origin Private File System, for a node in a dedicated Web Worker (sync
 * access handles exist only there). One directory per node; one open handle per file (OPFS
 * handles are exclusive, which also keeps a second tab off this node's files).
 *
 * OPFS has no atomic rename-over: `writeAtomic` writes and flushes `.tmp-NAME`, renames it to
 * `.done-NAME` (now known complete), removes NAME and moves `.done-NAME` into place. A crash
 * after the removal leaves only the complete `.done-NAME`, which `read` and `list` finish moving;
 * a crash before it leaves the old NAME, and a partial `.tmp-NAME` is never read. An atomic writer
 * writes `.tmp-NAME` a piece at a time and finishes the same way on commit.
 *
 * A worker that was terminated (a crashed or killed node) releases its access handles some time
 * after it is gone; a node restarted on the same directory meanwhile finds its files locked. Every
 * handle is therefore opened with a bounded retry (`lockWaitMs`), and a lock that outlasts it is a
 * `LOCKED` error that says what holds it.
 */
import type { DurableFileReader, DurableFileWriter, DurableStorage } from '../../src/runtime.ts';

export const OPFS_NAME_BYTES_MAX = 200;
/** How long opening a file waits for another (or a terminated) worker to release it. */
export const OPFS_LOCK_WAIT_MS_DEFAULT = 10_000;
const LOCK_RETRY_MS = 50;
const TEMP_PREFIX = '.tmp-';
/** Bytes copied at a time where a rename must copy a file. */
const OPFS_COPY_PIECE_BYTES = 1024 * 1024;
const DONE_PREFIX = '.done-';

/** The parts of the OPFS API we use (typed here: the DOM lib lacks some of them for workers). */
interface SyncAccessHandle {
  read(buffer: Uint8Array, options?: { at?: number }): number;
  write(buffer: Uint8Array, options?: { at?: number }): number;
  truncate(size: number): void;
  getSize(): number;
  flush(): void;
  close(): void;
}
interface OpfsFileHandle {
  readonly kind: 'file';
  readonly name: string;
  createSyncAccessHandle(): Promise<SyncAccessHandle>;
  move?(newName: string): Promise<void>;
}
interface OpfsDirectoryHandle {
  readonly kind: 'directory';
  getFileHandle(name: string, options?: { create?: boolean }): Promise<OpfsFileHandle>;
  getDirectoryHandle(name: string, options?: { create?: boolean }): Promise<OpfsDirectoryHandle>;
  removeEntry(name: string): Promise<void>;
  keys(): AsyncIterable<string>;
}

export class OpfsStorageError extends Error {
  constructor(
    readonly code: 'INVALID_NAME' | 'CLOSED' | 'IO' | 'UNAVAILABLE' | 'LOCKED',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'OpfsStorageError';
  }
}

export function opfsAvailable(): boolean {
  const storage = (globalThis.navigator as { storage?: { getDirectory?: unknown } } | undefined)?.storage;
  const fileHandle = (globalThis as { FileSystemFileHandle?: { prototype: object } }).FileSystemFileHandle;
  return typeof storage?.getDirectory === 'function' && !!fileHandle && 'createSyncAccessHandle' in fileHandle.prototype;
}

export class OpfsStorage implements DurableStorage {
  private readonly handles = new Map<string, SyncAccessHandle>();
  private readonly tails = new Map<string, Promise<unknown>>();
  /** Per name, how often it was replaced, removed or cut: a reader of an older one must not read the new file. */
  private readonly generations = new Map<string, number>();
  /** Names with an atomic writer open: their `.tmp-NAME` is being written. */
  private readonly writing = new Set<string>();
  private closed = false;

  private constructor(
    private readonly directory: OpfsDirectoryHandle,
    readonly directoryName: string,
    private readonly lockWaitMs: number,
  ) {}

  /**
   * Storage in the OPFS directory `directoryName` (created if missing). `lockWaitMs`: how long
   * opening a file waits for a worker that held it to let go (default 10 s).
   */
  static async open(directoryName: string, options: { lockWaitMs?: number } = {}): Promise<OpfsStorage> {
    if (!opfsAvailable()) throw new OpfsStorageError('UNAVAILABLE', 'OPFS with sync access handles is not available here (needs a dedicated worker in a secure context)');
    const lockWaitMs = options.lockWaitMs ?? OPFS_LOCK_WAIT_MS_DEFAULT;
    if (!Number.isFinite(lockWaitMs) || lockWaitMs < 0) throw new RangeError(`lockWaitMs must be a non-negative number of milliseconds, got ${lockWaitMs}`);
    const root = await opfsRoot();
    return new OpfsStorage(await root.getDirectoryHandle(directoryName, { create: true }), directoryName, lockWaitMs);
  }

  read(name: string): Promise<Uint8Array | undefined> {
    return this.serialize(name, async () => {
      const handle = (await this.handle(name, false)) ?? (await this.recoverTemp(name));
      if (!handle) return undefined;
      const bytes = new Uint8Array(handle.getSize());
      let offset = 0;
      while (offset < bytes.byteLength) {
        const n = handle.read(bytes.subarray(offset), { at: offset });
        if (n <= 0) throw new OpfsStorageError('IO', `read ${name}: file ended early at ${offset} of ${bytes.byteLength} bytes`);
        offset += n;
      }
      return bytes;
    });
  }

  /**
   * OPFS keeps no old file readable: once `name` is replaced, removed or truncated, the reader's
   * reads reject (its caller starts over on the new file).
   */
  openReader(name: string): Promise<DurableFileReader | undefined> {
    return this.serialize(name, async () => {
      const handle = (await this.handle(name, false)) ?? (await this.recoverTemp(name));
      if (!handle) return undefined;
      const generation = this.generation(name);
      const sizeBytes = handle.getSize();
      let closed = false;
      return {
        sizeBytes,
        read: (offset: number, length: number) =>
          this.serialize(name, async () => {
            if (closed) throw new OpfsStorageError('CLOSED', `read ${name}: the reader is closed`);
            if (this.generation(name) !== generation) throw new OpfsStorageError('IO', `read ${name}: it was replaced since it was opened for reading`);
            const current = await this.handle(name, false);
            if (!current) throw new OpfsStorageError('IO', `read ${name}: it is gone`);
            const bytes = new Uint8Array(Math.max(0, Math.min(sizeBytes, offset + length) - offset));
            let done = 0;
            while (done < bytes.byteLength) {
              const n = current.read(bytes.subarray(done), { at: offset + done });
              if (n <= 0) throw new OpfsStorageError('IO', `read ${name}: file ended early at ${offset + done} of ${sizeBytes} bytes`);
              done += n;
            }
            return bytes;
          }),
        close: async () => {
          closed = true;
        },
      };
    });
  }

  private generation(name: string): number {
    return this.generations.get(name) ?? 0;
  }

  private changed(name: string): void {
    this.generations.set(name, this.generation(name) + 1);
  }

  writeAtomic(name: string, bytes: Uint8Array): Promise<void> {
    if (this.writing.has(name)) return Promise.reject(new OpfsStorageError('IO', `replace ${name}: a writer of it is open`));
    return this.serialize(name, async () => {
      const tempName = TEMP_PREFIX + name;
      this.closeHandle(tempName);
      const temp = await this.accessHandle(await this.directory.getFileHandle(tempName, { create: true }));
      try {
        temp.truncate(0);
        writeAll(temp, bytes, 0);
        temp.flush();
      } finally {
        temp.close();
      }
      await this.moveIntoPlace(name);
    });
  }

  /** Writes `.tmp-NAME` a piece at a time (each write in the storage's queue); the commit flushes it and moves it into place as writeAtomic does. */
  async openAtomicWriter(name: string): Promise<DurableFileWriter> {
    if (this.writing.has(name)) throw new OpfsStorageError('IO', `replace ${name}: a writer of it is already open`);
    const tempName = TEMP_PREFIX + name;
    const temp = await this.serialize(name, async () => {
      this.closeHandle(tempName);
      const handle = await this.accessHandle(await this.directory.getFileHandle(tempName, { create: true }));
      handle.truncate(0);
      return handle;
    });
    this.writing.add(name);
    let size = 0;
    let open = true;
    const finish = (): void => {
      if (!open) return;
      open = false;
      this.writing.delete(name);
      temp.close();
    };
    const assertOpen = (what: string): void => {
      if (!open) throw new OpfsStorageError('CLOSED', `${what} ${name}: the writer is closed`);
    };
    return {
      write: (bytes) =>
        this.serialize(name, async () => {
          assertOpen('write');
          try {
            writeAll(temp, bytes, size);
          } catch (error) {
            finish();
            throw error;
          }
          size += bytes.byteLength;
        }),
      writeAt: (offset, bytes) =>
        this.serialize(name, async () => {
          assertOpen('write');
          if (!Number.isSafeInteger(offset) || offset < 0 || offset + bytes.byteLength > size) {
            throw new OpfsStorageError('IO', `write ${name}: bytes ${offset}..${offset + bytes.byteLength} are not all written yet (${size} are)`);
          }
          try {
            writeAll(temp, bytes, offset);
          } catch (error) {
            finish();
            throw error;
          }
        }),
      commit: () =>
        this.serialize(name, async () => {
          assertOpen('commit');
          try {
            temp.flush();
          } finally {
            finish();
          }
          await this.moveIntoPlace(name);
        }),
      abort: () =>
        this.serialize(name, async () => {
          if (!open) return;
          finish();
          await this.directory.removeEntry(tempName).catch(() => undefined);
        }),
    };
  }

  /** `.tmp-NAME`, written and flushed, replaces NAME (see the top of this file). */
  private async moveIntoPlace(name: string): Promise<void> {
    this.changed(name);
    await this.rename(TEMP_PREFIX + name, DONE_PREFIX + name);
    this.closeHandle(name);
    await this.directory.removeEntry(name).catch(() => undefined);
    await this.rename(DONE_PREFIX + name, name);
  }

  append(name: string, bytes: Uint8Array): Promise<void> {
    return this.serialize(name, async () => {
      const handle = (await this.handle(name, true))!;
      writeAll(handle, bytes, handle.getSize());
    });
  }

  sync(name: string): Promise<void> {
    return this.serialize(name, async () => {
      (await this.handle(name, false))?.flush();
    });
  }

  truncate(name: string, size: number): Promise<void> {
    if (!Number.isSafeInteger(size) || size < 0) {
      return Promise.reject(new OpfsStorageError('IO', `truncate ${name}: size must be a non-negative integer, got ${size}`));
    }
    return this.serialize(name, async () => {
      const handle = await this.handle(name, false);
      if (!handle) throw new OpfsStorageError('IO', `truncate ${name}: no such file`);
      this.changed(name);
      handle.truncate(size);
    });
  }

  remove(name: string): Promise<void> {
    return this.serialize(name, async () => {
      this.changed(name);
      this.closeHandle(name);
      await this.directory.removeEntry(name).catch((error: unknown) => {
        if ((error as { name?: string }).name !== 'NotFoundError') throw error;
      });
    });
  }

  async list(): Promise<string[]> {
    this.assertOpen();
    const names = new Set<string>();
    const temps: string[] = [];
    for await (const name of this.directory.keys()) {
      if (name.startsWith(DONE_PREFIX)) temps.push(name.slice(DONE_PREFIX.length));
      else if (!name.startsWith('.')) names.add(name);
    }
    // A complete temporary file without its target is a replacement a crash interrupted.
    for (const name of temps) if (!names.has(name) && (await this.read(name)) !== undefined) names.add(name);
    return [...names].sort();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.tails.values()]);
    for (const handle of this.handles.values()) handle.close();
    this.handles.clear();
  }

  private async recoverTemp(name: string): Promise<SyncAccessHandle | undefined> {
    try {
      await this.directory.getFileHandle(DONE_PREFIX + name);
    } catch {
      return undefined;
    }
    await this.rename(DONE_PREFIX + name, name);
    return this.handle(name, false);
  }

  /** Renames `from` to `to`, which must not exist. */
  private async rename(from: string, to: string): Promise<void> {
    const tempName = from;
    const name = to;
    this.closeHandle(to);
    await this.directory.removeEntry(to).catch(() => undefined);
    const temp = await this.directory.getFileHandle(tempName);
    if (typeof temp.move === 'function') {
      await temp.move(name);
      return;
    }
    // Without move(): copy (a bounded piece at a time: a snapshot is as large as the databases), flush, then drop the temporary file.
    const source = await this.accessHandle(temp);
    try {
      const size = source.getSize();
      const piece = new Uint8Array(Math.min(size, OPFS_COPY_PIECE_BYTES));
      const target = await this.accessHandle(await this.directory.getFileHandle(name, { create: true }));
      try {
        target.truncate(0);
        for (let at = 0; at < size; at += piece.length) {
          const bytes = piece.subarray(0, Math.min(piece.length, size - at));
          let done = 0;
          while (done < bytes.length) {
            const n = source.read(bytes.subarray(done), { at: at + done });
            if (n <= 0) throw new OpfsStorageError('IO', `rename ${from}: file ended early at ${at + done} of ${size} bytes`);
            done += n;
          }
          writeAll(target, bytes, at);
        }
        target.flush();
      } finally {
        target.close();
      }
    } finally {
      source.close();
    }
    await this.directory.removeEntry(tempName);
  }

  private async handle(name: string, create: boolean): Promise<SyncAccessHandle | undefined> {
    let handle = this.handles.get(name);
    if (handle) return handle;
    let file: OpfsFileHandle;
    try {
      file = await this.directory.getFileHandle(name, { create });
    } catch (error) {
      if (!create && (error as { name?: string }).name === 'NotFoundError') return undefined;
      throw new OpfsStorageError('IO', `open ${name} in OPFS ${this.directoryName}: ${(error as Error).message}`, { cause: error });
    }
    handle = await this.accessHandle(file);
    this.handles.set(name, handle);
    return handle;
  }

  /** Opens the file's exclusive handle, waiting up to `lockWaitMs` for its previous holder to let go. */
  private async accessHandle(file: OpfsFileHandle): Promise<SyncAccessHandle> {
    const deadline = performance.now() + this.lockWaitMs;
    for (;;) {
      try {
        return await file.createSyncAccessHandle();
      } catch (error) {
        if ((error as { name?: string }).name !== 'NoModificationAllowedError') {
          throw new OpfsStorageError('IO', `open ${file.name} in OPFS ${this.directoryName}: ${(error as Error).message}`, { cause: error });
        }
        if (performance.now() >= deadline) {
          throw new OpfsStorageError(
            'LOCKED',
            `${file.name} in OPFS ${this.directoryName} stayed locked for ${this.lockWaitMs} ms: another tab or worker runs this node (close it), ` +
              'or a stopped worker has not released its files yet (start again in a moment)',
            { cause: error },
          );
        }
        await new Promise((resolve) => setTimeout(resolve, LOCK_RETRY_MS));
      }
    }
  }

  private closeHandle(name: string): void {
    const handle = this.handles.get(name);
    if (!handle) return;
    this.handles.delete(name);
    handle.close();
  }

  private serialize<T>(name: string, operation: () => Promise<T>): Promise<T> {
    try {
      this.assertOpen();
      validateName(name);
    } catch (error) {
      return Promise.reject(error);
    }
    // One queue for the whole directory: writeAtomic touches two names, and OPFS calls are cheap.
    const previous = this.tails.get('') ?? Promise.resolve();
    const result = previous.then(operation, operation);
    const tail = result.catch(() => undefined);
    this.tails.set('', tail);
    return result;
  }

  private assertOpen(): void {
    if (this.closed) throw new OpfsStorageError('CLOSED', `OPFS storage ${this.directoryName} is closed`);
  }
}

function opfsRoot(): Promise<OpfsDirectoryHandle> {
  return (navigator.storage as unknown as { getDirectory(): Promise<OpfsDirectoryHandle> }).getDirectory();
}

/**
 * Removes the OPFS directory `directoryName` and everything in it (nothing when it is missing),
 * waiting up to `lockWaitMs` for workers that held its files to let go. Works in a page too.
 */
export async function removeOpfsDirectory(directoryName: string, options: { lockWaitMs?: number } = {}): Promise<void> {
  validateName(directoryName);
  const root = (await opfsRoot()) as OpfsDirectoryHandle & { removeEntry(name: string, options?: { recursive?: boolean }): Promise<void> };
  const deadline = performance.now() + (options.lockWaitMs ?? OPFS_LOCK_WAIT_MS_DEFAULT);
  for (;;) {
    try {
      await root.removeEntry(directoryName, { recursive: true });
      return;
    } catch (error) {
      const name = (error as { name?: string }).name;
      if (name === 'NotFoundError') return;
      if (name !== 'NoModificationAllowedError' || performance.now() >= deadline) {
        throw new OpfsStorageError(name === 'NoModificationAllowedError' ? 'LOCKED' : 'IO', `remove OPFS ${directoryName}: ${(error as Error).message}`, { cause: error });
      }
      await new Promise((resolve) => setTimeout(resolve, LOCK_RETRY_MS));
    }
  }
}

function writeAll(handle: SyncAccessHandle, bytes: Uint8Array, at: number): void {
  let offset = 0;
  while (offset < bytes.byteLength) {
    const n = handle.write(bytes.subarray(offset), { at: at + offset });
    if (n <= 0) throw new OpfsStorageError('IO', `OPFS write stopped at ${offset} of ${bytes.byteLength} bytes (quota?)`);
    offset += n;
  }
}

export function validateName(name: string): void {
  const ok = name.length > 0 && new TextEncoder().encode(name).byteLength <= OPFS_NAME_BYTES_MAX && !name.startsWith('.') && !/[/\\\0]/.test(name);
  if (!ok) {
    throw new OpfsStorageError('INVALID_NAME', `invalid storage file name ${JSON.stringify(name)}: use 1..${OPFS_NAME_BYTES_MAX} bytes without '/', '\\' or NUL, not starting with '.'`);
  }
}

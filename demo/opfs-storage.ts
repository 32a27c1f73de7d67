/**
 * DurableStorage on the Origin Private File System, for a node running in a dedicated Web Worker
 * (synchronous access handles exist only there). A small stand-in until `runtimes/browser/`
 * ships the general OPFS storage (issue 7); the demo needs only what a node's Raft log does.
 */
import type { DurableStorage } from '../src/runtime.ts';

/** The worker-only part of the OPFS API (not in TypeScript's DOM library). */
interface SyncAccessHandle {
  read(buffer: Uint8Array, options: { at: number }): number;
  write(buffer: Uint8Array, options: { at: number }): number;
  truncate(size: number): void;
  getSize(): number;
  flush(): void;
  close(): void;
}
interface WorkerFileHandle extends FileSystemFileHandle {
  createSyncAccessHandle(): Promise<SyncAccessHandle>;
  move(newName: string): Promise<void>;
}
interface IterableDirectory extends FileSystemDirectoryHandle {
  keys(): AsyncIterableIterator<string>;
}

export class OpfsStorageError extends Error {
  constructor(
    readonly code: 'LOCKED' | 'UNAVAILABLE',
    message: string,
  ) {
    super(message);
    this.name = 'OpfsStorageError';
  }
}

const TEMP_SUFFIX = '.tmp';
/** A terminated worker's handles are released asynchronously; a restart waits this long for them. */
const LOCK_WAIT_MS = 10_000;
/** Bound on one file read into memory (a snapshot or a log segment). */
const FILE_BYTES_MAX = 512 * 1024 * 1024;

function isNotFound(error: unknown): boolean {
  return error instanceof DOMException && error.name === 'NotFoundError';
}

export async function opfsDirectory(path: readonly string[], create: boolean): Promise<FileSystemDirectoryHandle | undefined> {
  if (typeof navigator === 'undefined' || !navigator.storage?.getDirectory) {
    throw new OpfsStorageError('UNAVAILABLE', 'this browser offers no Origin Private File System (navigator.storage.getDirectory)');
  }
  let dir = await navigator.storage.getDirectory();
  for (const part of path) {
    try {
      dir = await dir.getDirectoryHandle(part, { create });
    } catch (error) {
      if (!create && isNotFound(error)) return undefined;
      throw error;
    }
  }
  return dir;
}

export class OpfsStorage implements DurableStorage {
  private readonly handles = new Map<string, Promise<SyncAccessHandle>>();

  private constructor(private readonly dir: FileSystemDirectoryHandle) {}

  /** Opens (creating) the directory at `path` under the origin's private root. */
  static async open(path: readonly string[]): Promise<OpfsStorage> {
    return new OpfsStorage((await opfsDirectory(path, true))!);
  }

  async read(name: string): Promise<Uint8Array | undefined> {
    const handle = (await this.handle(name, false)) ?? (await this.recoverInterruptedRename(name));
    if (!handle) return undefined;
    const size = handle.getSize();
    if (size > FILE_BYTES_MAX) throw new RangeError(`${name} holds ${size} bytes, more than the ${FILE_BYTES_MAX}-byte bound`);
    const bytes = new Uint8Array(size);
    handle.read(bytes, { at: 0 });
    return bytes;
  }

  async writeAtomic(name: string, bytes: Uint8Array): Promise<void> {
    const tempName = name + TEMP_SUFFIX;
    const temp = (await this.handle(tempName, true))!;
    temp.truncate(0);
    temp.write(bytes, { at: 0 });
    temp.flush();
    await this.closeHandle(tempName);
    // OPFS has no rename-over: remove, then move. A crash in between leaves only the complete
    // temporary file, which `read` then adopts.
    await this.remove(name);
    const file = (await this.dir.getFileHandle(tempName)) as WorkerFileHandle;
    await file.move(name);
  }

  async append(name: string, bytes: Uint8Array): Promise<void> {
    const handle = (await this.handle(name, true))!;
    handle.write(bytes, { at: handle.getSize() });
  }

  async sync(name: string): Promise<void> {
    const handle = await this.handle(name, false);
    handle?.flush();
  }

  async truncate(name: string, size: number): Promise<void> {
    const handle = (await this.handle(name, true))!;
    handle.truncate(size);
  }

  async remove(name: string): Promise<void> {
    await this.closeHandle(name);
    try {
      await this.dir.removeEntry(name);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  async list(): Promise<string[]> {
    const names: string[] = [];
    for await (const name of (this.dir as IterableDirectory).keys()) {
      if (!name.endsWith(TEMP_SUFFIX)) names.push(name);
    }
    return names;
  }

  /** Releases every access handle (the worker may be terminated instead; the browser then frees them). */
  async close(): Promise<void> {
    for (const name of [...this.handles.keys()]) await this.closeHandle(name);
  }

  private async recoverInterruptedRename(name: string): Promise<SyncAccessHandle | undefined> {
    const temp = await this.handle(name + TEMP_SUFFIX, false);
    if (!temp) return undefined;
    await this.closeHandle(name + TEMP_SUFFIX);
    const file = (await this.dir.getFileHandle(name + TEMP_SUFFIX)) as WorkerFileHandle;
    await file.move(name);
    return this.handle(name, false);
  }

  private async closeHandle(name: string): Promise<void> {
    const handle = this.handles.get(name);
    if (!handle) return;
    this.handles.delete(name);
    try {
      (await handle).close();
    } catch {
      // A handle that failed to open has nothing to close.
    }
  }

  private async handle(name: string, create: boolean): Promise<SyncAccessHandle | undefined> {
    const existing = this.handles.get(name);
    if (existing) return existing;
    let file: WorkerFileHandle;
    try {
      file = (await this.dir.getFileHandle(name, { create })) as WorkerFileHandle;
    } catch (error) {
      if (!create && isNotFound(error)) return undefined;
      throw error;
    }
    const again = this.handles.get(name);
    if (again) return again;
    const opening = openSyncHandle(file, name);
    this.handles.set(name, opening);
    opening.catch(() => this.handles.delete(name));
    return opening;
  }
}

async function openSyncHandle(file: WorkerFileHandle, name: string): Promise<SyncAccessHandle> {
  const deadline = performance.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      return await file.createSyncAccessHandle();
    } catch (error) {
      const locked = error instanceof DOMException && error.name === 'NoModificationAllowedError';
      if (!locked) throw error;
      if (performance.now() > deadline) {
        throw new OpfsStorageError(
          'LOCKED',
          `${name} stays locked by another worker or tab: close other tabs of this demo, or wait for the old node to stop`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** Removes the whole directory at `path` (the demo's reset). */
export async function removeOpfsDirectory(path: readonly string[]): Promise<void> {
  if (path.length === 0) throw new RangeError('refusing to remove the origin root');
  const parent = await opfsDirectory(path.slice(0, -1), false);
  if (!parent) return;
  try {
    await parent.removeEntry(path[path.length - 1]!, { recursive: true });
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
}

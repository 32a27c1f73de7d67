/**
 * The Deno file primitives of the directory storage (src/server/directory-storage.ts, which
 * holds the layout, the atomic replace and the sync order): a data directory works under either
 * runtime. Deno cannot open a file with O_DSYNC, so `sync` fdatasyncs every append handle.
 */
import { statfs } from 'node:fs/promises';
import { DirectoryStorage, prepareStorageDirectory, type HostFile, type HostFileSystem, type HostReadFile } from '../../src/server/directory-storage.ts';

export {
  LOCK_FILE_NAME,
  STORAGE_NAME_BYTES_MAX,
  StorageError as DenoStorageError,
  type StorageErrorCode as DenoStorageErrorCode,
} from '../../src/server/directory-storage.ts';

function hostFile(file: Deno.FsFile): HostFile {
  return {
    write: (bytes) => file.write(bytes),
    // Seek, write, back to the end: the storage runs one operation on a file at a time, and uses
    // positions only on files it writes from the start (never on an append handle).
    async writeAt(bytes, position) {
      await file.seek(position, Deno.SeekMode.Start);
      try {
        return await file.write(bytes);
      } finally {
        await file.seek(0, Deno.SeekMode.End);
      }
    },
    syncData: () => file.syncData(),
    truncate: (size) => file.truncate(size),
    close: async () => file.close(),
  };
}

function isDiskFull(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' || (error instanceof Error && /No space left on device|Disk quota exceeded/.test(error.message));
}

/** False only when /proc says the process is gone or a zombie; true when it cannot tell. */
async function processMayRun(pid: number): Promise<boolean> {
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

export const denoFileSystem: HostFileSystem = {
  pid: Deno.pid,
  appendsDurable: false,
  join: (directory, name) => `${directory}/${name}`,
  makeDirectory: (directory) => Deno.mkdir(directory, { recursive: true }),
  async readFile(path) {
    try {
      return await Deno.readFile(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  },
  async openRead(path): Promise<HostReadFile | undefined> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
    try {
      const sizeBytes = (await file.stat()).size;
      return {
        sizeBytes,
        // The directory storage runs one read of a reader at a time, so seek and read stay paired.
        async readAt(bytes, position) {
          await file.seek(position, Deno.SeekMode.Start);
          return (await file.read(bytes)) ?? 0;
        },
        close: async () => file.close(),
      };
    } catch (error) {
      file.close();
      throw error;
    }
  },
  openAppend: async (path) => hostFile(await Deno.open(path, { append: true, create: true })),
  openEmpty: async (path) => hostFile(await Deno.open(path, { write: true, create: true, truncate: true })),
  openExisting: async (path) => hostFile(await Deno.open(path, { read: true, write: true })),
  rename: (from, to) => Deno.rename(from, to),
  async remove(path) {
    try {
      await Deno.remove(path);
      return true;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    }
  },
  async listFiles(directory) {
    const names: string[] = [];
    for await (const entry of Deno.readDir(directory)) if (entry.isFile) names.push(entry.name);
    return names;
  },
  async syncDirectory(directory) {
    const handle = await Deno.open(directory, { read: true });
    try {
      await handle.sync();
    } finally {
      handle.close();
    }
  },
  async freeBytes(directory) {
    const stats = await statfs(directory);
    return Number(stats.bavail) * Number(stats.bsize);
  },
  isDiskFull,
  processMayRun,
};

/** `DurableStorage` on one directory, through Deno's own file APIs. */
export class DenoDirectoryStorage extends DirectoryStorage {
  constructor(directory: string) {
    super(directory, denoFileSystem);
  }
}

/** Creates `directory` if needed, removes what crashed replaces left behind, and returns storage on it. */
export async function openDenoDirectoryStorage(directory: string): Promise<DenoDirectoryStorage> {
  await prepareStorageDirectory(directory, denoFileSystem);
  return new DenoDirectoryStorage(directory);
}

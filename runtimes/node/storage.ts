/**
 * The Node file primitives of the directory storage (src/server/directory-storage.ts, which
 * holds the layout, the atomic replace and the sync order). Append and in-place handles are opened
 * with O_DSYNC, so each write is durable when it returns and `sync` saves a second trip to the disk.
 */
import { open, mkdir, readFile, readdir, rename, statfs, unlink, type FileHandle } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { DirectoryStorage, prepareStorageDirectory, type HostFile, type HostFileSystem, type HostReadFile } from '../../src/server/directory-storage.ts';
import { isProcessAlive } from './process-liveness.ts';
import { useNativeCrc32 } from '../../src/util/crc32.ts';

// Every log record's checksum: zlib's CRC-32 where this Node.js has it (20.15 and later).
if (typeof zlib.crc32 === 'function') useNativeCrc32((bytes, previous) => zlib.crc32(bytes, previous));

export {
  LOCK_FILE_NAME,
  STORAGE_NAME_BYTES_MAX,
  StorageError,
  temporaryWriterPid,
  type StorageErrorCode,
} from '../../src/server/directory-storage.ts';

const APPEND_DURABLE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_CREAT | fsConstants.O_DSYNC;
const IN_PLACE_DURABLE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_DSYNC;

function errnoCode(error: unknown): string | undefined {
  return error instanceof Error ? (error as NodeJS.ErrnoException).code : undefined;
}

function hostFile(handle: FileHandle): HostFile {
  return {
    write: async (bytes) => (await handle.write(bytes, 0, bytes.byteLength)).bytesWritten,
    writeAt: async (bytes, position) => (await handle.write(bytes, 0, bytes.byteLength, position)).bytesWritten,
    syncData: () => handle.datasync(),
    truncate: (size) => handle.truncate(size),
    close: () => handle.close(),
  };
}

export const nodeFileSystem: HostFileSystem = {
  pid: process.pid,
  appendsDurable: true,
  join,
  makeDirectory: async (directory) => void (await mkdir(directory, { recursive: true })),
  async readFile(path) {
    try {
      const buffer = await readFile(path);
      return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return undefined;
      throw error;
    }
  },
  async openRead(path): Promise<HostReadFile | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return undefined;
      throw error;
    }
    try {
      const sizeBytes = (await handle.stat()).size;
      return {
        sizeBytes,
        readAt: async (bytes, position) => (await handle.read(bytes, 0, bytes.byteLength, position)).bytesRead,
        close: () => handle.close(),
      };
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
  },
  openAppend: async (path) => hostFile(await open(path, APPEND_DURABLE_FLAGS, 0o644)),
  openInPlace: async (path) => hostFile(await open(path, IN_PLACE_DURABLE_FLAGS, 0o644)),
  openEmpty: async (path) => hostFile(await open(path, 'w')),
  openExisting: async (path) => hostFile(await open(path, 'r+')),
  rename,
  async remove(path) {
    try {
      await unlink(path);
      return true;
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return false;
      throw error;
    }
  },
  listFiles: async (directory) => (await readdir(directory, { withFileTypes: true })).filter((entry) => entry.isFile()).map((entry) => entry.name),
  async syncDirectory(directory) {
    const handle = await open(directory, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
  async freeBytes(directory) {
    const stats = await statfs(directory);
    return Number(stats.bavail) * Number(stats.bsize);
  },
  isDiskFull: (error) => errnoCode(error) === 'ENOSPC' || errnoCode(error) === 'EDQUOT',
  processMayRun: async (pid) => isProcessAlive(pid),
};

/** `DurableStorage` on one directory, through Node's file system. */
export class NodeDirectoryStorage extends DirectoryStorage {
  constructor(directory: string) {
    super(directory, nodeFileSystem);
  }
}

/** Creates `directory` if needed, removes what crashed replaces left behind, and returns storage on it. */
export async function openDirectoryStorage(directory: string): Promise<NodeDirectoryStorage> {
  await prepareStorageDirectory(directory, nodeFileSystem);
  return new NodeDirectoryStorage(directory);
}

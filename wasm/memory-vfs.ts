// An in-memory VFS, one method per SQLite VFS/io method, each returning an SQLite result code.
// Files live in a name → MemoryFile map; open handles (sqlite3_file pointers) map to them.
// Locking is a no-op: the engine runs exactly one writing connection per database in EXCLUSIVE
// mode. A database's read view is a second, read-only connection on an alias path whose bytes
// the engine computes (read-view.ts); the VFS refuses every write through it, so a reader can
// never change a byte of the replica.

import { ChunkPool, MemoryFile } from './memory-file.ts';
import {
  SQLITE_ACCESS_EXISTS,
  SQLITE_CANTOPEN,
  SQLITE_FULL,
  SQLITE_IOCAP_POWERSAFE_OVERWRITE,
  SQLITE_IOCAP_SAFE_APPEND,
  SQLITE_IOCAP_SEQUENTIAL,
  SQLITE_IOCAP_UNDELETABLE_WHEN_OPEN,
  SQLITE_IOERR_SHORT_READ,
  SQLITE_NOTFOUND,
  SQLITE_OK,
  SQLITE_OPEN_CREATE,
  SQLITE_OPEN_DELETEONCLOSE,
  SQLITE_OPEN_READONLY,
  SQLITE_OPEN_READWRITE,
  SQLITE_READONLY,
  type Pointer,
  type SqliteModule,
} from './sqlite-api.ts';

interface OpenFile {
  readonly path: string;
  /** The file itself; undefined for a read view.  */
  readonly file: MemoryFile | undefined;
  readonly deleteOnClose: boolean;
  readonly view: ReadViewTarget | undefined;
}

/** What a read-view alias path shows: bytes computed on demand, read-only. */
export interface ReadViewTarget {
  sizeBytes(): number;
  /** Copies `length` bytes from `offset` (all below `sizeBytes()`) into `target` at `targetOffset`. */
  readInto(target: Uint8Array, targetOffset: number, offset: number, length: number): void;
}

const SECTOR_SIZE_BYTES = 4096;
// Sequential + powersafe-overwrite: SQLite then neither syncs the WAL header separately nor pads
// a commit to a sector boundary, so each commit is exactly its frames followed by one xSync.
const DEVICE_CHARACTERISTICS =
  SQLITE_IOCAP_SAFE_APPEND | SQLITE_IOCAP_SEQUENTIAL | SQLITE_IOCAP_POWERSAFE_OVERWRITE | SQLITE_IOCAP_UNDELETABLE_WHEN_OPEN;
const PATHNAME_MAX_BYTES = 512;
/** Julian day number of the Unix epoch, in milliseconds (for xCurrentTimeInt64). */
const UNIX_EPOCH_JULIAN_MS = 210866760000000;

export interface MemoryVfsOptions {
  name: string;
  fileBytesMax: number;
  /** Bytes of chunks freed by deleted or shrunk files kept for files that grow (default 0: none). */
  chunkPoolBytesMax?: number;
}

export class MemoryVfs {
  readonly name: string;
  private readonly fileBytesMax: number;
  private readonly sqlite: SqliteModule;
  private readonly files = new Map<string, MemoryFile>();
  private readonly open = new Map<Pointer, OpenFile>();
  private readonly views = new Map<string, ReadViewTarget>();
  private readonly pool: ChunkPool;
  private tempFileCounter = 0;
  /** The handle looked up last: a commit's writes, reads and sync all go to one file, the WAL. */
  private lastHandlePointer: Pointer = 0;
  private lastHandle: OpenFile | undefined;
  /** Cached view of the WASM heap; growing the memory detaches its buffer (length 0) or leaves the view short: either way `heap()` refreshes it. */
  private heapView: Uint8Array = new Uint8Array(0);

  constructor(sqlite: SqliteModule, options: MemoryVfsOptions) {
    this.sqlite = sqlite;
    this.name = options.name;
    this.fileBytesMax = options.fileBytesMax;
    this.pool = new ChunkPool(options.chunkPoolBytesMax ?? 0);
  }

  // --- engine-side access to the files -------------------------------------------------------

  file(path: string): MemoryFile | undefined {
    return this.files.get(path);
  }

  /** Runs `move` with every chunk a file gives back meanwhile kept for reuse (ChunkPool.holdingAll). */
  holdingChunks<T>(move: () => T): T {
    return this.pool.holdingAll(move);
  }

  /** Bytes of memory every file holds (see MemoryFile.heldBytes), and the chunks kept for reuse. */
  heldBytes(): number {
    let total = this.pool.heldBytes;
    for (const file of this.files.values()) total += file.heldBytes;
    return total;
  }

  /** Returns the file at `path`, creating an empty one if needed. */
  ensureFile(path: string): MemoryFile {
    let file = this.files.get(path);
    if (file === undefined) {
      file = new MemoryFile(this.fileBytesMax, undefined, this.pool);
      this.files.set(path, file);
    }
    return file;
  }

  replaceFile(path: string, contents: Uint8Array): MemoryFile {
    const file = new MemoryFile(this.fileBytesMax, contents, this.pool);
    this.retire(path);
    this.files.set(path, file);
    return file;
  }

  deleteFile(path: string): void {
    this.retire(path);
  }

  /** Forgets the file at `path`; its chunks go to the pool unless SQLite still has it open. */
  private retire(path: string): void {
    const file = this.files.get(path);
    if (file === undefined) return;
    this.files.delete(path);
    for (const handle of this.open.values()) if (handle.file === file) return;
    file.releaseChunks();
  }

  /** Makes `path` a read-only file whose bytes `target` provides. */
  addReadView(path: string, target: ReadViewTarget): void {
    if (this.files.has(path)) throw new Error(`read view ${path} would hide a file of that name`);
    this.views.set(path, target);
  }

  removeReadView(path: string): void {
    this.views.delete(path);
  }


  // --- registration ------------------------------------------------------------------------

  /** Registers the VFS with SQLite under `this.name`. */
  install(): void {
    const { capi, wasm } = this.sqlite;
    const ioMethods = new capi.sqlite3_io_methods();
    ioMethods['$iVersion'] = 1;
    const vfs = new capi.sqlite3_vfs();
    vfs['$iVersion'] = 2;
    vfs['$szOsFile'] = capi.sqlite3_file.structInfo.sizeof;
    vfs['$mxPathname'] = PATHNAME_MAX_BYTES;
    vfs['$zName'] = wasm.allocCString(this.name);
    const ioMethodsPointer = ioMethods.pointer;
    ioMethods.installMethods({
      xClose: (pFile: Pointer) => this.xClose(pFile),
      xRead: (pFile: Pointer, pDest: Pointer, amountBytes: number, offset: bigint) =>
        this.xRead(pFile, pDest, amountBytes, offset),
      xWrite: (pFile: Pointer, pSource: Pointer, amountBytes: number, offset: bigint) =>
        this.xWrite(pFile, pSource, amountBytes, offset),
      xTruncate: (pFile: Pointer, sizeBytes: bigint) => this.xTruncate(pFile, sizeBytes),
      xSync: (pFile: Pointer, flags: number) => this.xSync(pFile, flags),
      xFileSize: (pFile: Pointer, pSize: Pointer) => this.xFileSize(pFile, pSize),
      xLock: (pFile: Pointer, level: number) => this.xLock(pFile, level),
      xUnlock: (pFile: Pointer, level: number) => this.xUnlock(pFile, level),
      xCheckReservedLock: (pFile: Pointer, pResult: Pointer) => this.xCheckReservedLock(pFile, pResult),
      xFileControl: (pFile: Pointer, op: number, pArg: Pointer) => this.xFileControl(pFile, op, pArg),
      xSectorSize: (pFile: Pointer) => this.xSectorSize(pFile),
      xDeviceCharacteristics: (pFile: Pointer) => this.xDeviceCharacteristics(pFile),
    });
    vfs.installMethods({
      xOpen: (pVfs: Pointer, zName: Pointer, pFile: Pointer, flags: number, pOutFlags: Pointer) =>
        this.xOpen(pVfs, zName, pFile, flags, pOutFlags, ioMethodsPointer),
      xDelete: (pVfs: Pointer, zName: Pointer, syncDir: number) => this.xDelete(pVfs, zName, syncDir),
      xAccess: (pVfs: Pointer, zName: Pointer, flags: number, pResult: Pointer) =>
        this.xAccess(pVfs, zName, flags, pResult),
      xFullPathname: (pVfs: Pointer, zName: Pointer, outBytes: number, pOut: Pointer) =>
        this.xFullPathname(pVfs, zName, outBytes, pOut),
      xRandomness: (pVfs: Pointer, amountBytes: number, pOut: Pointer) => this.xRandomness(pVfs, amountBytes, pOut),
      xSleep: (pVfs: Pointer, microseconds: number) => this.xSleep(pVfs, microseconds),
      xCurrentTime: (pVfs: Pointer, pOut: Pointer) => this.xCurrentTime(pVfs, pOut),
      xCurrentTimeInt64: (pVfs: Pointer, pOut: Pointer) => this.xCurrentTimeInt64(pVfs, pOut),
      xGetLastError: (pVfs: Pointer, outBytes: number, pOut: Pointer) => this.xGetLastError(pVfs, outBytes, pOut),
    });
    vfs.registerVfs(false);
  }

  // --- sqlite3_vfs methods -----------------------------------------------------------------

  xOpen(_pVfs: Pointer, zName: Pointer, pFile: Pointer, flags: number, pOutFlags: Pointer, ioMethods: Pointer): number {
    const wasm = this.sqlite.wasm;
    this.forgetLastHandle();
    const path = zName === 0 ? `temp-${++this.tempFileCounter}` : (wasm.cstrToJs(zName) ?? '');
    const view = this.views.get(path);
    if (view !== undefined) {
      this.open.set(pFile, { path, file: undefined, deleteOnClose: false, view });
      wasm.poke32(pFile, ioMethods);
      if (pOutFlags !== 0) wasm.poke32(pOutFlags, (flags & ~(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) | SQLITE_OPEN_READONLY);
      return SQLITE_OK;
    }
    let file = this.files.get(path);
    if (file === undefined) {
      if ((flags & SQLITE_OPEN_CREATE) === 0) return SQLITE_CANTOPEN;
      file = new MemoryFile(this.fileBytesMax, undefined, this.pool);
      this.files.set(path, file);
    }
    this.open.set(pFile, { path, file, deleteOnClose: (flags & SQLITE_OPEN_DELETEONCLOSE) !== 0 || zName === 0, view: undefined });
    // pMethods is the first (and only) member of sqlite3_file.
    wasm.poke32(pFile, ioMethods);
    if (pOutFlags !== 0) wasm.poke32(pOutFlags, flags);
    return SQLITE_OK;
  }

  xDelete(_pVfs: Pointer, zName: Pointer, _syncDir: number): number {
    const path = this.sqlite.wasm.cstrToJs(zName) ?? '';
    // A reader never deletes what it only views.
    if (!this.views.has(path)) this.retire(path);
    return SQLITE_OK;
  }

  xAccess(_pVfs: Pointer, zName: Pointer, flags: number, pResult: Pointer): number {
    const path = this.sqlite.wasm.cstrToJs(zName) ?? '';
    const view = this.views.get(path);
    if (view !== undefined) {
      this.sqlite.wasm.poke32(pResult, flags === SQLITE_ACCESS_EXISTS && view.sizeBytes() > 0 ? 1 : 0);
      return SQLITE_OK;
    }
    const file = this.files.get(path);
    // Like the unix VFS, an empty file does not "exist": SQLite then ignores an empty WAL.
    const exists = file !== undefined && (flags !== SQLITE_ACCESS_EXISTS || file.size > 0);
    this.sqlite.wasm.poke32(pResult, exists ? 1 : 0);
    return SQLITE_OK;
  }

  xFullPathname(_pVfs: Pointer, zName: Pointer, outBytes: number, pOut: Pointer): number {
    return this.sqlite.wasm.cstrncpy(pOut, zName, outBytes) < outBytes ? SQLITE_OK : SQLITE_CANTOPEN;
  }

  xRandomness(_pVfs: Pointer, amountBytes: number, pOut: Pointer): number {
    const target = this.sqlite.wasm.heap8u().subarray(pOut, pOut + amountBytes);
    // getRandomValues refuses views of a resizable/shared buffer in some hosts: fill a copy.
    const random = new Uint8Array(amountBytes);
    globalThis.crypto.getRandomValues(random);
    target.set(random);
    return amountBytes;
  }

  xSleep(_pVfs: Pointer, microseconds: number): number {
    return microseconds;
  }

  xCurrentTime(_pVfs: Pointer, pOut: Pointer): number {
    this.sqlite.wasm.poke64f(pOut, 2440587.5 + Date.now() / 86400000);
    return SQLITE_OK;
  }

  xCurrentTimeInt64(_pVfs: Pointer, pOut: Pointer): number {
    this.sqlite.wasm.poke64(pOut, BigInt(UNIX_EPOCH_JULIAN_MS + Date.now()));
    return SQLITE_OK;
  }

  xGetLastError(_pVfs: Pointer, _outBytes: number, _pOut: Pointer): number {
    return SQLITE_OK;
  }

  // --- sqlite3_io_methods ------------------------------------------------------------------

  /** The WASM heap, covering at least `[0, end)`. */
  private heap(end: number): Uint8Array {
    if (end > this.heapView.length) this.heapView = this.sqlite.wasm.heap8u();
    return this.heapView;
  }

  /** The open file behind an sqlite3_file pointer SQLite passes (one it opened and has not closed). */
  private handle(pFile: Pointer): OpenFile {
    if (pFile === this.lastHandlePointer) return this.lastHandle!;
    const handle = this.open.get(pFile)!;
    this.lastHandlePointer = pFile;
    this.lastHandle = handle;
    return handle;
  }

  private forgetLastHandle(): void {
    this.lastHandlePointer = 0;
    this.lastHandle = undefined;
  }

  xClose(pFile: Pointer): number {
    this.forgetLastHandle();
    const handle = this.open.get(pFile);
    if (handle === undefined) return SQLITE_OK;
    this.open.delete(pFile);
    if (handle.deleteOnClose && this.files.get(handle.path) === handle.file) this.retire(handle.path);
    return SQLITE_OK;
  }

  xRead(pFile: Pointer, pDest: Pointer, amountBytes: number, offset: bigint): number {
    const handle = this.handle(pFile);
    const start = Number(offset);
    const heap = this.heap(pDest + amountBytes);
    const source: { readInto(target: Uint8Array, targetOffset: number, offset: number, length: number): void } = handle.view ?? handle.file!;
    const size = handle.view === undefined ? handle.file!.size : handle.view.sizeBytes();
    const available = size - start;
    if (available >= amountBytes) {
      source.readInto(heap, pDest, start, amountBytes);
      return SQLITE_OK;
    }
    const copied = available > 0 ? available : 0;
    if (copied > 0) source.readInto(heap, pDest, start, copied);
    heap.fill(0, pDest + copied, pDest + amountBytes);
    return SQLITE_IOERR_SHORT_READ;
  }

  xWrite(pFile: Pointer, pSource: Pointer, amountBytes: number, offset: bigint): number {
    const file = this.handle(pFile).file;
    if (file === undefined) return SQLITE_READONLY;
    const start = Number(offset);
    if (!file.reserve(start + amountBytes)) return SQLITE_FULL;
    file.writeFrom(this.heap(pSource + amountBytes), pSource, amountBytes, start);
    return SQLITE_OK;
  }

  xTruncate(pFile: Pointer, sizeBytes: bigint): number {
    const file = this.handle(pFile).file;
    if (file === undefined) return SQLITE_READONLY;
    const size = Number(sizeBytes);
    if (size > file.sizeMaxBytes) return SQLITE_FULL;
    file.truncate(size);
    return SQLITE_OK;
  }

  xSync(pFile: Pointer, _flags: number): number {
    const file = this.handle(pFile).file;
    // The writer's commit detection counts syncs of the real file; a view's sync is nothing.
    if (file !== undefined) file.syncCount++;
    return SQLITE_OK;
  }

  xFileSize(pFile: Pointer, pSize: Pointer): number {
    const handle = this.handle(pFile);
    const size = handle.view === undefined ? handle.file!.size : handle.view.sizeBytes();
    this.sqlite.wasm.poke64(pSize, BigInt(size));
    return SQLITE_OK;
  }

  xLock(_pFile: Pointer, _level: number): number {
    return SQLITE_OK;
  }

  xUnlock(_pFile: Pointer, _level: number): number {
    return SQLITE_OK;
  }

  xCheckReservedLock(_pFile: Pointer, pResult: Pointer): number {
    this.sqlite.wasm.poke32(pResult, 0);
    return SQLITE_OK;
  }

  xFileControl(_pFile: Pointer, _op: number, _pArg: Pointer): number {
    return SQLITE_NOTFOUND;
  }

  xSectorSize(_pFile: Pointer): number {
    return SECTOR_SIZE_BYTES;
  }

  xDeviceCharacteristics(_pFile: Pointer): number {
    return DEVICE_CHARACTERISTICS;
  }
}

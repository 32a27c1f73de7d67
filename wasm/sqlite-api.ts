// The slice of the SQLite WASM module the engine uses, typed narrowly. Hot-path calls go to the
// raw WASM exports (pointers as numbers, 64-bit integers as bigint) to avoid the package's
// argument-conversion wrappers.

export type Pointer = number;

export interface SqliteExports {
  sqlite3_open_v2(zFilename: Pointer, ppDb: Pointer, flags: number, zVfs: Pointer): number;
  sqlite3_close_v2(db: Pointer): number;
  sqlite3_extended_result_codes(db: Pointer, onoff: number): number;
  sqlite3_exec(db: Pointer, zSql: Pointer, callback: Pointer, arg: Pointer, pzErrmsg: Pointer): number;
  sqlite3_prepare_v3(db: Pointer, zSql: Pointer, nByte: number, prepFlags: number, ppStmt: Pointer, pzTail: Pointer): number;
  sqlite3_step(stmt: Pointer): number;
  sqlite3_reset(stmt: Pointer): number;
  sqlite3_finalize(stmt: Pointer): number;
  sqlite3_clear_bindings(stmt: Pointer): number;
  sqlite3_bind_parameter_count(stmt: Pointer): number;
  sqlite3_bind_null(stmt: Pointer, index: number): number;
  sqlite3_bind_int(stmt: Pointer, index: number, value: number): number;
  sqlite3_bind_int64(stmt: Pointer, index: number, value: bigint): number;
  sqlite3_bind_double(stmt: Pointer, index: number, value: number): number;
  sqlite3_bind_text(stmt: Pointer, index: number, text: Pointer, nBytes: number, destructor: Pointer): number;
  sqlite3_bind_blob(stmt: Pointer, index: number, blob: Pointer, nBytes: number, destructor: Pointer): number;
  sqlite3_column_count(stmt: Pointer): number;
  sqlite3_column_name(stmt: Pointer, index: number): Pointer;
  sqlite3_column_decltype(stmt: Pointer, index: number): Pointer;
  sqlite3_column_type(stmt: Pointer, index: number): number;
  sqlite3_column_int64(stmt: Pointer, index: number): bigint;
  sqlite3_column_double(stmt: Pointer, index: number): number;
  sqlite3_column_text(stmt: Pointer, index: number): Pointer;
  sqlite3_column_blob(stmt: Pointer, index: number): Pointer;
  sqlite3_column_bytes(stmt: Pointer, index: number): number;
  sqlite3_stmt_readonly(stmt: Pointer): number;
  sqlite3_changes64(db: Pointer): bigint;
  sqlite3_last_insert_rowid(db: Pointer): bigint;
  sqlite3_get_autocommit(db: Pointer): number;
  sqlite3_interrupt(db: Pointer): void;
  sqlite3_errmsg(db: Pointer): Pointer;
  sqlite3_extended_errcode(db: Pointer): number;
  sqlite3_errstr(rc: number): Pointer;
  sqlite3_malloc(nBytes: number): Pointer;
  sqlite3_free(p: Pointer): void;
  sqlite3_set_authorizer(db: Pointer, xAuth: Pointer, pUserData: Pointer): number;
}

export interface SqliteWasmHelpers {
  exports: SqliteExports;
  heap8u(): Uint8Array;
  poke32(ptr: Pointer, value: number): unknown;
  peek32(ptr: Pointer): number;
  poke64(ptr: Pointer, value: number | bigint): unknown;
  poke64f(ptr: Pointer, value: number): unknown;
  cstrToJs(ptr: Pointer): string | null;
  cstrncpy(tgtPtr: Pointer, srcPtr: Pointer, n: number): number;
  allocCString(text: string): Pointer;
  dealloc(ptr: Pointer): void;
  installFunction(func: (...args: never[]) => unknown, signature: string): Pointer;
}

export interface SqliteStruct {
  readonly pointer: Pointer;
  installMethods(methods: Record<string, (...args: never[]) => unknown>, applyArgcCheck?: boolean): unknown;
  registerVfs(asDefault?: boolean): unknown;
  dispose(): void;
}

export interface SqliteModule {
  version: { libVersion: string };
  wasm: SqliteWasmHelpers;
  capi: {
    sqlite3_vfs: new () => SqliteStruct & Record<string, unknown>;
    sqlite3_io_methods: new () => SqliteStruct & Record<string, unknown>;
    sqlite3_file: { structInfo: { sizeof: number } };
    sqlite3_vfs_find(name: string | null): Pointer;
    sqlite3_db_config(db: Pointer, op: number, onoff: number, pOut: Pointer): number;
  };
}

export const SQLITE_OK = 0;
export const SQLITE_ERROR = 1;
export const SQLITE_IOERR = 10;
export const SQLITE_FULL = 13;
export const SQLITE_CANTOPEN = 14;
export const SQLITE_NOTFOUND = 12;
export const SQLITE_ROW = 100;
export const SQLITE_DONE = 101;
export const SQLITE_IOERR_SHORT_READ = 522;
export const SQLITE_IOERR_WRITE = 778;
export const SQLITE_IOERR_TRUNCATE = 1546;
export const SQLITE_READONLY = 8;
export const SQLITE_OPEN_READONLY = 0x1;
export const SQLITE_OPEN_READWRITE = 0x2;
export const SQLITE_OPEN_CREATE = 0x4;
export const SQLITE_OPEN_DELETEONCLOSE = 0x8;
export const SQLITE_OPEN_EXRESCODE = 0x02000000;
export const SQLITE_OPEN_NOMUTEX = 0x8000;
export const SQLITE_ACCESS_EXISTS = 0;
export const SQLITE_IOCAP_SAFE_APPEND = 0x200;
export const SQLITE_IOCAP_SEQUENTIAL = 0x400;
export const SQLITE_IOCAP_UNDELETABLE_WHEN_OPEN = 0x800;
export const SQLITE_IOCAP_POWERSAFE_OVERWRITE = 0x1000;
export const SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE = 1006;
export const SQLITE_TRANSIENT = -1;
export const SQLITE_INTEGER = 1;
export const SQLITE_FLOAT = 2;
export const SQLITE_TEXT = 3;
export const SQLITE_BLOB = 4;
export const SQLITE_NULL = 5;

/** Loads the package's default build (Node: reads sqlite3.wasm from disk; browsers: fetches it). */
export async function loadDefaultSqlite(): Promise<unknown> {
  const module = await import('@sqlite.org/sqlite-wasm');
  return module.default();
}

export function asSqliteModule(loaded: unknown): SqliteModule {
  const candidate = loaded as Partial<SqliteModule> | null;
  if (
    candidate === null ||
    typeof candidate !== 'object' ||
    candidate.wasm === undefined ||
    candidate.capi === undefined ||
    typeof candidate.wasm.exports?.sqlite3_prepare_v3 !== 'function'
  ) {
    throw new TypeError('loadSqlite() did not resolve to an initialised @sqlite.org/sqlite-wasm module');
  }
  return candidate as SqliteModule;
}

/**
 * What every connection owner in the engine (a database's write connection, its read view) does
 * the same way: a reusable scratch allocation in WASM memory for binding values, and the error
 * for a failed SQLite call.
 */
import { SqliteError } from './errors.ts';
import type { Pointer, SqliteExports, SqliteWasmHelpers } from './sqlite-api.ts';

const SCRATCH_MIN_BYTES = 4096;

/** One WASM allocation, grown to the next power of two when a caller needs more. */
export class ScratchBuffer {
  private pointer: Pointer = 0;
  private bytes = 0;

  constructor(private readonly exports: SqliteExports) {}

  /** A pointer to at least `sizeBytes` bytes, valid until the next call or `free`. */
  get(sizeBytes: number): Pointer {
    if (sizeBytes > this.bytes) {
      if (this.pointer !== 0) this.exports.sqlite3_free(this.pointer);
      const bytes = Math.max(SCRATCH_MIN_BYTES, 2 ** Math.ceil(Math.log2(sizeBytes)));
      this.pointer = this.exports.sqlite3_malloc(bytes);
      if (this.pointer === 0) {
        this.bytes = 0;
        throw new SqliteError(7, `out of WASM memory allocating ${bytes} bytes`);
      }
      this.bytes = bytes;
    }
    return this.pointer;
  }

  free(): void {
    if (this.pointer !== 0) this.exports.sqlite3_free(this.pointer);
    this.pointer = 0;
    this.bytes = 0;
  }
}

/** The error for `rc` from a call on connection `db` (0 when there is none yet). */
export function connectionError(wasm: SqliteWasmHelpers, exports: SqliteExports, db: Pointer, rc: number): SqliteError {
  const generic = (): string => wasm.cstrToJs(exports.sqlite3_errstr(rc)) ?? `SQLite error ${rc}`;
  if (db === 0) return new SqliteError(rc, generic());
  const message = wasm.cstrToJs(exports.sqlite3_errmsg(db)) ?? '';
  const extended = exports.sqlite3_extended_errcode(db);
  // The step/prepare rc is authoritative; the connection's code refines a primary one.
  const code = (extended & 0xff) === (rc & 0xff) ? extended : rc;
  return new SqliteError(code, message || generic());
}

// An SQLite authorizer that keeps clients from breaking replication: statements that would
// switch the journal mode or locking mode, checkpoint outside checkpoint(), re-enable automatic
// checkpoints, change synchronous or the page size, or attach other files fail to compile with
// SQLITE_AUTH. The engine's own setup and checkpoint statements run with the guard lifted.

import type { Pointer, SqliteModule } from './sqlite-api.ts';

const SQLITE_DENY = 1;
const SQLITE_PRAGMA = 19;
const SQLITE_ATTACH = 24;
const SQLITE_DETACH = 25;

/** Pragmas that may be read but not set. */
const READ_ONLY_PRAGMAS = new Set(['journal_mode', 'locking_mode', 'wal_autocheckpoint', 'synchronous', 'page_size']);

export class SqlGuard {
  /** The authorizer callback, installed once in the WASM function table. */
  readonly pointer: Pointer;
  private lifted = false;
  /** Sees every authorizer call while set (read-tables.ts records a statement's read set). */
  private observer: ((action: number, arg1: string | null, arg2: string | null, database: string | null) => void) | undefined;

  constructor(sqlite: SqliteModule) {
    const wasm = sqlite.wasm;
    this.pointer = wasm.installFunction(
      (_pUser: Pointer, action: number, zArg1: Pointer, zArg2: Pointer, zDatabase: Pointer, _zTrigger: Pointer): number => {
        this.observer?.(action, zArg1 === 0 ? null : wasm.cstrToJs(zArg1), zArg2 === 0 ? null : wasm.cstrToJs(zArg2), zDatabase === 0 ? null : wasm.cstrToJs(zDatabase));
        if (this.lifted) return 0;
        // VACUUM attaches (and detaches) a nameless temporary database: allow only that.
        if (action === SQLITE_ATTACH) return zArg1 !== 0 && wasm.cstrToJs(zArg1) === '' ? 0 : SQLITE_DENY;
        if (action === SQLITE_DETACH) return zArg1 !== 0 && wasm.cstrToJs(zArg1) === 'vacuum_db' ? 0 : SQLITE_DENY;
        if (action !== SQLITE_PRAGMA) return 0;
        const name = (wasm.cstrToJs(zArg1) ?? '').toLowerCase();
        if (name === 'wal_checkpoint') return SQLITE_DENY;
        return zArg2 !== 0 && READ_ONLY_PRAGMAS.has(name) ? SQLITE_DENY : 0;
      },
      'i(pissss)',
    );
  }

  /** Runs `action` (the engine's own SQL) with the guard lifted. */
  lift<T>(action: () => T): T {
    this.lifted = true;
    try {
      return action();
    } finally {
      this.lifted = false;
    }
  }

  /** Runs `action` (a prepare), calling `observer` for every authorization SQLite asks meanwhile. */
  observe<T>(observer: (action: number, arg1: string | null, arg2: string | null, database: string | null) => void, action: () => T): T {
    const previous = this.observer;
    this.observer = observer;
    try {
      return action();
    } finally {
      this.observer = previous;
    }
  }
}

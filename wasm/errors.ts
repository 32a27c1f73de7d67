/** An error reported by SQLite: `code` is the extended result code (e.g. 2067), `primaryCode` its low byte (e.g. 19). */
export class SqliteError extends Error {
  readonly code: number;
  readonly primaryCode: number;

  constructor(code: number, message: string) {
    super(message);
    this.name = 'SqliteError';
    this.code = code;
    this.primaryCode = code & 0xff;
  }
}

export type EngineErrorCode =
  | 'WAL_CHECKSUM'
  | 'WAL_SALT'
  | 'WAL_HEADER'
  | 'PAGE_SIZE'
  | 'TRUNCATED'
  | 'NO_WAL'
  | 'HAS_WAL'
  | 'NO_COMMIT'
  | 'WAL_DIVERGED'
  | 'BAD_PAYLOAD'
  | 'BAD_SNAPSHOT'
  | 'PENDING'
  | 'STAGED'
  | 'NOT_PENDING'
  | 'IN_TRANSACTION'
  | 'LIMIT'
  | 'CLOSED'
  | 'STATEMENT_INVALIDATED'
  | 'SETUP';

/** An error of the engine itself (bad replicated input, misuse, a broken invariant). */
export class EngineError extends Error {
  readonly code: EngineErrorCode;

  constructor(code: EngineErrorCode, message: string) {
    super(message);
    this.name = 'EngineError';
    this.code = code;
  }
}

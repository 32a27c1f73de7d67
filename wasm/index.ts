// The engine: SQLite WASM behind an in-memory, WAL-capturing VFS (see ARCHITECTURE.md, `wasm/`).
export { Engine, type EngineOptions } from './engine.ts';
export type { Database, DatabaseSnapshot } from './database.ts';
export type { Statement, SqlValue, BindValue } from './statement.ts';
export type { CapturedTransaction } from './captured-payload.ts';
export { decodePayload, payloadPageNumbers, PAYLOAD_FRAMES_MAX, type DecodedPayload } from './captured-payload.ts';
export { SqliteError, EngineError, type EngineErrorCode } from './errors.ts';

// The engine: SQLite WASM behind an in-memory, WAL-capturing VFS (ARCHITECTURE.md, layer `wasm/`).
//
//   const engine = await Engine.create();
//   const db = engine.open('app');                       // WAL, exclusive locking, no auto-checkpoint
//   const insert = db.prepare('INSERT INTO t VALUES(?)'); insert.bind([1]); insert.step();
//   for (const tx of db.takeCaptured()) raft.propose(tx.payload);   // pending until confirm()/abort()
//   db.confirm(1);                                        // Raft committed it
//   follower.apply(payload);                              // on every other node, same bytes appended
//   db.checkpoint();                                      // every node, at the same log position
//
// Only this folder imports @sqlite.org/sqlite-wasm; it imports nothing else from the project.
export { Engine, type EngineOptions } from './engine.ts';
export type { Database, DatabaseSnapshot, FrozenSnapshot } from './database.ts';
export type { FrozenBytes } from './memory-file.ts';
export type { Statement, SqlValue, BindValue } from './statement.ts';
export type { ReadView } from './read-view.ts';
export { readSetTouched, type ReadSet } from './read-tables.ts';
export type { CapturedTransaction } from './captured-payload.ts';
export { SCHEMA_TABLE, type CapturedChanges, type CapturedRow, type CapturedRowOperation, type ChangeCaptureOptions } from './change-capture.ts';
export { decodePayload, payloadPageNumbers, PAYLOAD_FRAMES_MAX, type DecodedPayload } from './captured-payload.ts';
export { SqliteError, EngineError, type EngineErrorCode } from './errors.ts';
export { standaloneImage } from './standalone-image.ts';
export { SqliteFileStage, StagedSqliteFile, SqliteFileError, type SqliteFileErrorCode, type SqliteFileStageOptions } from './sqlite-file-stage.ts';

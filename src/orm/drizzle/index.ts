/** Drizzle driver for dqlite-wasm and dqlite clusters (the `dqlite-wasm/drizzle` entry). */
export { DqliteDrizzleDatabase, drizzle } from './driver.ts';
export { migrate } from './migrator.ts';
export { DqlitePreparedQuery, DqliteSession, DqliteTransaction } from './session.ts';
export type { DqliteRunResult, DqliteSessionOptions } from './session.ts';

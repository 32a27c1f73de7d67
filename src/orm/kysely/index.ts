/** Kysely dialect for dqlite-wasm and dqlite clusters (the `dqlite-wasm/kysely` entry, host-neutral). */
export { DqliteDialect } from './dialect.ts';
export type { DqliteDialectConfig } from './dialect.ts';
export { DqliteDriver } from './driver.ts';
export type { DqliteDriverConfig } from './driver.ts';
export { DqliteConnection } from './connection.ts';

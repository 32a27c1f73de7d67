/** The Node (and Deno) entry `dqlite-wasm/drizzle`: give `drizzle()` a Database from `dqlite-wasm/client`. */
export * from '../../src/orm/drizzle/index.ts';

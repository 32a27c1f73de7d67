/**
 * A plain `BEGIN` (deferred) takes no lock in SQLite until the transaction first writes, and a
 * transaction that only read commits without touching the database. go-dqlite's driver wraps
 * every query of `database/sql`'s transactions (the `dqlite` shell does it for each command) in
 * BEGIN … COMMIT, so the gateway keeps such a transaction as a mark on the connection: its reads
 * run on the read view like any other, and only its first write begins it on the database's
 * execution loop, where it waits for other writers as SQLite's lock upgrade would.
 */
const DEFERRED_BEGIN = /^\s*BEGIN(\s+DEFERRED)?(\s+TRANSACTION)?\s*;?\s*$/i;
const TRANSACTION_END = /^\s*(COMMIT|END|ROLLBACK)(\s+TRANSACTION)?\s*;?\s*$/i;

/** `BEGIN`, `BEGIN DEFERRED`, `BEGIN TRANSACTION`: a transaction that locks nothing yet. */
export function isDeferredBegin(sql: string): boolean {
  return DEFERRED_BEGIN.test(sql);
}

/** `COMMIT`, `END`, `ROLLBACK` (with an optional TRANSACTION): ends a transaction. */
export function isTransactionEnd(sql: string): boolean {
  return TRANSACTION_END.test(sql);
}

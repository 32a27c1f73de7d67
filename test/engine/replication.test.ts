// Seeded randomized workload: a leader executes transactions (inserts, updates, deletes, schema
// changes, BLOBs, NULLs, one 20 MB transaction, rollbacks, savepoints, constraint failures,
// aborts of pending transactions, checkpoints at random points, group commits, leadership
// moving between the replicas, VACUUM); two followers apply what it captures. After every step
// the three replicas' main files and WALs are compared byte by byte and query digests compared.
// Replay a failure with ENGINE_SEED=<seed> npx vitest run test/engine/replication.test.ts

import { expect, it } from 'vitest';
import { Engine, SqliteError, type Database, type SqlValue } from '../../wasm/index.ts';
import { Random, assertSameFiles, digest, run } from './helpers.ts';

const SEED = Number(process.env['ENGINE_SEED'] ?? 20261127);
const STEPS = Number(process.env['ENGINE_STEPS'] ?? 1250);
const CHECKPOINT_FRAMES = 1000;
const BIG_TRANSACTION_BYTES = 20 * 1024 * 1024;
const ROWS_MAX = 400;

interface TableModel {
  name: string;
  columns: string[];
}

class Workload {
  readonly random: Random;
  readonly tables: TableModel[] = [{ name: 't0', columns: ['a', 'b', 'c'] }];
  private tableCounter = 0;
  private indexCounter = 0;
  readonly indexes: string[] = [];

  constructor(seed: number) {
    this.random = new Random(seed);
  }

  /** Re-reads tables, columns and indexes from the database (aborts and rollbacks undo schema changes). */
  refresh(db: Database): void {
    this.tables.length = 0;
    this.indexes.length = 0;
    for (const [type, name] of run(db, "SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name")) {
      if (type === 'index') this.indexes.push(String(name));
      if (type !== 'table') continue;
      const columns = run(db, `SELECT name FROM pragma_table_info('${String(name)}')`)
        .map(([column]) => String(column))
        .filter((column) => column !== 'id' && column !== 'u');
      this.tables.push({ name: String(name), columns });
    }
    for (const table of this.tables) {
      const number = Number(table.name.slice(1));
      if (number > this.tableCounter) this.tableCounter = number;
    }
    for (const index of this.indexes) {
      const number = Number(index.slice(1));
      if (number > this.indexCounter) this.indexCounter = number;
    }
  }

  value(): SqlValue {
    const r = this.random;
    switch (r.int(8)) {
      case 0:
        return null;
      case 1:
        return r.int(1000) - 500;
      case 2:
        return BigInt(r.int(0x7fffffff)) * 0x100000000n + BigInt(r.int(0x100000000)) - 2n ** 62n;
      case 3:
        return (r.next() - 0.5) * 1e6;
      case 4:
      case 5:
        return r.text(40);
      case 6:
        return r.bytes(r.int(600));
      default:
        return r.chance(0.1) ? r.bytes(5000 + r.int(9000)) : r.bytes(r.int(3000));
    }
  }

  table(): TableModel {
    return this.random.pick(this.tables);
  }

  /** One write statement with its values (may fail with a constraint error). */
  statement(): { sql: string; values: SqlValue[] } {
    const r = this.random;
    const table = this.table();
    const kind = r.int(10);
    if (kind < 5) {
      const columns = table.columns;
      const values = columns.map(() => this.value());
      const sql = `INSERT INTO ${table.name}(u, ${columns.join(', ')}) VALUES(?, ${columns.map(() => '?').join(', ')})`;
      return { sql, values: [r.chance(0.2) ? null : r.int(300), ...values] };
    }
    if (kind < 8) {
      const column = r.pick(table.columns);
      return { sql: `UPDATE ${table.name} SET ${column} = ? WHERE id % ? = ?`, values: [this.value(), 7 + r.int(20), r.int(7)] };
    }
    return { sql: `DELETE FROM ${table.name} WHERE id % ? = ?`, values: [5 + r.int(30), r.int(5)] };
  }

  schemaChange(): string {
    const r = this.random;
    const kind = r.int(5);
    if (kind === 0 || this.tables.length < 2) {
      const name = `t${++this.tableCounter}`;
      const columns = ['a', 'b', 'c'].slice(0, 1 + r.int(3));
      this.tables.push({ name, columns });
      return `CREATE TABLE ${name}(id INTEGER PRIMARY KEY, u INTEGER UNIQUE, ${columns.join(', ')})`;
    }
    if (kind === 1) {
      const table = this.table();
      const column = `x${table.columns.length}`;
      table.columns.push(column);
      return `ALTER TABLE ${table.name} ADD COLUMN ${column} DEFAULT ${r.int(100)}`;
    }
    if (kind === 2) {
      const table = this.table();
      const name = `i${++this.indexCounter}`;
      this.indexes.push(name);
      return `CREATE INDEX ${name} ON ${table.name}(${r.pick(table.columns)})`;
    }
    if (kind === 3 && this.indexes.length > 0) {
      const name = this.indexes.splice(r.int(this.indexes.length), 1)[0]!;
      return `DROP INDEX IF EXISTS ${name}`;
    }
    const index = 1 + r.int(this.tables.length - 1);
    const [dropped] = this.tables.splice(index, 1);
    return `DROP TABLE ${dropped!.name}`;
  }
}

/** Executes one statement; constraint failures are expected and swallowed. */
function execute(db: Database, sql: string, values: readonly SqlValue[] = []): void {
  const statement = db.prepare(sql)!;
  try {
    if (values.length > 0) statement.bind(values);
    while (statement.step());
  } catch (error) {
    if (!(error instanceof SqliteError) || error.primaryCode !== 19) throw error;
  } finally {
    statement.finalize();
  }
}

it(`keeps a leader and two followers byte-identical through a randomized workload (seed ${SEED})`, { timeout: 180_000 }, async () => {
  const workload = new Workload(SEED);
  const r = workload.random;
  const engines = await Promise.all([Engine.create(), Engine.create(), Engine.create()]);
  const nodes = engines.map((engine) => engine.open('replicated'));
  let leaderIndex = 0;
  let confirmedTransactions = 0;
  let abortedTransactions = 0;
  let checkpoints = 0;
  let bigDone = false;
  const bigStep = 100 + r.int(Math.max(1, Math.floor(STEPS / 3)));
  const vacuumStep = bigStep + 10;
  const stats = { rollbacks: 0, savepoints: 0, schema: 0, groups: 0, promotions: 0, restores: 0, spills: 0 };

  const leader = () => nodes[leaderIndex]!;
  const followers = () => nodes.filter((_, i) => i !== leaderIndex);
  /** The follower read every step (its connection reopens after each apply) vs. rarely (checkpoints on bytes). */
  const reader = () => nodes[(leaderIndex + 1) % 3]!;

  execute(leader(), 'CREATE TABLE t0(id INTEGER PRIMARY KEY, u INTEGER UNIQUE, a, b, c)');

  function shipAndConfirm(): number {
    const captured = leader().takeCaptured();
    for (const transaction of captured) for (const follower of followers()) follower.apply(transaction.payload);
    if (captured.length > 0) leader().confirm(captured.length);
    confirmedTransactions += captured.length;
    return captured.length;
  }

  function writeTransaction(): void {
    const db = leader();
    const shape = r.int(10);
    if (shape < 4) {
      const { sql, values } = workload.statement();
      execute(db, sql, values);
      return;
    }
    execute(db, 'BEGIN');
    const statements = 1 + r.int(6);
    for (let i = 0; i < statements; i++) {
      if (r.chance(0.15)) {
        stats.savepoints++;
        execute(db, 'SAVEPOINT sp');
        const { sql, values } = workload.statement();
        execute(db, sql, values);
        // ROLLBACK TO keeps the savepoint open; RELEASE closes it.
        if (r.chance(0.5)) execute(db, 'ROLLBACK TO sp');
        execute(db, 'RELEASE sp');
      } else if (r.chance(0.05)) {
        stats.schema++;
        execute(db, workload.schemaChange());
      } else {
        const { sql, values } = workload.statement();
        execute(db, sql, values);
      }
    }
    execute(db, 'COMMIT');
  }

  function trimTables(): void {
    workload.refresh(leader()); // this step's abort or rollback may have undone schema changes
    for (const table of workload.tables) {
      const [[count]] = run(leader(), `SELECT count(*) FROM ${table.name}`) as [[number]];
      if (count > ROWS_MAX) execute(leader(), `DELETE FROM ${table.name} WHERE id IN (SELECT id FROM ${table.name} ORDER BY random() LIMIT ${count - ROWS_MAX / 2})`);
    }
  }

  function checkpointAll(): void {
    for (const node of nodes) node.checkpoint();
    checkpoints++;
  }

  function compare(step: number, action: string): void {
    const context = `seed ${SEED} step ${step} (${action})`;
    for (const follower of followers()) assertSameFiles(leader(), follower, context);
    const expected = digest(leader());
    expect(digest(reader()), context).toBe(expected);
    if (step % 25 === 0) for (const follower of followers()) expect(digest(follower), context).toBe(expected);
  }

  shipAndConfirm();
  compare(0, 'create');

  const startedMs = Date.now();
  for (let step = 1; step <= STEPS; step++) {
    let action: string;
    workload.refresh(leader());
    if (step % 100 === 0) console.log(`seed ${SEED}: step ${step}/${STEPS}, ${confirmedTransactions} transactions, ${Date.now() - startedMs} ms`);
    const roll = r.next();
    if (!bigDone && step >= bigStep) {
      action = 'big';
      bigDone = true;
      execute(leader(), `INSERT INTO t0(u, a, b, c) VALUES(NULL, randomblob(${BIG_TRANSACTION_BYTES}), 'big', NULL)`);
      expect(shipAndConfirm()).toBe(1);
    } else if (step === vacuumStep) {
      action = 'vacuum';
      execute(leader(), "DELETE FROM t0 WHERE b = 'big'");
      shipAndConfirm();
      execute(leader(), 'VACUUM');
      expect(shipAndConfirm()).toBe(1);
    } else if (step % 400 === 0) {
      action = 'promote';
      stats.promotions++;
      leaderIndex = (leaderIndex + 1) % 3;
      writeTransaction();
      shipAndConfirm();
    } else if (roll < 0.06) {
      action = 'rollback';
      stats.rollbacks++;
      const before = digest(leader());
      const spill = r.chance(0.3);
      // A page cache smaller than the transaction makes SQLite spill uncommitted frames into the
      // WAL (the setting lives in the connection only, not in the files).
      if (spill) execute(leader(), 'PRAGMA cache_size=20');
      execute(leader(), 'BEGIN');
      if (spill) {
        stats.spills++;
        execute(leader(), 'INSERT INTO t0(u, a) WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40) SELECT NULL, randomblob(80000) FROM n');
      }
      for (let i = 0; i < 3; i++) {
        const { sql, values } = workload.statement();
        execute(leader(), sql, values);
      }
      const walBeforeRollback = leader().files().wal.length;
      execute(leader(), 'ROLLBACK');
      if (spill) expect(walBeforeRollback).toBeGreaterThan(followers()[0]!.files().wal.length);
      expect(shipAndConfirm()).toBe(0);
      expect(digest(leader())).toBe(before);
    } else if (roll < 0.12) {
      action = 'abort';
      const before = digest(leader());
      const transactions = 1 + r.int(3);
      for (let i = 0; i < transactions; i++) writeTransaction();
      abortedTransactions += leader().takeCaptured().length;
      if (r.chance(0.3)) {
        execute(leader(), 'BEGIN');
        const { sql, values } = workload.statement();
        execute(leader(), sql, values);
      }
      leader().abort();
      expect(leader().pendingCount()).toBe(0);
      expect(leader().inTransaction()).toBe(false);
      expect(digest(leader())).toBe(before);
    } else if (roll < 0.16) {
      action = 'group';
      stats.groups++;
      const transactions = 2 + r.int(3);
      for (let i = 0; i < transactions; i++) writeTransaction();
      shipAndConfirm();
    } else if (roll < 0.19) {
      action = 'checkpoint';
      checkpointAll();
    } else if (roll < 0.21) {
      action = 'schema';
      stats.schema++;
      execute(leader(), workload.schemaChange());
      shipAndConfirm();
    } else if (roll < 0.215) {
      action = 'restore';
      stats.restores++;
      const engine = await Engine.create();
      const restored = engine.restore('replicated', leader().snapshot());
      assertSameFiles(leader(), restored, `seed ${SEED} step ${step} (restore)`);
      expect(digest(restored)).toBe(digest(leader()));
      restored.close();
    } else {
      action = 'write';
      writeTransaction();
      shipAndConfirm();
    }
    if (step % 20 === 0) {
      trimTables();
      shipAndConfirm();
    }
    if (leader().walFrameCount() >= CHECKPOINT_FRAMES) checkpointAll();
    compare(step, action);
  }

  expect(confirmedTransactions).toBeGreaterThanOrEqual(1000);
  expect(abortedTransactions).toBeGreaterThan(0);
  expect(checkpoints).toBeGreaterThan(5);
  expect(stats.spills).toBeGreaterThan(0);
  console.log(
    `seed ${SEED}: ${confirmedTransactions} transactions replicated, ${abortedTransactions} aborted, ${checkpoints} checkpoints, ` +
      `${JSON.stringify(stats)}, big at step ${bigStep}`,
  );
});

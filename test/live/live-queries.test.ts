// Live queries (src/live/live-queries.ts) on real SQLite: the engine's read view and real commit
// events, emitted the way the state machine emits them after applying an entry.
import { beforeEach, describe, expect, it } from 'vitest';
import { Engine, type Database } from '../../wasm/index.ts';
import { CommitEvents, type CommittedTransaction } from '../../src/fsm/commit-events.ts';
import { LiveQueries, type LiveResult } from '../../src/live/live-queries.ts';
import { LiveQuery } from '../../src/live/live-query.ts';
import { DEFAULT_READ_LEVEL } from '../../src/server/read-path.ts';
import { nodeClock } from '../../runtimes/node/clock.ts';
import { run, ship } from '../engine/helpers.ts';
import { ValueType } from '../../src/protocol/index.ts';

const engine = await Engine.create();
let databaseCount = 0;

interface Setup {
  db: Database;
  name: string;
  commits: CommitEvents;
  live: LiveQueries;
  /** Runs `sql` on the leader's connection, confirms it, and emits its commit as the state machine does. */
  commit(sql: string, changes?: { tables: string[] } | 'snapshot'): CommittedTransaction;
  subscribe(sql: string, params?: number[]): Promise<{ results: LiveResult[]; first: LiveResult; errors: Error[]; unsubscribe(): void }>;
}

function setUp(limits: { liveQueriesMax?: number; liveResultBytesMax?: number } = {}): Setup {
  const name = `live-${++databaseCount}`;
  const db = engine.open(name);
  const commits = new CommitEvents(() => undefined);
  let index = 0;
  run(db, 'CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT); CREATE TABLE other (x INT)');
  ship(db, []);
  const live = new LiveQueries({
    commits,
    clock: nodeClock,
    readView: () => db.readView(),
    admitRead: async () => undefined,
    appliedIndex: () => index,
    liveQueriesMax: limits.liveQueriesMax ?? 100,
    liveResultBytesMax: limits.liveResultBytesMax ?? 1 << 20,
    log: () => undefined,
  });
  return {
    db,
    name,
    commits,
    live,
    commit(sql, changes) {
      run(db, sql);
      ship(db, []);
      const event: CommittedTransaction =
        changes === 'snapshot'
          ? { database: name, index: ++index, snapshot: true }
          : { database: name, index: ++index, ...(changes && { changes: { timeMs: Date.now(), tables: changes.tables, rowsOmitted: true } }) };
      commits.emit(event);
      return event;
    },
    async subscribe(sql, params = []) {
      const results: LiveResult[] = [];
      const errors: Error[] = [];
      const typed = params.map((p) => ({ type: ValueType.Integer, value: BigInt(p) }) as const);
      const subscription = await live.subscribe(name, sql, typed, DEFAULT_READ_LEVEL, {
        result: (result) => results.push(result),
        error: (error) => errors.push(error),
      });
      return { results, errors, first: subscription.first, unsubscribe: subscription.unsubscribe };
    },
  };
}

/** Lets the deferred evaluations run (they are timer tasks after the commit). */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setTimeout(resolve, 5));
}

function values(result: LiveResult): unknown[][] {
  return result.rows.map((row) => row.map((value) => value.value));
}

describe('live queries on one replica', () => {
  let s: Setup;
  beforeEach(() => {
    s = setUp();
  });

  it('yields the result now, then after each commit that changes it, never twice the same', async () => {
    const sub = await s.subscribe('SELECT count(*) AS n, max(id) AS top FROM items');
    expect(sub.first.columns).toEqual(['n', 'top']);
    expect(values(sub.first)).toEqual([[0n, null]]);
    s.commit("INSERT INTO items (name) VALUES ('a')");
    await settle();
    expect(sub.results.map(values)).toEqual([[[1n, 1n]]]);
    expect(sub.results[0]!.index).toBe(1);
    // Unknown changes: re-run, but the same result is not delivered again.
    s.commit('INSERT INTO other VALUES (1)');
    await settle();
    expect(sub.results).toHaveLength(1);
    expect(s.live.evaluations).toBe(3);
    s.commit("INSERT INTO items (name) VALUES ('b'); INSERT INTO items (name) VALUES ('c')");
    await settle();
    expect(sub.results.map(values)).toEqual([[[1n, 1n]], [[3n, 3n]]]);
  });

  it('re-runs only the queries whose tables a commit changed, when the commit says which', async () => {
    const items = await s.subscribe('SELECT count(*) FROM items');
    const other = await s.subscribe('SELECT count(*) FROM other');
    expect(s.live.evaluations).toBe(2);
    s.commit('INSERT INTO other VALUES (1)', { tables: ['other'] });
    await settle();
    expect(s.live.evaluations).toBe(3);
    expect(other.results.map(values)).toEqual([[[1n]]]);
    expect(items.results).toHaveLength(0);
    // A snapshot replaced the state: everything re-runs.
    s.commit("INSERT INTO items (name) VALUES ('a')", 'snapshot');
    await settle();
    expect(s.live.evaluations).toBe(5);
    expect(items.results.map(values)).toEqual([[[1n]]]);
  });

  it('watches the tables under a view and a join', async () => {
    s.commit('CREATE VIEW named AS SELECT i.name FROM items i JOIN other o ON o.x = i.id');
    const sub = await s.subscribe('SELECT count(*) FROM named');
    s.commit("INSERT INTO items (name) VALUES ('a')", { tables: ['items'] });
    s.commit('INSERT INTO other VALUES (1)', { tables: ['other'] });
    await settle();
    expect(sub.results.map(values).at(-1)).toEqual([[1n]]);
  });

  it('takes the read set again after a schema change (a view redefined over another table)', async () => {
    s.commit('CREATE VIEW watched AS SELECT id FROM items');
    const sub = await s.subscribe('SELECT count(*) FROM watched');
    s.commit('DROP VIEW watched; CREATE VIEW watched AS SELECT x FROM other');
    await settle();
    s.commit('INSERT INTO other VALUES (1); INSERT INTO other VALUES (2)', { tables: ['other'] });
    await settle();
    expect(sub.results.map(values).at(-1)).toEqual([[2n]]);
    // The compiled statement is reused between schema changes: items is no longer watched.
    const before = s.live.evaluations;
    s.commit("INSERT INTO items (name) VALUES ('a')", { tables: ['items'] });
    await settle();
    expect(s.live.evaluations).toBe(before);
  });

  it('re-runs every query of a database whose schema changed, even when the commit names no table it reads', async () => {
    const sub = await s.subscribe('SELECT * FROM items');
    expect(sub.first.columns).toEqual(['id', 'name']);
    s.commit('ALTER TABLE items ADD COLUMN extra INTEGER', { tables: [] });
    await settle();
    expect(sub.results.map((r) => r.columns)).toEqual([['id', 'name', 'extra']]);
    // No schema change: a commit naming only another table re-runs nothing.
    const before = s.live.evaluations;
    s.commit('INSERT INTO other VALUES (1)', { tables: ['other'] });
    await settle();
    expect(s.live.evaluations).toBe(before);
  });

  it('shares one evaluation among the subscribers of the same query and parameters', async () => {
    const a = await s.subscribe('SELECT count(*) FROM items WHERE id > ?', [0]);
    const b = await s.subscribe('SELECT count(*) FROM items WHERE id > ?', [0]);
    const c = await s.subscribe('SELECT count(*) FROM items WHERE id > ?', [5]);
    // b joined a's group at the same committed state: no new evaluation.
    expect(s.live.evaluations).toBe(2);
    expect(s.live.queries).toBe(2);
    s.commit("INSERT INTO items (name) VALUES ('a')");
    await settle();
    expect(s.live.evaluations).toBe(4);
    expect(a.results.map(values)).toEqual([[[1n]]]);
    expect(b.results.map(values)).toEqual([[[1n]]]);
    expect(c.results).toHaveLength(0);
  });

  it('frees everything once the last subscriber leaves', async () => {
    const a = await s.subscribe('SELECT count(*) FROM items');
    const b = await s.subscribe('SELECT count(*) FROM items');
    expect(s.commits.subscribers).toBe(1);
    a.unsubscribe();
    a.unsubscribe();
    expect(s.live.subscriptions).toBe(1);
    b.unsubscribe();
    expect(s.live.subscriptions).toBe(0);
    expect(s.live.queries).toBe(0);
    expect(s.commits.subscribers).toBe(0);
    s.commit("INSERT INTO items (name) VALUES ('a')");
    await settle();
    expect(a.results).toHaveLength(0);
    expect(s.live.evaluations).toBe(1);
  });

  it('never shows an open transaction of the leader, only what committed', async () => {
    const sub = await s.subscribe('SELECT count(*) FROM items');
    run(s.db, "BEGIN; INSERT INTO items (name) VALUES ('uncommitted')");
    // Another replica's commit (or any event) makes the query re-run meanwhile.
    s.commits.emit({ database: s.name, index: 7 });
    await settle();
    expect(sub.results).toHaveLength(0);
    run(s.db, 'ROLLBACK');
    s.commit("INSERT INTO items (name) VALUES ('committed')");
    await settle();
    expect(sub.results.map(values)).toEqual([[[1n]]]);
  });

  it('refuses what is not one read-only statement, with a clear error, and keeps serving', async () => {
    await expect(s.subscribe('SELEC 1')).rejects.toThrow(/syntax error/);
    await expect(s.subscribe("INSERT INTO items (name) VALUES ('x')")).rejects.toThrow(/must be read-only/);
    await expect(s.subscribe('SELECT 1; SELECT 2')).rejects.toThrow(/one statement/);
    await expect(s.subscribe('SELECT * FROM missing')).rejects.toThrow(/no such table/);
    await expect(s.subscribe('SELECT ?', [1, 2])).rejects.toThrow(/parameters/);
    expect(s.live.queries).toBe(0);
    const sub = await s.subscribe('SELECT count(*) FROM items');
    expect(values(sub.first)).toEqual([[0n]]);
  });

  it('ends the subscription with the error when the query stops compiling (its table dropped)', async () => {
    const sub = await s.subscribe('SELECT count(*) FROM other');
    s.commit('DROP TABLE other');
    await settle();
    expect(sub.errors.map((e) => e.message).join()).toMatch(/no such table: other/);
    expect(s.live.queries).toBe(0);
  });

  it('holds at most liveQueriesMax subscriptions, and refuses a result over liveResultBytesMax', async () => {
    const small = setUp({ liveQueriesMax: 2, liveResultBytesMax: 4096 });
    const a = await small.subscribe('SELECT count(*) FROM items');
    await small.subscribe('SELECT count(*) FROM items');
    await expect(small.subscribe('SELECT count(*) FROM other')).rejects.toThrow(/liveQueriesMax/);
    a.unsubscribe();
    small.commit("INSERT INTO items (name) SELECT hex(randomblob(200)) FROM (WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 100) SELECT i FROM c)");
    await expect(small.subscribe('SELECT name FROM items')).rejects.toThrow(/liveResultBytesMax/);
    // A result smaller than one Rows batch (4 KiB), still over its bound.
    const tiny = setUp({ liveResultBytesMax: 1000 });
    tiny.commit("INSERT INTO items (name) SELECT hex(randomblob(200)) FROM (WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3) SELECT i FROM c)");
    await expect(tiny.subscribe('SELECT name FROM items')).rejects.toThrow(/liveResultBytesMax/);
    expect(values((await tiny.subscribe('SELECT count(*) FROM items')).first)).toEqual([[3n]]);
    expect(small.live.subscriptions).toBe(1);
  });

  it('is an async iterator and an onChange callback', async () => {
    const query = new LiveQuery<LiveResult>(async (sink) => {
      const subscription = await s.live.subscribe(s.name, 'SELECT count(*) FROM items', [], DEFAULT_READ_LEVEL, sink);
      sink.result(subscription.first);
      return subscription.unsubscribe;
    });
    const seen: unknown[] = [];
    const unsubscribe = query.onChange((result) => seen.push(values(result)[0]![0]));
    const iterated: unknown[] = [];
    for await (const result of query) {
      iterated.push(values(result)[0]![0]);
      if (iterated.length === 3) break;
      s.commit("INSERT INTO items (name) VALUES ('x')");
    }
    expect(iterated).toEqual([0n, 1n, 2n]);
    await settle();
    expect(seen).toEqual([0n, 1n, 2n]);
    unsubscribe();
    expect(s.live.subscriptions).toBe(0);
  });
});

describe('live queries under a seeded workload', () => {
  // Committed, pending and open-transaction writes on a leader, shipped to a follower; after each
  // step every live query's newest result, on both replicas, equals a direct read of the
  // committed state, and no result ever showed a row that was not committed.
  it.each([1, 2, 3])('always ends each step at the committed state (seed %i)', async (seed) => {
    let state = seed * 7919;
    const random = (n: number): number => {
      state = (state * 1103515245 + 12345) % 2147483648;
      return state % n;
    };
    const leaderEngine = await Engine.create();
    const followerEngine = await Engine.create();
    const name = `live-seeded-${seed}`;
    const leader = leaderEngine.open(name);
    const follower = followerEngine.open(name);
    run(leader, 'CREATE TABLE items (id INTEGER PRIMARY KEY, v INT); CREATE TABLE other (id INTEGER PRIMARY KEY, v INT)');
    ship(leader, [follower]);
    let index = 1;
    const replicas = [leader, follower].map((db) => {
      const commits = new CommitEvents(() => undefined);
      const live = new LiveQueries({
        commits,
        clock: nodeClock,
        readView: () => db.readView(),
        admitRead: async () => undefined,
        appliedIndex: () => index,
        liveQueriesMax: 100,
        liveResultBytesMax: 1 << 20,
        log: () => undefined,
      });
      return { db, commits, live };
    });
    const queries = [
      'SELECT count(*), sum(v) FROM items',
      'SELECT count(*) FROM other',
      'SELECT id, v FROM items ORDER BY id DESC LIMIT 3',
      'SELECT i.id FROM items i JOIN other o ON o.v = i.v ORDER BY 1',
    ];
    const normal = (rows: readonly (readonly unknown[])[]): unknown[][] => rows.map((row) => row.map((v) => (typeof v === 'bigint' ? Number(v) : v)));
    const direct = (db: Database, sql: string): unknown[][] => {
      const view = db.readView();
      view.catchUp();
      const statement = view.prepare(sql)!;
      try {
        const rows: unknown[][] = [];
        while (statement.step()) rows.push(statement.row());
        return normal(rows);
      } finally {
        statement.finalize();
      }
    };
    const watchers = await Promise.all(
      replicas.flatMap((replica) =>
        queries.map(async (sql) => {
          const seen: unknown[][][] = [];
          const subscription = await replica.live.subscribe(name, sql, [], DEFAULT_READ_LEVEL, {
            result: (result) => seen.push(normal(values(result))),
            error: (error) => {
              throw error;
            },
          });
          seen.push(normal(values(subscription.first)));
          return { replica, sql, seen };
        }),
      ),
    );
    const uncommittedValue = 999_999;
    for (let step = 0; step < 40; step++) {
      const table = random(2) === 0 ? 'items' : 'other';
      const kind = random(4);
      if (kind === 3) {
        // An open transaction on the leader: never visible, then rolled back.
        run(leader, `BEGIN; INSERT INTO ${table} (v) VALUES (${uncommittedValue})`);
        for (const replica of replicas) replica.commits.emit({ database: name, index });
        await settle();
        run(leader, 'ROLLBACK');
        continue;
      }
      const sql = kind === 2 ? `DELETE FROM ${table} WHERE id IN (SELECT id FROM ${table} ORDER BY random() LIMIT 1)` : `INSERT INTO ${table} (v) VALUES (${random(5)})`;
      run(leader, sql);
      ship(leader, [follower]);
      index++;
      const changes = random(2) === 0 ? { changes: { timeMs: 0, tables: [table], rowsOmitted: true } } : {};
      for (const replica of replicas) replica.commits.emit({ database: name, index, ...changes });
      await settle();
      for (const watcher of watchers) {
        expect(watcher.seen.at(-1), `${watcher.sql} at step ${step}`).toEqual(direct(watcher.replica.db, watcher.sql));
      }
    }
    for (const watcher of watchers) {
      expect(JSON.stringify(watcher.seen)).not.toContain(String(uncommittedValue));
      // Never the same result twice in a row.
      for (let i = 1; i < watcher.seen.length; i++) expect(watcher.seen[i]).not.toEqual(watcher.seen[i - 1]);
    }
    for (const replica of replicas) replica.live.close();
  });
});

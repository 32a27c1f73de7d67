/**
 * Reads on real node processes: they never wait for writes, and each consistency level keeps
 * its promise on the leader and on followers (docs/reads.md).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import {
  connect,
  DqliteError,
  NoLeaderError,
  openConnection,
  dialTcp,
  type Database,
  type Connection,
} from '../../runtimes/node/client.ts';
import { TestCluster, waitFor } from '../helpers/cluster.ts';

async function plainConnection(address: string, database: string): Promise<{ connection: Connection; db: number }> {
  const connection = await openConnection(dialTcp, address);
  const opened = await connection.call({ type: 'open', name: database, flags: 0, vfs: 'volatile' }, 'db');
  return { connection, db: opened.id };
}

describe('reads', () => {
  let cluster: TestCluster;
  let writer: Database;
  let leaderIndex: number;
  let followers: number[];
  const opened: Database[] = [];

  async function open(options: Partial<Parameters<typeof connect>[0]> & { servers: string[] }): Promise<Database> {
    const db = await connect({ database: 'reads', timeoutMs: 20_000, ...options });
    opened.push(db);
    return db;
  }

  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 3 });
    leaderIndex = await cluster.waitForLeader();
    followers = [0, 1, 2].filter((i) => i !== leaderIndex);
    writer = await open({ servers: cluster.addresses });
    await writer.exec('CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)');
    await writer.exec("INSERT INTO kv VALUES ('committed', 1)");
  }, 120_000);

  afterEach((context) => {
    if (context.task.result?.state === 'fail') console.log(cluster.dumpOutput());
  });

  afterAll(async () => {
    for (const db of opened) await db.close();
    await cluster?.destroy();
  });

  test('an open transaction on connection A does not delay a plain dqlite read on connection B', async () => {
    const leader = cluster.addresses[leaderIndex]!;
    const a = await plainConnection(leader, 'reads');
    const b = await plainConnection(leader, 'reads');
    try {
      await a.connection.call({ type: 'exec_sql', db: a.db, sql: "BEGIN; INSERT INTO kv VALUES ('uncommitted', 2)", params: [] }, 'result');
      const started = Date.now();
      // B's QUERY_SQL is exactly what go-dqlite sends; before, it waited 5 s and failed "database is locked".
      const rows = await b.connection.callRows({ type: 'query_sql', db: b.db, sql: 'SELECT k FROM kv ORDER BY k', params: [] });
      const elapsedMs = Date.now() - started;
      expect(rows.rows.map((row) => row[0]!.value)).toEqual(['committed']);
      expect(elapsedMs).toBeLessThan(2_000);
      // Our client on a follower, at every level, does not wait either.
      const reader = await open({ servers: [cluster.addresses[followers[0]!]!], readFrom: 'any' });
      for (const consistency of ['linearizable', 'session', 'stale'] as const) {
        const t0 = Date.now();
        const result = await reader.query('SELECT count(*) AS n FROM kv', [], { consistency });
        expect(Number(result.rows[0]!['n'])).toBe(1);
        expect(Date.now() - t0).toBeLessThan(2_000);
      }
      await a.connection.call({ type: 'exec_sql', db: a.db, sql: 'ROLLBACK', params: [] }, 'result');
    } finally {
      a.connection.close();
      b.connection.close();
    }
  });

  test('a deferred transaction that read, then writes after another committed, fails SQLITE_BUSY_SNAPSHOT as in SQLite', async () => {
    const leader = cluster.addresses[leaderIndex]!;
    const a = await plainConnection(leader, 'reads');
    const b = await plainConnection(leader, 'reads');
    const exec = (c: { connection: Connection; db: number }, sql: string) => c.connection.call({ type: 'exec_sql', db: c.db, sql, params: [] }, 'result');
    const read = async (c: { connection: Connection; db: number }) =>
      (await c.connection.callRows({ type: 'query_sql', db: c.db, sql: "SELECT v FROM kv WHERE k = 'committed'", params: [] })).rows[0]![0]!.value;
    try {
      await exec(a, 'BEGIN');
      await exec(b, 'BEGIN');
      expect(await read(a)).toBe(1n);
      expect(await read(b)).toBe(1n);
      await exec(a, "UPDATE kv SET v = v + 10 WHERE k = 'committed'");
      await exec(a, 'COMMIT');
      // B decided on v = 1, which is gone: its write must not land on top of A's.
      const error = await exec(b, "UPDATE kv SET v = v + 100 WHERE k = 'committed'").catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DqliteError);
      expect((error as DqliteError).code).toBe(517);
      await exec(b, 'ROLLBACK');
      expect(await read(b)).toBe(11n);
      // A transaction that did not read first writes freely.
      await exec(b, 'BEGIN');
      await exec(b, "UPDATE kv SET v = 1 WHERE k = 'committed'");
      await exec(b, 'COMMIT');
      expect(await read(a)).toBe(1n);
    } finally {
      a.connection.close();
      b.connection.close();
    }
  });

  test("dqlite's binding: missing values are NULL, one too many is code 25 'column index out of range'", async () => {
    const leader = cluster.addresses[leaderIndex]!;
    const plain = await plainConnection(leader, 'reads');
    try {
      const one = await plain.connection.callRows({
        type: 'query_sql',
        db: plain.db,
        sql: 'SELECT ?, ?',
        params: [{ type: 1, value: 9n }],
      });
      expect(one.rows[0]!.map((v) => v.value)).toEqual([9n, null]);
      const error = await plain.connection
        .callRows({ type: 'query_sql', db: plain.db, sql: 'SELECT ?', params: [{ type: 1, value: 1n }, { type: 1, value: 2n }] })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DqliteError);
      expect((error as DqliteError).code).toBe(25);
      expect((error as DqliteError).message).toMatch(/column index out of range/);
      const tooMany = await plain.connection
        .call({ type: 'exec_sql', db: plain.db, sql: 'INSERT INTO kv VALUES (?, ?)', params: [{ type: 3, value: 'x' }, { type: 1, value: 1n }, { type: 1, value: 2n }] }, 'result')
        .catch((e: unknown) => e);
      expect((tooMany as DqliteError).code).toBe(25);
    } finally {
      plain.connection.close();
    }
    // Our client, through the extension request, on the leader and on a follower.
    expect((await writer.queryRaw('SELECT ?, ?', [9])).rows).toEqual([[9, null]]);
    const reader = await open({ servers: [cluster.addresses[followers[0]!]!], readFrom: 'any' });
    expect((await reader.queryRaw('SELECT ?, ?', [9])).rows).toEqual([[9, null]]);
    await expect(reader.queryRaw('SELECT ?', [1, 2])).rejects.toMatchObject({ code: 25 });
  });

  test('a follower at linearizable sees a write the leader acknowledged a moment earlier', async () => {
    for (const follower of followers) {
      const reader = await open({ servers: [cluster.addresses[follower]!], readFrom: 'any', consistency: 'linearizable' });
      for (let i = 0; i < 30; i++) {
        await writer.exec("INSERT OR REPLACE INTO kv VALUES ('lin', ?)", [i]);
        const { rows } = await reader.query("SELECT v FROM kv WHERE k = 'lin'");
        expect(rows[0]!['v']).toBe(i);
      }
    }
  });

  test('session: a client reads its own writes on another node, and never goes back', async () => {
    const session = await open({ servers: [cluster.addresses[followers[1]!]!], readFrom: 'any', consistency: 'session' });
    for (let i = 0; i < 30; i++) {
      await session.exec("INSERT OR REPLACE INTO kv VALUES ('session', ?)", [i]);
      const { rows } = await session.query("SELECT v FROM kv WHERE k = 'session'");
      expect(rows[0]!['v']).toBe(i);
    }
    expect(session.sessionBookmark).toBeGreaterThan(0n);
  });

  test('lease: the leader answers with the latest acknowledged write', async () => {
    const leased = await open({ servers: cluster.addresses, consistency: 'lease' });
    for (let i = 0; i < 20; i++) {
      await writer.exec("INSERT OR REPLACE INTO kv VALUES ('lease', ?)", [i]);
      const { rows } = await leased.query("SELECT v FROM kv WHERE k = 'lease'");
      expect(rows[0]!['v']).toBe(i);
    }
  });

  test('a replica cut off from the rest answers stale reads within their bound, then fails naming it; linearizable fails with no leader', async () => {
    const lone = followers[0]!;
    const stale = await open({
      servers: [cluster.addresses[lone]!],
      readFrom: 'any',
      consistency: 'stale',
      maxStalenessMs: 3_000,
      timeoutMs: 4_000,
    });
    expect(Number((await stale.query('SELECT count(*) AS n FROM kv')).rows[0]!['n'])).toBeGreaterThan(0);
    // The replica heard from the leader last at most a heartbeat (100 ms) before this moment.
    const beforeKill = Date.now();
    await cluster.kill(leaderIndex);
    await cluster.kill(followers[1]!);
    // Within the bound: still answered, locally (checked only if the kills were quick enough).
    const within = await stale.query('SELECT count(*) AS n FROM kv').catch((e: unknown) => e);
    if (Date.now() - beforeKill < 2_000) expect(within).not.toBeInstanceOf(Error);
    const error = await waitFor('the stale bound to run out', 15_000, async () => {
      const failure = await stale.query('SELECT count(*) AS n FROM kv').then(
        () => undefined,
        (e: unknown) => e,
      );
      return failure;
    });
    expect(Date.now() - beforeKill).toBeGreaterThanOrEqual(2_500);
    expect(error).toBeInstanceOf(DqliteError);
    expect((error as DqliteError).message).toMatch(/maxStalenessMs=3000/);
    // A larger bound is still served.
    const relaxed = await stale.query('SELECT count(*) AS n FROM kv', [], { consistency: 'stale', maxStalenessMs: 600_000 });
    expect(relaxed.rows).toHaveLength(1);
    const linearizable = await stale.query('SELECT count(*) AS n FROM kv', [], { consistency: 'linearizable' }).catch((e: unknown) => e);
    expect(linearizable).toBeInstanceOf(NoLeaderError);
  }, 60_000);
});

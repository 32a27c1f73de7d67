/**
 * Our client against a real 3-node dqlite cluster (Debian's dqlite-demo, go-dqlite 1.11.5 with
 * the C dqlite server). Needs `dqlite-demo` and `dqlite` (scripts/ensure-deps.sh go-dqlite).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cluster, type Database, DqliteError, connect, connectCluster, dialTcp, openConnection } from '../../runtimes/node/client.ts';
import { FrameReader, ResponseType } from '../../src/protocol/index.ts';
import type { DialStream } from '../../src/runtime.ts';
import { type DqliteDemoCluster, startDqliteDemoCluster } from '../helpers/dqlite-demo.ts';

let cluster: DqliteDemoCluster;
let db: Database;
let admin: Cluster;

/** Counts Rows messages arriving on connections it dials, to see batching on the wire. */
let rowsMessagesSeen = 0;
const countingDial: DialStream = async (address, options) => {
  const stream = await dialTcp(address, options);
  const frames = new FrameReader();
  const onData = stream.onData.bind(stream);
  return {
    remoteAddress: stream.remoteAddress,
    write: (bytes) => stream.write(bytes),
    onClose: (handler) => stream.onClose(handler),
    close: () => stream.close(),
    onData: (handler) =>
      onData((chunk) => {
        for (const message of frames.feed(chunk)) if (message[4] === ResponseType.Rows) rowsMessagesSeen++;
        handler(chunk);
      }),
  };
};

beforeAll(async () => {
  cluster = await startDqliteDemoCluster({ size: 3 });
  // Start from a follower's address: discovery has to find the leader.
  const leader = await cluster.leader();
  const servers = [...cluster.addresses.filter((a) => a !== leader), leader];
  db = await connect({ servers, database: 'interop', dial: countingDial, timeoutMs: 30_000 });
  admin = await connectCluster({ servers, timeoutMs: 30_000 });
});

afterAll(async () => {
  await db?.close();
  await admin?.close();
  await cluster?.stop();
});

describe('client against a real dqlite cluster', () => {
  it('round-trips every value type, int64 extremes included', async () => {
    await db.exec('CREATE TABLE types (i INTEGER, f REAL, s TEXT, b BLOB, n, d DATETIME, ts TIMESTAMP, ok BOOLEAN)');
    const when = new Date(Date.UTC(2024, 4, 6, 7, 8, 9, 250));
    const rows: unknown[][] = [
      [-(2n ** 63n), 3.25, 'héllo ✓ 😀 日本', new Uint8Array([0, 255, 16, 0]), null, when, 1700000000, true],
      [2n ** 63n - 1n, -0.5, '', new Uint8Array(0), null, null, null, false],
      [2n ** 53n, 1e308, 'a'.repeat(10_000), new Uint8Array(70_000).fill(7), null, when, when, null],
      [Number.MAX_SAFE_INTEGER, Number.MIN_VALUE, "quote ' and \" and \\", new Uint8Array([1]), null, null, 0, true],
    ];
    for (const row of rows) {
      await db.exec('INSERT INTO types VALUES (?, ?, ?, ?, ?, ?, ?, ?)', row as never);
    }
    const { columns, rows: back } = await db.query('SELECT * FROM types ORDER BY rowid');
    expect(columns).toEqual(['i', 'f', 's', 'b', 'n', 'd', 'ts', 'ok']);
    expect(back[0]).toEqual({ i: -(2n ** 63n), f: 3.25, s: 'héllo ✓ 😀 日本', b: new Uint8Array([0, 255, 16, 0]), n: null, d: when, ts: new Date(1700000000 * 1000), ok: true });
    expect(back[1]).toEqual({ i: 2n ** 63n - 1n, f: -0.5, s: '', b: new Uint8Array(0), n: null, d: null, ts: null, ok: false });
    expect(back[2]).toEqual({ i: 2n ** 53n, f: 1e308, s: 'a'.repeat(10_000), b: new Uint8Array(70_000).fill(7), n: null, d: when, ts: when, ok: false });
    expect(back[3]).toEqual({ i: Number.MAX_SAFE_INTEGER, f: Number.MIN_VALUE, s: "quote ' and \" and \\", b: new Uint8Array([1]), n: null, d: null, ts: new Date(0), ok: true });
    expect(typeof back[3]!.i).toBe('number');
    // Without a declared time/boolean type the stored values come back as they are.
    const raw = await db.queryRaw('SELECT typeof(d), typeof(ok), ok + 0 FROM types ORDER BY rowid LIMIT 1');
    expect(raw.rows[0]).toEqual(['text', 'integer', 1]);
  });

  it('returns a 5,000-row result that the server sent in many batches', async () => {
    await db.exec('CREATE TABLE many (k INTEGER PRIMARY KEY, v TEXT)');
    const inserted = await db.exec(
      "WITH RECURSIVE c(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM c WHERE k < 5000) INSERT INTO many SELECT k, 'value ' || k FROM c",
    );
    expect(inserted).toEqual({ lastInsertId: 5000, rowsAffected: 5000 });
    const before = rowsMessagesSeen;
    const { rows } = await db.query('SELECT k, v FROM many ORDER BY k');
    expect(rowsMessagesSeen - before).toBeGreaterThan(10);
    expect(rows).toHaveLength(5000);
    expect(rows[0]).toEqual({ k: 1, v: 'value 1' });
    expect(rows[4999]).toEqual({ k: 5000, v: 'value 5000' });
    expect(rows.every((row, i) => row.k === i + 1)).toBe(true);
  });

  it('reuses prepared statements for writes and reads', async () => {
    await db.exec('CREATE TABLE prepared (k INTEGER, v TEXT)');
    const insert = await db.prepare('INSERT INTO prepared VALUES (?, ?)');
    expect(insert.paramCount).toBe(2);
    for (let k = 1; k <= 20; k++) expect((await insert.exec([k, `v${k}`])).rowsAffected).toBe(1);
    await expect(insert.exec([1])).rejects.toThrow(/takes 2 parameters, got 1/);
    const select = await db.prepare('SELECT v FROM prepared WHERE k >= ? ORDER BY k');
    expect((await select.query([19])).rows).toEqual([{ v: 'v19' }, { v: 'v20' }]);
    expect((await select.queryRaw([20])).rows).toEqual([['v20']]);
    await insert.close();
    await select.close();
    await expect(select.query([1])).rejects.toThrow(/closed/);
  });

  it('commits transactions and rolls them back when the callback throws', async () => {
    await db.exec('CREATE TABLE accounts (name TEXT PRIMARY KEY, balance INTEGER)');
    await db.exec("INSERT INTO accounts VALUES ('a', 100), ('b', 0)");
    const moved = await db.transaction(async (tx) => {
      await tx.exec("UPDATE accounts SET balance = balance - 30 WHERE name = 'a'");
      await tx.exec("UPDATE accounts SET balance = balance + 30 WHERE name = 'b'");
      const stmt = await tx.prepare('SELECT balance FROM accounts WHERE name = ?');
      return (await stmt.query(['b'])).rows[0]!.balance;
    });
    expect(moved).toBe(30);
    await expect(
      db.transaction(async (tx) => {
        await tx.exec("UPDATE accounts SET balance = 0 WHERE name = 'a'");
        expect((await tx.query("SELECT balance FROM accounts WHERE name = 'a'")).rows[0]).toEqual({ balance: 0 });
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    expect((await db.query('SELECT name, balance FROM accounts ORDER BY name')).rows).toEqual([
      { name: 'a', balance: 70 },
      { name: 'b', balance: 30 },
    ]);
    // A failing statement inside the transaction rolls the whole transaction back.
    await expect(
      db.transaction(async (tx) => {
        await tx.exec("UPDATE accounts SET balance = 1 WHERE name = 'b'");
        await tx.exec("INSERT INTO accounts VALUES ('a', 1)");
      }),
    ).rejects.toMatchObject({ code: 1555 });
    expect((await db.query("SELECT balance FROM accounts WHERE name = 'b'")).rows).toEqual([{ balance: 30 }]);
  });

  it('serializes concurrent calls on one handle; other calls wait for a running transaction', async () => {
    await db.exec('CREATE TABLE concurrent (x INTEGER)');
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => db.exec('INSERT INTO concurrent VALUES (?)', [i])));
    expect(results.every((r) => r.rowsAffected === 1)).toBe(true);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const tx = db.transaction(async (t) => {
      await t.exec('INSERT INTO concurrent VALUES (1000)');
      await gate;
      await t.exec('INSERT INTO concurrent VALUES (1001)');
    });
    const countDuringTx = db.query('SELECT count(*) AS n FROM concurrent');
    release();
    await tx;
    expect((await countDuringTx).rows).toEqual([{ n: 52 }]);
  });

  it('reports SQL errors and constraint violations with their SQLite codes', async () => {
    const failure = async (sql: string, params: unknown[] = []): Promise<DqliteError> => {
      const error = await db.exec(sql, params as never).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(DqliteError);
      return error as DqliteError;
    };
    expect(await failure('SELEKT 1')).toMatchObject({ code: 1, message: expect.stringContaining('syntax error') });
    expect(await failure('SELECT * FROM no_such_table')).toMatchObject({ code: 1, message: expect.stringContaining('no such table') });
    await db.exec('CREATE TABLE strict_t (id INTEGER PRIMARY KEY, u TEXT UNIQUE, nn TEXT NOT NULL, c INTEGER CHECK (c > 0))');
    await db.exec("INSERT INTO strict_t VALUES (1, 'x', 'y', 1)");
    expect((await failure("INSERT INTO strict_t VALUES (2, 'x', 'y', 1)")).code).toBe(2067);
    expect((await failure("INSERT INTO strict_t VALUES (1, 'z', 'y', 1)")).code).toBe(1555);
    expect((await failure("INSERT INTO strict_t VALUES (3, 'w', NULL, 1)")).code).toBe(1299);
    expect((await failure("INSERT INTO strict_t VALUES (4, 'v', 'y', 0)")).code).toBe(275);
    await expect(db.query('SELECT * FROM no_such_table')).rejects.toMatchObject({ code: 1 });
    // The connection is still good after errors.
    expect((await db.query('SELECT count(*) AS n FROM strict_t')).rows).toEqual([{ n: 1 }]);
  });

  it('cluster calls: leader, members with roles, describe, dump of a valid SQLite file', async () => {
    const leader = await admin.leader();
    expect(cluster.addresses).toContain(leader?.address);
    const members = await admin.members();
    expect(members.map((m) => m.address).sort()).toEqual([...cluster.addresses].sort());
    expect(members.every((m) => m.role === 'voter')).toBe(true);
    expect(members.find((m) => m.address === leader!.address)?.id).toBe(leader!.id);
    expect(await admin.describe(cluster.addresses[0]!)).toEqual({ failureDomain: 0n, weight: 0n });
    const files = await admin.dump('interop');
    expect(files.map((f) => f.name)).toEqual(['interop', 'interop-wal']);
    expect(new TextDecoder().decode(files[0]!.data.subarray(0, 16))).toBe('SQLite format 3\0');
    expect(files[1]!.data.length).toBeGreaterThan(32);
    // A follower answers Dump too, over a direct connection.
    const follower = cluster.addresses.find((a) => a !== leader!.address)!;
    const followerFiles = await admin.dump('interop', follower);
    expect(new TextDecoder().decode(followerFiles[0]!.data.subarray(0, 16))).toBe('SQLite format 3\0');
  });

  it('membership calls: add a spare, assign it, remove it; weight; transfer leadership', async () => {
    // A node that never runs: as spare or stand-by it does not count for the quorum.
    const ghost = { id: 0x1234n, address: '127.0.0.1:1' };
    await admin.add(ghost);
    expect((await admin.members()).find((m) => m.id === ghost.id)).toEqual({ ...ghost, role: 'spare' });
    await admin.assign(ghost.id, 'stand-by');
    expect((await admin.members()).find((m) => m.id === ghost.id)?.role).toBe('stand-by');
    await admin.remove(ghost.id);
    expect((await admin.members()).map((m) => m.id)).not.toContain(ghost.id);
    await expect(admin.remove(ghost.id)).rejects.toBeInstanceOf(DqliteError);

    await admin.weight(cluster.addresses[1]!, 3);
    expect((await admin.describe(cluster.addresses[1]!)).weight).toBe(3n);

    const before = (await admin.leader())!;
    const target = (await admin.members()).find((m) => m.id !== before.id && m.role === 'voter')!;
    await admin.transfer(target.id);
    const deadline = Date.now() + 10_000;
    while ((await admin.leader())?.id !== target.id && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect((await admin.leader())?.id).toBe(target.id);
    // The database handle follows the new leader.
    await db.exec('CREATE TABLE after_transfer (x)');
    expect((await db.query('SELECT count(*) AS n FROM after_transfer')).rows).toEqual([{ n: 0 }]);
  });

  it('raw protocol facts of the real server (PROTOCOL.md §5.1, §6.3) hold', async () => {
    const leader = (await admin.leader())!.address;
    const raw = await openConnection(dialTcp, leader);
    try {
      expect(await raw.call({ type: 'open', name: 'interop', flags: 0, vfs: 'volatile' }, 'db')).toEqual({ type: 'db', id: 0 });
      await expect(raw.call({ type: 'open', name: 'other', flags: 0, vfs: 'volatile' }, 'db')).rejects.toMatchObject({ code: 5 });
      await expect(raw.call({ type: 'exec_sql', db: 1, sql: 'SELECT 1', params: [] }, 'result')).rejects.toMatchObject({ code: 12 });
      // A query on a statement without result columns is a failure, never a zero-column Rows.
      await expect(raw.call({ type: 'query_sql', db: 0, sql: 'CREATE TABLE IF NOT EXISTS zero_columns (x)', params: [] }, 'rows')).rejects.toBeInstanceOf(DqliteError);
      const stmt = await raw.call({ type: 'prepare', db: 0, sql: 'SELECT ?, ?, ?' }, 'stmt');
      expect(stmt.paramCount).toBe(3);
      expect(await raw.call({ type: 'finalize', db: 0, stmt: stmt.id }, 'empty')).toEqual({ type: 'empty' });
      await expect(raw.call({ type: 'finalize', db: 0, stmt: stmt.id }, 'empty')).rejects.toMatchObject({ code: 12 });
      expect(await raw.call({ type: 'interrupt', db: 0 }, 'empty')).toEqual({ type: 'empty' });
    } finally {
      raw.close();
    }
  });

  it('without leader discovery a follower answers writes with not-leader (10250)', async () => {
    const leader = (await admin.leader())!.address;
    const follower = cluster.addresses.find((a) => a !== leader)!;
    const direct = await connect({ servers: [follower], database: 'interop', leaderDiscovery: false });
    try {
      const error = await direct.exec('CREATE TABLE never (x)').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DqliteError);
      expect((error as DqliteError).code).toBe(10250);
      expect((error as DqliteError).isNotLeader).toBe(true);
    } finally {
      await direct.close();
    }
  });

  it('a write after the leader is killed (kill -9) succeeds once a new leader is up', async () => {
    await db.exec('CREATE TABLE failover (x INTEGER)');
    await db.exec('INSERT INTO failover VALUES (1)');
    const leader = (await admin.leader())!.address;
    await cluster.kill(cluster.addresses.indexOf(leader));
    const started = Date.now();
    await db.exec('INSERT INTO failover VALUES (2)');
    expect(Date.now() - started).toBeLessThan(30_000);
    expect((await db.query('SELECT x FROM failover ORDER BY x')).rows).toEqual([{ x: 1 }, { x: 2 }]);
    const newLeader = await admin.leader();
    expect(newLeader?.address).not.toBe(leader);
    expect(cluster.addresses).toContain(newLeader?.address);
  });
});

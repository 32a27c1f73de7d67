/**
 * The reference behaviours, measured on real dqlite (Debian's dqlite-demo, go-dqlite 1.11.5 and
 * the C server) beside ours: binding, and a real go-dqlite client (the `dqlite` shell) reading
 * while another connection holds a write transaction. Our client never sends its extension to
 * a real dqlite server, and every level works there as a leader read. Our nodes run with
 * `--default-read session`, the node default for clients that cannot choose.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, dialTcp, DqliteError, openConnection, type Connection } from '../../runtimes/node/client.ts';
import { TestCluster } from '../helpers/cluster.ts';
import { dqliteShell, startDqliteDemoCluster, type DqliteDemoCluster } from '../helpers/dqlite-demo.ts';

async function plainConnection(address: string, database: string): Promise<{ connection: Connection; db: number }> {
  const connection = await openConnection(dialTcp, address);
  await connection.call({ type: 'leader' }, 'node');
  const opened = await connection.call({ type: 'open', name: database, flags: 0, vfs: 'volatile' }, 'db');
  return { connection, db: opened.id };
}

/** `SELECT ?, ?` with one value, and `SELECT ?` with two: what the server answers. */
async function bindingAnswers(address: string): Promise<{ short: unknown[]; long: { code: number; message: string } }> {
  const { connection, db } = await plainConnection(address, 'binding');
  try {
    const short = await connection.callRows({ type: 'query_sql', db, sql: 'SELECT ?, ?', params: [{ type: 1, value: 9n }] });
    const failure = await connection
      .callRows({ type: 'query_sql', db, sql: 'SELECT ?', params: [{ type: 1, value: 1n }, { type: 1, value: 2n }] })
      .then(() => undefined, (e: unknown) => e);
    if (!(failure instanceof DqliteError)) throw new Error(`expected a failure, got ${String(failure)}`);
    return { short: short.rows[0]!.map((v) => v.value), long: { code: failure.code, message: failure.message.replace(/ \(code \d+\)$/, '') } };
  } finally {
    connection.close();
  }
}

describe('real dqlite and ours', () => {
  let dqlite: DqliteDemoCluster;
  let ours: TestCluster;
  let dqliteLeader: string;
  let oursLeader: string;

  beforeAll(async () => {
    [dqlite, ours] = await Promise.all([startDqliteDemoCluster({ size: 3 }), TestCluster.start({ nodes: 3, extraArgs: ['--default-read', 'session'] })]);
    dqliteLeader = await dqlite.leader();
    oursLeader = ours.addresses[await ours.waitForLeader()]!;
  }, 120_000);

  afterAll(async () => {
    await dqlite?.stop();
    await ours?.destroy();
  });

  it('binding: both answer 9, NULL for one value, and code 25 with the same text for one too many', async () => {
    const reference = await bindingAnswers(dqliteLeader);
    expect(reference.short).toEqual([9n, null]);
    expect(reference.long.code).toBe(25);
    expect(reference.long.message).toMatch(/column index out of range/);
    expect(await bindingAnswers(oursLeader)).toEqual(reference);
  });

  it('a plain dqlite read on a follower: real dqlite answers not-leader, ours answers at its default level', async () => {
    const setup = await connect({ servers: ours.addresses, database: 'binding', timeoutMs: 20_000 });
    await setup.exec('CREATE TABLE IF NOT EXISTS f (x INT)');
    await setup.exec('INSERT INTO f VALUES (7)');
    await setup.close();
    const follower = ours.addresses.find((a) => a !== oursLeader)!;
    const ourFollower = await plainConnection(follower, 'binding');
    const dqliteFollower = await plainConnection(dqlite.addresses.find((a) => a !== dqliteLeader)!, 'binding');
    try {
      const rows = await ourFollower.connection.callRows({ type: 'query_sql', db: ourFollower.db, sql: 'SELECT count(*) FROM f', params: [] });
      expect(rows.rows[0]![0]!.value).toBeGreaterThanOrEqual(0n);
      const refused = await dqliteFollower.connection
        .callRows({ type: 'query_sql', db: dqliteFollower.db, sql: 'SELECT 1', params: [] })
        .catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(DqliteError);
      expect((refused as DqliteError).isNotLeader).toBe(true);
      // Writes still go to the leader only.
      const write = await ourFollower.connection
        .call({ type: 'exec_sql', db: ourFollower.db, sql: 'INSERT INTO f VALUES (8)', params: [] }, 'result')
        .catch((e: unknown) => e);
      expect((write as DqliteError).isNotLeader).toBe(true);
    } finally {
      ourFollower.connection.close();
      dqliteFollower.connection.close();
    }
  });

  it('our client sends no extension to real dqlite, and every level reads there', async () => {
    const db = await connect({ servers: dqlite.addresses, database: 'levels', timeoutMs: 20_000, readFrom: 'any', consistency: 'session' });
    try {
      await db.exec('CREATE TABLE IF NOT EXISTS t (x INT)');
      await db.exec('INSERT INTO t VALUES (1)');
      for (const consistency of ['linearizable', 'lease', 'session', 'stale'] as const) {
        expect((await db.queryRaw('SELECT count(*) FROM t', [], { consistency })).rows).toEqual([[1]]);
      }
      expect(db.sessionBookmark).toBe(0n);
    } finally {
      await db.close();
    }
  });

  it('the real dqlite shell reads at once while another connection holds a write transaction, on both', async () => {
    for (const [servers, leader] of [
      [dqlite.addresses, dqliteLeader],
      [ours.addresses, oursLeader],
    ] as const) {
      const setup = await connect({ servers: [...servers], database: 'held', timeoutMs: 20_000 });
      await setup.exec('CREATE TABLE IF NOT EXISTS t (x INT)');
      await setup.exec('DELETE FROM t');
      await setup.exec('INSERT INTO t VALUES (1)');
      await setup.close();
      const holder = await plainConnection(leader, 'held');
      try {
        await holder.connection.call({ type: 'exec_sql', db: holder.db, sql: 'BEGIN; INSERT INTO t VALUES (2)', params: [] }, 'result');
        const started = Date.now();
        const output = await dqliteShell([leader], 'held', 'SELECT count(*) FROM t', 15_000);
        expect(output.trim()).toBe('1');
        expect(Date.now() - started).toBeLessThan(4_000);
      } finally {
        holder.connection.close();
      }
    }
  }, 60_000);
});

/**
 * A dqlite client that disconnects in the middle of a transaction must not leave the database
 * locked: the node rolls the transaction back when the connection closes. Found while building
 * the HTTP API's forwarding: TCP and WebSocket streams kept only the last close handler, so the
 * gateway's clean-up never ran and every later writer got "database is locked".
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Connection, openConnection } from '../../src/client/index.ts';
import { dialTcp } from '../../runtimes/node/tcp.ts';
import { TestCluster, waitFor } from '../helpers/cluster.ts';

describe('a client leaving mid-transaction', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 1 });
  }, 120_000);
  afterAll(async () => {
    await cluster?.destroy();
  });

  async function exec(connection: Connection, db: number, sql: string): Promise<void> {
    await connection.call({ type: 'exec_sql', db, sql, params: [] }, 'result');
  }

  test('over TCP: its open transaction is rolled back and the next writer goes through', async () => {
    const address = cluster.addresses[0]!;
    const first = await openConnection(dialTcp, address);
    const db = (await first.call({ type: 'open', name: 'left', flags: 0, vfs: 'volatile' }, 'db')).id;
    await exec(first, db, 'CREATE TABLE t (x)');
    await exec(first, db, 'BEGIN');
    await exec(first, db, 'INSERT INTO t VALUES (1)');
    first.close();

    const second = await openConnection(dialTcp, address, { requestTimeoutMs: 20_000 });
    try {
      const db2 = (await second.call({ type: 'open', name: 'left', flags: 0, vfs: 'volatile' }, 'db')).id;
      // The node notices the closed socket within moments; before the fix it never did.
      await waitFor('the departed client to be cleaned up', 15_000, async () => {
        try {
          await exec(second, db2, 'INSERT INTO t VALUES (2)');
          return true;
        } catch (error) {
          if (/database is locked/.test((error as Error).message)) return undefined;
          throw error;
        }
      });
      const rows = await second.callRows({ type: 'query_sql', db: db2, sql: 'SELECT x FROM t', params: [] });
      expect(rows.rows.map((row) => row[0]!.value)).toEqual([2n]);
    } finally {
      second.close();
    }
  }, 60_000);
});

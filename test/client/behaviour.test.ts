import { afterEach, describe, expect, it } from 'vitest';
import {
  ClientError,
  ConnectionError,
  DqliteError,
  IndeterminateError,
  NoLeaderError,
  connect,
  dialTcp,
} from '../../runtimes/node/client.ts';
import { type ScriptedCluster, integerRows, startScriptedCluster } from './scripted-server.ts';

let cluster: ScriptedCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

const fast = { backoffBaseMs: 5, backoffMaxMs: 20, timeoutMs: 3_000 };

describe('leader discovery', () => {
  it('asks a follower, follows it to the leader, registers, opens the database', async () => {
    cluster = await startScriptedCluster(3);
    const [a, b, c] = cluster.nodes as [never, never, never] as unknown as typeof cluster.nodes;
    cluster.leader = c!.address;
    const db = await connect({ servers: [a!.address, b!.address], database: 'x', ...fast });
    expect(a!.requests.map((r) => r.type)).toEqual(['leader']);
    // Like go-dqlite's connector, then Cluster to learn the members, then Open.
    expect(c!.requests.map((r) => r.type)).toEqual(['leader', 'client', 'cluster', 'open']);
    expect(c!.requests[2]).toEqual({ type: 'cluster', format: 1 });
    expect(c!.requests[3]).toEqual({ type: 'open', name: 'x', flags: 0, vfs: 'volatile' });
    expect((await db.query('SELECT 1')).rows).toEqual([{ node: c!.address }]);
    await db.close();
  });

  it('keeps asking with backoff while no leader is known, then connects', async () => {
    cluster = await startScriptedCluster(2);
    const scripted = cluster;
    scripted.leader = '';
    setTimeout(() => (scripted.leader = scripted.nodes[1]!.address), 100);
    const db = await connect({ servers: scripted.nodes.map((n) => n.address), database: 'x', ...fast });
    expect(scripted.nodes[0]!.requests.filter((r) => r.type === 'leader').length).toBeGreaterThan(1);
    await db.close();
  });

  it('gives up with NoLeaderError after timeoutMs', async () => {
    cluster = await startScriptedCluster(2);
    cluster.leader = '';
    const started = Date.now();
    const error = await connect({ servers: cluster.nodes.map((n) => n.address), database: 'x', ...fast, timeoutMs: 300 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NoLeaderError);
    expect((error as Error).message).toMatch(/no leader found/);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('learns the other members from the leader, so losing every configured server is survivable', async () => {
    cluster = await startScriptedCluster(3);
    const scripted = cluster;
    const [a, b] = scripted.nodes as [(typeof scripted.nodes)[0], (typeof scripted.nodes)[0]];
    const db = await connect({ servers: [a.address], database: 'x', ...fast });
    await a.close();
    scripted.leader = b.address;
    expect(await db.query('SELECT 1')).toEqual({ columns: ['node'], rows: [{ node: b.address }] });
    await db.close();
  });

  it('skips servers that cannot be reached', async () => {
    cluster = await startScriptedCluster(1);
    const db = await connect({ servers: ['127.0.0.1:1', cluster.nodes[0]!.address], database: 'x', ...fast });
    expect((await db.exec('INSERT INTO t VALUES (1)')).rowsAffected).toBe(1);
    await db.close();
  });
});

describe('retries and indeterminate outcomes', () => {
  it('retries a write rejected with not-leader on the new leader', async () => {
    cluster = await startScriptedCluster(2);
    const [first, second] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
    const scripted = cluster;
    const db = await connect({ servers: [first.address], database: 'x', ...fast });
    scripted.leader = second.address; // leadership moved: `first` now answers exec with 10250
    expect(await db.exec('INSERT INTO t VALUES (?)', [1])).toEqual({ lastInsertId: 1, rowsAffected: 1 });
    expect(first.requests.filter((r) => r.type === 'exec_sql')).toHaveLength(1);
    expect(second.requests.filter((r) => r.type === 'exec_sql')).toHaveLength(1);
    await db.close();
  });

  it('a write whose connection drops after sending is indeterminate and not repeated', async () => {
    cluster = await startScriptedCluster(1);
    const node = cluster.nodes[0]!;
    const db = await connect({ servers: [node.address], database: 'x', ...fast });
    node.handler = (request) => (request.type === 'exec_sql' ? 'drop' : undefined);
    const error = await db.exec("INSERT INTO t VALUES ('once')").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IndeterminateError);
    expect((error as IndeterminateError).cause).toBeInstanceOf(ConnectionError);
    expect(node.requests.filter((r) => r.type === 'exec_sql')).toHaveLength(1);
    // The handle reconnects for the next call.
    node.handler = undefined;
    expect((await db.exec('INSERT INTO t VALUES (2)')).rowsAffected).toBe(1);
    await db.close();
  });

  it('leadership lost (10506) on a write is indeterminate; on a read it is retried', async () => {
    cluster = await startScriptedCluster(1);
    const node = cluster.nodes[0]!;
    const db = await connect({ servers: [node.address], database: 'x', ...fast });
    let lostOnce = false;
    node.handler = (request) => {
      if ((request.type === 'exec_sql' || request.type === 'query_sql') && !lostOnce) {
        lostOnce = true;
        return { type: 'failure', code: 10506, message: 'disk I/O error' };
      }
      return undefined;
    };
    const error = await db.exec('UPDATE t SET x = 1').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IndeterminateError);
    expect(((error as IndeterminateError).cause as DqliteError).code).toBe(10506);
    lostOnce = false;
    expect((await db.query('SELECT x FROM t')).rows).toHaveLength(1);
    expect(node.requests.filter((r) => r.type === 'query_sql')).toHaveLength(2);
    // A query that writes (RETURNING) is not repeated.
    lostOnce = false;
    await expect(db.query('INSERT INTO t VALUES (1) RETURNING x')).rejects.toBeInstanceOf(IndeterminateError);
    await db.close();
  });

  it('a read whose connection drops is retried on a new connection', async () => {
    cluster = await startScriptedCluster(1);
    const node = cluster.nodes[0]!;
    const db = await connect({ servers: [node.address], database: 'x', ...fast });
    let dropped = false;
    node.handler = (request) => {
      if (request.type === 'query_sql' && !dropped) {
        dropped = true;
        return 'drop';
      }
      return undefined;
    };
    expect((await db.query('SELECT * FROM t')).rows).toHaveLength(1);
    expect(node.requests.filter((r) => r.type === 'open')).toHaveLength(2);
    await db.close();
  });

  it('prepared statements are prepared again on the new connection after a leader change', async () => {
    cluster = await startScriptedCluster(2);
    const [first, second] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
    const scripted = cluster;
    const db = await connect({ servers: [first.address, second.address], database: 'x', ...fast });
    const stmt = await db.prepare('INSERT INTO t VALUES (?)');
    expect((await stmt.exec([1])).rowsAffected).toBe(1);
    scripted.leader = second.address;
    expect((await stmt.exec([2])).rowsAffected).toBe(1);
    expect(second.requests.map((r) => r.type)).toEqual(['leader', 'client', 'cluster', 'open', 'prepare', 'exec']);
    expect(second.requests[5]).toMatchObject({ type: 'exec', stmt: 1, params: [{ type: 1, value: 2n }] });
    await db.close();
  });

  it('with leader discovery off, a not-leader answer reaches the caller', async () => {
    cluster = await startScriptedCluster(2);
    const follower = cluster.nodes[1]!;
    const db = await connect({ servers: [follower.address], database: 'x', leaderDiscovery: false, ...fast });
    expect(follower.requests.map((r) => r.type)).toEqual(['open']);
    await expect(db.exec('INSERT INTO t VALUES (1)')).rejects.toMatchObject({ code: 10250, isNotLeader: true });
    await db.close();
  });

  it('a transaction whose COMMIT loses its connection is indeterminate', async () => {
    cluster = await startScriptedCluster(1);
    const node = cluster.nodes[0]!;
    const db = await connect({ servers: [node.address], database: 'x', ...fast });
    node.handler = (request) => (request.type === 'exec_sql' && request.sql === 'COMMIT' ? 'drop' : undefined);
    const error = await db.transaction((tx) => tx.exec('INSERT INTO t VALUES (1)')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IndeterminateError);
    expect(node.requests.filter((r) => r.type === 'exec_sql').map((r) => (r as { sql: string }).sql)).toEqual(['BEGIN IMMEDIATE', 'INSERT INTO t VALUES (1)', 'COMMIT']);
    await db.close();
  });

  it('a transaction is not retried when the leader changes midway; it is rolled back', async () => {
    cluster = await startScriptedCluster(2);
    const scripted = cluster;
    const [first, second] = scripted.nodes as [(typeof scripted.nodes)[0], (typeof scripted.nodes)[0]];
    const db = await connect({ servers: [first.address, second.address], database: 'x', ...fast });
    const error = await db
      .transaction(async (tx) => {
        await tx.exec('INSERT INTO t VALUES (1)');
        scripted.leader = second.address;
        await tx.exec('INSERT INTO t VALUES (2)');
      })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 10250 });
    expect(first.requests.filter((r) => r.type === 'exec_sql').map((r) => (r as { sql: string }).sql)).toEqual([
      'BEGIN IMMEDIATE',
      'INSERT INTO t VALUES (1)',
      'INSERT INTO t VALUES (2)',
      'ROLLBACK',
    ]);
    expect(second.requests.filter((r) => r.type === 'exec_sql')).toHaveLength(0);
    // The next call finds the new leader.
    expect((await db.exec('INSERT INTO t VALUES (3)')).rowsAffected).toBe(1);
    expect(second.requests.filter((r) => r.type === 'exec_sql')).toHaveLength(1);
    await db.close();
  });

  it('SQL errors are not retried', async () => {
    cluster = await startScriptedCluster(1);
    const node = cluster.nodes[0]!;
    node.handler = (request) => (request.type === 'exec_sql' ? { type: 'failure', code: 2067, message: 'UNIQUE constraint failed: t.k' } : undefined);
    const db = await connect({ servers: [node.address], database: 'x', ...fast });
    const error = await db.exec('INSERT INTO t VALUES (1)').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DqliteError);
    expect(error).toMatchObject({ code: 2067, message: 'UNIQUE constraint failed: t.k (code 2067)' });
    expect(node.requests.filter((r) => r.type === 'exec_sql')).toHaveLength(1);
    await db.close();
  });
});

describe('results and bounds', () => {
  it('collects multi-batch results', async () => {
    cluster = await startScriptedCluster(1);
    const node = cluster.nodes[0]!;
    const batches = integerRows(500);
    expect(batches.length).toBeGreaterThan(5);
    node.handler = (request) => (request.type === 'query_sql' ? batches : undefined);
    const db = await connect({ servers: [node.address], database: 'x', ...fast });
    const { rows } = await db.queryRaw('SELECT n FROM t');
    expect(rows.map((r) => r[0])).toEqual(Array.from({ length: 500 }, (_, i) => i));
    await db.close();
  });

  it('a result over resultRowsMax interrupts the query and fails clearly; the connection stays usable', async () => {
    cluster = await startScriptedCluster(1);
    const node = cluster.nodes[0]!;
    const batches = integerRows(500);
    node.handler = (request) => {
      // ~15 rows per batch: the client sees more than 50 rows after the 4th batch and interrupts;
      // batches already sent, and those in flight when the interrupt arrives, are discarded.
      if (request.type === 'query_sql' && request.sql === 'big') return batches.slice(0, 6);
      if (request.type === 'interrupt') return [...batches.slice(6, 8), { type: 'empty' }];
      return undefined;
    };
    const db = await connect({ servers: [node.address], database: 'x', ...fast, resultRowsMax: 50 });
    const error = await db.query('big').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ClientError);
    expect((error as ClientError).code).toBe('too_large');
    expect(node.requests.at(-1)).toEqual({ type: 'interrupt', db: 0 });
    expect((await db.query('small')).rows).toHaveLength(1);
    await db.close();
  });

  it('a server that stops answering is cut off after requestTimeoutMs', async () => {
    cluster = await startScriptedCluster(1);
    const node = cluster.nodes[0]!;
    const db = await connect({ servers: [node.address], database: 'x', ...fast, requestTimeoutMs: 200, leaderDiscovery: false });
    node.handler = (request) => (request.type === 'query_sql' ? 'silent' : undefined);
    const error = await db.query('SELECT 1').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionError);
    expect((error as Error).message).toMatch(/no response within 200 ms/);
    await db.close();
  });

  it('garbage from the server closes the connection with a clear error', async () => {
    cluster = await startScriptedCluster(1);
    const node = cluster.nodes[0]!;
    const db = await connect({ servers: [node.address], database: 'x', ...fast, leaderDiscovery: false, messageBytesMax: 1024 });
    const huge = new Uint8Array(8);
    new DataView(huge.buffer).setUint32(0, 1 << 20, true);
    node.handler = (request) => (request.type === 'query_sql' ? { raw: huge } : undefined);
    const error = await db.query('SELECT 1').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionError);
    expect((error as Error).message).toMatch(/exceeds the limit of 1024 bytes/);
    await db.close();
  });

  it('bad parameters are refused before anything is sent', async () => {
    cluster = await startScriptedCluster(1);
    const node = cluster.nodes[0]!;
    const db = await connect({ servers: [node.address], database: 'x', ...fast });
    await expect(db.exec('x', [2n ** 64n])).rejects.toMatchObject({ code: 'bad_argument' });
    await expect(db.exec('x', [{} as never])).rejects.toMatchObject({ code: 'bad_argument' });
    await expect(db.exec('a\0b')).rejects.toMatchObject({ code: 'bad_argument' });
    expect(node.requests.filter((r) => r.type === 'exec_sql')).toHaveLength(0);
    await db.close();
    await expect(db.exec('x')).rejects.toMatchObject({ code: 'closed' });
  });

  it('the TCP dialer fails clearly on a refused port', async () => {
    await expect(dialTcp('127.0.0.1:1')).rejects.toThrow(/ECONNREFUSED/);
    await expect(dialTcp('nonsense')).rejects.toThrow(/not a host:port/);
  });
});

/**
 * Live queries on real node processes: a follower's live query follows the leader's commits,
 * never shows an open transaction, shares one evaluation among its subscribers, and carries on
 * after its node restarts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { connect, dialTcp, openConnection, type Database, type LiveQueryResult } from '../../runtimes/node/client.ts';
import { TestCluster, waitFor } from '../helpers/cluster.ts';

interface Watch {
  results: LiveQueryResult[];
  errors: Error[];
  stop(): void;
}

function watch(db: Database, sql: string): Watch {
  const results: LiveQueryResult[] = [];
  const errors: Error[] = [];
  const stop = db.live(sql).onChange(
    (result) => results.push(result),
    (error) => errors.push(error),
  );
  return { results, errors, stop };
}

async function evaluations(cluster: TestCluster, index: number): Promise<number> {
  const status = (await cluster.status(index)) as unknown as { liveQueries: { evaluations: number } };
  return status.liveQueries.evaluations;
}

describe('live queries on a cluster', () => {
  let cluster: TestCluster;
  let writer: Database;
  let follower: number;
  let reader: Database;
  const opened: Database[] = [];

  async function open(servers: string[], readFrom: 'leader' | 'any' = 'any'): Promise<Database> {
    const db = await connect({ database: 'live', servers, readFrom, timeoutMs: 20_000 });
    opened.push(db);
    return db;
  }

  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 3 });
    const leader = await cluster.waitForLeader();
    follower = [0, 1, 2].find((i) => i !== leader)!;
    writer = await open(cluster.addresses, 'leader');
    await writer.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT); CREATE TABLE other (x INT)');
    reader = await open([cluster.addresses[follower]!]);
  }, 120_000);

  afterEach((context) => {
    if (context.task.result?.state === 'fail') console.log(cluster.dumpOutput());
  });

  afterAll(async () => {
    for (const db of opened) await db.close();
    await cluster?.destroy();
  });

  test('a follower yields the new result after a leader write, never an open transaction', async () => {
    const live = reader.live('SELECT count(*) AS n, max(id) AS top FROM items');
    const first = await live.next();
    expect(first.done).toBe(false);
    const start = first.value!.rows[0]!.n as number;
    // Every result the follower and the leader deliver, to check none ever showed the open transaction.
    const onFollower = watch(reader, 'SELECT count(*) AS n FROM items');
    const leaderIndex = await cluster.waitForLeader();
    const onLeader = watch(await open([cluster.addresses[leaderIndex]!]), 'SELECT count(*) AS n FROM items');
    await waitFor('the first results', 20_000, async () => (onFollower.results.length > 0 && onLeader.results.length > 0 ? true : undefined));

    // An open transaction on the leader with 100 rows: a query evaluated meanwhile, on the
    // leader itself, must not see them.
    const connection = await openConnection(dialTcp, cluster.addresses[leaderIndex]!);
    const { id: db } = await connection.call({ type: 'open', name: 'live', flags: 0, vfs: 'volatile' }, 'db');
    await connection.call(
      { type: 'exec_sql', db, sql: "BEGIN; INSERT INTO items (name) SELECT 'uncommitted' FROM (WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 100) SELECT i FROM c)", params: [] },
      'result',
    );
    const during = await (await open([cluster.addresses[leaderIndex]!])).live('SELECT count(*) AS n FROM items WHERE id > 0').next();
    expect(during.value!.rows[0]!.n).toBe(start);
    await connection.call({ type: 'exec_sql', db, sql: 'ROLLBACK', params: [] }, 'result');
    connection.close();

    const written = await writer.exec("INSERT INTO items (name) VALUES ('committed')");
    const next = await live.next();
    expect(next.value!.rows[0]).toEqual({ n: start + 1, top: written.lastInsertId });
    expect(next.value!.index).toBeGreaterThan(first.value!.index);
    await waitFor('both watchers to see the write', 20_000, async () =>
      onFollower.results.at(-1)!.rows[0]!.n === start + 1 && onLeader.results.at(-1)!.rows[0]!.n === start + 1 ? true : undefined,
    );
    expect(onFollower.results.map((r) => r.rows[0]!.n)).toEqual([start, start + 1]);
    expect(onLeader.results.map((r) => r.rows[0]!.n)).toEqual([start, start + 1]);
    onFollower.stop();
    onLeader.stop();
    live.close();
    expect((await live.next()).done).toBe(true);
  });

  test('subscribers of the same query share one evaluation per commit; another database re-runs nothing', async () => {
    const a = watch(reader, 'SELECT count(*) AS n FROM items');
    const b = watch(reader, 'SELECT count(*) AS n FROM items');
    await waitFor('both first results', 20_000, async () => (a.results.length > 0 && b.results.length > 0 ? true : undefined));
    const before = await evaluations(cluster, follower);

    const elsewhere = await connect({ database: 'live-elsewhere', servers: cluster.addresses, timeoutMs: 20_000 });
    opened.push(elsewhere);
    await elsewhere.exec('CREATE TABLE t (x INT); INSERT INTO t VALUES (1)');
    await writer.exec("INSERT INTO items (name) VALUES ('shared')");
    await waitFor('both new results', 20_000, async () => (a.results.length > 1 && b.results.length > 1 ? true : undefined));
    // One commit on "live": one evaluation for both subscribers; "live-elsewhere" re-ran nothing.
    expect(await evaluations(cluster, follower)).toBe(before + 1);
    const metrics = await (await fetch(`http://${cluster.addresses[follower]}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^dqlite_wasm_live_evaluations_total ${before + 1}$`, 'm'));
    expect(Number(/^dqlite_wasm_live_subscriptions (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2);
    expect(a.results.at(-1)!.rows).toEqual(b.results.at(-1)!.rows);
    a.stop();
    b.stop();
    await waitFor('the subscriptions to be freed', 20_000, async () => {
      const status = (await cluster.status(follower)) as unknown as { liveQueries: { subscriptions: number } };
      return status.liveQueries.subscriptions === 0 ? true : undefined;
    });
  });

  test('a write to a table the query does not read re-runs nothing: the commit names its tables', async () => {
    const items = watch(reader, 'SELECT count(*) AS n FROM items');
    await waitFor('the first result', 20_000, async () => (items.results.length > 0 ? true : undefined));
    const before = await evaluations(cluster, follower);
    for (let i = 0; i < 5; i++) await writer.exec('INSERT INTO other (x) VALUES (?)', [i]);
    await writer.exec("INSERT INTO items (name) VALUES ('related')");
    await waitFor('the items write', 20_000, async () => (items.results.length > 1 ? true : undefined));
    // Six commits on "live", one of them on `items`: one evaluation.
    expect(await evaluations(cluster, follower)).toBe(before + 1);
    expect(items.results).toHaveLength(2);
    items.stop();
  });

  test('a statement that writes, or bad SQL, is a clear error; the node keeps serving', async () => {
    await expect(reader.live("INSERT INTO items (name) VALUES ('no')").next()).rejects.toThrow(/must be read-only/);
    await expect(reader.live('SELECT FROM WHERE').next()).rejects.toThrow(/syntax error/);
    const live = reader.live('SELECT count(*) AS n FROM items');
    expect((await live.next()).value!.rows[0]!.n).toBeGreaterThan(0);
    live.close();
  });

  test('a live query carries on after its node restarts', async () => {
    const only = await open([cluster.addresses[follower]!]);
    const w = watch(only, 'SELECT count(*) AS n FROM items');
    await waitFor('the first result', 20_000, async () => (w.results.length > 0 ? true : undefined));
    const n = w.results.at(-1)!.rows[0]!.n as number;
    await cluster.kill(follower);
    await writer.exec("INSERT INTO items (name) VALUES ('while down')");
    await cluster.restart(follower);
    await waitFor('the result after the restart', 30_000, async () => (w.results.at(-1)!.rows[0]!.n === n + 1 ? true : undefined)).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}; results ${JSON.stringify(w.results.map((r) => r.rows))}, errors ${w.errors.map((e) => e.message).join('; ')}`);
    });
    expect(w.errors).toEqual([]);
    w.stop();
  });

  test('a subscription started while its node knows no leader waits for one (a not-leader answer is retried on a new connection)', async () => {
    const leader = await cluster.waitForLeader();
    const others = [0, 1, 2].filter((i) => i !== follower);
    for (const i of others) await cluster.kill(i);
    // Before the fix the retry reused the connection given over to the first attempt and failed
    // "a streamed query is still being read on this connection".
    const lonely = await connect({ database: 'live', servers: [cluster.addresses[follower]!], readFrom: 'any', timeoutMs: 90_000 });
    opened.push(lonely);
    const live = lonely.live('SELECT count(*) AS n FROM items');
    const first = live.next();
    first.catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    for (const i of others) await cluster.restart(i);
    const result = await first;
    expect(result.done).toBe(false);
    expect(result.value!.rows[0]!.n).toBeGreaterThan(0);
    live.close();
    expect(others).toContain(leader);
  }, 120_000);
});

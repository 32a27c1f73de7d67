/**
 * Real node processes on loopback: failover, quorum loss, catch-up, byte-identical replicas,
 * checkpoints, and the not-leader error for a write sent straight to a follower.
 */
import { describe, expect, test } from 'vitest';
import { connect, connectCluster, DqliteError, type Database } from '../../runtimes/node/client.ts';
import { TestCluster, sleep, waitFor } from '../helpers/cluster.ts';
import { clusterWithDatabase } from '../helpers/cluster-suite.ts';

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
}

async function dumpOf(cluster: TestCluster, index: number, database: string): Promise<{ main: Uint8Array; wal: Uint8Array }> {
  const admin = await connectCluster({ servers: [cluster.addresses[index]!], leaderDiscovery: false, timeoutMs: 5000 });
  try {
    const files = await admin.dump(database, cluster.addresses[index]!);
    return { main: files[0]!.data, wal: files[1]!.data };
  } finally {
    await admin.close();
  }
}

async function expectIdenticalReplicas(cluster: TestCluster, database: string): Promise<void> {
  // Followers apply asynchronously after the leader answered: wait until all applied the same index.
  await waitFor('every node to apply the same log', 20_000, async () => {
    const statuses = await Promise.all(cluster.nodes.map((n) => cluster.status(n.index)));
    return statuses.every((s) => s.appliedIndex === statuses[0]!.appliedIndex && s.appliedIndex === s.commitIndex) ? true : undefined;
  });
  const dumps = await Promise.all(cluster.nodes.map((n) => dumpOf(cluster, n.index, database)));
  for (let i = 1; i < dumps.length; i++) {
    expect(sameBytes(dumps[i]!.main, dumps[0]!.main), `main file of node ${i + 1} equals node 1's`).toBe(true);
    expect(sameBytes(dumps[i]!.wal, dumps[0]!.wal), `WAL of node ${i + 1} equals node 1's`).toBe(true);
  }
}

describe('3-node cluster of real processes', () => {
  let cluster: TestCluster;
  let db: Database;
  const acknowledged: number[] = [];

  clusterWithDatabase(
    { nodes: 3, extraArgs: ['--commit-timeout-ms', '4000'], database: 'test', timeoutMs: 20_000, schema: ['CREATE TABLE items (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)'] },
    (started) => ({ cluster, db } = started),
  );

  test('writes survive kill -9 of the leader; a new leader is elected and the old one catches up', async () => {
    for (let i = 1; i <= 50; i++) {
      await db.exec('INSERT INTO items (id, payload) VALUES (?, ?)', [i, `row ${i}`]);
      acknowledged.push(i);
    }
    const oldLeader = await cluster.waitForLeader();
    const killedAt = Date.now();
    await cluster.kill(oldLeader);
    const newLeader = await cluster.waitForLeader(15_000, [oldLeader]);
    expect(newLeader).not.toBe(oldLeader);
    expect(Date.now() - killedAt).toBeLessThan(15_000);

    for (let i = 51; i <= 80; i++) {
      await db.exec('INSERT INTO items (id, payload) VALUES (?, ?)', [i, `row ${i}`]);
      acknowledged.push(i);
    }
    const { rows } = await db.query('SELECT id FROM items ORDER BY id');
    expect(rows.map((r) => Number(r['id']))).toEqual(acknowledged);

    cluster.spawn(oldLeader);
    await waitFor('the old leader to catch up', 30_000, async () => {
      const [restarted, leader] = await Promise.all([cluster.status(oldLeader), cluster.status(newLeader)]);
      return restarted.appliedIndex >= leader.commitIndex && restarted.leaderId !== 0 ? true : undefined;
    });
    await expectIdenticalReplicas(cluster, 'test');
  }, 120_000);

  test('a write sent to a follower without leader discovery fails with not-leader (10250)', async () => {
    const leader = await cluster.waitForLeader();
    const follower = cluster.nodes.find((n) => n.index !== leader && cluster.isRunning(n.index))!;
    const direct = await connect({ servers: [follower.address], database: 'test', leaderDiscovery: false, timeoutMs: 5000 });
    try {
      const error = await direct.exec('INSERT INTO items (id, payload) VALUES (1000, ?)', ['x']).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DqliteError);
      expect((error as DqliteError).code).toBe(10250);
      expect((error as DqliteError).message).toMatch(/not leader/);
    } finally {
      await direct.close();
    }
  });

  test('when the WAL reaches the threshold a checkpoint is replicated and every WAL restarts', async () => {
    const before = await Promise.all(cluster.nodes.map((n) => cluster.status(n.index)));
    // 4 KiB pages: each insert of ~3 KiB touches a couple of pages, so 1000 frames come quickly.
    const big = 'x'.repeat(3000);
    for (let i = 0; i < 400; i++) {
      await db.exec('INSERT INTO items (payload) VALUES (?)', [big]);
    }
    await waitFor('a checkpoint on every node', 30_000, async () => {
      const statuses = await Promise.all(cluster.nodes.map((n) => cluster.status(n.index)));
      return statuses.every((s, i) => s.checkpoints > before[i]!.checkpoints) ? true : undefined;
    });
    const after = await Promise.all(cluster.nodes.map((n) => cluster.status(n.index)));
    for (const status of after) {
      const frames = status.databases.find((d) => d.name === 'test')!.walFrames;
      expect(frames).toBeLessThan(1000);
    }
    await expectIdenticalReplicas(cluster, 'test');
  }, 120_000);

  test('with 2 of 3 nodes down a write fails with a clear error in bounded time; nothing acknowledged is lost', async () => {
    const leader = await cluster.waitForLeader();
    const others = cluster.nodes.map((n) => n.index).filter((i) => i !== leader);
    for (const i of others) await cluster.kill(i);
    const started = Date.now();
    const error = await db.exec('INSERT INTO items (id, payload) VALUES (5000, ?)', ['lost?']).catch((e: unknown) => e);
    const elapsedMs = Date.now() - started;
    expect(error).toBeInstanceOf(Error);
    expect(String((error as Error).message)).toMatch(/leader|quorum|timed out/i);
    expect(elapsedMs).toBeLessThan(30_000);

    for (const i of others) cluster.spawn(i);
    await cluster.waitForLeader(30_000);
    await sleep(500);
    const { rows } = await db.query('SELECT id FROM items WHERE id <= 80 ORDER BY id');
    expect(rows.map((r) => Number(r['id']))).toEqual(acknowledged);
  }, 120_000);
});

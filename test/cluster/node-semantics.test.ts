/**
 * Node semantics with real processes: interactive transactions and the busy timeout, group
 * commit under concurrent writers, snapshot catch-up, membership, hand-over on SIGTERM, the
 * directory lock, and bad input from clients and peers.
 */
import { spawn } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { describe, expect, test } from 'vitest';
import WebSocket from 'ws';
import { connect, connectCluster, DqliteError, ValueType, type Database } from '../../runtimes/node/client.ts';
import { TestCluster, sleep, waitFor } from '../helpers/cluster.ts';
import { clusterWithDatabase } from '../helpers/cluster-suite.ts';

function rawExchange(address: string, bytes: Uint8Array, waitMs = 500): Promise<{ received: Buffer; closed: boolean }> {
  const [host, port] = address.split(':') as [string, string];
  return new Promise((resolve) => {
    const socket = netConnect(Number(port), host);
    const chunks: Buffer[] = [];
    let closed = false;
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('close', () => {
      closed = true;
    });
    socket.on('error', () => {
      closed = true;
    });
    socket.write(bytes);
    setTimeout(() => {
      socket.destroy();
      resolve({ received: Buffer.concat(chunks), closed });
    }, waitMs);
  });
}

describe('node semantics', () => {
  let cluster: TestCluster;
  let db: Database;

  clusterWithDatabase(
    {
      nodes: 3,
      extraArgs: ['--busy-timeout-ms', '1500', '--snapshot-threshold', '40', '--snapshot-trailing', '10'],
      database: 'sem',
      timeoutMs: 20_000,
      schema: ['CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)'],
    },
    (started) => ({ cluster, db } = started),
  );

  test('a client inside a transaction holds the database; others wait their turn, then SQLITE_BUSY', async () => {
    const other = await connect({ servers: cluster.addresses, database: 'sem', timeoutMs: 20_000 });
    try {
      let otherDone = false;
      let waiting: Promise<unknown> | undefined;
      await db.transaction(async (tx) => {
        await tx.exec("INSERT INTO kv VALUES ('tx', 1)");
        waiting = other.exec("INSERT INTO kv VALUES ('after', 2)").then(() => {
          otherDone = true;
        });
        await sleep(300);
        // The other client's write must not run inside our transaction.
        expect(otherDone).toBe(false);
        const { rows } = await tx.query('SELECT count(*) AS n FROM kv');
        expect(Number(rows[0]!['n'])).toBe(1);
      });
      await waiting;
      expect(otherDone).toBe(true);

      // Held longer than the busy timeout (1.5 s here): the waiting client gets SQLITE_BUSY.
      const error = await db
        .transaction(async (tx) => {
          await tx.exec("UPDATE kv SET v = v + 1 WHERE k = 'tx'");
          const failure = await other.exec("UPDATE kv SET v = 0 WHERE k = 'after'").catch((e: unknown) => e);
          return failure;
        })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DqliteError);
      expect((error as DqliteError).code).toBe(5);
      expect((error as DqliteError).message).toMatch(/locked/);
    } finally {
      await other.close();
    }
  }, 60_000);

  test('parameters keep their wire types: a float with no fraction stays REAL, int64 extremes round-trip', async () => {
    await db.exec('CREATE TABLE nums (x)');
    await db.exec('INSERT INTO nums VALUES (?), (?), (?), (?)', [
      { type: ValueType.Float, value: 2 },
      9223372036854775807n,
      -9223372036854775808n,
      2,
    ]);
    const { rows } = await db.queryRaw('SELECT x, typeof(x) FROM nums ORDER BY rowid');
    expect(rows).toEqual([
      [2, 'real'],
      [9223372036854775807n, 'integer'],
      [-9223372036854775808n, 'integer'],
      [2, 'integer'],
    ]);
  });

  test('group commit: 8 concurrent writers all succeed and every write is there', async () => {
    const writers = await Promise.all(
      Array.from({ length: 8 }, () => connect({ servers: cluster.addresses, database: 'sem', timeoutMs: 20_000 })),
    );
    try {
      await Promise.all(
        writers.map(async (w, i) => {
          for (let j = 0; j < 25; j++) await w.exec('INSERT INTO kv VALUES (?, ?)', [`w${i}-${j}`, j]);
        }),
      );
      const { rows } = await db.query("SELECT count(*) AS n FROM kv WHERE k LIKE 'w%'");
      expect(Number(rows[0]!['n'])).toBe(200);
    } finally {
      await Promise.all(writers.map((w) => w.close()));
    }
  }, 60_000);

  test('a follower that missed compacted entries catches up by snapshot', async () => {
    const leader = await cluster.waitForLeader();
    const follower = [0, 1, 2].find((i) => i !== leader)!;
    await cluster.kill(follower);
    for (let i = 0; i < 120; i++) await db.exec('INSERT INTO kv VALUES (?, ?)', [`snap-${i}`, i]);
    const leaderStatus = await cluster.status(leader);
    expect(leaderStatus.snapshots).toBeGreaterThan(0);
    cluster.spawn(follower);
    await waitFor('the follower to catch up', 30_000, async () => {
      const [f, l] = await Promise.all([cluster.status(follower), cluster.status(leader)]);
      return f.appliedIndex >= l.commitIndex ? true : undefined;
    });
    expect(cluster.nodes[follower]!.output.join('')).toMatch(/installed a snapshot/);
    const direct = await connectCluster({ servers: [cluster.addresses[follower]!], leaderDiscovery: false });
    const leaderAdmin = await connectCluster({ servers: [cluster.addresses[leader]!], leaderDiscovery: false });
    try {
      await waitFor('identical files', 10_000, async () => {
        const [a, b] = await Promise.all([direct.dump('sem', cluster.addresses[follower]), leaderAdmin.dump('sem', cluster.addresses[leader])]);
        return Buffer.compare(Buffer.from(a[0]!.data), Buffer.from(b[0]!.data)) === 0 &&
          Buffer.compare(Buffer.from(a[1]!.data), Buffer.from(b[1]!.data)) === 0
          ? true
          : undefined;
      });
    } finally {
      await direct.close();
      await leaderAdmin.close();
    }
  }, 90_000);

  test('membership: transfer leadership, and SIGTERM on the leader hands leadership over', async () => {
    const admin = await connectCluster({ servers: cluster.addresses, timeoutMs: 20_000 });
    try {
      const members = await admin.members();
      expect(members.filter((m) => m.role === 'voter')).toHaveLength(3);
      const leader = await admin.leader();
      const target = members.find((m) => m.address !== leader!.address)!;
      await admin.transfer(target.id);
      await waitFor('the transfer', 10_000, async () => ((await admin.leader())?.address === target.address ? true : undefined));
    } finally {
      await admin.close();
    }

    const leaderIndex = await cluster.waitForLeader();
    const stoppedAt = Date.now();
    await cluster.kill(leaderIndex, 'SIGTERM');
    const next = await cluster.waitForLeader(10_000, [leaderIndex]);
    expect(next).not.toBe(leaderIndex);
    // A hand-over does not wait for an election timeout plus a randomized delay.
    expect(Date.now() - stoppedAt).toBeLessThan(5000);
    expect(cluster.nodes[leaderIndex]!.output.join('')).toMatch(/handing over leadership/);
    cluster.spawn(leaderIndex);
    await waitFor('the node to rejoin', 20_000, async () => ((await cluster.status(leaderIndex)).leaderId !== 0 ? true : undefined));
  }, 60_000);

  test('a second process on the same data directory refuses to start', async () => {
    const node = cluster.nodes[0]!;
    const child = spawn(
      process.execPath,
      ['--import', './scripts/ts-loader.mjs', 'bin/cli.ts', 'start', '--address', node.address, '--dir', node.dir, '--cluster-key', cluster.clusterKey],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).not.toBe(0);
    expect(output).toMatch(/lock|in use/i);
  }, 30_000);

  test('bad input from clients and peers gets the connection closed; the node keeps serving', async () => {
    const address = cluster.addresses[0]!;
    // Garbage after a valid handshake.
    const version = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);
    const garbage = Uint8Array.from({ length: 64 }, (_, i) => (i * 37 + 11) & 0xff);
    const first = await rawExchange(address, new Uint8Array([...version, ...garbage]));
    expect(first.closed).toBe(true);
    // A header announcing a 30 GiB body.
    const huge = new Uint8Array([...version, 0xff, 0xff, 0xff, 0xef, 3, 0, 0, 0]);
    expect((await rawExchange(address, huge)).closed).toBe(true);
    // An unknown protocol version.
    expect((await rawExchange(address, new Uint8Array([9, 9, 9, 9, 9, 9, 9, 9]))).closed).toBe(true);
    // A well-framed request of an unknown type gets a failure response, not a crash.
    const unknown = await rawExchange(address, new Uint8Array([...version, 1, 0, 0, 0, 99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    expect(unknown.received[4]).toBe(0);
    // A peer without the cluster key is refused; one with it that speaks nonsense is cut off.
    const refused = await new Promise<string>((resolve) => {
      const ws = new WebSocket(`ws://${address}/raft`);
      ws.on('unexpected-response', (_req, res) => resolve(`http ${res.statusCode}`));
      ws.on('open', () => ws.once('close', (code) => resolve(`closed ${code}`)));
      ws.on('error', () => resolve('error'));
    });
    expect(refused).toMatch(/http 40[13]|closed/);
    const cut = await new Promise<string>((resolve) => {
      const ws = new WebSocket(`ws://${address}/raft`, { headers: { 'x-dqlite-cluster-key': cluster.clusterKey } });
      ws.on('open', () => ws.send(Buffer.from('hello, I am not a raft peer')));
      ws.on('close', (code) => resolve(`closed ${code}`));
      ws.on('error', () => resolve('error'));
    });
    expect(cut).toMatch(/closed|error/);

    const { rows } = await db.query("SELECT count(*) AS n FROM kv WHERE k = 'tx'");
    expect(Number(rows[0]!['n'])).toBe(1);
    for (const node of cluster.nodes) expect(cluster.isRunning(node.index)).toBe(true);
  }, 30_000);
});

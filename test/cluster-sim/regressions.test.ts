/**
 * Deterministic regression tests for the node bugs the whole-cluster simulator found, each
 * reduced to the few steps that show it. Both failed before their fix.
 */
import { describe, expect, it } from 'vitest';
import { DatabaseLoop } from '../../src/fsm/database-loop.ts';
import { Prng } from '../sim/prng.ts';
import { FencedClock, Scheduler } from './scheduler.ts';
import { SimSession } from './sim-client.ts';
import { loadSharedSqlite, SimCluster } from './sim-cluster.ts';
import { SimNetwork } from './sim-network.ts';
import { drawSettings } from './simulation.ts';

describe('found by the whole-cluster simulator', () => {
  it('rolls back the transaction of a client that disconnects in the middle of it (the host keeps one close handler per stream)', async () => {
    await loadSharedSqlite();
    const scheduler = new Scheduler();
    const rng = new Prng(7);
    const network = new SimNetwork(scheduler, rng.fork(), 1);
    const settings = { ...drawSettings(rng.fork()), busyTimeoutMs: 2000 };
    const cluster = new SimCluster(scheduler, network, rng.fork(), settings, {}, () => {}, 1);
    const clock = new FencedClock(scheduler);
    const session = (host: string): SimSession =>
      new SimSession({ dial: network.dialStream(host), clock, rng: rng.fork(), servers: () => cluster.addresses, database: 'd', requestTimeoutMs: 8000 });
    await scheduler.drive('bootstrap', 10_000, cluster.start(cluster.slots[0]!, true));
    const first = session('first');
    const untilLeader = async (): Promise<void> => {
      for (;;) {
        try {
          await first.exec('CREATE TABLE t (x INTEGER)');
          return;
        } catch {
          await scheduler.sleep(100);
        }
      }
    };
    await scheduler.drive('the first statement', 10_000, untilLeader());
    await scheduler.drive('BEGIN', 1000, first.exec('BEGIN'));
    await scheduler.drive('INSERT', 1000, first.exec('INSERT INTO t VALUES (1)'));
    first.close();

    // Before the fix the departed client's transaction held the database: SQLITE_BUSY after 2 s.
    const second = session('second');
    await scheduler.drive('a write after the client left', 1000, second.exec('INSERT INTO t VALUES (2)'));
    const rows = await scheduler.drive('a read', 1000, second.query('SELECT x FROM t'));
    expect(rows.map((row) => Number(row[0]!.value))).toEqual([2]);
    cluster.shutDown();
  });

  it('does not hand an open transaction to the wrong client when a task aborts the connection', async () => {
    let open = false;
    const loop = new DatabaseLoop({
      busyTimeoutMs: 1000,
      queueLengthMax: 10,
      nowMs: () => 0,
      inTransaction: () => open,
      setTimer: () => ({ cancel: () => {} }),
    });
    // Client 3 holds a transaction; clients 1 and 2 queue behind it.
    open = true;
    await loop.submit(3, () => {});
    expect(loop.transactionOwner).toBe(3);
    // Client 1's COMMIT is refused and aborts the connection (abortPending clears the owner);
    // client 2's BEGIN is next in line.
    const refused = loop.submit(1, () => {
      open = false;
      loop.clearOwner();
      throw new Error('cannot replicate: a leadership transfer is in progress');
    });
    const begin = loop.submit(2, () => {
      open = true;
    });
    // Client 3 commits: the loop runs client 1's task, then client 2's.
    await loop.submit(3, () => {
      open = false;
    });
    await expect(refused).rejects.toThrow('leadership transfer');
    await begin;
    // Before the fix client 2's BEGIN ran inside client 1's task and the transaction went to 1.
    expect(loop.transactionOwner).toBe(2);
  });
});

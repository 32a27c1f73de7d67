/**
 * Live queries on the in-process handle: two embedded nodes in this process (`startNode`), the
 * second joined to the first; each one's `database().live()` is evaluated by that node on its
 * own replica, the follower's included, and follows writes made through the other node.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { startNode, type EmbeddedNode } from '../../runtimes/node/library.ts';
import { waitFor } from '../helpers/cluster.ts';

function liveCounts(node: EmbeddedNode): { subscriptions: number; evaluations: number } {
  const live = node.status().liveQueries!;
  return { subscriptions: live.subscriptions, evaluations: live.evaluations };
}

describe('live queries on embedded nodes', () => {
  const dirs: string[] = [];
  const nodes: EmbeddedNode[] = [];
  afterAll(async () => {
    for (const node of nodes.reverse()) await node.close({ handOver: false }).catch(() => undefined);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  test("each node's handle evaluates on its own replica, the follower's too", async () => {
    const dir = (): string => {
      const d = mkdtempSync(join(tmpdir(), 'dqlite-wasm-live-embedded-'));
      dirs.push(d);
      return d;
    };
    const leader = await startNode({ dir: dir(), tickMs: 20, clusterKey: 'live-embedded-key' });
    nodes.push(leader);
    await waitFor('leadership', 10_000, async () => (leader.status().state === 'leader' ? true : undefined));
    const follower = await startNode({ dir: dir(), tickMs: 20, join: [leader.address], clusterKey: 'live-embedded-key' });
    nodes.push(follower);
    await waitFor('two members', 20_000, async () => (leader.status().members.length === 2 ? true : undefined));

    const onLeader = await leader.database('app');
    await onLeader.exec('CREATE TABLE t (x INTEGER)');
    const onFollower = await follower.database('app');
    const live = onFollower.live('SELECT count(*) AS n, sum(x) AS total FROM t');
    expect((await live.next()).value!.rows).toEqual([{ n: 0, total: null }]);
    expect(liveCounts(follower).subscriptions).toBe(1);
    expect(liveCounts(leader).subscriptions).toBe(0);

    await onLeader.exec('INSERT INTO t VALUES (20), (22)');
    const next = await live.next();
    expect(next.value!.rows).toEqual([{ n: 2, total: 42 }]);
    expect(next.value!.index).toBeLessThanOrEqual(follower.status().appliedIndex);
    expect(liveCounts(leader).evaluations).toBe(0);

    // A write through the follower's own handle (forwarded to the leader) shows too.
    await onFollower.exec('INSERT INTO t VALUES (1)');
    expect((await live.next()).value!.rows).toEqual([{ n: 3, total: 43 }]);

    // Closing the Database ends its live queries and frees them on the node.
    await onFollower.close();
    await expect(live.next()).rejects.toThrow(/closed/);
    await waitFor('the subscription to be freed', 10_000, async () => (liveCounts(follower).subscriptions === 0 ? true : undefined));
  }, 60_000);
});

/**
 * The full collection a node asks for after a snapshot: only when the snapshot dropped enough
 * bytes (its data and the log it compacted) to be worth stopping the node for, not after every
 * snapshot of a small database while writes go on.
 */
import { afterEach, expect, test } from 'vitest';
import { nodeRuntime } from '../../runtimes/node/index.ts';
import { startTestNode, until, type TestNode } from './harness.ts';

let node: TestNode | undefined;
afterEach(async () => {
  await node?.close();
  node = undefined;
});

test('snapshots of a small database ask for no collection; one that drops tens of MiB asks for one', async () => {
  let collections = 0;
  node = await startTestNode({
    runtime: { ...nodeRuntime(), collectGarbage: () => void collections++ },
    snapshotThresholdEntries: 16,
    snapshotTrailingEntries: 4,
  });
  const db = await node.client('collect');
  await db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)');
  // The collection after start-up is asked for 100 ms after it.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const afterStart = collections;
  for (let i = 0; i < 80; i++) await db.exec('INSERT INTO t (v) VALUES (randomblob(1000))');
  const started = node.node;
  await until('snapshots of the small database', 10_000, () => started.status().snapshots >= 3);
  await new Promise((resolve) => setTimeout(resolve, 300));
  expect(collections).toBe(afterStart);

  const snapshots = started.status().snapshots;
  for (let i = 0; i < 20; i++) await db.exec('INSERT INTO t (v) VALUES (randomblob(1048576))');
  await until('a snapshot of the large database', 30_000, () => started.status().snapshots > snapshots);
  await until('the collection after it', 5_000, () => collections > afterStart);
});

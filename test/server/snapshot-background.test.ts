/**
 * A snapshot is written in the background: while its file write is held up, the node goes on
 * committing entries; stopping waits for the write, and the snapshot is there after a restart.
 */
import { rmSync } from 'node:fs';
import { afterEach, describe, expect, test } from 'vitest';
import type { DurableStorage } from '../../src/runtime.ts';
import { startTestNode, until, type TestNode } from './harness.ts';

/** Real storage whose writes of a snapshot file (written a piece at a time) wait until `release()`. */
function gateSnapshotWrites(storage: DurableStorage): { storage: DurableStorage; held: () => number; release: () => void } {
  let held = 0;
  let open: () => void = () => {};
  let gate = new Promise<void>((resolve) => (open = resolve));
  const openWriter = storage.openAtomicWriter!.bind(storage);
  return {
    storage: {
      read: (name) => storage.read(name),
      append: (name, bytes) => storage.append(name, bytes),
      sync: (name) => storage.sync(name),
      truncate: (name, size) => storage.truncate(name, size),
      remove: (name) => storage.remove(name),
      list: () => storage.list(),
      writeAtomic: (name, bytes) => storage.writeAtomic(name, bytes),
      async openAtomicWriter(name) {
        const writer = await openWriter(name);
        if (name !== 'snapshot') return writer;
        return {
          async write(bytes) {
            held++;
            await gate;
            await writer.write(bytes);
          },
          writeAt: (offset, bytes) => writer.writeAt(offset, bytes),
          commit: () => writer.commit(),
          abort: () => writer.abort(),
        };
      },
    },
    held: () => held,
    release: () => {
      open();
      gate = Promise.resolve();
    },
  };
}

describe('snapshots in the background', () => {
  let open: TestNode | undefined;
  afterEach(async () => {
    await open?.close();
    open = undefined;
  });

  test('entries commit while the snapshot file is being written; the snapshot survives a restart', async () => {
    let gated: ReturnType<typeof gateSnapshotWrites> | undefined;
    const first = await startTestNode({
      snapshotThresholdEntries: 8,
      snapshotTrailingEntries: 4,
      wrapStorage: (storage) => (gated = gateSnapshotWrites(storage)).storage,
    });
    open = first;
    const node = first.node;
    await until('leadership', 10_000, () => node.isLeader());
    const db = await first.client('app');
    await db.exec('CREATE TABLE t (x INTEGER)');
    let written = 0;
    while (gated!.held() === 0) await db.exec('INSERT INTO t VALUES (?)', [++written]);
    // The snapshot's file write is stuck: commits go on regardless.
    const committedBefore = node.status().commitIndex;
    for (let i = 0; i < 20; i++) await db.exec('INSERT INTO t VALUES (?)', [++written]);
    expect(node.status().commitIndex).toBeGreaterThanOrEqual(committedBefore + 20);
    expect(node.status().snapshots).toBe(0);
    expect(node.status().snapshotIndex).toBe(0);

    gated!.release();
    await until('the snapshot to be stored', 10_000, () => node.status().snapshots >= 1);
    const snapshotIndex = node.status().snapshotIndex;
    expect(snapshotIndex).toBeGreaterThan(0);
    await db.close();

    const dir = first.dir;
    await first.close({ keepDir: true });
    open = await startTestNode({ dir, bootstrap: false, snapshotThresholdEntries: 8, snapshotTrailingEntries: 4 });
    await until('leadership after restart', 10_000, () => open!.node.isLeader());
    expect(open.node.status().snapshotIndex).toBeGreaterThanOrEqual(snapshotIndex);
    const again = await open.client('app');
    expect((await again.query('SELECT count(*) AS n, max(x) AS m FROM t')).rows).toEqual([{ n: written, m: written }]);
    await open.close();
    open = undefined;
    rmSync(dir, { recursive: true, force: true });
  });
});

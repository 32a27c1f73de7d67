/**
 * Log retention on real files: with a byte budget for the trailing log, a node keeps no more
 * than that in memory whatever the entry count allows, the segments its snapshots cover are
 * deleted from the data directory, and a restart still finds every row.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { startTestNode, until, type TestNode } from './harness.ts';

const KiB = 1024;
const limits = { logTrailingBytesMax: 256 * KiB, logSegmentBytesMax: 64 * KiB, appendBytesMax: 64 * KiB };
const settings = { snapshotThresholdEntries: 32, limits };

function segments(dir: string): { name: string; bytes: number }[] {
  return readdirSync(dir)
    .filter((name) => name.startsWith('segment-'))
    .sort()
    .map((name) => ({ name, bytes: statSync(join(dir, name)).size }));
}

describe('log retention by bytes', () => {
  let open: TestNode | undefined;
  afterEach(async () => {
    await open?.close();
    open = undefined;
  });

  test('the in-memory log stays within its byte budget and covered segments are deleted', async () => {
    open = await startTestNode(settings);
    const node = open.node;
    await until('leadership', 10_000, () => node.isLeader());
    const db = await open.client('app');
    await db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)');
    const rows = 400;
    let logBytesMax = 0;
    for (let i = 1; i <= rows; i++) {
      await db.exec('INSERT INTO t VALUES (?, randomblob(4096))', [i]);
      logBytesMax = Math.max(logBytesMax, node.status().memory.logBytes);
    }
    // 400 entries of more than 8 KiB (a leaf and an overflow page) were written: over 3 MB, all
    // of which 8192 trailing entries would keep.
    const status = node.status();
    expect(status.lastIndex).toBeGreaterThan(rows);
    expect(status.snapshots).toBeGreaterThanOrEqual(5);
    // What is held: the trailing budget, plus the entries since the last compaction (a threshold
    // of them, and as many again while a snapshot is being written; each under 16 KiB).
    const sinceSnapshotBytesMax = (2 * settings.snapshotThresholdEntries + 2) * 16 * KiB;
    expect(logBytesMax).toBeLessThan(limits.logTrailingBytesMax + sinceSnapshotBytesMax);
    expect(status.memory.logBytes).toBeLessThan(limits.logTrailingBytesMax + sinceSnapshotBytesMax);

    // The snapshot's bytes are on disk, not in memory, once it is stored (read back for a follower).
    await until('no snapshot in flight', 10_000, () => node.status().memory.snapshotBytes === 0);
    expect(node.status().snapshotIndex).toBeGreaterThan(0);

    // On disk: the first segments are gone, and what stays is about what memory keeps.
    const onDisk = segments(open.dir);
    expect(onDisk.map((s) => s.name)).not.toContain('segment-00000000000000000001');
    const diskLogBytes = onDisk.reduce((sum, s) => sum + s.bytes, 0);
    expect(diskLogBytes).toBeLessThan(limits.logTrailingBytesMax + sinceSnapshotBytesMax + 2 * limits.logSegmentBytesMax);
    for (const segment of onDisk) expect(segment.bytes).toBeLessThanOrEqual(limits.logSegmentBytesMax + 16 * KiB);
    await db.close();

    // The snapshot and the kept segments hold everything.
    const dir = open.dir;
    await open.close({ keepDir: true });
    open = await startTestNode({ ...settings, dir, bootstrap: false });
    await until('leadership after restart', 10_000, () => open!.node.isLeader());
    const again = await open.client('app');
    expect((await again.query('SELECT count(*) AS n, sum(length(v)) AS b FROM t')).rows).toEqual([{ n: rows, b: rows * 4096 }]);
  }, 120_000);
});

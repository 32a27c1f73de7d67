/**
 * A node in a Chromium Web Worker (OPFS) reports what it holds (status.memory), and the byte
 * budget of its trailing log holds there as on Node: it follows a Node leader through writes of
 * 4 KiB values far larger than the budget, and keeps no snapshot bytes in memory once stored.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connect } from '../../runtimes/node/client.ts';
import { waitFor } from '../helpers/cluster.ts';
import { chromiumAvailable, MixedCluster } from './mixed-cluster.ts';

const KiB = 1024;
const limits = { logTrailingBytesMax: 256 * KiB, logSegmentBytesMax: 64 * KiB, appendBytesMax: 64 * KiB };
const snapshotThresholdEntries = 32;
const chromium = chromiumAvailable();

describe.skipIf(!chromium)(`memory of a browser node${chromium ? '' : ' (skipped: no /usr/bin/chromium)'}`, () => {
  let cluster: MixedCluster;
  beforeAll(async () => {
    cluster = await MixedCluster.start(['node', 'browser'], { browserNodeOptions: { limits, snapshotThresholdEntries } });
  }, 180_000);
  afterAll(async () => {
    await cluster?.destroy();
  });

  test('status.memory is reported and the log stays within its byte budget', async () => {
    const db = await connect({ servers: cluster.listeningAddresses, database: 'mem', timeoutMs: 30_000 });
    await db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)');
    const rows = 300;
    let logBytesMax = 0;
    for (let i = 1; i <= rows; i++) {
      await db.exec('INSERT INTO t VALUES (?, randomblob(4096))', [i]);
      if (i % 20 === 0) logBytesMax = Math.max(logBytesMax, (await cluster.status(1)).memory.logBytes);
    }
    await db.close();
    await cluster.waitForSameAppliedIndex(60_000);
    const status = await cluster.status(1);
    expect(status.appliedIndex).toBeGreaterThan(rows);
    expect(status.snapshots).toBeGreaterThanOrEqual(3);
    const memory = status.memory;
    // Over 2.4 MB of entries went through this node; it keeps the budget plus the entries since
    // its last compaction (two thresholds at most, each entry under 16 KiB).
    const boundBytes = limits.logTrailingBytesMax + (2 * snapshotThresholdEntries + 2) * 16 * KiB;
    expect(logBytesMax).toBeLessThan(boundBytes);
    expect(memory.logBytes).toBeLessThan(boundBytes);
    expect(memory.databasesBytes).toBeGreaterThan(rows * 4096);
    expect(memory.wasmBytes).toBeGreaterThan(1024 * 1024);
    expect(memory.jsHeapBytes === null || memory.jsHeapBytes > 0).toBe(true);
    await waitFor('no snapshot bytes held', 30_000, async () => ((await cluster.status(1)).memory.snapshotBytes === 0 ? true : undefined));
  }, 180_000);
});

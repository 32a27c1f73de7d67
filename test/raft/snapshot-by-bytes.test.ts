/**
 * A snapshot is due by the bytes of log applied since the last one, not only by their count: a
 * few large entries (a load's 16 MiB parts) used to stay in every node's memory until 1024
 * more entries came. On a real node, a transaction of a few dozen parts is followed by a
 * snapshot and the log it held is compacted down to the trailing budget; the checkpoint of its
 * long WAL waits for that, so that the main file does not grow while the log still holds the parts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { LimitsError, resolveLimits } from '../../src/limits.ts';
import { startTestNode, until, type TestNode } from '../server/harness.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
// The rule itself (bytes since the last snapshot, and half of the databases) is tested on the
// state machine: test/fsm/state-machine.test.ts.
describe('snapshot due by bytes', () => {
  it('the threshold must exceed one largest proposal twice', () => {
    expect(() => resolveLimits({ snapshotLogBytesMax: 16 * MiB })).toThrow(LimitsError);
    expect(() => resolveLimits({ snapshotLogBytesMax: 16 * MiB })).toThrow(/snapshotLogBytesMax \(16777216 bytes\) must be at least 33554432 bytes/);
    expect(resolveLimits({ snapshotLogBytesMax: 32 * MiB }).snapshotLogBytesMax).toBe(32 * MiB);
  });
});

describe('a node after a transaction of many parts', () => {
  let open: TestNode | undefined;
  afterEach(async () => {
    await open?.close();
    open = undefined;
  });

  it('takes a snapshot, compacts the parts down to the trailing budget, and only then checkpoints', async () => {
    // Parts of at most 1 MiB, a snapshot due after 4 MiB of log, 1 MiB of log kept before it.
    const limits = {
      proposalBytesMax: 1 * MiB,
      clientRequestBytesMax: 1 * MiB,
      changeSetBytesMax: 256 * KiB,
      logTrailingBytesMax: 1 * MiB,
      snapshotLogBytesMax: 4 * MiB,
    };
    // What the node logs, with the log bytes it held when it applied each checkpoint.
    const lines: string[] = [];
    let logBytesAtCheckpoint: number[] = [];
    open = await startTestNode({
      limits,
      log: (line) => {
        lines.push(line);
        if (/^checkpointed database app/.test(line)) logBytesAtCheckpoint.push(open!.node.status().memory.logBytes);
      },
    });
    const node = open.node;
    await until('leadership', 10_000, () => node.isLeader());
    const db = await open.client('app');
    await db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)');
    const before = node.status();
    logBytesAtCheckpoint = [];
    const linesBefore = lines.length;
    // One transaction of about 12 MiB of pages: a dozen parts and a commit, far below the
    // 1024 entries that make a snapshot due by count.
    await db.exec('WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1500) INSERT INTO t SELECT n, randomblob(8000) FROM c');
    const written = node.status();
    expect(written.lastIndex - before.lastIndex).toBeGreaterThan(10);
    expect(written.lastIndex - before.lastIndex).toBeLessThan(100);
    await until('a snapshot after the transaction, stored, and the log compacted', 20_000, () => {
      const status = node.status();
      return status.snapshotIndex >= written.lastIndex - 2 && status.memory.snapshotBytes === 0 && status.memory.logBytes <= limits.logTrailingBytesMax + limits.proposalBytesMax;
    });
    expect(node.status().snapshots).toBeGreaterThan(before.snapshots);
    // The WAL of 1500 frames is checkpointed, but only once the snapshot compacted the parts:
    // its copy into the main file never overlaps them in memory.
    await until('the checkpoint of the transaction', 20_000, () => node.status().checkpoints > before.checkpoints);
    const after = lines.slice(linesBefore);
    const snapshotAt = after.findIndex((line) => /^took a snapshot at index/.test(line));
    const checkpointAt = after.findIndex((line) => /^checkpointed database app/.test(line));
    expect(snapshotAt).toBeGreaterThanOrEqual(0);
    expect(checkpointAt).toBeGreaterThan(snapshotAt);
    expect(logBytesAtCheckpoint.length).toBeGreaterThan(0);
    expect(logBytesAtCheckpoint[0]!).toBeLessThanOrEqual(limits.logTrailingBytesMax + limits.proposalBytesMax);
    const rows = await db.queryRaw('SELECT count(*), sum(length(v)) FROM t');
    expect(rows.rows[0]).toEqual([1500, 1500 * 8000]);
  }, 60_000);
});

/**
 * When to snapshot and how much log to keep after it: dqlite's defaults are a snapshot every
 * 1024 applied entries, keeping the 8192 entries before it so that briefly lagging followers
 * catch up from the log instead of receiving a whole snapshot.
 */
export interface CompactionPolicy {
  snapshotThresholdEntries: number;
  trailingEntries: number;
}

export const defaultCompactionPolicy: CompactionPolicy = { snapshotThresholdEntries: 1024, trailingEntries: 8192 };

/** True when `applied` is far enough past the last snapshot to take a new one. */
export function snapshotDue(applied: number, lastSnapshotIndex: number, policy: CompactionPolicy = defaultCompactionPolicy): boolean {
  return applied - lastSnapshotIndex >= policy.snapshotThresholdEntries;
}

/** The index to pass to storage.compact after a snapshot at `snapshotIndex` (0 = nothing to compact). */
export function compactionIndex(snapshotIndex: number, policy: CompactionPolicy = defaultCompactionPolicy): number {
  return Math.max(0, snapshotIndex - policy.trailingEntries);
}

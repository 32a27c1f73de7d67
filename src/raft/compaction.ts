/**
 * When to snapshot and how much log to keep after it: dqlite's defaults are a snapshot every
 * 1024 applied entries, keeping the 8192 entries before it so that briefly lagging followers
 * catch up from the log instead of receiving a whole snapshot. A snapshot is also due once the
 * entries applied since the last one hold `snapshotThresholdBytes` of data, however few they
 * are: a load of hundreds of MiB is a few dozen entries of 16 MiB, which the count alone would
 * keep in memory until 1024 more entries came. The kept entries are also
 * bounded by bytes (`trailingBytesMax`): 8192 entries of 4 KiB pages each would otherwise hold
 * 64 MiB or more in memory per node, whatever the database's size. A follower further behind
 * than what is kept gets a snapshot instead, as it would behind 8192 entries.
 */
export interface CompactionPolicy {
  snapshotThresholdEntries: number;
  /**
   * Data bytes of the entries applied since the last snapshot that make one due (once they are
   * also half of what the databases hold: StateMachine.snapshotDue); undefined: by count only.
   */
  snapshotThresholdBytes?: number;
  trailingEntries: number;
  /** Data bytes of the entries kept before a snapshot; undefined: bounded by count only. */
  trailingBytesMax?: number;
}

export const defaultCompactionPolicy: CompactionPolicy = { snapshotThresholdEntries: 1024, trailingEntries: 8192 };

/**
 * True when `applied` is far enough past the last snapshot, by count, to take a new one. The
 * byte threshold is the state machine's to apply: it counts the data it applied since the last
 * snapshot (StateMachine.snapshotDue).
 */
export function snapshotDue(applied: number, lastSnapshotIndex: number, policy: CompactionPolicy = defaultCompactionPolicy): boolean {
  return applied - lastSnapshotIndex >= policy.snapshotThresholdEntries;
}

/**
 * The index to pass to storage.compact after a snapshot at `snapshotIndex` (0 = nothing to
 * compact): at most `trailingEntries` entries are kept before it, and with `trailingBytesMax`
 * only as many of those as fit in it, counted back from the snapshot by `entryBytes(index)` (the
 * entry's data length, undefined when it is not held). Deterministic: the same log gives the
 * same index on every node.
 */
export function compactionIndex(
  snapshotIndex: number,
  policy: CompactionPolicy = defaultCompactionPolicy,
  entryBytes?: (index: number) => number | undefined,
): number {
  const byCount = Math.max(0, snapshotIndex - policy.trailingEntries);
  const bytesMax = policy.trailingBytesMax;
  if (bytesMax === undefined || entryBytes === undefined) return byCount;
  let kept = 0;
  for (let index = snapshotIndex; index > byCount; index--) {
    const bytes = entryBytes(index);
    // Not held: already compacted below here, so nothing below needs keeping either.
    if (bytes === undefined) return index;
    kept += bytes;
    if (kept > bytesMax) return index;
  }
  return byCount;
}

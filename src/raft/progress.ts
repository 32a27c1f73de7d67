/**
 * What the leader knows about one replica (voter or standby): how far its log matches, what to
 * send next, and the flow-control state (etcd's probe / replicate / snapshot).
 * - probe: one append at a time until we find where the logs match;
 * - replicate: optimistic pipelining, at most `inflightMax` appends and `inflightBytesMax` entry
 *   bytes in flight (one append always goes, however large, so a big entry cannot stall);
 * - snapshot: sending a snapshot in chunks, appends paused until it is installed.
 */
import type { SnapshotMeta } from './types.ts';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** In probe state: an append was sent and not answered since the last heartbeat. */
  probeSent = false;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /**
   * The highest commit index an append sent in this state could tell the replica (its commit,
   * capped at the append's last entry, as the replica caps it): a commit-only append that would
   * tell no more is not sent.
   */
  commitSent = 0;
  /** Last index of each append in flight (replicate state), oldest first. */
  private inflight: number[] = [];
  /** Entry bytes of each append in `inflight`, and their sum. */
  private inflightSizes: number[] = [];
  private inflightBytes = 0;
  /**
   * Snapshot state: the snapshot being sent (its data stays with storage, read a chunk at a time),
   * its data size and how many bytes the follower has confirmed. One chunk is in flight at a time:
   * the next goes when the follower confirmed the last.
   */
  snapshot: SnapshotMeta | undefined;
  snapshotBytes = 0;
  snapshotAckedBytes = 0;
  /** The chunk to send next was not in memory yet (storage answered 'pending'): ask again. */
  snapshotChunkPending = false;
  /** The entries to send next were not in memory (storage threw EntriesPendingError): send when they are (RaftNode.entriesReady). */
  entriesPending = false;
  /** Ticks since the last snapshot chunk was sent, to resend lost chunks. */
  snapshotIdleTicks = 0;

  constructor(
    next: number,
    readonly inflightMax: number,
    readonly inflightBytesMax: number = Number.POSITIVE_INFINITY,
  ) {
    this.next = next;
  }

  becomeProbe(): void {
    if (this.state === 'snapshot' && this.snapshot) {
      this.next = Math.max(this.match + 1, this.snapshot.index + 1);
    } else {
      this.next = this.match + 1;
    }
    this.reset('probe');
  }

  becomeReplicate(): void {
    this.next = this.match + 1;
    this.reset('replicate');
  }

  becomeSnapshot(snapshot: SnapshotMeta, dataBytes: number): void {
    this.reset('snapshot');
    this.snapshot = snapshot;
    this.snapshotBytes = dataBytes;
    this.snapshotAckedBytes = 0;
    this.snapshotIdleTicks = 0;
  }

  private reset(state: ProgressState): void {
    this.state = state;
    this.probeSent = false;
    this.commitSent = 0;
    this.clearInflight();
    this.snapshot = undefined;
    this.snapshotBytes = 0;
    this.snapshotAckedBytes = 0;
    this.snapshotChunkPending = false;
  }

  /** A successful append response up to `index`. Returns true if match moved. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (index > this.match) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    this.freeInflightTo(index);
    return updated;
  }

  /**
   * A rejected append at `rejected`; `matchHint` is the highest index that may match.
   * Returns false for a stale rejection (ignored).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** Whether the leader should hold back appends to this replica. */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflight.length >= this.inflightMax || this.inflightBytes >= this.inflightBytesMax;
      case 'snapshot':
        return true;
    }
  }

  /** Records an append that was just sent, ending at `lastIndex`, of `entryBytes` entry data. */
  sentAppend(lastIndex: number, entryCount: number, entryBytes = 0): void {
    if (this.state === 'replicate') {
      if (entryCount > 0) {
        this.next = lastIndex + 1;
        this.inflight.push(lastIndex);
        this.inflightSizes.push(entryBytes);
        this.inflightBytes += entryBytes;
      }
    } else if (this.state === 'probe') {
      this.probeSent = true;
    }
  }

  private freeInflightTo(index: number): void {
    let n = 0;
    while (n < this.inflight.length && this.inflight[n]! <= index) n++;
    if (n > 0) this.dropOldest(n);
  }

  private dropOldest(n: number): void {
    for (let i = 0; i < n; i++) this.inflightBytes -= this.inflightSizes[i]!;
    this.inflight = this.inflight.slice(n);
    this.inflightSizes = this.inflightSizes.slice(n);
  }

  private clearInflight(): void {
    this.inflight = [];
    this.inflightSizes = [];
    this.inflightBytes = 0;
  }

  /** A heartbeat round without answer: let one more append through (the last may be lost). */
  freeOneInflight(): void {
    if (this.inflight.length > 0) this.dropOldest(1);
  }

  inflightCount(): number {
    return this.inflight.length;
  }

  /** Entry bytes of the appends in flight. */
  inflightByteCount(): number {
    return this.inflightBytes;
  }
}

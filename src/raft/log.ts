/**
 * The Raft log as the core sees it: what the application has persisted (RaftStorage) plus the
 * unstable tail (entries and possibly a snapshot not yet handed over / persisted), the commit and
 * applied indexes, and the configuration history that follows the log (see membership.ts).
 */
import { assert } from './errors.ts';
import { decodeConfChange, decodeConfiguration } from './codec.ts';
import { applyConfChange, ConfigurationHistory } from './membership.ts';
import type { RaftStorage } from './storage.ts';
import { limitEntriesBytes } from './storage.ts';
import type { Configuration, Entry, Snapshot, SnapshotMeta } from './types.ts';
import { EntryType } from './types.ts';

/** Entries read from storage per batch when rebuilding the configuration history at start. */
const SCAN_BATCH_BYTES = 4 * 1024 * 1024;

export class RaftLog {
  readonly storage: RaftStorage;
  /** Snapshot received from the leader, not yet persisted by the application. */
  unstableSnapshot: Snapshot | undefined;
  /** Entries not yet persisted; unstableEntries[i].index === unstableOffset + i. */
  unstableEntries: Entry[] = [];
  unstableOffset: number;
  /**
   * With asynchronous storage writes: the last index handed to the application to persist
   * (entries up to here are being written or written; the rest still has to be handed over).
   */
  handedOver: number;
  committed: number;
  applied: number;
  readonly configurations: ConfigurationHistory;
  /** Set when the configuration in effect changed since the last takeConfigurationChanged(). */
  private configurationChanged = true;

  constructor(storage: RaftStorage, applied: number | undefined) {
    this.storage = storage;
    const { hardState, configuration } = storage.initialState();
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstableOffset = last + 1;
    this.handedOver = last;
    // The configuration given is the snapshot's; entries between a trailing compaction point
    // and the snapshot are already reflected in it.
    const snapshotIndex = Math.max(first - 1, storage.snapshot().meta.index);
    this.configurations = new ConfigurationHistory(snapshotIndex, configuration);
    for (let lo = snapshotIndex + 1; lo <= last; ) {
      const batch = storage.entries(lo, last + 1, SCAN_BATCH_BYTES);
      for (const e of batch) this.trackConfiguration(e);
      lo += batch.length;
    }
    this.committed = Math.min(Math.max(hardState.commit, snapshotIndex), last);
    this.applied = Math.max(first - 1, Math.min(applied ?? snapshotIndex, this.committed));
  }

  firstIndex(): number {
    if (this.unstableSnapshot) return this.unstableSnapshot.meta.index + 1;
    return this.storage.firstIndex();
  }

  lastIndex(): number {
    if (this.unstableEntries.length > 0) return this.unstableOffset + this.unstableEntries.length - 1;
    if (this.unstableSnapshot) return this.unstableSnapshot.meta.index;
    return this.storage.lastIndex();
  }

  /** The last index the application has persisted (handed over in a Ready and advanced). */
  stableLastIndex(): number {
    if (this.unstableEntries.length > 0) return this.unstableOffset - 1;
    return this.lastIndex();
  }

  /** Term of entry `index`, or undefined if compacted or beyond the end. */
  term(index: number): number | undefined {
    const dummy = this.firstIndex() - 1;
    if (index < dummy || index > this.lastIndex()) return undefined;
    if (index >= this.unstableOffset) return this.unstableEntries[index - this.unstableOffset]?.term;
    if (this.unstableSnapshot) {
      return index === this.unstableSnapshot.meta.index ? this.unstableSnapshot.meta.term : undefined;
    }
    return this.storage.term(index);
  }

  lastTerm(): number {
    return this.term(this.lastIndex()) ?? 0;
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft's "at least as up-to-date" comparison of a candidate's last entry against ours. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** Entries [lo, hi), at most maxBytes (but at least one). Undefined if lo is compacted. */
  slice(lo: number, hi: number, maxBytes?: number): Entry[] | undefined {
    if (lo < this.firstIndex()) return undefined;
    hi = Math.min(hi, this.lastIndex() + 1);
    if (lo >= hi) return [];
    let out: Entry[] = [];
    if (lo < this.unstableOffset) {
      out = this.storage.entries(lo, Math.min(hi, this.unstableOffset), maxBytes);
      if (out.length < Math.min(hi, this.unstableOffset) - lo) return out;
    }
    if (hi > this.unstableOffset) {
      const from = Math.max(lo, this.unstableOffset) - this.unstableOffset;
      const tail = this.unstableEntries.slice(from, hi - this.unstableOffset);
      out = out.length === 0 ? tail : out.concat(tail);
    }
    return limitEntriesBytes(out, maxBytes);
  }

  /**
   * The first index in `entries` whose term differs from ours (or that we lack), 0 if all match.
   */
  findConflict(entries: Entry[]): number {
    for (const e of entries) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * The largest index <= `index` whose term is <= `term` (fast backtracking: where a log with a
   * last entry of term `term` can possibly match ours).
   */
  findConflictByTerm(index: number, term: number): number {
    let i = Math.min(index, this.lastIndex());
    for (; i > 0; i--) {
      const t = this.term(i);
      if (t === undefined || t <= term) break;
    }
    return i;
  }

  /** Appends entries, dropping any unstable/stored suffix from entries[0].index on. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const after = entries[0]!.index;
    assert(after > this.committed, `append at ${after} would overwrite committed index ${this.committed}`);
    assert(after <= this.lastIndex() + 1, `append at ${after} leaves a gap after ${this.lastIndex()}`);
    if (after <= this.lastIndex()) {
      if (this.configurations.truncateFrom(after)) this.configurationChanged = true;
    }
    // Entries replaced here must be handed over (written) again.
    this.handedOver = Math.min(this.handedOver, after - 1);
    if (after === this.unstableOffset + this.unstableEntries.length) {
      for (const e of entries) this.unstableEntries.push(e);
    } else if (after <= this.unstableOffset) {
      this.unstableOffset = after;
      this.unstableEntries = entries.slice();
    } else {
      this.unstableEntries = this.unstableEntries.slice(0, after - this.unstableOffset).concat(entries);
    }
    for (const e of entries) this.trackConfiguration(e);
  }

  private trackConfiguration(e: Entry): void {
    let next: Configuration | undefined;
    if (e.type === EntryType.ConfChange) {
      try {
        const result = applyConfChange(this.configurations.current(), decodeConfChange(e.data));
        if (!(result instanceof Error)) next = result;
      } catch {
        // Undecodable change: a no-op on every node alike, since all see the same bytes.
      }
    } else if (e.type === EntryType.Configuration) {
      try {
        next = decodeConfiguration(e.data);
      } catch {
        // Same as above.
      }
    }
    if (next) {
      this.configurations.push(e.index, next);
      this.configurationChanged = true;
    }
  }

  takeConfigurationChanged(): boolean {
    const c = this.configurationChanged;
    this.configurationChanged = false;
    return c;
  }

  commitTo(index: number): boolean {
    if (index <= this.committed) return false;
    assert(index <= this.lastIndex(), `commit ${index} is beyond the last index ${this.lastIndex()}`);
    this.committed = index;
    return true;
  }

  /** Entries to hand over for applying: (from, upTo], at most maxBytes (upTo: default the commit index). */
  committedEntriesAfter(from: number, maxBytes: number, upTo = this.committed): Entry[] {
    if (this.unstableSnapshot) return [];
    const lo = Math.max(from + 1, this.firstIndex());
    if (lo > upTo) return [];
    return this.slice(lo, upTo + 1, maxBytes) ?? [];
  }

  /** Unstable entries not yet handed to the application to persist (asynchronous writes). */
  entriesToHandOver(): Entry[] {
    const from = Math.max(this.handedOver + 1, this.unstableOffset) - this.unstableOffset;
    return this.unstableEntries.slice(from);
  }

  /** The last committed index that may be applied: with asynchronous writes, only what this node persisted. */
  applicableIndex(persistedOnly: boolean): number {
    return persistedOnly ? Math.min(this.committed, this.stableLastIndex()) : this.committed;
  }

  /** The application persisted entries up to (index, term). */
  stableTo(index: number, term: number): void {
    if (index < this.unstableOffset) return;
    const t = this.unstableEntries[index - this.unstableOffset]?.term;
    // A different term means the entry was replaced after being handed over: keep the new one.
    if (t !== term) return;
    this.unstableEntries = this.unstableEntries.slice(index + 1 - this.unstableOffset);
    this.unstableOffset = index + 1;
  }

  stableSnapshotTo(index: number): void {
    if (this.unstableSnapshot && this.unstableSnapshot.meta.index === index) this.unstableSnapshot = undefined;
  }

  /** Replaces the log by a snapshot from the leader. */
  restore(s: Snapshot): void {
    this.committed = s.meta.index;
    this.unstableSnapshot = s;
    this.unstableOffset = s.meta.index + 1;
    this.unstableEntries = [];
    this.handedOver = s.meta.index;
    this.configurations.reset(s.meta.index, s.meta.configuration);
    this.configurationChanged = true;
  }

  /** The latest snapshot (its data may be released: see snapshotChunk). */
  snapshot(): Snapshot {
    return this.unstableSnapshot ?? this.storage.snapshot();
  }

  /** The snapshot the leader sends to a follower that needs compacted entries: its metadata and data size (the data is read a chunk at a time). */
  snapshotToSend(): { meta: SnapshotMeta; dataBytes: number } {
    if (this.unstableSnapshot) return { meta: this.unstableSnapshot.meta, dataBytes: this.unstableSnapshot.data.length };
    const snapshot = this.storage.snapshot();
    return { meta: snapshot.meta, dataBytes: this.storage.snapshotDataBytes ? this.storage.snapshotDataBytes() : snapshot.data.length };
  }

  /** No follower is being sent a snapshot (see RaftStorage.dropSnapshotChunks). */
  dropSnapshotChunks(): void {
    this.storage.dropSnapshotChunks?.();
  }

  /** Bytes [offset, offset + length) of the data of the snapshot at `index` (see RaftStorage.snapshotChunk). */
  snapshotChunk(index: number, offset: number, length: number): Uint8Array | 'pending' | 'unavailable' {
    const unstable = this.unstableSnapshot;
    if (unstable && unstable.meta.index === index) return unstable.data.subarray(offset, offset + length);
    if (this.storage.snapshotChunk) return this.storage.snapshotChunk(index, offset, length);
    const snapshot = this.storage.snapshot();
    return snapshot.meta.index === index ? snapshot.data.subarray(offset, offset + length) : 'unavailable';
  }
}

/**
 * The storage the core reads from, and an in-memory implementation. The core never writes to
 * storage: the application persists what `Ready` hands it (entries, hard state, snapshots),
 * then calls `advance`. Durable file-backed implementations belong to the node.
 */
import { CompactedError, RaftError, UnavailableError } from './errors.ts';
import type { Configuration, Entry, HardState, Snapshot } from './types.ts';

export interface RaftStorage {
  /**
   * Persisted hard state, and the configuration stored with the latest snapshot (in effect at
   * snapshot().meta.index; the core replays ConfChange entries after it).
   */
  initialState(): { hardState: HardState; configuration: Configuration };
  /**
   * Entries [lo, hi). With maxBytes, stops before the entry that would exceed it but returns at
   * least one entry. Throws CompactedError if lo < firstIndex(), UnavailableError if hi > lastIndex()+1.
   */
  entries(lo: number, hi: number, maxBytes?: number): Entry[];
  /** Term of entry `index`, valid for firstIndex()-1 .. lastIndex(); throws otherwise. */
  term(index: number): number;
  firstIndex(): number;
  lastIndex(): number;
  /** The latest snapshot (index 0 and empty data when there is none). */
  snapshot(): Snapshot;
  /**
   * The latest snapshot with its data, to send to a follower; undefined while its data is not in
   * memory (the application keeps it on disk and reads it back when asked: the core tries again
   * on the follower's next heartbeat response). Without this method, `snapshot()` is sent.
   */
  snapshotToSend?(): Snapshot | undefined;
}

/** Bytes an entry counts for in size limits: its data plus a fixed header estimate. */
export function entrySizeBytes(entry: Entry): number {
  return entry.data.length + 32;
}

/** Bytes counted for a list of entries (see entrySizeBytes). */
export function limitEntriesBytes(entries: Entry[], maxBytes: number | undefined): Entry[] {
  if (maxBytes === undefined || entries.length === 0) return entries;
  let total = entrySizeBytes(entries[0]!);
  let n = 1;
  while (n < entries.length) {
    total += entrySizeBytes(entries[n]!);
    if (total > maxBytes) break;
    n++;
  }
  return n === entries.length ? entries : entries.slice(0, n);
}

function emptyConfiguration(): Configuration {
  return { members: [] };
}

export function cloneConfiguration(c: Configuration): Configuration {
  return { members: c.members.map((m) => ({ id: m.id, address: m.address, role: m.role })) };
}

/** Storage in memory: the simulator's "disk" and a model for durable implementations. */
export class MemoryStorage implements RaftStorage {
  private hard: HardState = { term: 0, vote: 0, commit: 0 };
  private snap: Snapshot = { meta: { index: 0, term: 0, configuration: emptyConfiguration() }, data: new Uint8Array(0) };
  /** ents[0] is a dummy holding the snapshot's index and term. */
  private ents: Entry[] = [{ index: 0, term: 0, type: 1, data: new Uint8Array(0) }];
  /** Data bytes of the entries held (the dummy holds none): what the retained log costs in memory. */
  private heldBytes = 0;
  /** False while the snapshot's data was released (it is durable elsewhere). */
  private snapDataHeld = true;
  /** Set when a snapshot was wanted for sending while its data was released. */
  private snapDataWanted = false;

  initialState(): { hardState: HardState; configuration: Configuration } {
    return { hardState: { ...this.hard }, configuration: cloneConfiguration(this.snap.meta.configuration) };
  }

  hardState(): HardState {
    return { ...this.hard };
  }

  setHardState(hs: HardState): void {
    this.hard = { term: hs.term, vote: hs.vote, commit: hs.commit };
  }

  firstIndex(): number {
    return this.ents[0]!.index + 1;
  }

  lastIndex(): number {
    return this.ents[0]!.index + this.ents.length - 1;
  }

  term(index: number): number {
    const offset = this.ents[0]!.index;
    if (index < offset) throw new CompactedError(index, offset + 1);
    if (index > this.lastIndex()) throw new UnavailableError(index, this.lastIndex());
    return this.ents[index - offset]!.term;
  }

  entries(lo: number, hi: number, maxBytes?: number): Entry[] {
    const offset = this.ents[0]!.index;
    if (lo <= offset) throw new CompactedError(lo, offset + 1);
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1, this.lastIndex());
    if (lo >= hi) return [];
    return limitEntriesBytes(this.ents.slice(lo - offset, hi - offset), maxBytes);
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  snapshotToSend(): Snapshot | undefined {
    if (this.snapDataHeld) return this.snap;
    this.snapDataWanted = true;
    return undefined;
  }

  /**
   * Drops the snapshot's data from memory, keeping its metadata: the application stored it
   * durably and gives it back (holdSnapshotData) when snapshotToSend asks for it.
   */
  releaseSnapshotData(): void {
    if (this.snap.meta.index === 0 || !this.snapDataHeld) return;
    this.snap = { meta: this.snap.meta, data: new Uint8Array(0) };
    this.snapDataHeld = false;
  }

  /** Whether a follower asked for the released snapshot since the last call (then read it back). */
  takeSnapshotDataWanted(): boolean {
    const wanted = this.snapDataWanted;
    this.snapDataWanted = false;
    return wanted;
  }

  /** Gives back the released data of the snapshot at `index`; false (nothing changes) if the snapshot is another by now. */
  holdSnapshotData(index: number, data: Uint8Array): boolean {
    if (this.snapDataHeld || index !== this.snap.meta.index) return false;
    this.snap = { meta: this.snap.meta, data };
    this.snapDataHeld = true;
    return true;
  }

  /** Data bytes of the entries this storage holds (see entrySizeBytes for what a limit counts). */
  entriesBytes(): number {
    return this.heldBytes;
  }

  /** Data bytes of entry `index`, undefined when it is not held (compacted or beyond the end). */
  entryBytes(index: number): number | undefined {
    const offset = this.ents[0]!.index;
    if (index <= offset || index > this.lastIndex()) return undefined;
    return this.ents[index - offset]!.data.length;
  }

  /** Appends entries, first dropping any existing suffix from entries[0].index on. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    let from = entries;
    if (from[0]!.index < first) {
      // Already covered by the snapshot: those entries are committed and identical.
      from = from.filter((e) => e.index >= first);
      if (from.length === 0) return;
    }
    const at = from[0]!.index;
    if (at > this.lastIndex() + 1) {
      throw new RaftError('INVALID_ARGUMENT', `append at index ${at} would leave a gap after last index ${this.lastIndex()}`);
    }
    const offset = this.ents[0]!.index;
    for (let i = at - offset; i < this.ents.length; i++) this.heldBytes -= this.ents[i]!.data.length;
    this.ents.length = at - offset;
    for (const e of from) {
      this.ents.push(e);
      this.heldBytes += e.data.length;
    }
  }

  /** Replaces the whole log by a snapshot received from the leader. */
  applySnapshot(s: Snapshot): void {
    if (s.meta.index <= this.snap.meta.index) {
      throw new RaftError('SNAPSHOT_OUT_OF_DATE', `snapshot at index ${s.meta.index} is not newer than the stored one at ${this.snap.meta.index}`);
    }
    this.snap = { meta: { index: s.meta.index, term: s.meta.term, configuration: cloneConfiguration(s.meta.configuration) }, data: s.data };
    this.snapDataHeld = true;
    this.ents = [{ index: s.meta.index, term: s.meta.term, type: 1, data: new Uint8Array(0) }];
    this.heldBytes = 0;
    if (this.hard.commit < s.meta.index) this.hard = { ...this.hard, commit: s.meta.index };
  }

  /**
   * Records a snapshot the application took of its state machine at applied index `index`,
   * with the configuration in effect at that index. Does not discard entries (see compact).
   */
  createSnapshot(index: number, configuration: Configuration, data: Uint8Array): Snapshot {
    if (index <= this.snap.meta.index) {
      throw new RaftError('SNAPSHOT_OUT_OF_DATE', `snapshot at index ${index} is not newer than the stored one at ${this.snap.meta.index}`);
    }
    if (index > this.lastIndex()) throw new UnavailableError(index, this.lastIndex());
    this.snap = { meta: { index, term: this.term(index), configuration: cloneConfiguration(configuration) }, data };
    this.snapDataHeld = true;
    return this.snap;
  }

  /** Discards entries up to and including `index`, which must be covered by the snapshot. */
  compact(index: number): void {
    const offset = this.ents[0]!.index;
    if (index <= offset) return;
    if (index > this.snap.meta.index) {
      throw new RaftError('INVALID_ARGUMENT', `cannot compact to ${index}: the snapshot only covers up to ${this.snap.meta.index}`);
    }
    for (let i = 1; i < index - offset && i < this.ents.length; i++) this.heldBytes -= this.ents[i]!.data.length;
    const keep = this.ents.slice(index - offset);
    this.heldBytes -= keep[0]!.data.length;
    keep[0] = { index, term: keep[0]!.term, type: 1, data: new Uint8Array(0) };
    this.ents = keep;
  }
}

/**
 * The storage the core reads from, and an in-memory implementation. The core never writes to
 * storage: the application persists what `Ready` hands it (entries, hard state, snapshots),
 * then calls `advance`. Durable file-backed implementations belong to the node.
 */
import { CompactedError, EntriesPendingError, RaftError, UnavailableError } from './errors.ts';
import type { Configuration, Entry, HardState, Snapshot } from './types.ts';

export interface RaftStorage {
  /**
   * Persisted hard state, and the configuration stored with the latest snapshot (in effect at
   * snapshot().meta.index; the core replays ConfChange entries after it).
   */
  initialState(): { hardState: HardState; configuration: Configuration };
  /**
   * Entries [lo, hi). With maxBytes, stops before the entry that would exceed it but returns at
   * least one entry; may return fewer than asked for where the entries after are not in memory.
   * Throws CompactedError if lo < firstIndex(), UnavailableError if hi > lastIndex()+1, and
   * EntriesPendingError while entry `lo` is durable but not in memory (the core asks again once
   * told it is: RaftNode.entriesReady).
   */
  entries(lo: number, hi: number, maxBytes?: number): Entry[];
  /** Term of entry `index`, valid for firstIndex()-1 .. lastIndex(); throws otherwise. */
  term(index: number): number;
  firstIndex(): number;
  lastIndex(): number;
  /** The latest snapshot (index 0 and empty data when there is none). */
  snapshot(): Snapshot;
  /** Data bytes of the latest snapshot, also while its data is not in memory. Without this method, `snapshot().data.length`. */
  snapshotDataBytes?(): number;
  /**
   * Bytes [offset, offset + length) of the data of the snapshot at `index`, to send to a follower
   * as one chunk: the bytes; 'pending' while they are not in memory (the application reads them
   * from its copy and then calls `RaftNode.snapshotChunksReady`; the core also asks again on every
   * tick); 'unavailable' when that snapshot cannot be read any more (a newer one replaced it: the
   * core starts over with the latest). Without this method, chunks are cut from `snapshot().data`.
   */
  snapshotChunk?(index: number, offset: number, length: number): Uint8Array | 'pending' | 'unavailable';
  /**
   * No follower is being sent a snapshot: chunks read for the core and not taken (a chunk sent
   * again while the follower was installing, then confirmed) will not be asked for.
   */
  dropSnapshotChunks?(): void;
}

/**
 * Entries the core asked for while they were not in memory (MemoryStorage.takeEntriesWanted):
 * [lo, hi), at most `bytesMax` of them (at least one), all applied and durable.
 */
export interface EntriesRequest {
  lo: number;
  hi: number;
  bytesMax: number | undefined;
}

/** A chunk of a snapshot's data the core asked for while it was not in memory (MemoryStorage.takeSnapshotChunksWanted). */
export interface SnapshotChunkRequest {
  index: number;
  offset: number;
  length: number;
}

/**
 * Chunks read for the core and not yet taken, at most: enough for a few followers being sent a
 * snapshot at once (the core takes each as soon as it is told it is there).
 */
const SNAPSHOT_CHUNKS_HELD_MAX = 8;

function chunkKey(index: number, offset: number, length: number): string {
  return `${index}/${offset}/${length}`;
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

const EMPTY = new Uint8Array(0);

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
  /**
   * ents[0] is a dummy holding the snapshot's index and term. The first releasedSizes.length
   * entries after it were released (releaseAppliedEntries): their index, term and type stay, their
   * data is empty here and durable elsewhere; releasedSizes holds the data bytes each had.
   */
  private ents: Entry[] = [{ index: 0, term: 0, type: 1, data: new Uint8Array(0) }];
  private releasedSizes: number[] = [];
  /** Data bytes of the entries held (the dummy and released entries hold none): what the retained log costs in memory. */
  private heldBytes = 0;
  /** Released entries the application read back last (holdReadEntries), until the core takes them. */
  private readonly readBack = new Map<number, Entry>();
  private readBackBytes = 0;
  /** Entries asked for while released, not yet taken by the application, by their first index. */
  private readonly entriesWanted = new Map<number, EntriesRequest>();
  /** Requests the application took and has not answered (holdReadEntries): not asked for again meanwhile. */
  private readonly entriesRequested = new Map<number, EntriesRequest>();
  /** Data bytes of the snapshot, also while they are released. */
  private snapDataBytes = 0;
  /** False while the snapshot's data was released (it is durable elsewhere). */
  private snapDataHeld = true;
  /**
   * The snapshot before the latest, while its data was in memory when the latest replaced it: a
   * follower being sent it can finish (released with the latest's data).
   */
  private previousSnap: Snapshot | undefined;
  /** Chunks asked for while not in memory, not yet taken by the application (insertion order). */
  private readonly chunksWanted = new Map<string, SnapshotChunkRequest>();
  /** Chunks the application read (or found unavailable), until the core takes them. */
  private readonly chunksHeld = new Map<string, { request: SnapshotChunkRequest; data: Uint8Array | 'unavailable' }>();
  private chunksHeldBytes = 0;
  /** Chunks read for the core and dropped untaken, for the application to reuse their memory. */
  private chunksDropped: Uint8Array[] = [];

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
    const releasedLast = offset + this.releasedSizes.length;
    if (lo > releasedLast) return limitEntriesBytes(this.ents.slice(lo - offset, hi - offset), maxBytes);
    const out: Entry[] = [];
    let next = lo;
    for (; next < hi && next <= releasedLast; next++) {
      const entry = this.readBack.get(next);
      if (entry === undefined) break;
      out.push(entry);
    }
    if (out.length === 0) {
      const wantedHi = Math.min(hi, releasedLast + 1);
      // Asked again while being read (a heartbeat's answer): the read under way answers both.
      let requested = false;
      for (const r of this.entriesRequested.values()) if (lo >= r.lo && lo < r.hi) requested = true;
      if (!requested) this.entriesWanted.set(lo, { lo, hi: wantedHi, bytesMax: maxBytes });
      throw new EntriesPendingError(lo, wantedHi);
    }
    if (next > releasedLast && next < hi) {
      // One by one: the held run can be longer than a spread may pass as arguments.
      for (let i = next - offset; i < hi - offset; i++) out.push(this.ents[i]!);
    }
    const given = limitEntriesBytes(out, maxBytes);
    // Taken once: the core sends them and asks for what follows.
    for (const entry of given) {
      if (entry.index > releasedLast) break;
      this.readBack.delete(entry.index);
      this.readBackBytes -= entry.data.length;
    }
    return given;
  }

  /** The first index whose entry is in memory (released entries before it are durable only). */
  firstHeldIndex(): number {
    return this.ents[0]!.index + this.releasedSizes.length + 1;
  }

  /**
   * Drops from memory the data of the oldest entries up to `applied` while the entries held
   * exceed `heldBytesMax` data bytes: they are durable in the application's log, which reads them
   * back when the core asks for them (takeEntriesWanted). Returns the data bytes dropped.
   */
  releaseAppliedEntries(applied: number, heldBytesMax: number): number {
    const offset = this.ents[0]!.index;
    const last = Math.min(applied, this.lastIndex());
    let dropped = 0;
    for (let index = offset + this.releasedSizes.length + 1; index <= last && this.heldBytes > heldBytesMax; index++) {
      const entry = this.ents[index - offset]!;
      this.ents[index - offset] = { index: entry.index, term: entry.term, type: entry.type, data: EMPTY };
      this.releasedSizes.push(entry.data.length);
      this.heldBytes -= entry.data.length;
      dropped += entry.data.length;
    }
    return dropped;
  }

  /** The released entries the core asked for since the last call: read them and give them with holdReadEntries. */
  takeEntriesWanted(): EntriesRequest[] {
    const wanted = [...this.entriesWanted.values()];
    this.entriesWanted.clear();
    for (const request of wanted) this.entriesRequested.set(request.lo, request);
    return wanted;
  }

  /**
   * Answers a request taken with takeEntriesWanted: gives the core released entries read back
   * from the durable log (then call RaftNode.entriesReady), or 'unavailable' when they could not
   * be read (the core asks again). They replace what was read back before and not taken: what is
   * held stays one read's worth, whoever asked. An entry no longer released (compacted meanwhile)
   * is ignored; one that differs from what was released is refused.
   */
  holdReadEntries(request: EntriesRequest, entries: readonly Entry[] | 'unavailable'): void {
    this.entriesRequested.delete(request.lo);
    if (entries === 'unavailable') return;
    this.readBack.clear();
    this.readBackBytes = 0;
    const offset = this.ents[0]!.index;
    const releasedLast = offset + this.releasedSizes.length;
    for (const entry of entries) {
      if (entry.index <= offset || entry.index > releasedLast) continue;
      const kept = this.ents[entry.index - offset]!;
      const bytes = this.releasedSizes[entry.index - offset - 1]!;
      if (kept.term !== entry.term || kept.type !== entry.type || bytes !== entry.data.length) {
        throw new RaftError('INVALID_ARGUMENT', `entry ${entry.index} read back (term ${entry.term}, ${entry.data.length} bytes) is not the one released (term ${kept.term}, ${bytes} bytes)`);
      }
      const before = this.readBack.get(entry.index);
      if (before) this.readBackBytes -= before.data.length;
      this.readBack.set(entry.index, entry);
      this.readBackBytes += entry.data.length;
    }
  }

  /** Drops the entries read back and not taken, and the requests (the node stopped leading). */
  dropReadEntries(): void {
    this.readBack.clear();
    this.readBackBytes = 0;
    this.entriesWanted.clear();
    this.entriesRequested.clear();
  }

  private dropReadEntriesThrough(index: number): void {
    for (const [at, entry] of this.readBack) {
      if (at > index) continue;
      this.readBack.delete(at);
      this.readBackBytes -= entry.data.length;
    }
    for (const at of this.entriesWanted.keys()) if (at <= index) this.entriesWanted.delete(at);
    for (const at of this.entriesRequested.keys()) if (at <= index) this.entriesRequested.delete(at);
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  snapshotDataBytes(): number {
    return this.snapDataBytes;
  }

  snapshotChunk(index: number, offset: number, length: number): Uint8Array | 'pending' | 'unavailable' {
    if (this.snapDataHeld && index === this.snap.meta.index) return this.snap.data.subarray(offset, offset + length);
    if (this.previousSnap && index === this.previousSnap.meta.index) return this.previousSnap.data.subarray(offset, offset + length);
    const key = chunkKey(index, offset, length);
    const held = this.chunksHeld.get(key);
    if (held !== undefined) {
      this.chunksHeld.delete(key);
      if (held.data !== 'unavailable') this.chunksHeldBytes -= held.data.length;
      // Chunks of this snapshot before this one, not taken: read again for a follower that had
      // confirmed them meanwhile. One still wanted (another follower further behind) is read again.
      for (const [other, { request }] of this.chunksHeld) if (request.index === index && request.offset < offset) this.dropHeldChunk(other);
      return held.data;
    }
    // Only the application reads a released snapshot back; a snapshot whose data this storage
    // held and dropped (replaced by a newer one) is gone.
    if (this.snapDataHeld || index > this.snap.meta.index) return 'unavailable';
    this.chunksWanted.set(key, { index, offset, length });
    return 'pending';
  }

  /**
   * Drops the snapshot's data from memory, keeping its metadata: the application stored it
   * durably and reads chunks of it back when the core asks for them (takeSnapshotChunksWanted).
   */
  releaseSnapshotData(): void {
    this.previousSnap = undefined;
    if (this.snap.meta.index === 0 || !this.snapDataHeld) return;
    this.snap = { meta: this.snap.meta, data: new Uint8Array(0) };
    this.snapDataHeld = false;
  }

  /** The chunks the core asked for, while the data was released, since the last call: read them and give them with holdSnapshotChunk. */
  takeSnapshotChunksWanted(): SnapshotChunkRequest[] {
    const wanted = [...this.chunksWanted.values()];
    this.chunksWanted.clear();
    return wanted;
  }

  /**
   * Gives the core a chunk it asked for (then call RaftNode.snapshotChunksReady), or says that
   * its snapshot cannot be read any more. Holds at most a few chunks: the oldest goes first.
   */
  holdSnapshotChunk(request: SnapshotChunkRequest, data: Uint8Array | 'unavailable'): void {
    if (data !== 'unavailable' && data.length !== request.length) {
      throw new RaftError('INVALID_ARGUMENT', `chunk at ${request.offset} of the snapshot at index ${request.index} has ${data.length} bytes, not ${request.length}`);
    }
    const key = chunkKey(request.index, request.offset, request.length);
    this.dropHeldChunk(key);
    this.chunksHeld.set(key, { request, data });
    if (data !== 'unavailable') this.chunksHeldBytes += data.length;
    while (this.chunksHeld.size > SNAPSHOT_CHUNKS_HELD_MAX) this.dropHeldChunk(this.chunksHeld.keys().next().value!);
  }

  /** Drops the chunks read and not taken (the node stopped leading: nobody will ask for them). */
  dropSnapshotChunks(): void {
    for (const key of [...this.chunksHeld.keys()]) this.dropHeldChunk(key);
    this.chunksWanted.clear();
  }

  /** The chunks read for the core (holdSnapshotChunk) that it will not take, since the last call. */
  takeDroppedSnapshotChunks(): Uint8Array[] {
    if (this.chunksDropped.length === 0) return [];
    const dropped = this.chunksDropped;
    this.chunksDropped = [];
    return dropped;
  }

  /** Bytes of snapshot data held in memory: the snapshot's (unless released), the previous one's, and chunks read for the core. */
  snapshotHeldBytes(): number {
    return this.snap.data.length + (this.previousSnap?.data.length ?? 0) + this.chunksHeldBytes;
  }

  private dropHeldChunk(key: string): void {
    const held = this.chunksHeld.get(key);
    if (held === undefined) return;
    this.chunksHeld.delete(key);
    if (held.data === 'unavailable') return;
    this.chunksHeldBytes -= held.data.length;
    this.chunksDropped.push(held.data);
  }

  /** A new snapshot replaces the latest: keep the latest's data (when held) for followers being sent it. */
  private replaceSnapshot(next: Snapshot): void {
    this.previousSnap = this.snapDataHeld && this.snap.meta.index > 0 ? this.snap : undefined;
    this.snap = next;
    this.snapDataBytes = next.data.length;
    this.snapDataHeld = true;
  }

  /** Data bytes of the entries this storage holds in memory, read-back ones included (see entrySizeBytes for what a limit counts). */
  entriesBytes(): number {
    return this.heldBytes + this.readBackBytes;
  }

  /** Data bytes of entry `index` (also while released), undefined when it is not kept (compacted or beyond the end). */
  entryBytes(index: number): number | undefined {
    const offset = this.ents[0]!.index;
    if (index <= offset || index > this.lastIndex()) return undefined;
    if (index - offset <= this.releasedSizes.length) return this.releasedSizes[index - offset - 1]!;
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
    if (at <= offset + this.releasedSizes.length) {
      throw new RaftError('INVALID_ARGUMENT', `append at index ${at} would replace released entries up to ${offset + this.releasedSizes.length}, which were applied`);
    }
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
    this.replaceSnapshot({ meta: { index: s.meta.index, term: s.meta.term, configuration: cloneConfiguration(s.meta.configuration) }, data: s.data });
    this.ents = [{ index: s.meta.index, term: s.meta.term, type: 1, data: new Uint8Array(0) }];
    this.releasedSizes = [];
    this.heldBytes = 0;
    this.dropReadEntries();
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
    this.replaceSnapshot({ meta: { index, term: this.term(index), configuration: cloneConfiguration(configuration) }, data });
    return this.snap;
  }

  /**
   * Records a snapshot the application took at applied index `index` and stored durably without
   * holding its `dataBytes` bytes of data (as createSnapshot, then releaseSnapshotData): the chunks
   * the core asks for are read back (takeSnapshotChunksWanted).
   */
  createStoredSnapshot(index: number, configuration: Configuration, dataBytes: number): Snapshot {
    if (!(Number.isSafeInteger(dataBytes) && dataBytes >= 0)) throw new RaftError('INVALID_ARGUMENT', `snapshot data of ${dataBytes} bytes`);
    this.createSnapshot(index, configuration, new Uint8Array(0));
    this.releaseSnapshotData();
    this.snapDataBytes = dataBytes;
    return this.snap;
  }

  /** Discards entries up to and including `index`, which must be covered by the snapshot. */
  compact(index: number): void {
    const offset = this.ents[0]!.index;
    if (index <= offset) return;
    if (index > this.snap.meta.index) {
      throw new RaftError('INVALID_ARGUMENT', `cannot compact to ${index}: the snapshot only covers up to ${this.snap.meta.index}`);
    }
    // Released entries hold no data: they count for nothing here.
    for (let i = 1; i < index - offset && i < this.ents.length; i++) this.heldBytes -= this.ents[i]!.data.length;
    const keep = this.ents.slice(index - offset);
    this.heldBytes -= keep[0]!.data.length;
    keep[0] = { index, term: keep[0]!.term, type: 1, data: new Uint8Array(0) };
    this.ents = keep;
    this.releasedSizes.splice(0, Math.min(index - offset, this.releasedSizes.length));
    this.dropReadEntriesThrough(index);
  }
}

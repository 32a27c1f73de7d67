/**
 * In-memory durable storage with a crash model. A `SimDisk` outlives node incarnations; each
 * incarnation gets a `DurableStorage` handle on it. Writes land in the "page cache" at once and
 * become durable at `sync` (appends, truncations) or when `writeAtomic` (or an atomic writer's
 * commit) completes; what an atomic writer wrote before is in no file. A crash keeps
 * what was durable and may keep a prefix of each file's unsynced tail, possibly ending in
 * garbage (a torn write). Every operation takes virtual time; a crashed incarnation's handle
 * never completes anything again, as a dead process would not.
 */
import type { DurableFileReader, DurableFileWriter, DurableStorage } from '../../src/runtime.ts';
import type { Prng } from '../sim/prng.ts';
import type { FencedClock } from './scheduler.ts';

interface SimFile {
  data: Uint8Array;
  length: number;
  /** Bytes [0, syncedLength) are durable, unless `durableCopy` holds the durable content. */
  syncedLength: number;
  /** Set when an unsynced truncation cut into durable bytes: what a crash brings back. */
  durableCopy: Uint8Array | undefined;
}

export interface StorageLatency {
  readMs: number;
  writeMs: number;
  syncMs: number;
}

export interface CrashReport {
  /** Files whose unsynced tail was partly kept. */
  torn: string[];
  /** Files that lost unsynced bytes. */
  lost: string[];
}

export class SimDisk {
  private readonly files = new Map<string, SimFile>();
  private handleFenced: { fenced: boolean } | undefined;
  bytesWritten = 0;
  syncs = 0;
  /** Called (once) right after the next append reaches the page cache: a crash mid-write. */
  private onNextAppend: (() => void) | undefined;

  /** Arms `crash` to run as soon as the next append lands, before it can be synced. */
  crashOnNextAppend(crash: () => void): void {
    this.onNextAppend = crash;
  }

  /** A handle for a new incarnation; the previous one must have been crashed or stopped. */
  open(clock: FencedClock, latency: StorageLatency, rng: Prng): DurableStorage {
    if (this.handleFenced && !this.handleFenced.fenced) throw new Error('a live incarnation still holds this disk');
    const fence = { fenced: false };
    this.handleFenced = fence;
    return new SimDiskHandle(this, fence, clock, latency, rng);
  }

  /** The process died: unsynced data is lost or torn; the live handle stops completing. */
  crash(rng: Prng, tearProbability: number): CrashReport {
    if (this.handleFenced) this.handleFenced.fenced = true;
    this.onNextAppend = undefined;
    const report: CrashReport = { torn: [], lost: [] };
    for (const [name, file] of this.files) {
      if (file.durableCopy) {
        file.data = file.durableCopy;
        file.length = file.durableCopy.length;
        file.syncedLength = file.length;
        file.durableCopy = undefined;
        report.lost.push(name);
        continue;
      }
      if (file.length === file.syncedLength) continue;
      let keep = file.syncedLength;
      if (rng.chance(tearProbability)) {
        const tail = file.length - file.syncedLength;
        keep += 1 + rng.int(tail);
        if (rng.chance(0.5)) {
          // The last sectors hold garbage: a write that reached the platter halfway.
          const garbage = Math.min(keep - file.syncedLength, 1 + rng.int(64));
          for (let i = keep - garbage; i < keep; i++) file.data[i] = rng.int(256);
        }
        report.torn.push(name);
      } else {
        report.lost.push(name);
      }
      file.length = keep;
      file.syncedLength = keep;
    }
    return report;
  }

  /** The process stopped cleanly: nothing is lost, the handle is closed. */
  release(): void {
    if (this.handleFenced) this.handleFenced.fenced = true;
  }

  /**
   * Media damage while no process holds the disk: XORs `mask` into the durable bytes of `name`
   * from `offset` on, as a bad sector or a stray write would.
   */
  damage(name: string, offset: number, mask: Uint8Array): void {
    if (this.handleFenced && !this.handleFenced.fenced) throw new Error('damage while a live incarnation holds this disk');
    const file = this.files.get(name);
    if (!file || offset + mask.length > file.length) throw new Error(`damage ${name} at ${offset}+${mask.length}: outside the file`);
    for (let i = 0; i < mask.length; i++) file.data[offset + i] = file.data[offset + i]! ^ mask[i]!;
  }

  /** Every file gone, as an operator emptying the data directory; no process may hold the disk. */
  wipe(): void {
    if (this.handleFenced && !this.handleFenced.fenced) throw new Error('wipe while a live incarnation holds this disk');
    this.files.clear();
    this.onNextAppend = undefined;
  }

  /** Durable-state view for the report: file names and sizes. */
  describe(): string {
    return [...this.files].map(([name, f]) => `${name}:${f.length}`).join(' ');
  }

  // ------------------------------------------------------------ operations of a live handle

  read(name: string): Uint8Array | undefined {
    const file = this.files.get(name);
    return file ? file.data.slice(0, file.length) : undefined;
  }

  /** The file as it is now: a later replace or removal leaves it readable, as an open file on POSIX. */
  openRead(name: string): { data: Uint8Array; length: number } | undefined {
    const file = this.files.get(name);
    return file ? { data: file.data, length: file.length } : undefined;
  }

  replace(name: string, bytes: Uint8Array): void {
    const data = bytes.slice();
    this.files.set(name, { data, length: data.length, syncedLength: data.length, durableCopy: undefined });
    this.bytesWritten += bytes.length;
  }

  append(name: string, bytes: Uint8Array): void {
    let file = this.files.get(name);
    if (!file) {
      file = { data: new Uint8Array(Math.max(4096, bytes.length)), length: 0, syncedLength: 0, durableCopy: undefined };
      this.files.set(name, file);
    }
    if (file.length + bytes.length > file.data.length) {
      const grown = new Uint8Array(Math.max(file.data.length * 2, file.length + bytes.length));
      grown.set(file.data.subarray(0, file.length));
      file.data = grown;
    }
    file.data.set(bytes, file.length);
    file.length += bytes.length;
    this.bytesWritten += bytes.length;
    const crash = this.onNextAppend;
    this.onNextAppend = undefined;
    crash?.();
  }

  sync(name: string): void {
    const file = this.files.get(name);
    if (!file) return;
    file.syncedLength = file.length;
    file.durableCopy = undefined;
    this.syncs++;
  }

  truncate(name: string, size: number): void {
    const file = this.files.get(name);
    if (!file) throw new Error(`truncate ${name}: no such file`);
    if (size >= file.length) return;
    if (size < file.syncedLength && !file.durableCopy) file.durableCopy = file.data.slice(0, file.syncedLength);
    file.length = size;
    if (!file.durableCopy) file.syncedLength = Math.min(file.syncedLength, size);
  }

  remove(name: string): void {
    this.files.delete(name);
  }

  list(): string[] {
    return [...this.files.keys()].sort();
  }
}

class SimDiskHandle implements DurableStorage {
  constructor(
    private readonly disk: SimDisk,
    private readonly fence: { fenced: boolean },
    private readonly clock: FencedClock,
    private readonly latency: StorageLatency,
    private readonly rng: Prng,
  ) {}

  async read(name: string): Promise<Uint8Array | undefined> {
    await this.wait(this.latency.readMs);
    return this.disk.read(name);
  }

  async openReader(name: string): Promise<DurableFileReader | undefined> {
    await this.wait(this.latency.readMs);
    const file = this.disk.openRead(name);
    if (!file) return undefined;
    return {
      sizeBytes: file.length,
      read: async (offset, length) => {
        await this.wait(this.latency.readMs);
        return file.data.slice(offset, Math.min(file.length, offset + length));
      },
      close: async () => undefined,
    };
  }

  async writeAtomic(name: string, bytes: Uint8Array): Promise<void> {
    // Temporary file, fsync, rename: nothing visible until it completes as a whole.
    const copy = bytes.slice();
    await this.wait(this.latency.writeMs + this.latency.syncMs);
    this.disk.replace(name, copy);
  }

  async openAtomicWriter(name: string): Promise<DurableFileWriter> {
    if (this.fence.fenced) return frozen();
    // The temporary file: a crash loses it whole, as the host removes a dead writer's temporary
    // file. Its writes and fsync take the time of one writeAtomic, at the commit: the same
    // schedule (and random draws) as when the snapshot was written whole.
    let pieces: Uint8Array[] | undefined = [];
    let bytes = 0;
    return {
      write: async (piece) => {
        if (this.fence.fenced) return frozen();
        if (!pieces) throw new Error(`write ${name}: the writer is closed`);
        // Copied: the caller reuses its piece.
        pieces.push(piece.slice());
        bytes += piece.length;
      },
      writeAt: async (offset, patch) => {
        if (this.fence.fenced) return frozen();
        if (!pieces) throw new Error(`write ${name}: the writer is closed`);
        if (offset < 0 || offset + patch.length > bytes) throw new Error(`write ${name}: bytes ${offset}..${offset + patch.length} are not written yet`);
        let start = 0;
        for (const piece of pieces) {
          const from = Math.max(offset, start);
          const to = Math.min(offset + patch.length, start + piece.length);
          if (from < to) piece.set(patch.subarray(from - offset, to - offset), from - start);
          start += piece.length;
        }
      },
      commit: async () => {
        if (!pieces) throw new Error(`commit ${name}: the writer is closed`);
        const file = new Uint8Array(bytes);
        let offset = 0;
        for (const piece of pieces) {
          file.set(piece, offset);
          offset += piece.length;
        }
        pieces = undefined;
        await this.wait(this.latency.writeMs + this.latency.syncMs);
        this.disk.replace(name, file);
      },
      abort: async () => {
        pieces = undefined;
      },
    };
  }

  async append(name: string, bytes: Uint8Array): Promise<void> {
    if (this.fence.fenced) return frozen();
    this.disk.append(name, bytes);
    await this.wait(this.latency.writeMs);
  }

  async sync(name: string): Promise<void> {
    await this.wait(this.latency.syncMs);
    this.disk.sync(name);
  }

  async truncate(name: string, size: number): Promise<void> {
    if (this.fence.fenced) return frozen();
    this.disk.truncate(name, size);
    await this.wait(this.latency.writeMs);
  }

  async remove(name: string): Promise<void> {
    await this.wait(this.latency.writeMs);
    this.disk.remove(name);
  }

  async list(): Promise<string[]> {
    await this.wait(this.latency.readMs);
    return this.disk.list();
  }

  private async wait(meanMs: number): Promise<void> {
    if (this.fence.fenced) return frozen();
    // Jitter: an fsync is not a constant, and uneven ones widen the races worth finding.
    const delayMs = meanMs <= 0 ? 0 : meanMs * (0.5 + this.rng.next());
    await this.clock.sleep(delayMs);
    if (this.fence.fenced) return frozen();
  }
}

/** A dead process's call never returns: the code awaiting it is frozen with its node. */
function frozen(): Promise<never> {
  return new Promise<never>(() => {});
}

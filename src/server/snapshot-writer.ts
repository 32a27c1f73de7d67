/**
 * Stores snapshots in the background. The state machine's copy is taken in the Ready loop (it
 * must match the applied index exactly); encoding it, writing and fsyncing the file and
 * compacting the log happen here while the loop goes on sending heartbeats and committing
 * entries. One snapshot at a time; a snapshot installed from the leader waits for `idle()`, so
 * an older local snapshot never lands on top of it.
 *
 * The copy's frozen views are never encoded whole: they are encoded `log.snapshotWriteBytesMax`
 * bytes at a time into one buffer that every write of the file reuses, and released once the last
 * piece is written (docs/memory.md).
 */
import { encodeSnapshotInPieces, snapshotEncodedBytes } from '../fsm/snapshot-codec.ts';
import type { StateCopy } from '../fsm/state-machine.ts';
import type { Configuration, MemoryStorage } from '../raft/index.ts';
import type { Clock } from '../runtime.ts';
import { RaftLogError, type RaftLog } from './raft-log.ts';

export interface SnapshotWriterHost {
  log: RaftLog;
  memory: MemoryStorage;
  clock: Pick<Clock, 'setTimeout'>;
  snapshotBytesMax: number;
  /** The snapshot at `index` is durable and the log compacted up to `compactIndex`. */
  stored(index: number, compactIndex: number): void;
  /** A snapshot could not be taken; the log stays as it is. */
  skipped(index: number, reason: string): void;
  /** Storage failed: the node cannot go on. */
  failed(error: unknown): void;
  /**
   * A snapshot's work is over (stored, skipped or failed) and its bytes are garbage:
   * `droppedBytes`, its data's and those of the log entries it compacted away.
   */
  finished?(droppedBytes: number): void;
}

export interface SnapshotJob {
  copy: StateCopy;
  term: number;
  configuration: Configuration;
  compactIndex: number;
}

export class SnapshotWriter {
  private running: Promise<void> | undefined;
  private inFlightBytes = 0;
  private job: SnapshotJob | undefined;
  /** What the snapshot being written drops when it is done (see SnapshotWriterHost.finished). */
  private droppedBytes = 0;

  constructor(private readonly host: SnapshotWriterHost) {}

  get busy(): boolean {
    return this.running !== undefined;
  }

  /**
   * Bytes the snapshot being written holds: the piece its encoding goes through, and what the
   * databases' writes since it was taken changed, which its frozen state copy alone keeps (the
   * rest of the copy is the databases' own memory); 0 when idle.
   */
  get heldBytes(): number {
    return this.inFlightBytes + (this.job?.copy.heldBytes() ?? 0);
  }

  /** Resolves when no snapshot is being written (never rejects: failures go to `host.failed`). */
  idle(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  start(job: SnapshotJob): void {
    if (this.running) throw new Error('invariant violated: a snapshot is already being written');
    this.job = job;
    this.running = this.write(job)
      .catch((error: unknown) => this.host.failed(error))
      .finally(() => {
        // Ends the copy-on-write sharing in every case: writes then copy nothing.
        job.copy.release();
        this.job = undefined;
        this.running = undefined;
        this.inFlightBytes = 0;
        const dropped = this.droppedBytes;
        this.droppedBytes = 0;
        this.host.finished?.(dropped);
      });
  }

  private async write(job: SnapshotJob): Promise<void> {
    const { copy, term, configuration, compactIndex } = job;
    // The frozen views share the databases' memory: only chunks written meanwhile are extra.
    this.inFlightBytes = 0;
    // Let the Ready loop finish the Ready that asked for this snapshot before the CPU goes here,
    // and let it run between slices: heartbeats must not wait for a large snapshot.
    await this.yieldToTimers();
    const meta = { index: copy.index, term, configuration };
    const dataBytes = snapshotEncodedBytes(copy.files);
    this.droppedBytes = dataBytes;
    if (dataBytes > this.host.snapshotBytesMax) {
      this.host.skipped(copy.index, `it would be ${dataBytes} bytes, above snapshotBytesMax (${this.host.snapshotBytesMax} bytes)`);
      return;
    }
    // The one buffer every piece of the encoding goes through, held (and reported) until the end.
    const piece = new Uint8Array(Math.min(this.host.log.snapshotWriteBytesMax, dataBytes));
    this.inFlightBytes = piece.length;
    const pause = (): Promise<void> => this.yieldToTimers();
    await this.yieldToTimers();
    try {
      await this.host.log.saveSnapshotData(
        meta,
        {
          bytes: dataBytes,
          writeTo: async (write, pieceBytesMax) => {
            if (piece.length > pieceBytesMax) throw new Error(`invariant violated: pieces of ${piece.length} bytes, above ${pieceBytesMax}`);
            const encoded = await encodeSnapshotInPieces(copy.files, piece, write, pause);
            if (encoded !== dataBytes) throw new Error(`invariant violated: ${encoded} bytes encoded, not ${dataBytes}`);
            // Every byte is written: end the copy-on-write sharing before the fsync, which can take
            // seconds for a large file while every write meanwhile would copy a chunk.
            copy.release();
          },
        },
        compactIndex,
      );
    } catch (error) {
      // A full disk refused the snapshot before it touched the old one: the next one tries again.
      if (!(error instanceof RaftLogError && error.code === 'DISK_FULL')) throw error;
      this.host.skipped(copy.index, error.message);
      return;
    } finally {
      this.inFlightBytes = 0;
    }
    // It is durable: a follower that needs it gets it read back from disk (docs/memory.md).
    this.host.memory.createStoredSnapshot(copy.index, configuration, dataBytes);
    const logBytes = this.host.memory.entriesBytes();
    this.host.memory.compact(compactIndex);
    this.droppedBytes += Math.max(0, logBytes - this.host.memory.entriesBytes());
    this.host.stored(copy.index, compactIndex);
  }

  private yieldToTimers(): Promise<void> {
    return new Promise((resolve) => this.host.clock.setTimeout(resolve, 0));
  }
}

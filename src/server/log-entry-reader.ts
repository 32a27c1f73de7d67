/**
 * Reads back from the log's segment files the entries the Raft core asks for after the node's
 * memory released them (applied entries beyond `logHeldBytesMax`, MemoryStorage
 * .releaseAppliedEntries): the leader then holds a load's hundreds of MiB of parts on disk only,
 * and a follower that is behind (slow, restarted, just added, or behind a new leader) is sent
 * them from there. The core asks storage for a range; while it is released the answer is
 * EntriesPendingError and this reads that range (a few MiB at most, or one large entry) from the
 * segments, hands it to storage and tells the core (RaftNode.entriesReady). One read at a time.
 */
import type { EntriesRequest, MemoryStorage } from '../raft/index.ts';
import type { RaftLog } from './raft-log.ts';

/**
 * Entry bytes read at once for a request of fewer (the core asks for one Append's worth): the
 * appends that follow are then served from memory, without a read each.
 */
export const ENTRIES_READ_AHEAD_BYTES = 4 * 1024 * 1024;

export interface LogEntryReaderHost {
  log: Pick<RaftLog, 'readEntries'>;
  memory: MemoryStorage;
  /** Whether the core still waits for entries in [lo, hi) (RaftNode.entriesAwaited): a read it no longer needs is dropped. */
  awaited(lo: number, hi: number): boolean;
  /** Entries were handed to storage: let the core send them (RaftNode.entriesReady) and process its Ready. */
  entriesReady(): void;
  /** One line for the node's log. */
  write(line: string): void;
}

export class LogEntryReader {
  private reading: Promise<void> | undefined;
  private stopped = false;
  private lastFailure = '';
  /** Entries read back, and their data bytes, since the node started (its status). */
  readEntries = 0;
  readBytes = 0;

  constructor(private readonly host: LogEntryReaderHost) {}

  /** Reads what the core asked for since the last call, unless a read is under way (it calls again when done). */
  readWanted(): void {
    if (this.reading || this.stopped) return;
    const wanted = this.host.memory.takeEntriesWanted();
    if (wanted.length === 0) return;
    this.reading = this.read(wanted).finally(() => {
      this.reading = undefined;
      this.readWanted();
    });
  }

  /** Waits for the read under way; nothing is read after. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.reading;
  }

  private async read(wanted: EntriesRequest[]): Promise<void> {
    for (const request of wanted) {
      if (this.stopped) return;
      let entries;
      try {
        entries = await this.host.log.readEntries(request.lo, request.hi, Math.max(request.bytesMax ?? 0, ENTRIES_READ_AHEAD_BYTES));
      } catch (error) {
        // Compacted meanwhile (the core then sends a snapshot), or unreadable: the core asks again.
        const message = error instanceof Error ? error.message : String(error);
        if (message !== this.lastFailure) this.host.write(`could not read entries ${request.lo}..${request.hi - 1} back from the log for a follower: ${message}`);
        this.lastFailure = message;
        this.host.memory.holdReadEntries(request, 'unavailable');
        continue;
      }
      if (this.stopped) return;
      const last = entries[entries.length - 1];
      if (!last || !this.host.awaited(request.lo, last.index + 1)) {
        this.host.memory.holdReadEntries(request, 'unavailable');
        continue;
      }
      try {
        this.host.memory.holdReadEntries(request, entries);
      } catch (error) {
        // The segments disagree with what this node applied: never sent (the core asks again).
        this.host.write(`entries ${request.lo}..${request.hi - 1} read back from the log are not the ones applied: ${error instanceof Error ? error.message : String(error)}`);
        continue;
      }
      this.readEntries += entries.length;
      for (const entry of entries) this.readBytes += entry.data.length;
      this.host.entriesReady();
    }
  }
}

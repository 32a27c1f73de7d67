/**
 * Group commit for the Raft log: one durable write at a time (the log's recovery relies on each
 * append being durable before the next begins), and whatever entries are handed over while it is
 * on the disk wait together and go to the disk as the next single write. A later hand-over that
 * starts inside the waiting batch replaces its tail, as Raft replaced those entries.
 *
 * `afterDurable` runs a callback once every entry handed over before it is durable: for the
 * acknowledgements that report them. The callbacks of a write run as soon as it is durable, then
 * `released` (the caller sends what they released, together), then the next write starts, and
 * only then is the write reported to `written`: the acknowledgements leave before the next write's
 * encoding and before whatever the report sets off (the Ready it frees, which applies entries).
 *
 * One write takes at most LOG_WRITE_BYTES_MAX of entry data (at least one entry): encoding and
 * checksumming the records is synchronous, and the parts of a transaction of hundreds of MiB
 * handed over together would hold the event loop for seconds. The rest waits at the head of the
 * next batch, with the callbacks that wait for it.
 */
import type { Entry } from '../raft/index.ts';
import { LOG_WRITE_BYTES_MAX } from '../limits.ts';
import type { RaftLog } from './raft-log.ts';

interface Batch {
  entries: Entry[];
  callbacks: (() => void)[];
}

export class LogWriter {
  /** The batch on the disk now, and the one gathering behind it. */
  private writing: Batch | undefined;
  private waiting: Batch | undefined;
  private idleWaiters: (() => void)[] = [];
  private failed = false;

  constructor(
    private readonly log: RaftLog,
    private readonly nowMs: () => number,
    private readonly written: (entries: readonly Entry[], durationMs: number) => void,
    private readonly failure: (error: unknown) => void,
    /** After a group of callbacks ran: those of a durable write, or one that ran at once. */
    private readonly released: () => void = () => undefined,
  ) {}

  write(entries: readonly Entry[]): void {
    if (entries.length === 0 || this.failed) return;
    if (!this.writing) {
      this.start({ entries: [...entries], callbacks: [] });
      return;
    }
    const batch = (this.waiting ??= { entries: [], callbacks: [] });
    const first = entries[0]!.index;
    while (batch.entries.length > 0 && batch.entries[batch.entries.length - 1]!.index >= first) batch.entries.pop();
    for (const entry of entries) batch.entries.push(entry);
  }

  /** Runs `callback` once everything handed over so far is durable (now, if nothing is pending). */
  afterDurable(callback: () => void): void {
    const batch = this.waiting ?? this.writing;
    if (batch) {
      batch.callbacks.push(callback);
      return;
    }
    callback();
    this.released();
  }

  /** Resolves once nothing is on the disk or waiting (or writing failed for good). */
  idle(): Promise<void> {
    if (!this.writing || this.failed) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private start(whole: Batch): void {
    let batch = whole;
    const count = entriesWithin(whole.entries, LOG_WRITE_BYTES_MAX);
    if (count < whole.entries.length) {
      // Nothing waits while a write starts: the rest is the next batch, ahead of later hand-overs.
      this.waiting = { entries: whole.entries.slice(count), callbacks: whole.callbacks };
      batch = { entries: whole.entries.slice(0, count), callbacks: [] };
    }
    this.writing = batch;
    const startedMs = this.nowMs();
    this.log
      .append(batch.entries)
      .then(() => this.finished(batch, this.nowMs() - startedMs))
      .catch((error: unknown) => {
        this.failed = true;
        this.releaseIdleWaiters();
        this.failure(error);
      });
  }

  private releaseIdleWaiters(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  private finished(batch: Batch, durationMs: number): void {
    const next = this.waiting;
    this.waiting = undefined;
    this.writing = undefined;
    // A waiting batch emptied by a replacement owes its callbacks now: nothing it waited for is left.
    const owed = next && next.entries.length === 0 ? next.callbacks : [];
    for (const callback of batch.callbacks) callback();
    for (const callback of owed) callback();
    if (batch.callbacks.length + owed.length > 0) this.released();
    if (next && next.entries.length > 0) this.start(next);
    // Hand-overs from here (the Ready the report frees) start the next write, or wait behind it.
    this.written(batch.entries, durationMs);
    if (!this.writing) this.releaseIdleWaiters();
  }
}

/** How many of the first `entries` fit `bytesMax` of data together (at least one). */
function entriesWithin(entries: readonly Entry[], bytesMax: number): number {
  let bytes = entries[0]!.data.length;
  let count = 1;
  while (count < entries.length && bytes + entries[count]!.data.length <= bytesMax) bytes += entries[count++]!.data.length;
  return count;
}

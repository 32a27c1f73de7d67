/**
 * The change feed of one database on this replica: its committed transactions in log order,
 * from a bookmark (a log index) on. Catch-up reads the node's Raft log (the changes travel in
 * the FRAMES / TX_COMMIT entries); once caught up, the feed takes the state machine's events as
 * they are emitted, and falls back to the log when the consumer lags more than
 * `queuedEventsMax` behind. When the log no longer holds the entries after the bookmark (a
 * snapshot replaced them, here or from the leader), the feed says so with a gap naming the
 * first index it can give, then goes on from there: nothing is skipped silently, nothing is
 * given twice.
 *
 * Only applied entries are read, so nothing uncommitted is ever given.
 */
import { CommandKind, decodeCommand } from '../fsm/commands.ts';
import type { CommitEvents, CommittedTransaction, RowChange, TransactionChanges } from '../fsm/commit-events.ts';
import { EntryType, type Entry } from '../raft/index.ts';

/** What a feed needs from its node: the applied log and the state machine's events. */
export interface ChangeLogSource {
  readonly commits: CommitEvents;
  /** The last entry applied here. */
  appliedIndex(): number;
  /** The first entry still in the log; earlier ones were replaced by a snapshot. */
  firstLogIndex(): number;
  /** Entries [lo, hi) of the log, at most about `bytesMax` (at least one). */
  logEntries(lo: number, hi: number, bytesMax: number): Entry[];
}

/** One committed transaction of the database. */
export interface ChangeFeedTransaction {
  type: 'transaction';
  /** Log index of the entry that committed it: the bookmark to resume after. */
  index: number;
  database: string;
  /** The leader's wall clock at commit (ms since the epoch); undefined when the entry carries no changes. */
  timeMs?: number;
  /**
   * The tables it changed (SCHEMA_TABLE "sqlite_schema" when it changed the schema); undefined
   * when the entry carries no changes (written with capture off or by an older version).
   */
  tables?: string[];
  /** Its row changes, in order; undefined when rowsOmitted or unknown. */
  rows?: RowChange[];
  /** True when the rows were left out (above changeSetBytesMax) or are unknown. */
  rowsOmitted: boolean;
}

/** The transactions after `since` up to `firstAvailableIndex - 1` cannot be given any more. */
export interface ChangeFeedGap {
  type: 'gap';
  database: string;
  /** The bookmark the feed was at. */
  since: number;
  /** The first index the feed gives from now on; transactions in between are lost to it. */
  firstAvailableIndex: number;
  message: string;
}

export type ChangeFeedEvent = ChangeFeedTransaction | ChangeFeedGap;

export interface ChangeFeedOptions {
  database: string;
  /** Give transactions after this index; default: from now on (the applied index). */
  since?: number;
  /** Only transactions that changed one of these tables (rows filtered to them); default all. */
  tables?: readonly string[];
  /** Events buffered for a lagging consumer before the feed goes back to reading the log. */
  queuedEventsMax?: number;
  /** Log bytes read per step of catch-up. */
  readBytesMax?: number;
}

const QUEUED_EVENTS_MAX_DEFAULT = 1024;
const READ_BYTES_MAX_DEFAULT = 4 * 1024 * 1024;

export class ChangeFeedError extends Error {
  readonly code = 'BAD_FEED';
  constructor(message: string) {
    super(message);
    this.name = 'ChangeFeedError';
  }
}

/**
 * A feed as an async iterator. `close()` (or leaving a for-await loop) unsubscribes; the
 * iterator then ends.
 */
export class ChangeFeed implements AsyncIterableIterator<ChangeFeedEvent> {
  /** The last index given to the consumer. */
  private cursor: number;
  /** The last index examined: everything up to it is given or waiting in `ready` / `queued`. */
  private position: number;
  private readonly tables: ReadonlySet<string> | undefined;
  private mode: 'log' | 'live' = 'log';
  /** Events read from the log, then events emitted live: given in this order. */
  private readonly ready: ChangeFeedEvent[] = [];
  private readonly queued: ChangeFeedEvent[] = [];
  private wake: (() => void) | undefined;
  private closed = false;
  private readonly unsubscribe: () => void;
  private readonly queuedEventsMax: number;
  private readonly readBytesMax: number;

  constructor(
    private readonly source: ChangeLogSource,
    private readonly options: ChangeFeedOptions,
  ) {
    const since = options.since ?? source.appliedIndex();
    if (!Number.isSafeInteger(since) || since < 0) throw new ChangeFeedError(`since must be a log index (a whole number from 0), got ${String(options.since)}`);
    // A bookmark beyond this replica's applied index (given by a node further ahead) waits for it.
    this.cursor = this.position = since;
    this.tables = options.tables && options.tables.length > 0 ? new Set(options.tables) : undefined;
    this.queuedEventsMax = options.queuedEventsMax ?? QUEUED_EVENTS_MAX_DEFAULT;
    this.readBytesMax = options.readBytesMax ?? READ_BYTES_MAX_DEFAULT;
    this.unsubscribe = source.commits.subscribe((event) => this.committed(event));
  }

  /** The bookmark: the index of the last event given (or the starting point). */
  get bookmark(): number {
    return this.cursor;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<ChangeFeedEvent>> {
    for (;;) {
      if (this.closed) return { done: true, value: undefined };
      const event = this.take();
      if (event) return { done: false, value: event };
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }

  async return(): Promise<IteratorResult<ChangeFeedEvent>> {
    this.close();
    return { done: true, value: undefined };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    this.queued.length = 0;
    this.ready.length = 0;
    this.wake?.();
  }

  /** Calls `listener` whenever an event may have become ready (for push-style consumers). */
  onReady(listener: () => void): void {
    this.readyListener = listener;
  }

  private readyListener: (() => void) | undefined;

  /** The next event, if one is ready now (synchronously); advances the bookmark. */
  take(): ChangeFeedEvent | undefined {
    if (this.closed) return undefined;
    while (this.ready.length === 0 && this.mode === 'log') {
      const before = this.position;
      this.readLog();
      if (this.position === before) break;
    }
    const event = this.ready.length > 0 ? this.ready.shift() : this.queued.shift();
    if (event) this.cursor = event.type === 'gap' ? event.firstAvailableIndex - 1 : event.index;
    return event;
  }

  private signal(): void {
    this.wake?.();
    this.readyListener?.();
  }

  private committed(event: CommittedTransaction): void {
    if (this.mode === 'log') {
      // Read from the log on the next take.
      this.signal();
      return;
    }
    if (event.index <= this.position) return;
    this.position = event.index;
    if (event.database !== this.options.database) return;
    if (event.snapshot) {
      this.push(this.gap(this.lastGivenOrQueued(), event.index + 1, `a snapshot from the leader replaced database ${event.database} at index ${event.index}`));
    } else {
      const transaction = this.transaction(event.index, event.changes);
      if (transaction) this.push(transaction);
    }
  }

  private push(event: ChangeFeedEvent): void {
    if (this.queued.length >= this.queuedEventsMax) {
      // The consumer lags: drop the buffer and read the log from what it was last given.
      this.queued.length = 0;
      const lastReady = this.ready.at(-1);
      this.position = lastReady ? indexOf(lastReady) : this.cursor;
      this.mode = 'log';
    } else {
      this.queued.push(event);
    }
    this.signal();
  }

  private lastGivenOrQueued(): number {
    const last = this.queued.at(-1) ?? this.ready.at(-1);
    return last ? indexOf(last) : this.cursor;
  }

  /**
   * One bounded step of reading entries after `position` from the log into `ready`; switches
   * to live events once it reached the applied index (synchronously: no event falls between).
   */
  private readLog(): void {
    const applied = this.source.appliedIndex();
    if (this.position > applied) return; // waiting for a bookmark from a node further ahead
    let from = this.position + 1;
    const first = this.source.firstLogIndex();
    if (from < first && from <= applied) {
      const firstAvailable = Math.min(first, applied + 1);
      this.ready.push(this.gap(this.position, firstAvailable, `the log of this node starts at index ${first}: a snapshot replaced the entries before it`));
      this.position = firstAvailable - 1;
      from = firstAvailable;
    }
    if (from <= applied) {
      for (const entry of this.source.logEntries(from, applied + 1, this.readBytesMax)) {
        this.position = entry.index;
        const transaction = this.fromEntry(entry);
        if (transaction) this.ready.push(transaction);
      }
    }
    if (this.position >= applied) this.mode = 'live';
  }

  private fromEntry(entry: Entry): ChangeFeedTransaction | undefined {
    if (entry.type !== EntryType.Normal) return undefined;
    const kind = entry.data[0];
    if (kind !== CommandKind.Frames && kind !== CommandKind.TransactionCommit) return undefined;
    // The name first: another database's changes are not decoded at all.
    const header = decodeCommand(entry.data, { skipChanges: true });
    if (!('database' in header) || header.database !== this.options.database) return undefined;
    const command = decodeCommand(entry.data);
    if (command.kind !== CommandKind.Frames && command.kind !== CommandKind.TransactionCommit) return undefined;
    return this.transaction(entry.index, command.changes);
  }

  private transaction(index: number, changes: TransactionChanges | undefined): ChangeFeedTransaction | undefined {
    const database = this.options.database;
    if (!changes) return { type: 'transaction', index, database, rowsOmitted: true };
    const tables = this.tables;
    if (tables && !changes.tables.some((t) => tables.has(t) || t === SCHEMA_TABLE)) return undefined;
    const event: ChangeFeedTransaction = { type: 'transaction', index, database, timeMs: changes.timeMs, tables: changes.tables, rowsOmitted: changes.rowsOmitted };
    if (changes.rows) event.rows = tables ? changes.rows.filter((row) => tables.has(row.table)) : changes.rows;
    return event;
  }

  private gap(since: number, firstAvailableIndex: number, why: string): ChangeFeedGap {
    return {
      type: 'gap',
      database: this.options.database,
      since,
      firstAvailableIndex,
      message: `transactions after index ${since} up to ${firstAvailableIndex - 1} are not available: ${why}; the feed goes on from index ${firstAvailableIndex} (re-read the database's state to fill the gap)`,
    };
  }
}

function indexOf(event: ChangeFeedEvent): number {
  return event.type === 'gap' ? event.firstAvailableIndex - 1 : event.index;
}

/** Listed among a transaction's tables when it changed the schema (wasm SCHEMA_TABLE). */
const SCHEMA_TABLE = 'sqlite_schema';

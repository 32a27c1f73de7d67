/**
 * Committed transactions as this replica applies them, for live queries and the change feed.
 * Every replica applies the same log, so every replica emits the same events in the same order,
 * followers and browser tabs included. Events are emitted synchronously right after the entry
 * is applied (the engine already shows the new state), never for uncommitted data.
 *
 * `changes` is what the leader recorded when it ran the transaction (it travels in the entry);
 * it is undefined when the entry carries none (written by an older version, or capture off):
 * subscribers must then treat every table of the database as changed.
 */
import type { Value } from '../protocol/values.ts';

export type RowOperation = 'insert' | 'update' | 'delete';

export interface RowChange {
  operation: RowOperation;
  table: string;
  /** The primary key (rowid for rowid tables) of the row. */
  primaryKey: Value[];
  /** The row's values after the change; undefined for a delete. */
  values?: Value[];
}

export interface TransactionChanges {
  /** The leader's wall clock when the transaction committed there (ms since the epoch). */
  timeMs: number;
  /**
   * The tables the transaction changed, sorted, each once; "sqlite_schema" among them when it
   * changed the schema (CREATE/DROP/ALTER: no row hook sees that): treat every table as changed.
   */
  tables: string[];
  /** The row changes, in order; undefined when they exceeded the change-set limit. */
  rows?: RowChange[];
  /** True when `rows` was left out because the change set exceeded its limit. */
  rowsOmitted: boolean;
}

export interface CommittedTransaction {
  database: string;
  /** Raft index of the entry that committed the transaction: the bookmark. */
  index: number;
  changes?: TransactionChanges;
  /**
   * True when a snapshot from the leader replaced the database at `index` (or removed it): the
   * transactions up to `index` were not seen one by one here, so a change feed reports a gap and
   * a live query re-runs.
   */
  snapshot?: true;
}

export type CommitListener = (event: CommittedTransaction) => void;

/** The subscribers to one replica's commits. A throwing listener is logged, never the node's problem. */
export class CommitEvents {
  private readonly listeners = new Set<CommitListener>();

  constructor(private readonly log: (line: string) => void) {}

  /** Calls `listener` after every committed transaction from now on; returns the unsubscribe. */
  subscribe(listener: CommitListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  emit(event: CommittedTransaction): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.log(`a commit listener failed on database ${event.database} at index ${event.index}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  }
}

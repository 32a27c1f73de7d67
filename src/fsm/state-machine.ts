/**
 * The replicated state machine of a node: its databases over the engine, fed committed Raft
 * entries in log order. `apply` runs one entry, `snapshot` takes a consistent copy of every
 * database, `restore` replaces them all by a snapshot. It also owns the two policies that
 * depend on the databases' state: when the leader replicates a checkpoint (WAL length) and when
 * the node takes a snapshot and how much log it keeps (src/raft/compaction.ts).
 *
 * An entry that cannot be applied throws ApplyError: every replica must apply every committed
 * entry the same way, so the caller stops the node rather than skip it.
 */
import type { Database, Engine } from '../../wasm/index.ts';
import {
  compactionIndex,
  decodeConfChange,
  decodeConfiguration,
  EntryType,
  snapshotDue,
  type CompactionPolicy,
  type Entry,
} from '../raft/index.ts';
import type { Clock } from '../runtime.ts';
import { CommandKind, decodeCommand, type Command } from './commands.ts';
import { DatabaseLoop } from './database-loop.ts';
import { ApplyError, assert } from './errors.ts';
import { ReplicatedDatabase, type Replicator } from './replicated-database.ts';
import { decodeSnapshot, encodeSnapshot, encodeSnapshotGradually, type DatabaseFiles } from './snapshot-codec.ts';

export interface StateMachineOptions {
  engine: Engine;
  clock: Pick<Clock, 'nowMs' | 'setTimeout'>;
  busyTimeoutMs: number;
  /** Tasks queued per database loop. */
  databaseQueuedTasksMax: number;
  proposalBytesMax: number;
  /** The leader replicates a checkpoint once a database's WAL holds this many frames. */
  walFramesMax: number;
  compaction: CompactionPolicy;
  /** Test-only: see UnsafeSwitches.keepTransactionOnRefusedProposal. */
  keepTransactionOnRefusedProposal?: boolean;
  log: (line: string) => void;
}

/** A consistent copy of every database at `index`; encoding it may happen later, elsewhere. */
export interface StateCopy {
  index: number;
  files: DatabaseFiles[];
}

export class StateMachine {
  private readonly databases = new Map<string, ReplicatedDatabase>();
  private applied = 0;
  private lastSnapshotIndex = 0;
  private checkpointCount = 0;

  constructor(private readonly options: StateMachineOptions) {}

  /** Index of the last entry applied (or restored from a snapshot). */
  get appliedIndex(): number {
    return this.applied;
  }

  get snapshotIndex(): number {
    return this.lastSnapshotIndex;
  }

  get checkpoints(): number {
    return this.checkpointCount;
  }

  /** The database `name`, opened (created empty) on first use, identically on every node. */
  database(name: string): ReplicatedDatabase {
    let db = this.databases.get(name);
    if (!db) {
      db = this.newDatabase(name, this.options.engine.open(name));
      this.databases.set(name, db);
    }
    return db;
  }

  existingDatabase(name: string): ReplicatedDatabase | undefined {
    return this.databases.get(name);
  }

  all(): ReplicatedDatabase[] {
    return [...this.databases.values()];
  }

  /**
   * Applies committed entry `entry` (the next in the log). `leader` is given on the leader:
   * it proposes a checkpoint when a WAL grew long. Raft's own entries (configurations, barriers)
   * change no database; Raft tracks configurations itself (`configurationAt`), but one this
   * node cannot even decode means its Raft treats as a no-op what another version applied.
   */
  apply(entry: Entry, leader: Replicator | undefined): void {
    assert(entry.index === this.applied + 1, `entry ${entry.index} applied after ${this.applied}`);
    switch (entry.type) {
      case EntryType.Normal:
        this.applyCommand(entry, leader);
        break;
      case EntryType.ConfChange:
        this.decodable(entry, 'the membership change cannot be decoded', decodeConfChange);
        break;
      case EntryType.Configuration:
        this.decodable(entry, 'the configuration cannot be decoded', decodeConfiguration);
        break;
      case EntryType.Barrier:
        break;
      default:
        throw new ApplyError(entry.index, entry.term, 'unknown entry type', new Error(`type ${String(entry.type)}`));
    }
    this.applied = entry.index;
  }

  private decodable(entry: Entry, reason: string, decode: (data: Uint8Array) => unknown): void {
    try {
      decode(entry.data);
    } catch (error) {
      throw new ApplyError(entry.index, entry.term, reason, error);
    }
  }

  private applyCommand(entry: Entry, leader: Replicator | undefined): void {
    let command: Command;
    try {
      command = decodeCommand(entry.data);
    } catch (error) {
      throw new ApplyError(entry.index, entry.term, 'the command cannot be decoded (written by another version?)', error);
    }
    if (command.kind === CommandKind.Barrier) return;
    const db = this.database(command.database);
    try {
      if (command.kind === CommandKind.Frames) {
        db.applyFrames(entry.index, entry.term, command.payload);
        if (leader) db.maybeProposeCheckpoint(leader, this.options.walFramesMax);
      } else {
        db.applyCheckpoint(entry.index);
        this.checkpointCount++;
        this.options.log(`checkpointed database ${db.name} at index ${entry.index}`);
      }
    } catch (error) {
      const what = command.kind === CommandKind.Frames ? 'its frames' : 'its checkpoint';
      throw new ApplyError(entry.index, entry.term, `database ${db.name} refused ${what}`, error);
    }
  }

  /** Whether enough was applied since the last snapshot to take a new one. */
  snapshotDue(): boolean {
    return snapshotDue(this.applied, this.lastSnapshotIndex, this.options.compaction);
  }

  /** Log entries up to this index may go once a snapshot at `snapshotIndex` is durable. */
  compactionIndex(snapshotIndex: number): number {
    return compactionIndex(snapshotIndex, this.options.compaction);
  }

  /**
   * A copy of every database's confirmed files at the applied index: later writes do not change
   * it, so encoding and storing it need not hold up the node. Pending (uncommitted) frames of
   * the leader are not part of it.
   */
  snapshot(): StateCopy {
    const files = this.all().map((db) => ({ name: db.name, ...db.engine.snapshot() }));
    return { index: this.applied, files };
  }

  /** A snapshot at `index` is being stored: the next one is due `snapshotThresholdEntries` later. */
  snapshotStarted(index: number): void {
    if (index > this.lastSnapshotIndex) this.lastSnapshotIndex = index;
  }

  /** Replaces every database by the snapshot's (pending transactions fail) and moves to `index`. */
  restore(data: Uint8Array, index: number, term: number): void {
    let files: DatabaseFiles[];
    try {
      files = decodeSnapshot(data);
    } catch (error) {
      throw new ApplyError(index, term, 'the snapshot cannot be decoded', error);
    }
    const names = new Set(files.map((f) => f.name));
    for (const [name, db] of this.databases) {
      db.abortPending('a snapshot from the leader replaced this database');
      if (!names.has(name)) {
        db.engine.close();
        this.databases.delete(name);
      }
    }
    for (const file of files) {
      let engineDb: Database;
      try {
        engineDb = this.options.engine.restore(file.name, { main: file.main, wal: file.wal });
      } catch (error) {
        throw new ApplyError(index, term, `the snapshot's database ${file.name} cannot be restored`, error);
      }
      const existing = this.databases.get(file.name);
      if (existing) existing.engine = engineDb;
      else this.databases.set(file.name, this.newDatabase(file.name, engineDb));
    }
    this.applied = index;
    this.lastSnapshotIndex = index;
  }

  /** Every pending transaction fails; each database returns to its committed state. */
  abortPending(reason: string): void {
    for (const db of this.databases.values()) db.abortPending(reason);
  }

  private newDatabase(name: string, engineDb: Database): ReplicatedDatabase {
    const holder: { db?: ReplicatedDatabase } = {};
    const loop = new DatabaseLoop({
      busyTimeoutMs: this.options.busyTimeoutMs,
      queueLengthMax: this.options.databaseQueuedTasksMax,
      nowMs: () => this.options.clock.nowMs(),
      inTransaction: () => holder.db?.engine.inTransaction() ?? false,
      setTimer: (callback, delayMs) => this.options.clock.setTimeout(callback, delayMs),
    });
    holder.db = new ReplicatedDatabase(name, engineDb, loop, {
      proposalBytesMax: this.options.proposalBytesMax,
      ...(this.options.keepTransactionOnRefusedProposal && { keepTransactionOnRefusedProposal: true }),
    });
    return holder.db;
  }
}

/** Encodes a state copy as the snapshot bytes Raft carries. */
export function encodeStateCopy(copy: StateCopy): Uint8Array {
  return encodeSnapshot(copy.files);
}

/** `encodeStateCopy` a slice at a time, with `pause()` between slices. */
export function encodeStateCopyGradually(copy: StateCopy, pause: () => Promise<void>): Promise<Uint8Array> {
  return encodeSnapshotGradually(copy.files, pause);
}

/**
 * The replicated state machine of a node: its databases over the engine, fed committed Raft
 * entries in log order. `apply` runs one entry, `snapshot` takes a consistent copy of every
 * database, `restore` replaces them all by a snapshot. It also owns the two policies that
 * depend on the databases' state: when the leader replicates a checkpoint (WAL length) and when
 * the node takes a snapshot and how much log it keeps (src/raft/compaction.ts).
 *
 * An entry that cannot be applied throws ApplyError: every replica must apply every committed
 * entry the same way, so the caller stops the node rather than skip it.
 *
 * Transactions larger than one proposal arrive as TX_PART entries and a TX_COMMIT (commands.ts).
 * The leader proposes them in order, in one term, with no other Normal entry between them
 * (replicated-database.ts: a node proposes them a few at a time; only a membership change can
 * come between). Each part of another node's transaction is checked and
 * staged in the engine as it is applied (Database.stage: appended to the WAL past the committed
 * state, without its commit frame, so no read sees it), so the work of a transaction of hundreds
 * of MiB is spread over its parts, one Ready each, and its TX_COMMIT only moves the committed
 * end. The leader's own parts are already in its engine, and it keeps no other copy of them (the
 * log's entries leave memory once applied, src/raft/storage.ts): if its pending transaction is
 * aborted (it steps down) before the commit, the parts it applied are first copied out of the
 * engine's WAL, in case another leader commits them and they must be applied as another node's. Any
 * other Normal entry arriving while parts are staged (another command), or any entry of a later
 * term (the next leader's first entry), proves the commit can no longer come: the staged parts
 * are dropped. A TX_COMMIT (or a later part) whose
 * earlier parts are not staged stops the node. No snapshot is taken while parts are staged, so a
 * snapshot never falls between a transaction's parts and its commit, and a restart replays the
 * parts from the log.
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
import { LIMITS } from '../limits.ts';
import { CommandKind, decodeCommand, type Command, type PayloadSource } from './commands.ts';
import { DatabaseLoop } from './database-loop.ts';
import { CommitEvents } from './commit-events.ts';
import { ApplyError, assert } from './errors.ts';
import { ReplicatedDatabase, type ProposalGate, type Replicator } from './replicated-database.ts';
import { decodeSnapshot, encodeSnapshot, type DatabaseFiles, type DatabaseFilesToEncode } from './snapshot-codec.ts';

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
  /**
   * While this says so, applying a transaction proposes no checkpoint (the node: while a large
   * transaction's parts are still in its in-memory log, until the snapshot that compacts them is
   * stored, so that the checkpoint's copy into the main file does not overlap them); the node
   * proposes the checkpoint afterwards (ReplicatedDatabase.maybeProposeCheckpoint).
   */
  checkpointHeld?: () => boolean;
  /** Largest database file or WAL; default the limits table's. */
  databaseBytesMax?: number;
  /**
   * Record what each transaction changed and carry it in its entry (the change feed, live
   * queries): rows up to this many bytes per transaction, beyond only the table list.
   * Undefined: no capture, entries carry no changes.
   */
  changeSetBytesMax?: number;
  /** Wall clock stamped on captured changes; default Date.now. */
  wallClockMs?: () => number;
  /**
   * Make a transaction that goes in parts a part at a time, with a turn of the event loop (the
   * clock's timer) after each, before proposing it (ReplicatedDatabase.proposeCaptured): a node
   * sets it so that heartbeats go on during the COMMIT of a large load. Default: in one call.
   */
  proposePartsGradually?: boolean;
  /** Test-only: see UnsafeSwitches.keepTransactionOnRefusedProposal. */
  keepTransactionOnRefusedProposal?: boolean;
  /** Test-only: see UnsafeSwitches.snapshotBetweenParts. */
  snapshotBetweenParts?: boolean;
  log: (line: string) => void;
}

/**
 * A consistent copy of every database at `index`; encoding it may happen later, elsewhere. The
 * files are frozen views of the engine's (copy-on-write): `release()` once encoded.
 */
export interface StateCopy {
  index: number;
  files: DatabaseFilesToEncode[];
  /** Bytes only this copy keeps alive: what writes since it was taken changed (copy-on-write). */
  heldBytes(): number;
  release(): void;
}

/** The parts of one large transaction applied so far, waiting for its TX_COMMIT. */
interface StagedTransaction {
  database: string;
  term: number;
  firstIndex: number;
  lastIndex: number;
  parts: number;
  /** Parts applied so far. */
  received: number;
  /** Staged in the engine (another node's), or our own pending transaction's parts. */
  inEngine: boolean;
  /**
   * Our own transaction's payload so far, once its pending transaction was aborted (copied out of
   * the engine before it dropped it: ownPayloadAborting); empty while the engine holds it as ours.
   */
  chunks: Uint8Array[];
  bytes: number;
}

export class StateMachine {
  private readonly databases = new Map<string, ReplicatedDatabase>();
  private readonly proposalGate: ProposalGate = { held: undefined };
  private staged: StagedTransaction | undefined;
  private discardedCount = 0;
  private applied = 0;
  private lastSnapshotIndex = 0;
  /** Data bytes of the entries applied since the last snapshot (or restore). */
  private appliedBytesSinceSnapshot = 0;
  private checkpointCount = 0;
  /** Every transaction this replica applies, as it applies it (commit-events.ts). */
  readonly commits: CommitEvents;

  constructor(private readonly options: StateMachineOptions) {
    this.commits = new CommitEvents(options.log);
  }

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

  /** The open large transaction's database and parts staged so far, if one is open. */
  get stagedTransaction(): { database: string; parts: number; staged: number; bytes: number } | undefined {
    const staged = this.staged;
    return staged && { database: staged.database, parts: staged.parts, staged: staged.received, bytes: staged.bytes };
  }

  /** Large transactions whose parts were dropped because their commit could no longer come. */
  get discardedTransactions(): number {
    return this.discardedCount;
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
    // A membership change may go between a transaction's parts (replicated-database.ts); a new term ends them.
    if (entry.type !== EntryType.Normal && entry.term !== this.staged?.term) this.discardStaged(entry);
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
    this.appliedBytesSinceSnapshot += entry.data.length;
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
      // With nobody listening, the changes are not decoded (a change feed reads them from the log).
      command = decodeCommand(entry.data, { skipChanges: this.commits.subscribers === 0 });
    } catch (error) {
      throw new ApplyError(entry.index, entry.term, 'the command cannot be decoded (written by another version?)', error);
    }
    if (!this.continuesStaged(entry, command)) this.discardStaged(entry);
    if (command.kind === CommandKind.Barrier) return;
    const db = this.database(command.database);
    try {
      if (command.kind === CommandKind.TransactionPart) {
        this.stagePart(entry, command, db);
      } else if (command.kind === CommandKind.TransactionCommit) {
        const staged = this.takeStaged(entry, command);
        if (staged.inEngine) db.commitStaged();
        else db.applyOwnCommit(entry.index, entry.term, () => {
          this.assertOwnPartsCopied(staged);
          return staged.chunks;
        });
        this.commits.emit(command.changes ? { database: db.name, index: entry.index, changes: command.changes } : { database: db.name, index: entry.index });
        if (leader && !this.options.checkpointHeld?.()) db.maybeProposeCheckpoint(leader, this.options.walFramesMax);
      } else if (command.kind === CommandKind.Frames) {
        db.applyFrames(entry.index, entry.term, command.payload);
        this.commits.emit(command.changes ? { database: db.name, index: entry.index, changes: command.changes } : { database: db.name, index: entry.index });
        if (leader && !this.options.checkpointHeld?.()) db.maybeProposeCheckpoint(leader, this.options.walFramesMax);
      } else {
        db.applyCheckpoint(entry.index);
        this.checkpointCount++;
        this.options.log(`checkpointed database ${db.name} at index ${entry.index}`);
      }
    } catch (error) {
      if (error instanceof ApplyError) throw error;
      const what = command.kind === CommandKind.Checkpoint ? 'its checkpoint' : command.kind === CommandKind.TransactionPart ? 'a transaction part' : 'its frames';
      throw new ApplyError(entry.index, entry.term, `database ${db.name} refused ${what}`, error);
    }
  }

  /** Whether `command` at `entry` is the next part, or the commit, of the staged transaction. */
  private continuesStaged(entry: Entry, command: Command): boolean {
    const staged = this.staged;
    if (!staged) return true;
    if (command.kind !== CommandKind.TransactionPart && command.kind !== CommandKind.TransactionCommit) return false;
    if (command.kind === CommandKind.TransactionPart && command.part !== staged.received) return false;
    return command.database === staged.database && entry.term === staged.term && command.parts === staged.parts;
  }

  /** `entry` is not part of the staged transaction: its commit can no longer come (see the header). */
  private discardStaged(entry: Entry): void {
    const staged = this.staged;
    if (!staged) return;
    this.staged = undefined;
    this.discardedCount++;
    if (staged.inEngine) this.databases.get(staged.database)?.engine.discardStaged();
    this.options.log(
      `dropped ${staged.received} of ${staged.parts} parts (${staged.bytes} bytes) of a transaction on database ${staged.database} (entries ${staged.firstIndex}..${staged.lastIndex}, term ${staged.term}): entry ${entry.index} of term ${entry.term} came before its commit`,
    );
  }

  private stagePart(entry: Entry, command: Extract<Command, { kind: CommandKind.TransactionPart }>, db: ReplicatedDatabase): void {
    const fail = (reason: string): never => {
      throw new ApplyError(entry.index, entry.term, reason, new Error('a committed entry cannot be skipped: this node stops'));
    };
    const databaseBytesMax = this.options.databaseBytesMax ?? LIMITS.databaseBytesMax;
    const own = db.isOwnPart(entry.index, entry.term);
    let staged = this.staged;
    if (command.part === 0) {
      assert(staged === undefined, 'a new transaction started while another was staged');
      staged = { database: command.database, term: entry.term, firstIndex: entry.index, lastIndex: entry.index, parts: command.parts, received: 0, inEngine: !own, chunks: [], bytes: 0 };
      this.staged = staged;
    } else if (!staged || staged.received !== command.part) {
      fail(`part ${command.part + 1} of ${command.parts} of a transaction on database ${command.database} arrived without its earlier parts (${staged ? staged.received : 0} staged)`);
    }
    staged = staged!;
    // A transaction's parts share one term: another node's never become ours.
    assert(!(own && staged.inEngine), `part ${command.part + 1} of ${command.parts} is this node's own, unlike the parts before it`);
    if (!own && !staged.inEngine) {
      // Ours until this node stepped down (its pending transaction was aborted): the next
      // leader committing it, the parts copied out at the abort go to the engine now, as another node's.
      this.assertOwnPartsCopied(staged);
      db.engine.discardStaged();
      for (const chunk of staged.chunks) db.stagePart(chunk);
      staged.chunks = [];
      staged.inEngine = true;
    }
    if (staged.bytes + command.bytes.length > databaseBytesMax) {
      fail(`the staged transaction on database ${command.database} holds ${staged.bytes + command.bytes.length} bytes, above databaseBytesMax (${databaseBytesMax} bytes)`);
    }
    if (staged.inEngine) {
      const inEngine = db.engine.stagedBytes() ?? 0;
      if (inEngine !== staged.bytes) fail(`the engine holds ${inEngine} bytes of the staged transaction on database ${command.database}, this node counted ${staged.bytes}`);
      db.stagePart(command.bytes);
    }
    staged.received++;
    staged.bytes += command.bytes.length;
    staged.lastIndex = entry.index;
  }

  /**
   * The pending transaction whose parts are staged as ours is being aborted (`source`: its
   * payload, still readable): copy out what was applied of it, a proposal's size at a time.
   */
  private copyOwnParts(database: string, source: PayloadSource): void {
    const staged = this.staged;
    if (!staged || staged.inEngine || staged.database !== database || staged.chunks.length > 0 || staged.bytes === 0) return;
    assert(staged.bytes <= source.payloadBytes, `${staged.bytes} bytes of our own transaction on ${database} were applied, its payload has ${source.payloadBytes}`);
    const pieceBytes = this.options.proposalBytesMax;
    for (let offset = 0; offset < staged.bytes; offset += pieceBytes) {
      const chunk = new Uint8Array(Math.min(pieceBytes, staged.bytes - offset));
      source.readPayload(chunk, 0, offset, chunk.length);
      staged.chunks.push(chunk);
    }
  }

  private assertOwnPartsCopied(staged: StagedTransaction): void {
    let bytes = 0;
    for (const chunk of staged.chunks) bytes += chunk.length;
    assert(bytes === staged.bytes, `our own transaction on ${staged.database} lost its pending state with ${bytes} of its ${staged.bytes} applied bytes copied out`);
  }

  private takeStaged(entry: Entry, command: Extract<Command, { kind: CommandKind.TransactionCommit }>): StagedTransaction {
    const staged = this.staged;
    this.staged = undefined;
    if (!staged || staged.received !== command.parts || staged.bytes !== command.payloadBytes) {
      const have = staged ? `${staged.received} parts of ${staged.bytes} bytes are staged` : 'none of its parts are staged';
      throw new ApplyError(
        entry.index,
        entry.term,
        `the commit of a ${command.parts}-part transaction of ${command.payloadBytes} bytes on database ${command.database} came, but ${have}`,
        new Error('a committed entry cannot be skipped: this node stops'),
      );
    }
    return staged;
  }

  /**
   * Whether enough was applied since the last snapshot to take a new one: `snapshotThresholdEntries`
   * entries, or, with the policy's `snapshotThresholdBytes`, entries of that many data bytes and
   * of half of what the databases hold in memory (engine.filesBytes), however few they are. The
   * log until the next snapshot then holds at most about half a database more than the trailing
   * log, and a bulk load is written out in snapshots of a geometric series of sizes, about three
   * times its size in all, rather than once per threshold.
   */
  snapshotDue(): boolean {
    // A snapshot between a transaction's parts and its commit would lose the parts (see the header).
    if (this.staged && !this.options.snapshotBetweenParts) return false;
    if (snapshotDue(this.applied, this.lastSnapshotIndex, this.options.compaction)) return true;
    const thresholdBytes = this.options.compaction.snapshotThresholdBytes;
    if (thresholdBytes === undefined || this.applied === this.lastSnapshotIndex) return false;
    if (this.appliedBytesSinceSnapshot < thresholdBytes) return false;
    return this.appliedBytesSinceSnapshot >= this.options.engine.filesBytes() / 2;
  }

  /**
   * Log entries up to this index may go once a snapshot at `snapshotIndex` is durable;
   * `entryBytes` (data bytes of a held entry) applies the policy's byte budget.
   */
  compactionIndex(snapshotIndex: number, entryBytes?: (index: number) => number | undefined): number {
    return compactionIndex(snapshotIndex, this.options.compaction, entryBytes);
  }

  /**
   * A copy of every database's confirmed files at the applied index: later writes do not change
   * it, so encoding and storing it need not hold up the node. Pending (uncommitted) frames of
   * the leader are not part of it. Frozen views, not copies: while it is held, a write copies
   * only the chunk it changes (docs/memory.md).
   */
  snapshot(): StateCopy {
    assert(this.staged === undefined || this.options.snapshotBetweenParts === true, `a snapshot at ${this.applied} would fall between the parts of a transaction and its commit`);
    const frozen = this.all().map((db) => ({ name: db.name, ...db.engine.frozenSnapshot() }));
    return {
      index: this.applied,
      files: frozen,
      heldBytes: () => frozen.reduce((sum, f) => sum + f.main.heldBytes + f.wal.heldBytes, 0),
      release: () => {
        for (const f of frozen) {
          f.main.release();
          f.wal.release();
        }
      },
    };
  }

  /** A snapshot at `index` (the applied index: see snapshot()) is being stored: the next one is due `snapshotThresholdEntries` later. */
  snapshotStarted(index: number): void {
    assert(index === this.applied, `a snapshot started at ${index}, not at the applied index ${this.applied}`);
    if (index > this.lastSnapshotIndex) {
      this.lastSnapshotIndex = index;
      this.appliedBytesSinceSnapshot = 0;
    }
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
    // A snapshot never falls inside a transaction: staged parts are before it, or not in it.
    if (this.staged?.inEngine) this.databases.get(this.staged.database)?.engine.discardStaged();
    this.staged = undefined;
    const removed: string[] = [];
    for (const [name, db] of this.databases) {
      db.abortPending('a snapshot from the leader replaced this database');
      if (!names.has(name)) {
        removed.push(name);
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
      if (existing) {
        this.captureChanges(engineDb);
        existing.engine = engineDb;
      }
      else this.databases.set(file.name, this.newDatabase(file.name, engineDb));
    }
    this.applied = index;
    this.lastSnapshotIndex = index;
    this.appliedBytesSinceSnapshot = 0;
    // What happened between the old state and the snapshot is not known here: say so.
    for (const name of new Set([...names, ...removed])) this.commits.emit({ database: name, index, snapshot: true });
  }

  /** Every pending transaction fails; each database returns to its committed state. */
  abortPending(reason: string): void {
    for (const db of this.databases.values()) db.abortPending(reason);
  }

  private newDatabase(name: string, engineDb: Database): ReplicatedDatabase {
    this.captureChanges(engineDb);
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
      databaseBytesMax: this.options.databaseBytesMax ?? LIMITS.databaseBytesMax,
      proposalGate: this.proposalGate,
      ...(this.options.keepTransactionOnRefusedProposal && { keepTransactionOnRefusedProposal: true }),
      ...(this.options.wallClockMs && { wallClockMs: this.options.wallClockMs }),
      ...(this.options.proposePartsGradually && { yieldTurn: () => new Promise<void>((resolve) => this.options.clock.setTimeout(resolve, 0)) }),
    });
    holder.db.ownPayloadAborting = (source) => this.copyOwnParts(name, source);
    return holder.db;
  }

  /** Capture is per engine database: every one this node opens or restores gets it. */
  private captureChanges(engineDb: Database): void {
    if (this.options.changeSetBytesMax !== undefined) engineDb.captureChanges({ changeSetBytesMax: this.options.changeSetBytesMax });
  }
}

/** Encodes a state copy as the snapshot bytes Raft carries. */
export function encodeStateCopy(copy: StateCopy): Uint8Array {
  return encodeSnapshot(copy.files);
}

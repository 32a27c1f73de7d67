/**
 * The loop over Raft's Ready: persist what must be durable (an installed snapshot, term and
 * vote, new entries) in the order Raft needs it, send messages, hand committed entries and read
 * confirmations to the node, then advance. One Ready at a time; a tick or a peer message that
 * arrives meanwhile makes the loop run again.
 *
 * Also the start-up half of persistence: loading the log into Raft's in-memory storage.
 */
import {
  MemoryStorage,
  RaftNode,
  type Configuration,
  type Entry,
  type Message,
  type ReadState,
  type Ready,
  type Snapshot,
  type SoftState,
  type StateName,
} from '../raft/index.ts';
import type { RaftLog } from './raft-log.ts';
import type { SnapshotWriter } from './snapshot-writer.ts';

export interface ReadyHandler {
  /** A snapshot from the leader is durable: replace the state machine by it. */
  restore(snapshot: Snapshot): void;
  stateChanged(soft: SoftState): void;
  configurationChanged(configuration: Configuration): void;
  send(messages: readonly Message[]): void;
  /** Applies committed entries in order; throws when one cannot be applied. */
  apply(entries: readonly Entry[]): void;
  readStates(states: readonly ReadState[]): void;
  /** `count` entries up to `lastIndex` are durable in this node's log; the write took `durationMs`. */
  persisted(count: number, lastIndex: number, durationMs: number): void;
  /** Raft's commit index may have moved (after an advance). */
  committed(index: number): void;
  /** Everything of this Ready was applied (settle waiters, maybe start a snapshot). */
  appliedReady(): void;
  /** The loop cannot go on (storage failed, an entry could not be applied). */
  fatal(error: unknown): void;
}

export class ReadyLoop {
  private processing = false;
  private again = false;
  private stopped = false;
  private state: StateName = 'follower';

  constructor(
    private readonly raft: RaftNode,
    private readonly log: RaftLog,
    private readonly memory: MemoryStorage,
    private readonly snapshots: SnapshotWriter,
    private readonly handler: ReadyHandler,
    private readonly nowMs: () => number,
  ) {}

  /** Something may have produced a Ready (a tick, a message, a proposal): process it soon. */
  schedule(): void {
    if (this.stopped) return;
    if (this.processing) {
      this.again = true;
      return;
    }
    if (!this.raft.hasReady()) return;
    this.processing = true;
    void this.run().catch((error: unknown) => {
      this.stopped = true;
      this.handler.fatal(error);
    });
  }

  stop(): void {
    this.stopped = true;
  }

  private async run(): Promise<void> {
    try {
      do {
        this.again = false;
        while (this.raft.hasReady() && !this.stopped) {
          const ready = this.raft.ready();
          await this.handle(ready);
          this.raft.advance(ready);
          this.handler.committed(this.raft.committedIndex());
        }
      } while (this.again && !this.stopped);
    } finally {
      this.processing = false;
    }
    if (!this.stopped && this.raft.hasReady()) this.schedule();
  }

  private async handle(ready: Ready): Promise<void> {
    if (ready.snapshot) {
      // A local snapshot still being written would otherwise replace this newer one on disk.
      await this.snapshots.idle();
      await this.log.resetToSnapshot(ready.snapshot);
      this.memory.applySnapshot(ready.snapshot);
      this.handler.restore(ready.snapshot);
    }
    // Term and vote must be durable before any message that depends on them leaves.
    if (ready.hardState) {
      await this.log.saveHardState(ready.hardState);
      this.memory.setHardState(ready.hardState);
    }
    if (ready.configuration) this.handler.configurationChanged(ready.configuration);
    // A leader may replicate entries while it writes them itself (Raft thesis §10.2.1): clients
    // are answered only when committed entries are applied, after this write completed. A
    // follower's acknowledgements must wait for its own write.
    const leading = (ready.softState?.state ?? this.state) === 'leader';
    if (leading) this.handler.send(ready.messages);
    if (ready.entries.length > 0) {
      const startedMs = this.nowMs();
      await this.log.append(ready.entries);
      this.memory.append(ready.entries);
      this.handler.persisted(ready.entries.length, ready.entries[ready.entries.length - 1]!.index, this.nowMs() - startedMs);
    }
    if (!leading) this.handler.send(ready.messages);
    if (ready.softState) {
      this.state = ready.softState.state;
      this.handler.stateChanged(ready.softState);
    }
    this.handler.apply(ready.committedEntries);
    this.handler.readStates(ready.readStates);
    this.handler.appliedReady();
  }
}

/** What start-up found in the log. */
export interface RecoveredState {
  snapshot: Snapshot | undefined;
  bootstrapped: boolean;
  /** What the loader repaired (a torn tail cut, leftovers removed), one line each, for the log. */
  repairs: string[];
}

/**
 * Loads the durable log into `memory`. With `bootstrap` and empty storage, writes the first
 * configuration of a new cluster (this node its only voter) and makes it durable.
 */
export async function recoverRaftState(log: RaftLog, memory: MemoryStorage, bootstrap: Configuration | undefined): Promise<RecoveredState> {
  const loaded = await log.load();
  const repairs = loaded.repairs;
  if (loaded.snapshot) memory.applySnapshot(loaded.snapshot);
  memory.append(loaded.entries);
  memory.setHardState(loaded.hardState);
  const empty = !loaded.snapshot && loaded.entries.length === 0 && loaded.hardState.term === 0;
  if (!empty || !bootstrap) return { snapshot: loaded.snapshot, bootstrapped: false, repairs };
  RaftNode.bootstrap(memory, bootstrap);
  await log.append(memory.entries(memory.firstIndex(), memory.lastIndex() + 1));
  await log.saveHardState(memory.hardState());
  return { snapshot: undefined, bootstrapped: true, repairs };
}

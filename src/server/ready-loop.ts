/**
 * The loop over Raft's Ready, pipelined: a Ready's new entries go to a `LogWriter` that writes
 * one batch at a time and gathers whatever arrives meanwhile into the next batch (one durable
 * write for all of it), while the loop goes on: sending, applying and taking the next Ready. Raft
 * runs with asyncStorageWrites, so it learns of durable entries from persisted(): only those
 * count towards this node's match and are applied. Durability rules kept:
 * - an acknowledgement (AppendResponse) leaves only once every entry handed over before it is
 *   durable; messages that do not report the log (heartbeat responses, votes refused, appends a
 *   leader sends while writing its own copy, Raft thesis §10.2.1) leave at once. The
 *   acknowledgements a write releases leave together, before anything its report sets off, and
 *   without those a later one of them supersedes (see withoutSupersededAcknowledgements);
 * - a new term or vote is durable before any message of its Ready leaves (the loop waits for
 *   the writes in flight, then saves it);
 * - a snapshot from the leader is installed with no write in flight.
 * Ticks and peer messages that arrive while the loop works make it run again. After a Ready
 * that applied more than APPLIED_BYTES_PER_TURN_MAX (a part of a large transaction) the loop
 * yields to the event loop before the next, so that a long run of such Readies does not hold
 * back the heartbeats and acknowledgements that keep the leader in place; likewise between the
 * messages of one Ready past SENT_BYTES_PER_TURN_MAX of entries.
 *
 * Also the start-up half of persistence: loading the log into Raft's in-memory storage.
 */
import {
  MemoryStorage,
  MessageType,
  RaftNode,
  type Configuration,
  type Entry,
  type HardState,
  type Message,
  type ReadState,
  type Ready,
  type Snapshot,
  type SoftState,
} from '../raft/index.ts';
import { APPLIED_BYTES_PER_TURN_MAX, SENT_BYTES_PER_TURN_MAX } from '../limits.ts';
import { LogWriter } from './log-writer.ts';
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
  /** Raft's commit index may have moved (after an advance or a write). */
  committed(index: number): void;
  /** Everything of this Ready was applied (settle waiters, maybe start a snapshot). */
  appliedReady(): void;
  /** The loop cannot go on (storage failed, an entry could not be applied). */
  fatal(error: unknown): void;
}

export class ReadyLoop {
  private processing = false;
  /** A scheduleProposal is waiting for the end of this turn's I/O. */
  private proposalPending = false;
  private again = false;
  private stopped = false;
  private readonly writer: LogWriter;
  private durableTerm: number;
  private durableVote: number;
  /** Acknowledgements a durable write released, sent together once all its callbacks ran. */
  private releasedAcknowledgements: Message[] = [];

  constructor(
    private readonly raft: RaftNode,
    private readonly log: RaftLog,
    private readonly memory: MemoryStorage,
    private readonly snapshots: SnapshotWriter,
    private readonly handler: ReadyHandler,
    private readonly nowMs: () => number,
    /** Resolves on a later turn of the event loop (after timers and I/O); from the runtime's clock. */
    private readonly yieldTurn: () => Promise<void> = () => Promise.resolve(),
    /** Runs a callback after this turn's I/O callbacks (Clock.afterIo); without it, proposals are handled at once. */
    private readonly afterIo?: (callback: () => void) => void,
  ) {
    const hardState = memory.hardState();
    this.durableTerm = hardState.term;
    this.durableVote = hardState.vote;
    this.writer = new LogWriter(
      log,
      nowMs,
      (entries, durationMs) => this.written(entries, durationMs),
      (error) => this.fail(error),
      () => this.sendReleasedAcknowledgements(),
    );
  }

  /** Something may have produced a Ready (a tick, a message, a proposal): process it soon. */
  schedule(): void {
    if (this.stopped) return;
    if (this.processing) {
      this.again = true;
      return;
    }
    if (!this.raft.hasReady()) return;
    this.processing = true;
    this.run();
  }

  /**
   * A proposal was made: process it once this turn's I/O callbacks ran, so that the proposals of
   * the requests that arrived together make one Ready (one log write hand-over, one append per
   * follower). Anything else that schedules meanwhile takes the proposal along at once.
   */
  scheduleProposal(): void {
    if (this.stopped) return;
    if (!this.afterIo || this.processing) {
      this.schedule();
      return;
    }
    if (this.proposalPending) return;
    this.proposalPending = true;
    this.afterIo(() => {
      this.proposalPending = false;
      this.schedule();
    });
  }

  stop(): void {
    this.stopped = true;
  }

  /** Resolves once no log write is in flight or waiting (the storage may then be closed). */
  idle(): Promise<void> {
    return this.writer.idle();
  }

  private fail(error: unknown): void {
    if (this.stopped) return;
    this.stopped = true;
    this.handler.fatal(error);
  }

  /**
   * Handles Readies one after the other, in this turn while none has to wait: only a new term or
   * vote, or a snapshot from the leader, waits for the disk (the appends go to the LogWriter
   * without waiting), and the loop goes on once that is done; and a Ready with large parts (past
   * APPLIED_BYTES_PER_TURN_MAX or SENT_BYTES_PER_TURN_MAX) goes on in a later turn. No promise per
   * Ready otherwise.
   */
  private run(): void {
    try {
      do {
        this.again = false;
        while (this.raft.hasReady() && !this.stopped) {
          const ready = this.raft.ready();
          const waiting = this.handle(ready);
          if (waiting) {
            waiting.then(
              () => this.resume(ready),
              (error: unknown) => {
                this.processing = false;
                this.fail(error);
              },
            );
            return;
          }
          this.finish(ready);
          if (this.yieldAfter(ready)) return;
        }
      } while (this.again && !this.stopped);
    } catch (error) {
      this.processing = false;
      this.fail(error);
      return;
    }
    this.processing = false;
    if (!this.stopped && this.raft.hasReady()) this.schedule();
  }

  /** After a Ready that waited for the disk: finish it and go on. */
  private resume(ready: Ready): void {
    try {
      this.finish(ready);
    } catch (error) {
      this.processing = false;
      this.fail(error);
      return;
    }
    if (!this.yieldAfter(ready)) this.run();
  }

  /** After a Ready that applied much (a part of a large transaction): go on in a later turn. */
  private yieldAfter(ready: Ready): boolean {
    if (appliedBytes(ready) <= APPLIED_BYTES_PER_TURN_MAX) return false;
    this.yieldTurn().then(
      () => this.run(),
      (error: unknown) => {
        this.processing = false;
        this.fail(error);
      },
    );
    return true;
  }

  private finish(ready: Ready): void {
    this.raft.advance(ready);
    this.handler.committed(this.raft.committedIndex());
  }

  /** A batch is durable: Raft may count and apply it. */
  private written(entries: readonly Entry[], durationMs: number): void {
    if (this.stopped) return;
    this.memory.append([...entries]);
    const last = entries[entries.length - 1]!;
    this.raft.persisted(last.index, last.term);
    this.handler.persisted(entries.length, last.index, durationMs);
    this.handler.committed(this.raft.committedIndex());
    this.schedule();
  }

  /** Undefined when the Ready was handled in full; a promise when it waits for the disk first. */
  private handle(ready: Ready): Promise<void> | undefined {
    const hardState = ready.hardState;
    const newTermOrVote = hardState !== undefined && (hardState.term !== this.durableTerm || hardState.vote !== this.durableVote);
    if (ready.snapshot || newTermOrVote) return this.handleAfterWrites(ready);
    if (hardState) this.memory.setHardState(hardState);
    return this.handleRest(ready);
  }

  private async handleAfterWrites(ready: Ready): Promise<void> {
    if (ready.snapshot) {
      await this.writer.idle();
      // A local snapshot still being written would otherwise replace this newer one on disk.
      await this.snapshots.idle();
      await this.log.resetToSnapshot(ready.snapshot);
      this.memory.applySnapshot(ready.snapshot);
      this.handler.restore(ready.snapshot);
    }
    if (ready.hardState) await this.saveHardState(ready.hardState);
    await this.handleRest(ready);
  }

  /** Undefined when done in this turn; a promise when its sends go on in later turns. */
  private handleRest(ready: Ready): Promise<void> | undefined {
    if (ready.configuration) this.handler.configurationChanged(ready.configuration);
    let acknowledgements = 0;
    for (const m of ready.messages) if (m.type === MessageType.AppendResponse) acknowledgements++;
    const outgoing = acknowledgements === 0 ? ready.messages : ready.messages.filter((m) => m.type !== MessageType.AppendResponse);
    // The write is on its way before the sends: a send on loopback can hand the CPU to the
    // follower. (Sending first only moved the leader's time from quorum to persist.)
    if (ready.entries.length > 0) this.writer.write(ready.entries);
    const paced = this.sendPaced(outgoing);
    if (!paced) {
      this.handleAfterSends(ready, acknowledgements);
      return undefined;
    }
    return paced.then(() => {
      if (!this.stopped) this.handleAfterSends(ready, acknowledgements);
    });
  }

  private handleAfterSends(ready: Ready, acknowledgements: number): void {
    if (acknowledgements > 0) {
      const held = ready.messages.filter((m) => m.type === MessageType.AppendResponse);
      this.writer.afterDurable(() => {
        for (const m of held) this.releasedAcknowledgements.push(m);
      });
    }
    if (ready.softState) this.handler.stateChanged(ready.softState);
    this.handler.apply(ready.committedEntries);
    this.handler.readStates(ready.readStates);
    this.handler.appliedReady();
  }

  private sendReleasedAcknowledgements(): void {
    if (this.releasedAcknowledgements.length === 0) return;
    const released = this.releasedAcknowledgements;
    this.releasedAcknowledgements = [];
    this.handler.send(withoutSupersededAcknowledgements(released));
  }

  /**
   * Sends `messages` in order; past SENT_BYTES_PER_TURN_MAX of entries (the Appends of a large
   * transaction's parts, each encoded and copied as it is sent) the rest waits for a later turn
   * of the event loop, so a Ready with Appends for several followers does not hold it for long.
   * Undefined when all went in this turn.
   */
  private sendPaced(messages: readonly Message[]): Promise<void> | undefined {
    let bytes = 0;
    for (let i = 0; i < messages.length; i++) {
      const entryBytes = entriesBytes(messages[i]!.entries);
      if (bytes > 0 && bytes + entryBytes > SENT_BYTES_PER_TURN_MAX) {
        this.handler.send(messages.slice(0, i));
        const rest = messages.slice(i);
        return this.yieldTurn().then(() => (this.stopped ? undefined : this.sendPaced(rest)));
      }
      bytes += entryBytes;
    }
    this.handler.send(messages);
    return undefined;
  }

  /** Term and vote must be durable before any message that depends on them leaves. */
  private async saveHardState(hardState: HardState): Promise<void> {
    if (hardState.term !== this.durableTerm || hardState.vote !== this.durableVote) {
      // The meta file is written alone: no append runs beside it.
      await this.writer.idle();
      await this.log.saveHardState(hardState);
      this.durableTerm = hardState.term;
      this.durableVote = hardState.vote;
    }
    this.memory.setHardState(hardState);
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
 * `acknowledgements` (AppendResponses, in the order Raft made them) without each acceptance that
 * a later acceptance to the same leader in the same term supersedes (its index at least as high):
 * the leader takes from an acceptance only its index (match, next, the appends in flight up to it),
 * so the later one tells it all the earlier one would. Under load a follower's write holds the
 * acknowledgements of several appends, and this sends one message instead of several, which the
 * leader then decodes and steps once. Rejections are kept, and so is their order.
 */
export function withoutSupersededAcknowledgements(acknowledgements: readonly Message[]): Message[] {
  if (acknowledgements.length < 2) return [...acknowledgements];
  const laterIndexMax = new Map<string, number>();
  const kept: Message[] = [];
  for (let i = acknowledgements.length - 1; i >= 0; i--) {
    const m = acknowledgements[i]!;
    if (m.type !== MessageType.AppendResponse || m.reject) {
      kept.push(m);
      continue;
    }
    const key = `${m.to}/${m.term}`;
    const later = laterIndexMax.get(key);
    if (later !== undefined && later >= m.index) continue;
    laterIndexMax.set(key, m.index);
    kept.push(m);
  }
  return kept.reverse();
}

function appliedBytes(ready: Ready): number {
  return entriesBytes(ready.committedEntries);
}

function entriesBytes(entries: readonly Entry[]): number {
  let bytes = 0;
  for (const entry of entries) bytes += entry.data.length;
  return bytes;
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

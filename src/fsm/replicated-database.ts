/**
 * One database on this node: its engine connection, its execution loop, and, on the leader,
 * the transactions it proposed that Raft has not committed yet.
 *
 * Pending transactions stay visible to this node's connection (group commit builds on them), so
 * every answer computed while some were pending waits until the last of them commits; if they are
 * aborted instead, the answer becomes a leadership-lost failure. That is how no client ever sees
 * frames of a transaction that Raft has not committed.
 */
import type { CapturedTransaction, Database } from '../../wasm/index.ts';
import { EncodedTransactionChanges } from './change-codec.ts';
import { CommandKind, encodeCommand, planTransaction, type PayloadSource, type TransactionEntries } from './commands.ts';
import { DatabaseLoop } from './database-loop.ts';
import { deferred, type Deferred } from './deferred.ts';
import { assert, leadershipLost, NodeError, SQLITE_TOOBIG } from './errors.ts';

export interface PendingTransaction {
  /** The entry that commits it: its FRAMES entry, or the TX_COMMIT after its parts (Infinity until that is proposed; term -1 until its first entry is). */
  index: number;
  term: number;
  committed: Deferred<void>;
  /** A transaction that goes in parts: its payload in the engine, readable until it is confirmed or aborted. */
  source?: PayloadSource;
}

export interface ProposeResult {
  index: number;
  term: number;
}

export interface Replicator {
  /** Proposes a normal entry; throws a NodeError (not leader) when it cannot. */
  propose(data: Uint8Array): ProposeResult;
}

export interface ReplicatedDatabaseOptions {
  /** Largest command Raft takes (limits' proposalBytesMax); a larger transaction goes in parts. */
  proposalBytesMax: number;
  /** Largest database file or WAL (limits' databaseBytesMax): no transaction can be larger. */
  databaseBytesMax: number;
  /** The leader's wall clock (ms since the epoch), stamped on each transaction's changes; default Date.now. */
  wallClockMs?: () => number;
  /**
   * Resolves on a later turn of the event loop: a transaction that goes in parts is then made a
   * part at a time (proposeCaptured). Without it, everything happens in one call.
   */
  yieldTurn?: () => Promise<void>;
  /** Test-only: undo the fix that drops engine-held transactions when a proposal is refused. */
  keepTransactionOnRefusedProposal?: boolean;
  /**
   * Shared by every database of a node: held while one of them proposes a transaction's parts
   * a few at a time (proposeGradually), so that no other database's entry is proposed between
   * them (replicas stage one transaction at a time, state-machine.ts).
   */
  proposalGate?: ProposalGate;
}

/** See ReplicatedDatabaseOptions.proposalGate. */
export interface ProposalGate {
  held: Promise<void> | undefined;
}

/**
 * Parts of a large transaction the leader proposes before the earliest of them is applied
 * (committed by a quorum): what it holds beyond its log while the COMMIT of a load replicates,
 * as entries not yet written and messages not yet sent, is a few parts, not all of them.
 */
export const PARTS_IN_FLIGHT_MAX = 2;

export class ReplicatedDatabase {
  readonly loop: DatabaseLoop;
  private pending: PendingTransaction[] = [];
  private checkpointProposed: ProposeResult | undefined;
  /** The parts of pending transactions being made and proposed (proposeCaptured with yieldTurn); the loop is paused meanwhile. */
  private preparing: { cancelled: boolean } | undefined;
  /** Index of the latest of our own parts applied, and who waits for the next (proposeGradually). */
  private ownPartApplied = 0;
  private ownPartWaiter: Deferred<void> | undefined;
  /**
   * Called when pending transactions are aborted and the oldest goes in parts, before the engine
   * drops it, while its payload can still be read: the state machine copies out the parts it
   * applied as ours (it keeps no copy of them otherwise), in case another leader commits them.
   */
  ownPayloadAborting: ((source: PayloadSource) => void) | undefined;

  constructor(
    readonly name: string,
    public engine: Database,
    loop: DatabaseLoop,
    private readonly options: ReplicatedDatabaseOptions,
  ) {
    this.loop = loop;
  }

  get pendingCount(): number {
    return this.pending.length;
  }

  /** What an answer computed now must wait for: the last pending transaction, if any. */
  commitBarrier(): Promise<void> | undefined {
    return this.pending[this.pending.length - 1]?.committed.promise;
  }

  /**
   * Proposes every transaction the last statement committed in SQLite. Leader only. One larger
   * than a proposal goes as TX_PART entries and a TX_COMMIT of one term with no other Normal
   * entry between them (state-machine.ts relies on it to know when a staged transaction was
   * abandoned); without `yieldTurn` they are proposed in one synchronous call.
   *
   * With `yieldTurn` (a node), the parts of such a transaction are made and proposed one at a
   * time, each copied straight from the WAL, with a turn of the event loop after each, so that
   * a load of hundreds of MiB does not hold back heartbeats, and at most PARTS_IN_FLIGHT_MAX of
   * them ahead of the latest applied, so that the leader holds a few parts beyond its log rather
   * than all of them at once. Meanwhile the database's loop is paused (no other statement runs
   * on it), the node's other databases propose nothing (the proposal gate: their transactions
   * wait as pending, with no log index yet, as this one's does until its commit is proposed);
   * only membership changes can enter the log between the parts.
   */
  proposeCaptured(replicator: Replicator): void {
    const captured: CapturedTransaction[] = this.engine.takeCaptured(this.options.proposalBytesMax);
    const oversized = captured.find((tx) => tx.payloadBytes > this.options.databaseBytesMax);
    if (oversized) {
      // The engine's file limit keeps this from happening; if it ever does, nothing leaves.
      const error = new NodeError(
        SQLITE_TOOBIG,
        `transaction of ${oversized.payloadBytes} bytes exceeds databaseBytesMax (${this.options.databaseBytesMax} bytes), the largest database this cluster holds: it was rolled back and nothing was replicated; split it into smaller transactions`,
      );
      this.abortPending(`another transaction on this database was too large to replicate (${oversized.payloadBytes} bytes)`);
      throw error;
    }
    const plans = captured.map((tx) => {
      // The engine's encoded change set goes into the entry as it is (no decoding on the leader).
      const changes = tx.encodedChanges
        ? new EncodedTransactionChanges((this.options.wallClockMs ?? Date.now)(), tx.encodedChanges)
        : tx.changes && { timeMs: (this.options.wallClockMs ?? Date.now)(), ...tx.changes };
      return planTransaction(this.name, tx, this.options.proposalBytesMax, changes);
    });
    const yieldTurn = this.options.yieldTurn;
    // Behind another database's parts (the gate), even a small transaction waits its turn.
    if (yieldTurn && (plans.some((plan) => plan.parts > 0) || this.options.proposalGate?.held)) {
      const transactions = plans.map((plan, i) => ({
        plan,
        pending: { index: Infinity, term: -1, committed: deferred<void>(), ...(plan.parts > 0 && { source: captured[i]! }) } as PendingTransaction,
      }));
      for (const { pending } of transactions) this.pending.push(pending);
      assert(this.engine.pendingCount() === this.pending.length, `engine holds ${this.engine.pendingCount()} pending transactions, the node ${this.pending.length}`);
      void this.proposeGradually(replicator, transactions, yieldTurn);
      return;
    }
    for (const [i, plan] of plans.entries()) {
      const commands: Uint8Array[] = [];
      if (plan.frames) commands.push(plan.frames);
      else {
        for (let part = 0; part < plan.parts; part++) commands.push(plan.part(part));
        commands.push(plan.commit());
      }
      const last = this.proposeAll(replicator, commands, true);
      this.pending.push({ index: last.index, term: last.term, committed: deferred<void>(), ...(plan.parts > 0 && { source: captured[i]! }) });
    }
    // Confirming by count is only right while both sides list the same transactions.
    assert(this.engine.pendingCount() === this.pending.length, `engine holds ${this.engine.pendingCount()} pending transactions, the node ${this.pending.length}`);
  }

  /** Proposes one transaction's entries in one synchronous call; a refusal aborts everything pending. */
  private proposeAll(replicator: Replicator, commands: readonly Uint8Array[], rethrow: boolean): ProposeResult {
    let last: ProposeResult | undefined;
    try {
      for (const command of commands) {
        const result = replicator.propose(command);
        assert(
          last === undefined || (result.index === last.index + 1 && result.term === last.term),
          `the parts of one transaction must be consecutive entries of one term: ${result.index}/${result.term} after ${last?.index}/${last?.term}`,
        );
        last = result;
      }
    } catch (error) {
      // Some or none of this transaction reached the log, and no commit of it: drop it and
      // everything still pending, because the engine can only go back to the last confirmed
      // state. Parts already proposed are discarded by every replica (state-machine.ts).
      this.abortPending(error instanceof Error ? error.message : String(error));
      if (rethrow) throw error;
    }
    return last!;
  }

  /** The asynchronous half of proposeCaptured: parts made a turn at a time, then everything proposed in order. */
  private async proposeGradually(replicator: Replicator, transactions: { plan: TransactionEntries; pending: PendingTransaction }[], yieldTurn: () => Promise<void>): Promise<void> {
    const job = { cancelled: false };
    this.preparing = job;
    this.loop.pause();
    const gate = this.options.proposalGate;
    let releaseGate: (() => void) | undefined;
    try {
      // The COMMIT that captured them already took this turn.
      await yieldTurn();
      while (gate?.held && !job.cancelled) await gate.held;
      if (job.cancelled) return;
      if (gate && transactions.some(({ plan }) => plan.parts > 0)) gate.held = new Promise<void>((resolve) => (releaseGate = resolve));
      for (const { plan, pending } of transactions) {
        if (plan.frames) {
          const last = this.proposeAll(replicator, [plan.frames], false);
          if (job.cancelled) return;
          pending.index = last.index;
          pending.term = last.term;
          continue;
        }
        const proposed: number[] = [];
        for (let part = 0; part < plan.parts; part++) {
          while (!job.cancelled && proposed.length >= PARTS_IN_FLIGHT_MAX && this.ownPartApplied < proposed[proposed.length - PARTS_IN_FLIGHT_MAX]!) {
            this.ownPartWaiter ??= deferred<void>();
            await this.ownPartWaiter.promise;
          }
          // Aborted meanwhile (leadership lost): the WAL no longer holds the transaction.
          if (job.cancelled) return;
          const result = this.proposeOne(replicator, plan.part(part), proposed, pending);
          if (result === undefined) return;
          await yieldTurn();
          if (job.cancelled) return;
        }
        const commit = this.proposeOne(replicator, plan.commit(), proposed, pending);
        if (commit === undefined) return;
        pending.index = commit.index;
      }
    } catch (error) {
      if (!job.cancelled) this.abortPending(`the transaction could not be proposed: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      if (releaseGate) {
        gate!.held = undefined;
        releaseGate();
      }
      if (this.preparing === job) {
        this.preparing = undefined;
        this.loop.resume();
      }
    }
  }

  /**
   * Proposes the next entry of a transaction going in parts (`proposed`: the indexes of those
   * before it, one term, in order); the pending transaction takes the term, so that its parts
   * are known as ours when they are applied. Undefined when it was refused: everything pending
   * is aborted, and replicas drop the parts proposed so far at the next entry (state-machine.ts).
   */
  private proposeOne(replicator: Replicator, command: Uint8Array, proposed: number[], pending: PendingTransaction): ProposeResult | undefined {
    let result: ProposeResult;
    try {
      result = replicator.propose(command);
    } catch (error) {
      this.abortPending(error instanceof Error ? error.message : String(error));
      return undefined;
    }
    assert(proposed.length === 0 || (result.index > proposed[proposed.length - 1]! && result.term === pending.term), `the parts of one transaction must be entries of one term, in order: ${result.index}/${result.term} after ${proposed[proposed.length - 1]}/${pending.term}`);
    proposed.push(result.index);
    pending.term = result.term;
    return result;
  }

  /** Applies a committed FRAMES entry: confirms our own pending transaction or appends a peer's. */
  applyFrames(index: number, term: number, payload: Uint8Array): void {
    this.applyTransaction(index, term, () => payload);
  }

  /**
   * A committed TX_PART at `index`: whether it is a part of our own pending transaction, which
   * the engine already holds (nothing to apply). If it is not, another leader's entries took
   * the place of ours: our pending transactions are aborted, and the part is another node's.
   */
  isOwnPart(index: number, term: number): boolean {
    const head = this.pending[0];
    if (!head) return false;
    // Same term, before our commit: one of our parts, or of a transaction we abandoned before it.
    if (head.term === term && index < head.index) {
      this.ownPartApplied = index;
      this.wakeProposer();
      return true;
    }
    this.abortPending(`entry ${index} of term ${term} replaced this node's uncommitted transaction`);
    return false;
  }

  /** The next part of another node's transaction: checked and staged in the engine, seen by no read. */
  stagePart(bytes: Uint8Array): void {
    assert(this.pending.length === 0, `a part of another node's transaction arrived with ${this.pending.length} of our own pending`);
    this.engine.stage(bytes);
  }

  /** A committed TX_COMMIT of another node's transaction staged in the engine: it becomes the committed state. */
  commitStaged(): void {
    assert(this.pending.length === 0, `the commit of another node's transaction arrived with ${this.pending.length} of our own pending`);
    this.engine.commitStaged();
  }

  /**
   * A committed TX_COMMIT of a transaction whose parts were our own: confirms it. If ours was
   * aborted meanwhile (this node stepped down), the parts copied out at the abort (`parts`, asked
   * for after any abort this commit makes) are applied now.
   */
  applyOwnCommit(index: number, term: number, parts: () => readonly Uint8Array[]): void {
    if (this.confirmOwn(index, term)) return;
    if (this.pending.length > 0) this.abortPending(`entry ${index} of term ${term} replaced this node's uncommitted transaction`);
    this.engine.discardStaged();
    for (const part of parts()) this.engine.stage(part);
    this.engine.commitStaged();
  }

  /** Whether entry (index, term) is our oldest pending transaction: then it is confirmed. */
  private confirmOwn(index: number, term: number): boolean {
    const head = this.pending[0];
    if (!head || head.index !== index || head.term !== term) return false;
    this.engine.confirm(1);
    this.pending.shift();
    head.committed.resolve();
    return true;
  }

  private applyTransaction(index: number, term: number, payload: () => Uint8Array): void {
    if (this.confirmOwn(index, term)) return;
    if (this.pending.length > 0) {
      // Another leader's entry took the place of ours: our pending frames are not the log.
      this.abortPending(`entry ${index} of term ${term} replaced this node's uncommitted transaction`);
    }
    this.engine.apply(payload());
  }

  applyCheckpoint(index: number): void {
    if (this.pending.length > 0) this.abortPending('a checkpoint was committed before this node\'s transaction');
    this.engine.checkpoint();
    if (this.checkpointProposed && this.checkpointProposed.index <= index) {
      this.checkpointProposed = undefined;
      this.loop.resume();
    }
  }

  /** Leader only: propose a checkpoint when the WAL is long and nothing is in flight. */
  maybeProposeCheckpoint(replicator: Replicator, walFramesMax: number): void {
    if (this.checkpointProposed || this.pending.length > 0 || this.loop.transactionOwner !== undefined) return;
    // Another database's parts are being proposed: nothing may go between them.
    if (this.options.proposalGate?.held) return;
    if (this.engine.walFrameCount() < walFramesMax) return;
    try {
      this.checkpointProposed = replicator.propose(encodeCommand({ kind: CommandKind.Checkpoint, database: this.name }));
      // New writes would add frames the checkpoint entry does not cover: hold them until it applies.
      this.loop.pause();
    } catch {
      // Not leader any more: the next leader will decide.
    }
  }

  /** A proposer waiting for our parts to be applied looks again. */
  private wakeProposer(): void {
    const waiter = this.ownPartWaiter;
    this.ownPartWaiter = undefined;
    waiter?.resolve();
  }

  /** Leadership is gone: every pending transaction fails and the database returns to its committed state. */
  abortPending(reason: string): void {
    const aborted = this.pending;
    this.pending = [];
    if (this.preparing) {
      this.preparing.cancelled = true;
      this.preparing = undefined;
      this.loop.resume();
      this.wakeProposer();
    }
    if (this.checkpointProposed) {
      this.checkpointProposed = undefined;
      this.loop.resume();
    }
    // The engine may hold transactions this list never got (a proposal refused mid-batch).
    const engineHoldsOnlyOurs = this.options.keepTransactionOnRefusedProposal || this.engine.pendingCount() === 0;
    if (aborted.length === 0 && !this.engine.inTransaction() && engineHoldsOnlyOurs) return;
    const source = aborted[0]?.source;
    if (source) this.ownPayloadAborting?.(source);
    this.engine.abort();
    this.loop.clearOwner();
    const error = leadershipLost(reason);
    for (const p of aborted) p.committed.reject(error);
  }

  /** Rolls back the open transaction of a client that went away; other clients' work stays. */
  rollbackOpenTransaction(): void {
    if (!this.engine.inTransaction()) return;
    const statement = this.engine.prepare('ROLLBACK');
    try {
      statement?.step();
    } finally {
      statement?.finalize();
    }
  }
}

/**
 * Linearizable reads on the leader: a read may answer once this node confirmed, after the read
 * ran, that it still leads (a ReadIndex round) and applied everything committed at that point.
 * Reads share rounds: a read that arrives while a round is in flight cannot use it (it began
 * before the read ran) and joins the next one, which starts when the current one ends, so
 * concurrent readers cost one heartbeat round, not one each.
 *
 * A round a quorum confirmed also proves that, when it started, no other leader could be elected
 * for an election timeout (check-quorum: voters that heard from this leader refuse votes that
 * long): `confirmedRoundStartMs` is what the leader lease (leader-lease.ts) counts from.
 */
import { deferred, type Deferred } from '../fsm/deferred.ts';
import { leadershipLost, NodeError, SQLITE_ERROR } from '../fsm/errors.ts';
import type { OperationResult, ReadState } from '../raft/index.ts';
import type { BoundedWait } from './bounded-wait.ts';

export interface ReadBarrierHost {
  /** Asks Raft for a ReadIndex round named `requestId`. */
  readIndex(requestId: number): OperationResult;
  isLeader(): boolean;
  notLeader(): Error;
  /** Work for the Ready loop was created (the round's heartbeats). */
  schedule(): void;
  nowMs(): number;
}

interface Round {
  /** The commit index the leader confirmed; undefined until a quorum answered. */
  index: number | undefined;
  done: Deferred<number>;
  startedMs: number;
}

export class ReadBarrier {
  private nextRequestId = 1;
  private readonly rounds = new Map<number, Round>();
  private inFlight: Round | undefined;
  private next: Deferred<number> | undefined;
  /** Start time of the latest round a quorum confirmed in this leadership; -Infinity if none. */
  confirmedRoundStartMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly host: ReadBarrierHost,
    private readonly waits: BoundedWait,
  ) {}

  /** Resolves, with the round's read index, when a read that ran before this call may answer. Leader only. */
  barrier(): Promise<number> {
    if (!this.host.isLeader()) throw this.host.notLeader();
    if (!this.inFlight) return this.startRound();
    this.next ??= deferred<number>();
    return this.next.promise;
  }

  /** Raft confirmed rounds: each may answer once the node applied up to its index. */
  confirmed(readStates: readonly ReadState[]): void {
    for (const readState of readStates) {
      const round = this.rounds.get(readState.requestId);
      if (!round) continue;
      round.index = readState.index;
      this.confirmedRoundStartMs = Math.max(this.confirmedRoundStartMs, round.startedMs);
    }
  }

  settle(appliedIndex: number): void {
    for (const [id, round] of this.rounds) {
      if (round.index !== undefined && round.index <= appliedIndex) {
        round.done.resolve(round.index);
        this.rounds.delete(id);
      }
    }
  }

  /** Leadership is gone: every read waiting on a round fails. */
  rejectAll(): void {
    this.confirmedRoundStartMs = Number.NEGATIVE_INFINITY;
    for (const [id, round] of this.rounds) {
      round.done.reject(leadershipLost('this node stopped being the leader during a read'));
      this.rounds.delete(id);
    }
  }

  private startRound(): Promise<number> {
    const startedMs = this.host.nowMs();
    const requestId = this.nextRequestId++;
    const result = this.host.readIndex(requestId);
    if (!result.ok) {
      if (result.error.code === 'NOT_LEADER') return Promise.reject(this.host.notLeader());
      return Promise.reject(new NodeError(SQLITE_ERROR, `cannot confirm leadership: ${result.error.message}`));
    }
    const round: Round = { index: undefined, done: deferred<number>(), startedMs };
    this.rounds.set(requestId, round);
    this.inFlight = round;
    const confirmed = this.waits.wait(round.done.promise, 'confirming leadership for a read', () => {
      this.rounds.delete(requestId);
    });
    const startNext = (): void => {
      if (this.inFlight === round) this.inFlight = undefined;
      const waiting = this.next;
      this.next = undefined;
      if (!waiting) return;
      let started: Promise<number>;
      try {
        started = this.host.isLeader() ? this.startRound() : Promise.reject(this.host.notLeader());
      } catch (error) {
        started = Promise.reject(error);
      }
      started.then(waiting.resolve, waiting.reject);
    };
    confirmed.then(startNext, startNext);
    this.host.schedule();
    return confirmed;
  }
}

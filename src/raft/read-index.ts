/**
 * ReadIndex bookkeeping on the leader: reads wait for a heartbeat round that a majority of voters
 * answered after the read was registered, which proves this node was still leader then.
 * Rounds are numbered; a heartbeat carries the latest round and its response acknowledges every
 * round up to it.
 */
import { hasQuorum } from './membership.ts';
import type { Configuration, NodeId, ReadState } from './types.ts';

interface PendingRead {
  requestId: number;
  index: number;
  round: number;
}

export class ReadIndexQueue {
  private round = 0;
  private acks = new Map<NodeId, number>();
  private pending: PendingRead[] = [];
  /** Reads received before this leader committed an entry of its term. */
  private awaitingCommit: number[] = [];

  constructor(private readonly pendingMax: number) {}

  isFull(): boolean {
    return this.pending.length + this.awaitingCommit.length >= this.pendingMax;
  }

  /** The latest round: what heartbeats carry. */
  currentRound(): number {
    return this.round;
  }

  deferUntilCommit(requestId: number): void {
    this.awaitingCommit.push(requestId);
  }

  takeAwaitingCommit(): number[] {
    const waiting = this.awaitingCommit;
    this.awaitingCommit = [];
    return waiting;
  }

  /** Registers a read at commit index `index`; the caller then broadcasts a heartbeat. */
  register(requestId: number, index: number): void {
    this.round++;
    this.pending.push({ requestId, index, round: this.round });
  }

  /** A heartbeat response carrying round `context` from `from`. */
  ack(from: NodeId, context: number): void {
    if (context < 1 || context > this.round) return;
    this.acks.set(from, Math.max(this.acks.get(from) ?? 0, context));
  }

  /** Reads confirmed by a majority, in order. `unchecked` is the test-only stale-read bug. */
  release(configuration: Configuration, selfId: NodeId, unchecked = false): ReadState[] {
    const out: ReadState[] = [];
    let n = 0;
    while (n < this.pending.length) {
      const r = this.pending[n]!;
      if (!unchecked && !hasQuorum(configuration, (id) => id === selfId || (this.acks.get(id) ?? 0) >= r.round)) break;
      out.push({ index: r.index, requestId: r.requestId });
      n++;
    }
    if (n > 0) this.pending = this.pending.slice(n);
    return out;
  }

  /** Leadership changed: pending reads are dropped (clients time out and retry). */
  clear(): void {
    this.pending = [];
    this.awaitingCommit = [];
    this.acks.clear();
  }
}

/**
 * Where a write's time goes on the leader, stage by stage: received (the gateway read the
 * request) → proposed (it ran on the database's loop and its transaction was proposed) →
 * persisted (the leader's own log write of its entry finished) → committed (the leader learned
 * a quorum holds it) → applied (the state machine confirmed it) → answered (the response left).
 *
 * Each stage's histogram observes the time from the end of the stage before it, clamped at 0
 * (with three voters two followers can commit an entry before the leader's own write ends), so
 * the stages of one write add up to its whole latency. Keyed by Raft index; only writes that are
 * answered are observed, and timelines that never are (aborted, a follower's entries) are
 * dropped once their index is applied or the table is full.
 */
import type { Histogram } from './metrics-registry.ts';

export const WRITE_STAGES = ['execute', 'persist', 'quorum', 'apply', 'answer'] as const;
export type WriteStage = (typeof WRITE_STAGES)[number];

/** Bound on timelines kept: a leader that never gets answers must not grow memory. */
const TIMELINES_MAX = 4096;

interface Timeline {
  receivedMs: number;
  proposedMs: number;
  persistedMs?: number;
  committedMs?: number;
  appliedMs?: number;
}

export class WriteAnatomy {
  private readonly timelines = new Map<number, Timeline>();
  /** Received time of the request now executing on a database loop (0: none). */
  private executingReceivedMs = 0;
  private lastProposed = 0;
  private persistedTo = 0;
  private committedTo = 0;

  /** Each stage's series, keyed once: five observations per write. */
  private readonly stageSeries: Record<WriteStage, (seconds: number) => void>;

  constructor(
    private readonly nowMs: () => number,
    stageSeconds: Histogram,
  ) {
    this.stageSeries = {
      execute: stageSeconds.bind({ stage: 'execute' }),
      persist: stageSeconds.bind({ stage: 'persist' }),
      quorum: stageSeconds.bind({ stage: 'quorum' }),
      apply: stageSeconds.bind({ stage: 'apply' }),
      answer: stageSeconds.bind({ stage: 'answer' }),
    };
  }

  /**
   * Runs a client request received at `receivedMs`: the proposals it makes are timed from then.
   * Returns its result and the index of its last proposal (undefined: it proposed nothing).
   */
  execute<T>(receivedMs: number, work: () => T): { result: T; index: number | undefined } {
    const before = this.lastProposed;
    this.executingReceivedMs = receivedMs;
    try {
      const result = work();
      return { result, index: this.lastProposed !== before ? this.lastProposed : undefined };
    } finally {
      this.executingReceivedMs = 0;
    }
  }

  proposed(index: number): void {
    this.lastProposed = index;
    if (this.executingReceivedMs === 0) return;
    if (this.timelines.size >= TIMELINES_MAX) this.timelines.delete(this.timelines.keys().next().value!);
    this.timelines.set(index, { receivedMs: this.executingReceivedMs, proposedMs: this.nowMs() });
  }

  /** The leader's own log holds every entry up to `index`. */
  persisted(index: number): void {
    if (index <= this.persistedTo) {
      this.persistedTo = index; // a replaced suffix: later entries are new ones
      return;
    }
    this.mark(this.persistedTo, index, 'persistedMs');
    this.persistedTo = index;
  }

  committed(index: number): void {
    if (index <= this.committedTo) return;
    this.mark(this.committedTo, index, 'committedMs');
    this.committedTo = index;
  }

  applied(index: number): void {
    const timeline = this.timelines.get(index);
    if (timeline) timeline.appliedMs ??= this.nowMs();
  }

  /** The write whose entry is `index` was answered: observe its stages. */
  answered(index: number): void {
    const t = this.timelines.get(index);
    this.timelines.delete(index);
    this.dropApplied(index);
    if (!t || t.persistedMs === undefined || t.committedMs === undefined || t.appliedMs === undefined) return;
    const answeredMs = this.nowMs();
    const quorumEndMs = Math.max(t.persistedMs, t.committedMs);
    this.observe('execute', t.proposedMs - t.receivedMs);
    this.observe('persist', t.persistedMs - t.proposedMs);
    this.observe('quorum', quorumEndMs - t.persistedMs);
    this.observe('apply', t.appliedMs - quorumEndMs);
    this.observe('answer', answeredMs - t.appliedMs);
  }

  /** Timelines at or below `index` that nobody answered are dropped, oldest first. */
  private dropApplied(index: number): void {
    for (const [key, timeline] of this.timelines) {
      if (key > index) break;
      if (timeline.appliedMs !== undefined) this.timelines.delete(key);
    }
  }

  private mark(after: number, upTo: number, field: 'persistedMs' | 'committedMs'): void {
    if (this.timelines.size === 0) return;
    const now = this.nowMs();
    for (const [index, timeline] of this.timelines) {
      if (index > after && index <= upTo) timeline[field] ??= now;
    }
  }

  private observe(stage: WriteStage, durationMs: number): void {
    this.stageSeries[stage](Math.max(0, durationMs) / 1000);
  }
}

/**
 * The leader lease: for a while after a ReadIndex round that a quorum confirmed, no other leader
 * can exist, so the leader may answer reads without a round.
 *
 * Why: with check-quorum, a voter that heard from the leader refuses votes until `electionTimeoutTicks`
 * of its own ticks passed, which is at least (electionTimeoutTicks − 1) × tickMs after it received
 * the heartbeat; the heartbeat left after the round started. A voter that restarts has lost that
 * memory, so a node refuses vote requests for an election timeout after it starts (node.ts).
 * Clocks may run at different rates: the lease is shortened by `clockDriftMax` (a rate bound, e.g.
 * 0.1 for clocks that differ by at most 10 % over one lease). A leadership transfer makes voters
 * ignore their leader (the transfer's campaign is forced): once one started, this leadership
 * never answers from its lease again.
 */
export interface LeaderLeaseSettings {
  tickMs: number;
  electionTimeoutTicks: number;
  /** Largest relative clock-rate difference between any two nodes, in [0, 1). */
  clockDriftMax: number;
}

export const CLOCK_DRIFT_MAX_DEFAULT = 0.1;

export function leaseDurationMs(settings: LeaderLeaseSettings): number {
  if (!(settings.clockDriftMax >= 0 && settings.clockDriftMax < 1)) {
    throw new RangeError(`clockDriftMax must be in [0, 1), got ${settings.clockDriftMax}`);
  }
  return Math.max(0, (settings.electionTimeoutTicks - 1) * settings.tickMs * (1 - settings.clockDriftMax));
}

export class LeaderLease {
  readonly durationMs: number;
  private transferred = false;

  constructor(settings: LeaderLeaseSettings) {
    this.durationMs = leaseDurationMs(settings);
  }

  /** A leadership transfer started: no lease for the rest of this leadership. */
  transferStarted(): void {
    this.transferred = true;
  }

  /** This node became or stopped being leader. */
  leadershipChanged(): void {
    this.transferred = false;
  }

  /** Whether a leader whose latest confirmed round started at `roundStartMs` may answer now. */
  holds(nowMs: number, roundStartMs: number): boolean {
    return !this.transferred && nowMs < roundStartMs + this.durationMs;
  }
}

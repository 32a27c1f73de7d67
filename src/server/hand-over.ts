/**
 * Clients reach only listening nodes, and a listening follower can only point them at the
 * leader's address: a leader without one (a browser node) would leave every client without a
 * leader. So after leading for `afterMs` it hands leadership to the listening voter with the
 * longest log that it heard from recently; Raft's transfer first catches that voter up.
 */
import type { Configuration, NodeId, RaftStatus } from '../raft/index.ts';

export interface HandOverTarget {
  id: NodeId;
  match: number;
}

/** The listening voter to hand leadership to, or undefined when there is none (or one is under way). */
export function handOverTarget(status: RaftStatus, configuration: Configuration, selfId: NodeId): HandOverTarget | undefined {
  if (status.leadTransferee !== 0 || !status.progress) return undefined;
  let best: HandOverTarget | undefined;
  for (const member of configuration.members) {
    if (member.role !== 'voter' || member.id === selfId || member.address === '') continue;
    const progress = status.progress[member.id];
    if (!progress?.recentActive) continue;
    if (!best || progress.match > best.match) best = { id: member.id, match: progress.match };
  }
  return best;
}

export class HandOverPolicy {
  private leaderSinceMs = 0;

  constructor(
    /** Only a node without an address hands over. */
    private readonly applies: boolean,
    private readonly afterMs: number,
  ) {}

  becameLeader(nowMs: number): void {
    this.leaderSinceMs = nowMs;
  }

  /** Whether a leader at `nowMs` should look for a target now. */
  due(leading: boolean, nowMs: number): boolean {
    return this.applies && leading && nowMs - this.leaderSinceMs >= this.afterMs;
  }
}

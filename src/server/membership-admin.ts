/**
 * Cluster administration through the leader, as dqlite's Add/Assign/Remove/Transfer requests do
 * it: each change is one Raft entry, answered once this node applied it.
 */
import { NodeError, notLeader, SQLITE_ERROR } from '../fsm/errors.ts';
import type { ConfChange, Configuration, Member, NodeId, OperationResult, ProposeResult, Role } from '../raft/index.ts';
import type { Clock } from '../runtime.ts';
import type { AppliedWaiters } from './applied-waiters.ts';
import type { BoundedWait } from './bounded-wait.ts';

export interface MembershipHost {
  readonly id: NodeId;
  isLeader(): boolean;
  leaderId(): NodeId;
  leaderAddress(): string | undefined;
  /** The configuration in effect (latest in the log). */
  configuration(): Configuration;
  proposeConfChange(change: ConfChange): ProposeResult;
  transferLeadership(to: NodeId): OperationResult;
  schedule(): void;
}

export interface MembershipSettings {
  votersMax: number;
  standbysMax: number;
  /** A transfer that has not completed after this long failed. */
  transferTimeoutMs: number;
  /** How often a transfer's completion is checked. */
  transferPollMs: number;
}

export class MembershipAdmin {
  private failureDomain = 0n;
  private weight = 0n;
  private adjusting = false;

  constructor(
    private readonly host: MembershipHost,
    private readonly applied: AppliedWaiters,
    private readonly waits: BoundedWait,
    private readonly clock: Pick<Clock, 'nowMs' | 'setTimeout'>,
    private readonly settings: MembershipSettings,
  ) {}

  members(): Member[] {
    return this.host.configuration().members.map((m) => ({ ...m }));
  }

  addMember(id: NodeId, address: string): Promise<void> {
    return this.change({ type: 'add', id, address, role: 'spare' });
  }

  assignRole(id: NodeId, role: Role): Promise<void> {
    return this.change({ type: 'assign', id, role });
  }

  removeMember(id: NodeId): Promise<void> {
    return this.change({ type: 'remove', id });
  }

  /** The role a newly joined node should get, as go-dqlite's app decides it. */
  roleForNewMember(): Role {
    const members = this.host.configuration().members;
    const voters = members.filter((m) => m.role === 'voter').length;
    const standbys = members.filter((m) => m.role === 'standby').length;
    if (voters < this.settings.votersMax) return 'voter';
    if (standbys < this.settings.standbysMax) return 'standby';
    return 'spare';
  }

  /**
   * On the leader, demotes voters beyond `votersMax`, as go-dqlite's app adjusts roles. Joining
   * nodes choose their own role from the member list they read, so two that join at once can
   * both read room for one more voter and both take it; the leader, which sees every change in
   * order, gives the surplus back: the last voter in the configuration (never itself) becomes a
   * standby, or a spare when the standbys are full. One change at a time; the next round retries
   * one that was refused (another change still being committed).
   */
  adjustRoles(log: (line: string) => void): void {
    if (this.adjusting || !this.host.isLeader()) return;
    const members = this.host.configuration().members;
    const voters = members.filter((m) => m.role === 'voter');
    if (voters.length <= this.settings.votersMax) return;
    const surplus = [...voters].reverse().find((m) => m.id !== this.host.id);
    if (!surplus) return;
    const standbys = members.filter((m) => m.role === 'standby').length;
    const role: Role = standbys < this.settings.standbysMax ? 'standby' : 'spare';
    this.adjusting = true;
    this.change({ type: 'assign', id: surplus.id, role }).then(
      () => log(`node ${surplus.id} demoted to ${role}: the cluster had ${voters.length} voters, more than votersMax ${this.settings.votersMax}`),
      () => {},
    ).finally(() => (this.adjusting = false));
  }

  /** Hands leadership to voter `to` (0: any other voter) and waits until it leads. */
  async transferLeadership(to: NodeId): Promise<void> {
    this.requireLeader();
    if (to === 0) {
      const candidate = this.host.configuration().members.find((m) => m.role === 'voter' && m.id !== this.host.id);
      if (!candidate) throw new NodeError(SQLITE_ERROR, 'no other voter to transfer leadership to');
      to = candidate.id;
    }
    const result = this.host.transferLeadership(to);
    if (!result.ok) throw new NodeError(SQLITE_ERROR, `leadership transfer refused: ${result.error.message}`);
    this.host.schedule();
    const deadline = this.clock.nowMs() + this.settings.transferTimeoutMs;
    while (this.host.leaderId() !== to) {
      if (this.clock.nowMs() > deadline) {
        throw new NodeError(SQLITE_ERROR, `leadership transfer to node ${to} did not complete; node ${to} may be behind or down`);
      }
      await new Promise<void>((resolve) => this.clock.setTimeout(resolve, this.settings.transferPollMs));
    }
  }

  describe(): { failureDomain: bigint; weight: bigint } {
    return { failureDomain: this.failureDomain, weight: this.weight };
  }

  setWeight(weight: bigint): void {
    this.weight = weight;
  }

  private requireLeader(): void {
    if (!this.host.isLeader()) throw notLeader(this.host.leaderAddress());
  }

  private async change(change: ConfChange): Promise<void> {
    this.requireLeader();
    const result = this.host.proposeConfChange(change);
    if (!result.ok) {
      if (result.error.code === 'NOT_LEADER') throw notLeader(this.host.leaderAddress());
      throw new NodeError(SQLITE_ERROR, `membership change refused: ${result.error.message}`);
    }
    this.host.schedule();
    await this.waits.wait(this.applied.wait(result.index), 'committing a membership change');
  }
}

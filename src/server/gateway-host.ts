/**
 * What a client connection (gateway) needs from its node: leader facts, the databases, the
 * settle rules for answers, and cluster administration. `ClusterNode` implements it; the
 * gateway sees nothing else of the node, and the two modules do not import each other.
 */
import type { ReplicatedDatabase, Replicator } from '../fsm/replicated-database.ts';
import type { Limits } from '../limits.ts';
import type { ChangeLogSource } from '../live/change-feed.ts';
import type { Member, NodeId, Role } from '../raft/index.ts';
import type { AdministeredNode } from './admin-requests.ts';
import type { NodeMetrics } from './metrics.ts';
import type { UnsafeSwitches } from './node-options.ts';
import type { ReadLevel } from './read-path.ts';
import type { LiveQueries } from '../live/live-queries.ts';

export interface GatewayHost extends Replicator, AdministeredNode {
  readonly metrics: NodeMetrics;
  /** This replica's live queries (src/live/); a node without them announces no live extension. */
  readonly liveQueries?: LiveQueries;
  readonly limits: Readonly<Limits>;
  readonly unsafe: Readonly<UnsafeSwitches>;
  /** The leader's id and address, when one is known. */
  leader(): { id: NodeId; address: string } | undefined;
  members(): Member[];
  /** The database `name`, created on first use. */
  database(name: string): ReplicatedDatabase;
  existingDatabase(name: string): ReplicatedDatabase | undefined;
  /** Waits until this node leads and applied every entry of earlier terms. */
  leaderReady(): Promise<void>;
  /** Throws not-leader unless statements may run now (on the database's loop). */
  requireReadyLeader(): void;
  /** Resolves when a write's answer may go out: its transaction, and all it saw, committed. */
  writeSettled(barrier: Promise<void> | undefined): Promise<void>;
  /** Resolves when a read's answer may go out: what it saw committed and leadership confirmed. */
  readSettled(barrier: Promise<void> | undefined): Promise<void>;
  /** The level of plain dqlite read requests (clients that cannot choose). */
  readonly defaultReadLevel: ReadLevel;
  /** Resolves when a read at `level` may run on this node's committed state (read view). */
  admitRead(level: ReadLevel): Promise<void>;
  /** The last log index this node applied: a read's bookmark. */
  appliedIndex(): number;
  isLeader(): boolean;
  addMember(id: NodeId, address: string): Promise<void>;
  assignRole(id: NodeId, role: Role): Promise<void>;
  removeMember(id: NodeId): Promise<void>;
  transferLeadership(to: NodeId): Promise<void>;
  describe(): { failureDomain: bigint; weight: bigint };
  setWeight(weight: bigint): void;
  /** This replica's applied log and commit events, for change feeds (absent: none served). */
  changeLog?(): ChangeLogSource;
}

/** What a node is started with, and what it reports about itself. */
import type { Engine } from '../../wasm/index.ts';
import type { Limits } from '../limits.ts';
import { defaultCompactionPolicy, type Member, type NodeId } from '../raft/index.ts';
import type { DurableStorage, Runtime } from '../runtime.ts';
import type { AdminPolicy } from './admin-policy.ts';
import type { ReadLevel } from './read-path.ts';
import type { NodeMemory } from './memory-usage.ts';

export interface NodeOptions {
  id: NodeId;
  /** "host:port" peers and clients reach this node at; empty for a node that cannot listen. */
  address: string;
  runtime: Runtime;
  storage: DurableStorage;
  engine: Engine;
  clusterKey: string;
  /**
   * Record what each transaction this node leads changes, in its log entry, for change feeds
   * and live queries (docs/live-queries.md). Default true; false writes entries as before.
   */
  changeCapture?: boolean;
  /** Dial peers with `wss://` (the cluster serves TLS; the runtime's dialer brings the certificates). */
  secure?: boolean;
  /** Start a new cluster with this node as its only voter (when the storage is empty). */
  bootstrap?: boolean;
  /**
   * Members to keep connections to until this node's log names it a member. A node that cannot
   * listen is reached only on connections it opened, so while joining it must dial out first.
   */
  seedPeers?: { id: NodeId; address: string }[];
  tickMs?: number;
  electionTimeoutTicks?: number;
  heartbeatTicks?: number;
  walFramesMax?: number;
  snapshotThresholdEntries?: number;
  snapshotTrailingEntries?: number;
  busyTimeoutMs?: number;
  /** How long a write or read may wait for Raft (quorum) before it fails. */
  commitTimeoutMs?: number;
  /**
   * A leader with no address (a browser node) cannot be reached by clients: after leading this
   * long it hands leadership to the most up-to-date reachable listening voter. Default 1000.
   */
  leaderWithoutAddressHandOverMs?: number;
  votersMax?: number;
  standbysMax?: number;
  /**
   * The read level of clients that cannot choose one (go-dqlite, the dqlite shell): plain
   * QUERY/QUERY_SQL requests. Default linearizable, which on a follower answers not-leader as
   * dqlite does; `stale`/`session` let a follower answer them locally.
   */
  defaultReadLevel?: ReadLevel;
  /** Clock-rate bound the leader lease assumes (leader-lease.ts). Default 0.1. */
  leaseClockDriftMax?: number;
  /** Overrides of the limits table (src/limits.ts); start-up fails if they do not fit together. */
  limits?: Partial<Limits>;
  /** Deliberately unsafe behaviour, for tests that prove the checkers catch it. Never in production. */
  /** Who may add, assign, remove, transfer and weight over the dqlite protocol. Default: loopback. */
  adminPolicy?: AdminPolicy;
  unsafeForTesting?: UnsafeSwitches;
  log?: (line: string) => void;
  /**
   * Called once when the node stopped because it cannot go on safely (storage failed, a committed
   * entry cannot be applied), with the original error. The node never exits its host process.
   */
  onFatal?: (error: Error) => void;
}

/**
 * Test-only switches. `ackBeforeCommit` answers writes before Raft commits them;
 * `readsWithoutBarrier` answers reads without confirming leadership or waiting for the
 * transactions they saw. The other three undo fixes of bugs the fault suite found, so the
 * whole-cluster simulator can show it finds them: `keepTransactionOnRefusedProposal` leaves the
 * engine's transactions in place when a proposal is refused mid-batch;
 * `statementsBeforeTermApplied` lets a new leader run client statements before it applied the
 * entries of earlier terms; `runRequestsOfDepartedClients` runs a queued request whose client
 * already left (leaving its transaction open forever). `truncateOnCorruption` makes the log
 * loader cut a damaged record in the middle of the last segment off as if it were a torn tail
 * (the loader before the fix), so the node starts without entries it acknowledged.
 * `snapshotBetweenParts` lets a snapshot be taken while a large transaction's parts are staged
 * (the state machine defers it until the commit), so a node restarting from that snapshot, or
 * installing it, meets a commit whose parts it never saw.
 */
export interface UnsafeSwitches {
  ackBeforeCommit?: boolean;
  readsWithoutBarrier?: boolean;
  keepTransactionOnRefusedProposal?: boolean;
  statementsBeforeTermApplied?: boolean;
  runRequestsOfDepartedClients?: boolean;
  /** Follower reads at linearizable skip the leader's read index (stale reads the checkers must catch). */
  followerReadsWithoutReadIndex?: boolean;
  truncateOnCorruption?: boolean;
  snapshotBetweenParts?: boolean;
}

/** The switches' names on the command line (`--unsafe-for-testing a,b`), kebab-case. */
export const UNSAFE_SWITCH_NAMES: Record<string, keyof UnsafeSwitches> = {
  'ack-before-commit': 'ackBeforeCommit',
  'reads-without-barrier': 'readsWithoutBarrier',
  'keep-transaction-on-refused-proposal': 'keepTransactionOnRefusedProposal',
  'statements-before-term-applied': 'statementsBeforeTermApplied',
  'run-requests-of-departed-clients': 'runRequestsOfDepartedClients',
  'follower-reads-without-read-index': 'followerReadsWithoutReadIndex',
  'truncate-on-corruption': 'truncateOnCorruption',
  'snapshot-between-parts': 'snapshotBetweenParts',
};

/** Parses a comma-separated `--unsafe-for-testing` list; throws naming the unknown switch. */
export function parseUnsafeSwitches(list: string): UnsafeSwitches {
  const switches: UnsafeSwitches = {};
  for (const raw of list.split(',')) {
    const name = raw.trim();
    if (name === '') continue;
    const key = UNSAFE_SWITCH_NAMES[name];
    if (!key) throw new Error(`unknown --unsafe-for-testing switch "${name}" (${Object.keys(UNSAFE_SWITCH_NAMES).join(', ')})`);
    switches[key] = true;
  }
  return switches;
}

export interface NodeStatus {
  id: NodeId;
  address: string;
  state: string;
  leaderId: NodeId;
  leaderAddress: string;
  term: number;
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number;
  snapshotIndex: number;
  members: Member[];
  reachablePeers: NodeId[];
  databases: { name: string; walFrames: number; pending: number }[];
  checkpoints: number;
  snapshots: number;
  /** Live queries on this replica: subscriptions, distinct queries, evaluations since start. */
  liveQueries?: { subscriptions: number; queries: number; evaluations: number };
  /** What this node holds in memory, by part (docs/memory.md). */
  memory: NodeMemory;
}

export const NODE_DEFAULTS = {
  tickMs: 100,
  electionTimeoutTicks: 10,
  heartbeatTicks: 1,
  walFramesMax: 1000,
  snapshotThresholdEntries: defaultCompactionPolicy.snapshotThresholdEntries,
  snapshotTrailingEntries: defaultCompactionPolicy.trailingEntries,
  busyTimeoutMs: 5000,
  commitTimeoutMs: 10_000,
  leaderWithoutAddressHandOverMs: 1000,
  votersMax: 3,
  standbysMax: 3,
};

export type NodeSettings = typeof NODE_DEFAULTS;

export function resolveSettings(options: NodeOptions): NodeSettings {
  const settings = { ...NODE_DEFAULTS };
  for (const key of Object.keys(NODE_DEFAULTS) as (keyof NodeSettings)[]) {
    const value = options[key];
    if (value !== undefined) settings[key] = value;
  }
  return settings;
}

/**
 * Every size and count bound of a node, in one table. Each limit is named `xMax` with its unit
 * before `Max`; `resolveLimits` checks at start-up that they fit together, so that nothing
 * one layer accepts is refused by the next (a transaction SQLite committed that Raft cannot
 * propose, a proposal no peer message can carry, a database no snapshot can hold).
 */
import { MESSAGE_BYTES_MAX } from './raft/index.ts';

export interface Limits {
  /** Largest replicated command: one transaction's WAL frames plus the command header. */
  proposalBytesMax: number;
  /** Largest dqlite-protocol request a client may send (header excluded). */
  clientRequestBytesMax: number;
  /** Largest result a query may answer with, over all its Rows messages. */
  clientResultBytesMax: number;
  /** Prepared statements one client connection may hold. */
  clientStatementsMax: number;
  /** Databases one client connection may open. */
  clientDatabasesMax: number;
  /** Requests a client may send ahead of reading the answers. */
  clientQueuedRequestsMax: number;
  /** Statements queued on one database's execution loop. */
  databaseQueuedTasksMax: number;
  /** Largest main file, and largest WAL, of one database in the engine. */
  databaseBytesMax: number;
  /** Largest message between peers (transport envelope included). */
  peerMessageBytesMax: number;
  /** Entry bytes one Append message carries when there are several (a larger entry goes alone). */
  appendBytesMax: number;
  /**
   * Entry bytes sent to one replica and not yet acknowledged: bounds the leader's memory held in
   * appends (a large transaction's parts) while a follower is slow. One append always goes.
   */
  appendInflightBytesMax: number;
  /** Bytes of one InstallSnapshot chunk. */
  snapshotChunkBytesMax: number;
  /** Largest snapshot a node takes or accepts: every database's main file and WAL. */
  snapshotBytesMax: number;
  /**
   * Bytes of one write of a snapshot file: a snapshot is encoded and written this much at a time,
   * so this is what a node holds of its encoding, whatever the databases' size.
   */
  snapshotWriteBytesMax: number;
  /** Largest record of the Raft log on disk: one entry with its header. */
  logRecordBytesMax: number;
  /**
   * Entry data bytes a node keeps in memory before its latest snapshot (beside the entry count,
   * snapshotTrailingEntries): a follower further behind gets a snapshot.
   */
  logTrailingBytesMax: number;
  /**
   * Entry data bytes a node keeps in memory of its log once they are applied: the data of older
   * applied entries is dropped from memory (it is durable in the log's segments) and read back
   * from there for a follower that needs them. Bounds the log a node holds while a load's parts
   * replicate, and until the snapshot after them, whatever the load's size.
   */
  logHeldBytesMax: number;
  /**
   * Entry data bytes applied since the latest snapshot after which a node takes a new one (beside
   * the entry count, snapshotThresholdEntries): bounds the log a node holds in memory after a
   * few large transactions, such as a load's parts.
   */
  snapshotLogBytesMax: number;
  /**
   * Bytes after which a log segment file is closed (an append that alone is larger fills one
   * segment by itself): segments are deleted whole once a snapshot covers them.
   */
  logSegmentBytesMax: number;
  /** Committed entry bytes handed to the state machine in one Ready. */
  committedBytesPerReadyMax: number;
  /** Row changes one transaction's entry carries for the change feed; beyond, only its table list. */
  changeSetBytesMax: number;
  /** Entries a leader accepts before they commit; then proposals are refused. */
  uncommittedEntriesMax: number;
  /** ReadIndex requests waiting for a quorum. */
  pendingReadsMax: number;
  /** Live query subscriptions one node holds (src/live/live-queries.ts), all clients together. */
  liveQueriesMax: number;
  /** Largest result of a live query, as Rows messages: it is kept to compare with the next one. */
  liveResultBytesMax: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

export const LIMITS: Readonly<Limits> = Object.freeze({
  proposalBytesMax: 16 * MiB,
  clientRequestBytesMax: 16 * MiB,
  clientResultBytesMax: 256 * MiB,
  clientStatementsMax: 1024,
  clientDatabasesMax: 16,
  clientQueuedRequestsMax: 64,
  databaseQueuedTasksMax: 10_000,
  databaseBytesMax: 1 * GiB,
  peerMessageBytesMax: 64 * MiB,
  appendBytesMax: 1 * MiB,
  appendInflightBytesMax: 32 * MiB,
  snapshotChunkBytesMax: 1 * MiB,
  snapshotBytesMax: 2 * GiB + 64 * MiB,
  snapshotWriteBytesMax: 1 * MiB,
  logRecordBytesMax: 256 * MiB,
  logTrailingBytesMax: 16 * MiB,
  logHeldBytesMax: 32 * MiB,
  snapshotLogBytesMax: 64 * MiB,
  logSegmentBytesMax: 8 * MiB,
  committedBytesPerReadyMax: 16 * MiB,
  changeSetBytesMax: 1 * MiB,
  uncommittedEntriesMax: 65_536,
  pendingReadsMax: 4096,
  liveQueriesMax: 10_000,
  liveResultBytesMax: 16 * MiB,
});

/**
 * What a peer message adds around its payload: the Raft message header (128 bytes), entry
 * headers, a snapshot chunk's metadata with the cluster configuration, the transport envelope.
 */
export const PEER_MESSAGE_FRAMING_BYTES = 64 * KiB;
/**
 * Committed entry bytes a node applies in one turn of the event loop: past them (the parts of a
 * transaction of hundreds of MiB, each checked and staged as it is applied) the Ready loop lets
 * timers and peer messages run before it takes the next Ready, so heartbeats keep going out and
 * appends keep being acknowledged while a large transaction applies.
 */
export const APPLIED_BYTES_PER_TURN_MAX = 4 * MiB;
/**
 * Entry bytes of the messages a node sends in one turn of the event loop (at least one message):
 * each Append is encoded and copied as it is sent, and a Ready that sends the parts of a large
 * transaction to several followers would otherwise hold the loop for all of them at once.
 */
export const SENT_BYTES_PER_TURN_MAX = 16 * MiB;
/**
 * Entry data bytes one Raft log write takes (at least one entry); what was handed over beyond
 * goes in the next write, so no single write encodes and checksums hundreds of MiB at once.
 */
export const LOG_WRITE_BYTES_MAX = 16 * MiB;
/** A log record's header: u32 length, u32 CRC, u64 term, u64 index, u8 type. */
export const LOG_RECORD_FRAMING_BYTES = 25;
/** Room in a commit entry beside the row changes: the command header and the table list. */
export const CHANGE_SET_FRAMING_BYTES = 64 * KiB;
/** A snapshot's header and per-database names and lengths, with room to spare. */
export const SNAPSHOT_FRAMING_BYTES = 64 * KiB;

export class LimitsError extends Error {
  readonly code = 'LIMITS';
  constructor(readonly problems: string[]) {
    super(`the node's limits do not fit together: ${problems.join('; ')}`);
    this.name = 'LimitsError';
  }
}

/** The default table with `overrides` applied, checked; throws LimitsError naming every broken rule. */
export function resolveLimits(overrides: Partial<Limits> = {}): Limits {
  const limits: Limits = { ...LIMITS };
  for (const [name, value] of Object.entries(overrides) as [keyof Limits, number | undefined][]) {
    if (value !== undefined) limits[name] = value;
  }
  validateLimits(limits);
  return limits;
}

export function validateLimits(limits: Limits): void {
  const problems: string[] = [];
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1) problems.push(`${name} must be a positive integer, got ${String(value)}`);
  }
  if (problems.length > 0) throw new LimitsError(problems);
  const atLeast = (big: keyof Limits, needed: number, why: string): void => {
    if (limits[big] < needed) problems.push(`${big} (${limits[big]} bytes) must be at least ${needed} bytes: ${why}`);
  };
  atLeast('peerMessageBytesMax', limits.proposalBytesMax + PEER_MESSAGE_FRAMING_BYTES, `a peer message must carry the largest proposal (proposalBytesMax ${limits.proposalBytesMax}) plus ${PEER_MESSAGE_FRAMING_BYTES} bytes of framing`);
  atLeast('peerMessageBytesMax', limits.appendBytesMax + PEER_MESSAGE_FRAMING_BYTES, `a peer message must carry a full Append (appendBytesMax ${limits.appendBytesMax}) plus its framing`);
  atLeast('appendInflightBytesMax', limits.appendBytesMax, `the appends in flight to a replica must hold at least one full Append (appendBytesMax ${limits.appendBytesMax})`);
  atLeast('peerMessageBytesMax', limits.snapshotChunkBytesMax + PEER_MESSAGE_FRAMING_BYTES, `a peer message must carry a snapshot chunk (snapshotChunkBytesMax ${limits.snapshotChunkBytesMax}) plus its framing`);
  if (limits.peerMessageBytesMax > MESSAGE_BYTES_MAX) {
    problems.push(`peerMessageBytesMax (${limits.peerMessageBytesMax}) must not exceed the Raft codec's ${MESSAGE_BYTES_MAX}-byte message bound`);
  }
  atLeast('logRecordBytesMax', limits.proposalBytesMax + LOG_RECORD_FRAMING_BYTES, `a log record must hold the largest proposal (proposalBytesMax ${limits.proposalBytesMax}) plus its ${LOG_RECORD_FRAMING_BYTES}-byte header`);
  atLeast('logTrailingBytesMax', limits.appendBytesMax, `a follower just behind the snapshot must get at least one full Append from the kept log (appendBytesMax ${limits.appendBytesMax})`);
  atLeast('logHeldBytesMax', limits.appendBytesMax, `a follower just behind must get at least one full Append from memory (appendBytesMax ${limits.appendBytesMax})`);
  atLeast('snapshotLogBytesMax', 2 * limits.proposalBytesMax, `a snapshot is due after this much log, and must not be due after every one of the largest proposals (2 × proposalBytesMax ${limits.proposalBytesMax})`);
  atLeast('proposalBytesMax', limits.clientRequestBytesMax, `a client request must not be larger than what can be proposed (clientRequestBytesMax ${limits.clientRequestBytesMax})`);
  atLeast('proposalBytesMax', limits.changeSetBytesMax + CHANGE_SET_FRAMING_BYTES, `a transaction's commit entry must carry its changes (changeSetBytesMax ${limits.changeSetBytesMax}) plus ${CHANGE_SET_FRAMING_BYTES} bytes for its table list`);
  atLeast('databaseBytesMax', limits.proposalBytesMax, `a follower's WAL must take the largest proposal (proposalBytesMax ${limits.proposalBytesMax})`);
  atLeast('snapshotBytesMax', 2 * limits.databaseBytesMax + SNAPSHOT_FRAMING_BYTES, `a snapshot must hold the largest database's main file and WAL (2 × databaseBytesMax ${limits.databaseBytesMax}) plus its framing`);
  atLeast('snapshotBytesMax', limits.snapshotChunkBytesMax, 'a snapshot chunk cannot be larger than a snapshot');
  atLeast('snapshotBytesMax', limits.snapshotWriteBytesMax, 'a write of a snapshot file cannot be larger than a snapshot');
  atLeast('clientResultBytesMax', limits.liveResultBytesMax, `a live query's result goes to clients (liveResultBytesMax ${limits.liveResultBytesMax})`);
  if (problems.length > 0) throw new LimitsError(problems);
}

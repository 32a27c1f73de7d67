/**
 * The Raft core: a pure state machine with injected storage, time and randomness.
 *
 * Driving it (the node's loop):
 *   const raft = new RaftNode({ id, storage, electionTimeoutTicks: 10, heartbeatTicks: 1, random: Math.random });
 *   every tick interval: raft.tick();   on a peer message: raft.step(decodeMessage(bytes));
 *   after any of those, while (raft.hasReady()) {
 *     const rd = raft.ready();
 *     1. rd.snapshot  -> storage.applySnapshot(rd.snapshot) and restore the state machine from it
 *     2. rd.entries   -> append to the log (may replace a suffix), rd.hardState -> save; fsync both
 *     3. rd.messages  -> send (only now: votes and acks must be durable first). A leader may
 *        send them while this Ready's entries are still being written (Raft thesis §10.2.1): it
 *        counts its own entries towards commit only after advance(). rd.hardState and earlier
 *        Readies must be durable before sending, on every node.
 *     4. rd.committedEntries -> apply in order (EntryType.Normal only; the others are Raft's)
 *     5. rd.readStates -> serve the reads once applied >= index; rd.configuration -> peer addresses
 *     raft.advance(rd);
 *   }
 * Snapshots: after applying, when snapshotDue(applied, lastSnapshotIndex), call
 * storage.createSnapshot(applied, raft.configurationAt(applied), data) then
 * storage.compact(compactionIndex(applied)).
 * Shutdown on SIGTERM: raft.transferLeadership(someVoter), keep driving until not leader (bounded).
 */
export type {
  NodeId,
  Role,
  Member,
  Configuration,
  Entry,
  HardState,
  SnapshotMeta,
  Snapshot,
  SnapshotChunk,
  Message,
  ConfChange,
  ReadState,
  SoftState,
  StateName,
  Ready,
} from './types.ts';
export { EntryType, MessageType } from './types.ts';
export type { RaftErrorCode, ProposeResult, OperationResult } from './errors.ts';
export { RaftError, NotLeaderError, RaftCodecError, CompactedError, UnavailableError, EntriesPendingError } from './errors.ts';
export type { RaftStorage, SnapshotChunkRequest, EntriesRequest } from './storage.ts';
export { MemoryStorage, entrySizeBytes } from './storage.ts';
export type { CompactionPolicy } from './compaction.ts';
export { defaultCompactionPolicy, snapshotDue, compactionIndex } from './compaction.ts';
export {
  applyConfChange,
  findMember,
  isVoter,
  voterIds,
  replicaIds,
  MEMBERS_MAX,
  ADDRESS_BYTES_MAX,
} from './membership.ts';
export type { ProgressState } from './progress.ts';
export type { RaftConfig, RaftStatus, ProgressStatus, RaftTestBug } from './raft.ts';
export { RaftNode } from './raft.ts';
export {
  encodeMessage,
  encodeMessageWithHeadroom,
  encodeSnapshotMessagePrefix,
  encodeMessageInto,
  encodedMessageBytes,
  decodeMessage,
  type MessageInput,
  encodeConfChange,
  decodeConfChange,
  encodeConfiguration,
  decodeConfiguration,
  MESSAGE_BYTES_MAX,
  MESSAGE_ENTRIES_MAX,
} from './codec.ts';

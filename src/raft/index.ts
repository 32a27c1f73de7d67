/** The Raft core: a pure state machine with injected storage, time and randomness. */
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
export { RaftError, NotLeaderError, RaftCodecError, CompactedError, UnavailableError } from './errors.ts';
export type { RaftStorage } from './storage.ts';
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
  decodeMessage,
  encodeConfChange,
  decodeConfChange,
  encodeConfiguration,
  decodeConfiguration,
  MESSAGE_BYTES_MAX,
  MESSAGE_ENTRIES_MAX,
} from './codec.ts';

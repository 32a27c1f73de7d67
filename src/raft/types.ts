/**
 * The data types of the Raft core: log entries, persistent state, snapshots, messages and the
 * Ready batch handed to the application. Pure data; no behaviour.
 */

/** A server's id, 1 .. 2^53-1. 0 means "none" where a field allows it. */
export type NodeId = number;

/** dqlite roles: a voter votes and replicates, a standby replicates only, a spare does neither. */
export type Role = 'voter' | 'standby' | 'spare';

export interface Member {
  id: NodeId;
  address: string;
  role: Role;
}

export interface Configuration {
  members: Member[];
}

export enum EntryType {
  /** Application command (a FRAMES/OPEN/CHECKPOINT of the fsm). */
  Normal = 1,
  /** One membership change; data = encodeConfChange(change). */
  ConfChange = 2,
  /** Empty entry a new leader appends to commit its term; the application skips it. */
  Barrier = 3,
  /** A whole configuration (bootstrap); data = encodeConfiguration(configuration). */
  Configuration = 4,
}

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  data: Uint8Array;
}

export interface HardState {
  term: number;
  /** 0 = voted for nobody in `term`. */
  vote: NodeId;
  commit: number;
}

export interface SnapshotMeta {
  index: number;
  term: number;
  configuration: Configuration;
}

export interface Snapshot {
  meta: SnapshotMeta;
  data: Uint8Array;
}

export type ConfChange =
  /** Adds a new server as given (dqlite's Add makes a spare; pass role 'spare' for that). */
  | { type: 'add'; id: NodeId; address: string; role: Role }
  | { type: 'assign'; id: NodeId; role: Role }
  | { type: 'remove'; id: NodeId };

export enum MessageType {
  Append = 1,
  AppendResponse = 2,
  Vote = 3,
  VoteResponse = 4,
  PreVote = 5,
  PreVoteResponse = 6,
  Heartbeat = 7,
  HeartbeatResponse = 8,
  /** One chunk of an InstallSnapshot; the follower answers with SnapshotResponse. */
  Snapshot = 9,
  SnapshotResponse = 10,
  /** Leadership transfer: the receiver campaigns at once, skipping pre-vote. */
  TimeoutNow = 11,
}

/** One chunk of a snapshot in flight. `offset + data.length === totalBytes` on the last chunk. */
export interface SnapshotChunk {
  meta: SnapshotMeta;
  offset: number;
  totalBytes: number;
  data: Uint8Array;
}

/**
 * A message between peers. One flat shape for all types (etcd style); fields a type does not
 * use are 0 / false / empty. Meaning per type:
 * - Append: `index`/`logTerm` = the entry before `entries`; `commit` = leader's commit.
 * - AppendResponse: `index` = last index now matching (success) or the rejected `index`;
 *   on reject `rejectHint`/`logTerm` point the leader at a probably matching entry.
 * - Vote/PreVote: `index`/`logTerm` = candidate's last entry; `context` = 1 for a campaign
 *   started by leadership transfer (voters then ignore their leader lease).
 * - Heartbeat: `commit`; `context` = ReadIndex round, echoed by HeartbeatResponse.
 * - Snapshot: `snapshot` carries the chunk. SnapshotResponse: `index` = snapshot index,
 *   `rejectHint` = bytes received so far (next offset wanted), `reject` = receiver gave up.
 */
export interface Message {
  type: MessageType;
  from: NodeId;
  to: NodeId;
  term: number;
  logTerm: number;
  index: number;
  commit: number;
  reject: boolean;
  rejectHint: number;
  context: number;
  entries: Entry[];
  snapshot?: SnapshotChunk;
}

export interface ReadState {
  /** Apply up to this index, then the read is linearizable. */
  index: number;
  requestId: number;
}

export type StateName = 'follower' | 'candidate' | 'precandidate' | 'leader';

export interface SoftState {
  /** 0 = unknown. */
  leaderId: NodeId;
  state: StateName;
}

export interface Ready {
  /** Present when changed. */
  softState?: SoftState;
  /** Present when changed: persist (fsync) before sending messages. */
  hardState?: HardState;
  /**
   * Append to stable storage (may overwrite a conflicting suffix) before sending messages; a
   * leader may send this Ready's messages while its entries are being written (see index.ts).
   */
  entries: Entry[];
  /** Received from the leader: install (storage.applySnapshot + restore the state machine). */
  snapshot?: Snapshot;
  /** Apply in order (after `snapshot` if present). */
  committedEntries: Entry[];
  /** Send after persisting the above. */
  messages: Message[];
  readStates: ReadState[];
  /** The configuration in effect (latest in the log, committed or not), present when changed. */
  configuration?: Configuration;
}

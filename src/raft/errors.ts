/** Errors of the Raft core: values with a code and a message a person can act on. */
import type { NodeId } from './types.ts';

export type RaftErrorCode =
  | 'NOT_LEADER'
  | 'TRANSFER_IN_PROGRESS'
  | 'CONF_CHANGE_IN_PROGRESS'
  | 'INVALID_CONF_CHANGE'
  | 'PROPOSAL_TOO_LARGE'
  | 'TOO_MANY_PENDING'
  | 'INVALID_ARGUMENT'
  | 'COMPACTED'
  | 'UNAVAILABLE'
  | 'PENDING'
  | 'SNAPSHOT_OUT_OF_DATE'
  | 'CODEC';

export class RaftError extends Error {
  readonly code: RaftErrorCode;
  constructor(code: RaftErrorCode, message: string) {
    super(message);
    this.code = code;
    this.name = 'RaftError';
  }
}

/** This node is not the leader; `leaderId` (0 = unknown) is where a client should go. */
export class NotLeaderError extends RaftError {
  readonly leaderId: NodeId;
  constructor(leaderId: NodeId) {
    super(
      'NOT_LEADER',
      leaderId === 0 ? 'not the leader and no leader is known: retry later' : `not the leader: send this to node ${leaderId}`,
    );
    this.leaderId = leaderId;
    this.name = 'NotLeaderError';
  }
}

/** Malformed, truncated or oversized bytes given to a decoder. */
export class RaftCodecError extends RaftError {
  constructor(message: string) {
    super('CODEC', message);
    this.name = 'RaftCodecError';
  }
}

/** Thrown by storage for an index before firstIndex-1 (compacted away). */
export class CompactedError extends RaftError {
  constructor(index: number, firstIndex: number) {
    super('COMPACTED', `log index ${index} was compacted (first index is ${firstIndex})`);
    this.name = 'CompactedError';
  }
}

/** Thrown by storage for an index after lastIndex. */
export class UnavailableError extends RaftError {
  constructor(index: number, lastIndex: number) {
    super('UNAVAILABLE', `log index ${index} is not available (last index is ${lastIndex})`);
    this.name = 'UnavailableError';
  }
}

/**
 * Thrown by storage for entries it dropped from memory and holds durably elsewhere (applied
 * entries beyond its byte budget): the application reads them back and hands them over
 * (MemoryStorage.takeEntriesWanted, holdReadEntries), then calls RaftNode.entriesReady.
 */
export class EntriesPendingError extends RaftError {
  constructor(
    readonly lo: number,
    readonly hi: number,
  ) {
    super('PENDING', `log entries ${lo}..${hi - 1} are not in memory: they are being read back`);
    this.name = 'EntriesPendingError';
  }
}

export type ProposeResult = { ok: true; index: number; term: number } | { ok: false; error: RaftError };
export type OperationResult = { ok: true } | { ok: false; error: RaftError };

/** Internal invariant check: a failure is a bug in the core, never a peer's fault. */
export function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(`raft invariant violated: ${message}`);
}

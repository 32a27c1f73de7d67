/**
 * The Raft state machine (etcd-raft shape): `step` takes messages, `tick` takes time, `ready`
 * hands out what to persist, send and apply, `advance` says it was done. No timers, I/O or
 * randomness of its own. One step function per role: stepLeader, stepCandidate, stepFollower.
 */
import { encodeConfChange, encodeConfiguration, MESSAGE_ENTRIES_MAX } from './codec.ts';
import type { OperationResult, ProposeResult } from './errors.ts';
import { assert, EntriesPendingError, NotLeaderError, RaftError } from './errors.ts';
import { RaftLog } from './log.ts';
import {
  applyConfChange,
  hasQuorum,
  hasQuorumAgainst,
  isValidNodeId,
  isVoter,
  quorumMatchIndex,
  replicaIds,
  roleOf,
  voterIds,
} from './membership.ts';
import { Progress } from './progress.ts';
import { ReadIndexQueue } from './read-index.ts';
import { SnapshotReceiver } from './snapshot-receiver.ts';
import type { ProgressState } from './progress.ts';
import type { RaftStorage } from './storage.ts';
import { cloneConfiguration } from './storage.ts';
import type {
  ConfChange,
  Configuration,
  Entry,
  HardState,
  Message,
  NodeId,
  ReadState,
  Ready,
  Snapshot,
  SoftState,
  StateName,
} from './types.ts';
import { EntryType, MessageType } from './types.ts';

/**
 * Classic Raft bugs the simulator must catch. Test-only: never set in production.
 * - commitPreviousTermByCounting: commit an older-term entry once a majority has it (Figure 8).
 * - voteWithoutLogCheck: grant votes without the "candidate's log is up to date" check.
 * - voteNotPersisted: the vote is never part of the persisted hard state (answering a vote
 *   before persisting it: after a crash the node votes again in the same term).
 * - appendIgnoresPrevTerm: accept appends whose previous entry has a different term.
 * - quorumOffByOne: commit once half (not a majority) of the voters has an entry.
 * - readIndexWithoutQuorum: answer ReadIndex without confirming leadership (stale reads).
 * - leaderCountsUnpersisted: the leader counts its own entries towards commit before they are
 *   persisted (unsafe when it sends appends in parallel with its own disk write).
 */
export type RaftTestBug =
  | 'commitPreviousTermByCounting'
  | 'voteWithoutLogCheck'
  | 'voteNotPersisted'
  | 'appendIgnoresPrevTerm'
  | 'quorumOffByOne'
  | 'readIndexWithoutQuorum'
  | 'leaderCountsUnpersisted';

export interface RaftConfig {
  id: NodeId;
  storage: RaftStorage;
  electionTimeoutTicks: number;
  heartbeatTicks: number;
  /** Injected randomness in [0,1), used only for randomized election timeouts. */
  random: () => number;
  /** Last applied index at restart (default: the snapshot's index). */
  applied?: number;
  /** Default true. */
  preVote?: boolean;
  /** Default true. */
  checkQuorum?: boolean;
  /** Appends in flight per replica (pipelining bound). Default 256. */
  maxInflightAppends?: number;
  /**
   * Entry bytes in flight per replica: the leader's memory held in unacknowledged appends to one
   * replica stays near this, whatever the entries' size. Default 64 MiB.
   */
  maxInflightBytes?: number;
  /** Entry bytes per append message. Default 1 MiB. */
  maxEntriesBytesPerAppend?: number;
  /** Snapshot bytes per InstallSnapshot chunk. Default 1 MiB. */
  snapshotChunkBytes?: number;
  /** Largest snapshot a follower accepts. Default 1 GiB. */
  maxSnapshotBytes?: number;
  /** Committed entry bytes per Ready. Default 16 MiB. */
  maxCommittedBytesPerReady?: number;
  /** Largest proposal. Default 16 MiB. */
  maxProposalBytes?: number;
  /** Uncommitted entries a leader accepts before refusing proposals. Default 65536. */
  maxUncommittedEntries?: number;
  /** Pending ReadIndex requests. Default 4096. */
  maxPendingReads?: number;
  /**
   * Default false. When true, a Ready's entries are only handed over to be written: advance()
   * no longer means they are durable, the application reports that with persisted() once they
   * are, and may take further Readies (with newer entries) meanwhile. Only persisted entries
   * count towards this node's match and are handed out as committed entries to apply.
   */
  asyncStorageWrites?: boolean;
  testBugs?: ReadonlySet<RaftTestBug>;
}

export interface ProgressStatus {
  match: number;
  next: number;
  state: ProgressState;
  recentActive: boolean;
  inflight: number;
}

export interface RaftStatus {
  id: NodeId;
  term: number;
  vote: NodeId;
  state: StateName;
  leaderId: NodeId;
  commit: number;
  applied: number;
  firstIndex: number;
  lastIndex: number;
  configuration: Configuration;
  /** Leader only: per replica (voters and standbys, not itself). */
  progress?: Record<number, ProgressStatus>;
  leadTransferee: NodeId;
}

interface Outstanding {
  lastEntry?: { index: number; term: number };
  snapshotIndex?: number;
  appliedTo: number;
}

/** Outgoing messages kept until the next ready(). */
const MESSAGES_PENDING_MAX = 65536;

/** Vote/PreVote context marking a campaign started by leadership transfer. */
const CAMPAIGN_TRANSFER = 1;

function emptyMessage(type: MessageType, from: NodeId, to: NodeId, term: number): Message {
  return { type, from, to, term, logTerm: 0, index: 0, commit: 0, reject: false, rejectHint: 0, context: 0, entries: [] };
}

/** Messages that only ever answer one of ours. */
function isAnswer(type: MessageType): boolean {
  return (
    type === MessageType.AppendResponse ||
    type === MessageType.HeartbeatResponse ||
    type === MessageType.SnapshotResponse ||
    type === MessageType.VoteResponse ||
    type === MessageType.PreVoteResponse
  );
}

function positiveInt(v: number | undefined, fallback: number, name: string): number {
  const n = v ?? fallback;
  if (!Number.isSafeInteger(n) || n < 1) throw new RaftError('INVALID_ARGUMENT', `${name} must be a positive integer, got ${n}`);
  return n;
}

export class RaftNode {
  readonly id: NodeId;
  private readonly log: RaftLog;
  private readonly electionTimeoutTicks: number;
  private readonly heartbeatTicks: number;
  private readonly random: () => number;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly maxInflightAppends: number;
  private readonly maxInflightBytes: number;
  private readonly maxEntriesBytesPerAppend: number;
  private readonly snapshotChunkBytes: number;
  private readonly maxSnapshotBytes: number;
  private readonly maxCommittedBytesPerReady: number;
  private readonly maxProposalBytes: number;
  private readonly maxUncommittedEntries: number;
  private readonly maxPendingReads: number;
  private readonly asyncStorageWrites: boolean;
  private readonly bugs: ReadonlySet<RaftTestBug>;

  private term = 0;
  private vote: NodeId = 0;
  private lead: NodeId = 0;
  private state: StateName = 'follower';
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private votes = new Map<NodeId, boolean>();
  private progress = new Map<NodeId, Progress>();
  private leadTransferee: NodeId = 0;
  /** Index of the latest conf change the leader appended; a new one waits until it commits. */
  private pendingConfIndex = 0;
  private readonly reads: ReadIndexQueue;
  private readonly snapshotReceiver: SnapshotReceiver;
  private needsBroadcast = false;

  private msgs: Message[] = [];
  private readStates: ReadState[] = [];
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  private outstanding: Outstanding | undefined;
  /** Committed entries were handed out up to here (applied or being applied). */
  private applying: number;

  constructor(config: RaftConfig) {
    if (!isValidNodeId(config.id)) throw new RaftError('INVALID_ARGUMENT', `node id must be an integer in 1..2^53-1, got ${config.id}`);
    this.id = config.id;
    this.electionTimeoutTicks = positiveInt(config.electionTimeoutTicks, 10, 'electionTimeoutTicks');
    this.heartbeatTicks = positiveInt(config.heartbeatTicks, 1, 'heartbeatTicks');
    if (this.heartbeatTicks >= this.electionTimeoutTicks) {
      throw new RaftError('INVALID_ARGUMENT', `heartbeatTicks (${this.heartbeatTicks}) must be smaller than electionTimeoutTicks (${this.electionTimeoutTicks})`);
    }
    this.random = config.random;
    this.preVote = config.preVote ?? true;
    this.checkQuorum = config.checkQuorum ?? true;
    this.maxInflightAppends = positiveInt(config.maxInflightAppends, 256, 'maxInflightAppends');
    this.maxInflightBytes = positiveInt(config.maxInflightBytes, 64 * 1024 * 1024, 'maxInflightBytes');
    this.maxEntriesBytesPerAppend = positiveInt(config.maxEntriesBytesPerAppend, 1024 * 1024, 'maxEntriesBytesPerAppend');
    this.snapshotChunkBytes = positiveInt(config.snapshotChunkBytes, 1024 * 1024, 'snapshotChunkBytes');
    this.maxSnapshotBytes = positiveInt(config.maxSnapshotBytes, 1024 * 1024 * 1024, 'maxSnapshotBytes');
    this.maxCommittedBytesPerReady = positiveInt(config.maxCommittedBytesPerReady, 16 * 1024 * 1024, 'maxCommittedBytesPerReady');
    this.maxProposalBytes = positiveInt(config.maxProposalBytes, 16 * 1024 * 1024, 'maxProposalBytes');
    this.maxUncommittedEntries = positiveInt(config.maxUncommittedEntries, 65536, 'maxUncommittedEntries');
    this.maxPendingReads = positiveInt(config.maxPendingReads, 4096, 'maxPendingReads');
    this.asyncStorageWrites = config.asyncStorageWrites === true;
    this.snapshotReceiver = new SnapshotReceiver(this.maxSnapshotBytes);
    this.reads = new ReadIndexQueue(this.maxPendingReads);
    this.bugs = config.testBugs ?? new Set();

    this.log = new RaftLog(config.storage, config.applied);
    const { hardState } = config.storage.initialState();
    this.term = hardState.term;
    this.vote = hardState.vote;
    this.applying = this.log.applied;
    this.becomeFollower(this.term, 0);
    this.prevSoftState = this.softState();
    this.prevHardState = this.hardState();
  }

  /**
   * Writes the first configuration of a new cluster into empty storage: entry 1 (term 1) holds
   * it, committed. Bootstrap every initial member with the same configuration, or one node and
   * join the others empty.
   */
  static bootstrap(
    storage: { append(entries: Entry[]): void; setHardState(hs: HardState): void; lastIndex(): number; initialState(): { hardState: HardState } },
    configuration: Configuration,
  ): void {
    if (storage.lastIndex() !== 0 || storage.initialState().hardState.term !== 0) {
      throw new RaftError('INVALID_ARGUMENT', 'bootstrap needs empty storage: this node already has a log or a term');
    }
    if (voterIds(configuration).length === 0) throw new RaftError('INVALID_ARGUMENT', 'bootstrap configuration needs at least one voter');
    const ids = new Set(configuration.members.map((m) => m.id));
    if (ids.size !== configuration.members.length || configuration.members.some((m) => !isValidNodeId(m.id))) {
      throw new RaftError('INVALID_ARGUMENT', 'bootstrap configuration has duplicate or invalid node ids');
    }
    storage.append([{ term: 1, index: 1, type: EntryType.Configuration, data: encodeConfiguration(configuration) }]);
    storage.setHardState({ term: 1, vote: 0, commit: 1 });
  }

  // ---------------------------------------------------------------- time and elections

  tick(): void {
    if (this.state === 'leader') this.tickLeader();
    else this.tickElection();
  }

  private tickElection(): void {
    // Capped, and not reset by a node that may not campaign: its lease must run out, or it
    // would ignore every candidate (and a cluster whose voters include it could not elect).
    if (this.electionElapsed < 2 * this.randomizedElectionTimeout) this.electionElapsed++;
    if (this.electionElapsed >= this.randomizedElectionTimeout && this.promotable()) {
      this.electionElapsed = 0;
      this.hup(false);
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeoutTicks) {
      this.electionElapsed = 0;
      if (this.checkQuorum) {
        const active = hasQuorum(this.config(), (id) => id === this.id || this.progress.get(id)?.recentActive === true);
        for (const pr of this.progress.values()) pr.recentActive = false;
        if (!active) {
          this.becomeFollower(this.term, 0);
          return;
        }
      }
      this.leadTransferee = 0;
    }
    let sendingSnapshot = false;
    for (const [id, pr] of this.progress) {
      if (pr.state !== 'snapshot') continue;
      sendingSnapshot = true;
      // A chunk not read yet is asked for again (in case the application's word was missed); one
      // sent and not confirmed for two heartbeats is sent again.
      if (pr.snapshotChunkPending || ++pr.snapshotIdleTicks >= 2 * this.heartbeatTicks) this.sendSnapshotChunk(id, pr);
    }
    if (!sendingSnapshot) this.log.dropSnapshotChunks();
    if (this.heartbeatElapsed >= this.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat();
    }
  }

  /** Starts an election now (if this node may): used to speed up a fresh single-node cluster. */
  campaign(): void {
    this.hup(false);
  }

  /**
   * Whether this node may campaign. A voter of the latest configuration may; so may a voter of
   * the previous one while the latest (which demotes or removes it) is not committed as far as
   * this node knows (Raft dissertation §4.2.2: "a server that is not part of its own latest
   * configuration should still start new elections, as it might still be needed until the Cnew
   * entry is committed"). Without that, a node holding the longest log with an entry that
   * demotes it could never lead, and the voters that may campaign could never win its vote:
   * the cluster would stay leaderless for good (simulator seeds 5000697 and 9305003). The
   * campaign still asks and counts only the voters of the latest configuration, so such a node
   * does not count its own vote (electionWon) and commits by the new voters' matches only
   * (maybeCommit); once the demotion commits it steps down (stepDownIfNotVoter). etcd-raft
   * avoids this state differently, by taking configurations into effect only when applied.
   */
  private promotable(): boolean {
    if (this.log.unstableSnapshot !== undefined) return false;
    if (isVoter(this.config(), this.id)) return true;
    const previous = this.log.configurations.previous();
    return this.log.configurations.currentIndex() > this.log.committed && previous !== undefined && isVoter(previous, this.id);
  }

  private hup(transfer: boolean): void {
    if (this.state === 'leader' || !this.promotable()) return;
    if (this.preVote && !transfer) this.startCampaign('pre', false);
    else this.startCampaign('election', transfer);
  }

  private startCampaign(kind: 'pre' | 'election', transfer: boolean): void {
    let voteTerm: number;
    if (kind === 'pre') {
      this.becomePreCandidate();
      voteTerm = this.term + 1;
    } else {
      this.becomeCandidate();
      voteTerm = this.term;
    }
    this.votes.set(this.id, true);
    if (this.electionWon()) {
      if (kind === 'pre') this.startCampaign('election', transfer);
      else this.becomeLeader();
      return;
    }
    const type = kind === 'pre' ? MessageType.PreVote : MessageType.Vote;
    for (const id of voterIds(this.config())) {
      if (id === this.id) continue;
      const m = emptyMessage(type, this.id, id, voteTerm);
      m.index = this.log.lastIndex();
      m.logTerm = this.log.lastTerm();
      m.context = transfer ? CAMPAIGN_TRANSFER : 0;
      this.send(m);
    }
  }

  private electionWon(): boolean {
    return hasQuorum(this.config(), (id) => this.votes.get(id) === true);
  }

  private reset(term: number): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = 0;
    }
    this.lead = 0;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.electionTimeoutTicks + Math.floor(this.random() * this.electionTimeoutTicks);
    this.votes.clear();
    this.progress.clear();
    this.leadTransferee = 0;
    this.pendingConfIndex = 0;
    this.reads.clear();
    this.needsBroadcast = false;
  }

  private becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.state = 'follower';
    this.lead = lead;
  }

  private becomePreCandidate(): void {
    assert(this.state !== 'leader', 'leader cannot become precandidate');
    // Term and vote stay: a pre-vote changes nothing durable.
    this.votes.clear();
    this.lead = 0;
    this.state = 'precandidate';
  }

  private becomeCandidate(): void {
    assert(this.state !== 'leader', 'leader cannot become candidate');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.state = 'candidate';
  }

  private becomeLeader(): void {
    assert(this.state === 'candidate', 'only a candidate becomes leader');
    this.reset(this.term);
    this.state = 'leader';
    this.lead = this.id;
    this.syncProgress();
    this.appendEntries([{ term: this.term, index: 0, type: EntryType.Barrier, data: new Uint8Array(0) }]);
    // No conf change until this term's barrier commits (fix for single-server changes).
    this.pendingConfIndex = this.log.lastIndex();
    if (this.stepDownIfNotVoter()) return;
    this.broadcastAppend();
  }

  /**
   * A leader that is not a voter of its configuration (elected while a change demoting or
   * removing it was pending, see promotable) steps down once that configuration is committed
   * (Raft dissertation §4.2.2; dqlite's raft fixed the same, canonical/raft#235 for
   * canonical/dqlite#323: a demoted leader that stays leader leaves clients nowhere to go).
   * It hands over to a voter that already has its whole log, so nobody waits out a lease.
   */
  private stepDownIfNotVoter(): boolean {
    const config = this.config();
    if (this.state !== 'leader' || isVoter(config, this.id)) return false;
    if (this.log.committed < this.log.configurations.currentIndex()) return false;
    let successor: NodeId = 0;
    for (const id of voterIds(config)) {
      if (this.progress.get(id)?.match === this.log.lastIndex()) successor = id;
    }
    if (successor !== 0) this.sendTimeoutNow(successor);
    this.becomeFollower(this.term, 0);
    return true;
  }

  // ---------------------------------------------------------------- messages in

  /** Feeds a message from a peer. Invalid or stale messages are ignored. */
  step(m: Message): void {
    if (!this.isPlausible(m)) return;
    if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        const force = m.context === CAMPAIGN_TRANSFER;
        const inLease = this.checkQuorum && this.lead !== 0 && this.electionElapsed < this.electionTimeoutTicks;
        // A voter that hears from a live leader ignores campaigns: a rejoining partitioned node cannot disrupt.
        if (!force && inLease) return;
      }
      if (this.isAnswerFromOutsider(m)) return;
      if (this.answersSupportedLeaderFromStandby(m)) {
        this.becomeFollower(m.term, 0);
        this.hup(true);
        return;
      }
      if (m.type === MessageType.PreVote) {
        // Never change term for a pre-vote.
      } else if (m.type === MessageType.PreVoteResponse && !m.reject) {
        // A granted pre-vote carries the future term; we only move there when we campaign.
      } else if (m.type === MessageType.Append || m.type === MessageType.Heartbeat || m.type === MessageType.Snapshot) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, 0);
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === MessageType.Append || m.type === MessageType.Heartbeat)) {
        // Tell a stale leader about our term so it steps down.
        this.send(emptyMessage(MessageType.AppendResponse, this.id, m.from, this.term));
      } else if (m.type === MessageType.PreVote) {
        const r = emptyMessage(MessageType.PreVoteResponse, this.id, m.from, this.term);
        r.reject = true;
        this.send(r);
      }
      return;
    }

    if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
      this.handleVoteRequest(m);
      return;
    }
    switch (this.state) {
      case 'leader':
        this.stepLeader(m);
        break;
      case 'candidate':
      case 'precandidate':
        this.stepCandidate(m);
        break;
      case 'follower':
        this.stepFollower(m);
        break;
    }
  }

  /**
   * With check-quorum and pre-vote, an answer of a higher term from a server that is neither a
   * voter nor a standby of our configuration (a removed server or a spare, which may have run
   * elections of its own before it learnt its fate) is dropped rather than deposing us: such a
   * server takes no part in our elections or commits, check-quorum already steps down a leader
   * that lost its quorum, and dropping a message is always safe in Raft. Leaders' messages and
   * vote requests of higher terms are still obeyed: our own configuration may be the stale one.
   */
  private isAnswerFromOutsider(m: Message): boolean {
    if (!this.checkQuorum || !this.preVote || !isAnswer(m.type)) return false;
    const role = roleOf(this.config(), m.from);
    return role === undefined || role === 'spare';
  }

  /**
   * A standby whose term is higher than ours (it ran elections as a voter before it was demoted)
   * rejects our appends, and its term cannot go back (it may have voted in it), so our term has
   * to move past it. A leader that a quorum answered within the current check-quorum round
   * does that by campaigning again at once, as in a transfer (voters skip their lease, and its
   * log is the most complete), instead of stepping down and leaving the cluster leaderless for
   * an election timeout or two. Without that recent support it steps down as usual.
   */
  private answersSupportedLeaderFromStandby(m: Message): boolean {
    if (this.state !== 'leader' || !this.checkQuorum || !this.preVote || !isAnswer(m.type)) return false;
    if (roleOf(this.config(), m.from) !== 'standby') return false;
    return hasQuorum(this.config(), (id) => id === this.id || this.progress.get(id)?.recentActive === true);
  }

  private isPlausible(m: Message): boolean {
    if (m === null || typeof m !== 'object') return false;
    if (m.to !== this.id || m.from === this.id || !isValidNodeId(m.from)) return false;
    for (const v of [m.term, m.logTerm, m.index, m.commit, m.rejectHint, m.context]) {
      if (!Number.isSafeInteger(v) || v < 0) return false;
    }
    if (!Array.isArray(m.entries) || m.entries.length > MESSAGE_ENTRIES_MAX) return false;
    const c = m.snapshot;
    if (c !== undefined) {
      if (c === null || typeof c !== 'object' || !(c.data instanceof Uint8Array) || !c.meta || !Array.isArray(c.meta.configuration?.members)) return false;
      for (const v of [c.meta.index, c.meta.term, c.offset, c.totalBytes]) if (!Number.isSafeInteger(v) || v < 0) return false;
      if (c.offset + c.data.length > c.totalBytes) return false;
    }
    for (let i = 0; i < m.entries.length; i++) {
      const e = m.entries[i]!;
      if (!Number.isSafeInteger(e.index) || !Number.isSafeInteger(e.term) || !(e.data instanceof Uint8Array)) return false;
      if (e.index !== m.index + 1 + i || e.term > m.term || e.term < 1) return false;
      if (i === 0 ? e.term < m.logTerm : e.term < m.entries[i - 1]!.term) return false;
    }
    return true;
  }

  private handleVoteRequest(m: Message): void {
    const isPre = m.type === MessageType.PreVote;
    const canVote = this.vote === m.from || (this.vote === 0 && this.lead === 0) || (isPre && m.term > this.term);
    const upToDate = this.bugs.has('voteWithoutLogCheck') || this.log.isUpToDate(m.index, m.logTerm);
    const type = isPre ? MessageType.PreVoteResponse : MessageType.VoteResponse;
    if (canVote && upToDate) {
      this.send(emptyMessage(type, this.id, m.from, m.term));
      if (!isPre) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      const r = emptyMessage(type, this.id, m.from, this.term);
      r.reject = true;
      this.send(r);
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.Append:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppend(m);
        break;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        break;
      case MessageType.Snapshot:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshotChunk(m);
        break;
      case MessageType.TimeoutNow:
        this.hup(true);
        break;
      default:
        break;
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case MessageType.Append:
        this.becomeFollower(m.term, m.from);
        this.handleAppend(m);
        break;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        break;
      case MessageType.Snapshot:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshotChunk(m);
        break;
      case MessageType.VoteResponse:
      case MessageType.PreVoteResponse: {
        const expected = this.state === 'precandidate' ? MessageType.PreVoteResponse : MessageType.VoteResponse;
        if (m.type !== expected || !isVoter(this.config(), m.from)) break;
        if (!this.votes.has(m.from)) this.votes.set(m.from, !m.reject);
        if (this.electionWon()) {
          if (this.state === 'precandidate') this.startCampaign('election', false);
          else this.becomeLeader();
        } else if (hasQuorumAgainst(this.config(), (id) => this.votes.get(id) === false)) {
          this.becomeFollower(this.term, 0);
        }
        break;
      }
      default:
        break;
    }
  }

  private handleAppend(m: Message): void {
    const reply = emptyMessage(MessageType.AppendResponse, this.id, m.from, this.term);
    if (m.index < this.log.committed) {
      reply.index = this.log.committed;
      this.send(reply);
      return;
    }
    const prevMatches = this.bugs.has('appendIgnoresPrevTerm')
      ? m.index <= this.log.lastIndex() && this.log.term(m.index) !== undefined
      : this.log.matchTerm(m.index, m.logTerm);
    if (prevMatches) {
      const lastNew = m.index + m.entries.length;
      const conflict = this.log.findConflict(m.entries);
      if (conflict !== 0) {
        // A leader never asks us to overwrite committed entries; a peer that does is ignored.
        if (conflict <= this.log.committed) return;
        this.log.append(m.entries.slice(conflict - (m.index + 1)));
      }
      this.log.commitTo(Math.min(m.commit, lastNew));
      reply.index = lastNew;
      this.send(reply);
      return;
    }
    const hintIndex = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    reply.index = m.index;
    reply.reject = true;
    reply.rejectHint = hintIndex;
    reply.logTerm = this.log.term(hintIndex) ?? 0;
    this.send(reply);
  }

  private handleHeartbeat(m: Message): void {
    // The leader sends min(our match, its commit), so entries up to there match its log.
    if (m.commit <= this.log.lastIndex()) this.log.commitTo(m.commit);
    const reply = emptyMessage(MessageType.HeartbeatResponse, this.id, m.from, this.term);
    reply.context = m.context;
    this.send(reply);
  }

  private handleSnapshotChunk(m: Message): void {
    const chunk = m.snapshot;
    if (!chunk || chunk.meta.index < 1 || chunk.meta.term < 1 || chunk.meta.term > m.term) return;
    const meta = chunk.meta;
    if (meta.index <= this.log.committed) {
      // Already have everything it holds: tell the leader where we are.
      const reply = emptyMessage(MessageType.AppendResponse, this.id, m.from, this.term);
      reply.index = this.log.committed;
      this.send(reply);
      return;
    }
    const outcome = this.snapshotReceiver.receive(chunk);
    if (outcome.kind === 'complete') {
      this.restore(outcome.snapshot);
      const reply = emptyMessage(MessageType.AppendResponse, this.id, m.from, this.term);
      reply.index = this.log.lastIndex();
      this.send(reply);
      return;
    }
    const reply = emptyMessage(MessageType.SnapshotResponse, this.id, m.from, this.term);
    reply.index = meta.index;
    if (outcome.kind === 'too-large') reply.reject = true;
    else reply.rejectHint = outcome.receivedBytes;
    this.send(reply);
  }

  private restore(s: Snapshot): void {
    if (s.meta.index <= this.log.committed) return;
    if (this.log.matchTerm(s.meta.index, s.meta.term)) {
      // Our log already holds the snapshot's last entry: just fast-forward the commit.
      this.log.commitTo(s.meta.index);
      return;
    }
    this.log.restore({ meta: { index: s.meta.index, term: s.meta.term, configuration: cloneConfiguration(s.meta.configuration) }, data: s.data });
  }

  private stepLeader(m: Message): void {
    const pr = this.progress.get(m.from);
    if (!pr) return;
    switch (m.type) {
      case MessageType.AppendResponse:
        pr.recentActive = true;
        this.handleAppendResponse(m, pr);
        break;
      case MessageType.HeartbeatResponse:
        pr.recentActive = true;
        pr.probeSent = false;
        if (pr.state === 'replicate' && pr.isPaused()) pr.freeOneInflight();
        if (pr.match < this.log.lastIndex()) this.sendAppend(m.from, pr, true);
        if (m.context > 0) {
          this.reads.ack(m.from, m.context);
          this.releaseReads();
        }
        break;
      case MessageType.SnapshotResponse:
        pr.recentActive = true;
        if (pr.state !== 'snapshot' || !pr.snapshot || pr.snapshot.index !== m.index) break;
        if (m.reject) {
          pr.becomeProbe();
          break;
        }
        if (m.rejectHint > pr.snapshotAckedBytes && m.rejectHint <= pr.snapshotBytes) {
          pr.snapshotAckedBytes = m.rejectHint;
          this.sendSnapshotChunk(m.from, pr);
        } else if (m.rejectHint < pr.snapshotAckedBytes) {
          // The follower lost its partial copy: resume where it is.
          pr.snapshotAckedBytes = m.rejectHint;
          this.sendSnapshotChunk(m.from, pr);
        }
        break;
      default:
        break;
    }
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    if (m.index > this.log.lastIndex()) return;
    if (m.reject) {
      const hint = m.logTerm > 0 ? this.log.findConflictByTerm(m.rejectHint, m.logTerm) : m.rejectHint;
      if (pr.maybeDecrTo(m.index, hint)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from, pr, true);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    const updated = pr.maybeUpdate(m.index);
    if (!updated && !(pr.match === m.index && pr.state === 'probe')) return;
    if (pr.state === 'probe') pr.becomeReplicate();
    else if (pr.state === 'snapshot' && pr.snapshot && pr.match >= pr.snapshot.index) pr.becomeReplicate();
    else if (pr.state === 'snapshot' && pr.match + 1 >= this.log.firstIndex()) pr.becomeReplicate();
    if (this.maybeCommit()) {
      if (this.stepDownIfNotVoter()) return;
      this.needsBroadcast = true;
    } else if (wasPaused) {
      this.sendAppend(m.from, pr, true);
    }
    while (this.sendAppend(m.from, pr, false)) {
      // Pipelining: keep sending while the window allows and entries remain.
    }
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
  }

  // ---------------------------------------------------------------- replication (leader)

  private config(): Configuration {
    return this.log.configurations.current();
  }

  /** Progress entries for exactly the current replicas (voters and standbys) other than us. */
  private syncProgress(): void {
    const replicas = new Set(replicaIds(this.config()));
    for (const id of [...this.progress.keys()]) if (!replicas.has(id)) this.progress.delete(id);
    for (const id of replicas) {
      if (id === this.id || this.progress.has(id)) continue;
      const pr = new Progress(this.log.lastIndex() + 1, this.maxInflightAppends, this.maxInflightBytes);
      pr.recentActive = true;
      this.progress.set(id, pr);
    }
  }

  private appendEntries(entries: Entry[]): void {
    let index = this.log.lastIndex();
    for (const e of entries) {
      e.term = this.term;
      e.index = ++index;
    }
    const hadConfig = this.log.configurations.currentIndex();
    this.log.append(entries);
    if (this.log.configurations.currentIndex() !== hadConfig) this.syncProgress();
    this.maybeCommit();
    this.needsBroadcast = true;
  }

  private matchOf(id: NodeId): number {
    // The leader counts only what it has persisted itself (Raft thesis §10.2.1), so it may send
    // a Ready's appends while that Ready's entries are still being written.
    if (id === this.id) return this.bugs.has('leaderCountsUnpersisted') ? this.log.lastIndex() : this.log.stableLastIndex();
    return this.progress.get(id)?.match ?? 0;
  }

  private maybeCommit(): boolean {
    const n = quorumMatchIndex(this.config(), (id) => this.matchOf(id), this.bugs.has('quorumOffByOne'));
    if (n <= this.log.committed) return false;
    // Only entries of the current term are committed by counting replicas (Raft §5.4.2).
    if (!this.bugs.has('commitPreviousTermByCounting') && this.log.term(n) !== this.term) return false;
    this.log.commitTo(n);
    if (this.log.term(this.log.committed) === this.term) {
      for (const requestId of this.reads.takeAwaitingCommit()) this.registerRead(requestId);
    }
    return true;
  }

  /**
   * New entries or a new commit index for every replica. A replica in replicate state gets no
   * empty append (a message each way, for the commit index alone) when an earlier append
   * already told it this commit, or when entries past the commit are in flight to it: their
   * commit will advance the commit again and tell it then (under load that is the next round,
   * so followers learn each commit a round later, with half the messages). Should that never
   * come (no quorum), heartbeats carry the commit.
   */
  private broadcastAppend(): void {
    this.needsBroadcast = false;
    for (const [id, pr] of this.progress) this.sendAppend(id, pr, true, true);
  }

  /**
   * Sends the next append (or starts a snapshot). Returns whether a message was sent.
   * `unlessToldCommit`: not an empty one to a replica in replicate state that it would tell
   * nothing new, or that a later commit will tell (broadcastAppend).
   */
  private sendAppend(to: NodeId, pr: Progress, sendIfEmpty: boolean, unlessToldCommit = false): boolean {
    if (pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    let entries: Entry[] | undefined;
    try {
      entries = this.log.slice(pr.next, this.log.lastIndex() + 1, this.maxEntriesBytesPerAppend);
    } catch (error) {
      if (!(error instanceof EntriesPendingError)) throw error;
      // Applied entries storage dropped from memory: sent once read back (entriesReady).
      pr.entriesPending = true;
      return false;
    }
    pr.entriesPending = false;
    if (prevTerm === undefined || entries === undefined) return this.startSnapshot(to, pr);
    if (entries.length === 0 && !sendIfEmpty) return false;
    const tells = Math.min(this.log.committed, prevIndex + entries.length);
    if (entries.length === 0 && unlessToldCommit && pr.state === 'replicate' && (pr.commitSent >= tells || prevIndex > this.log.committed)) return false;
    pr.commitSent = Math.max(pr.commitSent, tells);
    const m = emptyMessage(MessageType.Append, this.id, to, this.term);
    m.index = prevIndex;
    m.logTerm = prevTerm;
    m.entries = entries;
    m.commit = this.log.committed;
    let entryBytes = 0;
    for (const entry of entries) entryBytes += entry.data.length;
    pr.sentAppend(prevIndex + entries.length, entries.length, entryBytes);
    this.send(m);
    return true;
  }

  private startSnapshot(to: NodeId, pr: Progress): boolean {
    const snap = this.log.snapshotToSend();
    if (snap.meta.index === 0) return false;
    pr.becomeSnapshot(snap.meta, snap.dataBytes);
    return this.sendSnapshotChunk(to, pr);
  }

  /**
   * Sends the chunk after what the follower confirmed, asking storage for just that range: the
   * leader holds one chunk per follower, not the snapshot. Returns whether a chunk was sent.
   */
  private sendSnapshotChunk(to: NodeId, pr: Progress): boolean {
    const meta = pr.snapshot;
    if (!meta) return false;
    const offset = pr.snapshotAckedBytes;
    const length = Math.min(pr.snapshotBytes - offset, this.snapshotChunkBytes);
    assert(length >= 0, `snapshot chunk at ${offset} is past the end of the ${pr.snapshotBytes} bytes of the snapshot at index ${meta.index}`);
    pr.snapshotIdleTicks = 0;
    const data = this.log.snapshotChunk(meta.index, offset, length);
    if (data === 'pending') {
      pr.snapshotChunkPending = true;
      return false;
    }
    pr.snapshotChunkPending = false;
    if (data === 'unavailable') {
      // A newer snapshot replaced it: the follower's next heartbeat response starts that one.
      pr.becomeProbe();
      pr.next = pr.match + 1;
      return false;
    }
    assert(data.length === length, `storage gave ${data.length} bytes for the chunk of ${length} at ${offset} of the snapshot at index ${meta.index}`);
    const m = emptyMessage(MessageType.Snapshot, this.id, to, this.term);
    m.snapshot = { meta, offset, totalBytes: pr.snapshotBytes, data };
    this.send(m);
    return true;
  }

  /**
   * Chunks of a snapshot that storage answered 'pending' for may be in memory now (the
   * application read them back): send them. Deterministic like every other input.
   */
  snapshotChunksReady(): void {
    if (this.state !== 'leader') return;
    for (const [id, pr] of this.progress) {
      if (pr.state === 'snapshot' && pr.snapshotChunkPending) this.sendSnapshotChunk(id, pr);
    }
  }

  /**
   * Entries that storage threw EntriesPendingError for may be in memory now (the application
   * read them back from its durable log): send them. Deterministic like every other input.
   */
  entriesReady(): void {
    if (this.state !== 'leader') return;
    for (const [id, pr] of this.progress) {
      if (!pr.entriesPending) continue;
      if (!this.sendAppend(id, pr, true)) continue;
      while (pr.state === 'replicate' && this.sendAppend(id, pr, false)) {
        // Pipelining, as after an acknowledgement.
      }
    }
  }

  /**
   * Whether a replica waits for entries in [lo, hi) that storage threw EntriesPendingError for:
   * entries read back after the replica moved on (served by an earlier read, or sent a snapshot)
   * need not be held.
   */
  entriesAwaited(lo: number, hi: number): boolean {
    if (this.state !== 'leader') return false;
    for (const pr of this.progress.values()) if (pr.entriesPending && pr.next >= lo && pr.next < hi) return true;
    return false;
  }

  private broadcastHeartbeat(): void {
    for (const [id, pr] of this.progress) {
      const m = emptyMessage(MessageType.Heartbeat, this.id, id, this.term);
      m.commit = Math.min(pr.match, this.log.committed);
      m.context = this.reads.currentRound();
      this.send(m);
    }
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send(emptyMessage(MessageType.TimeoutNow, this.id, to, this.term));
  }

  // ---------------------------------------------------------------- ReadIndex

  private registerRead(requestId: number): void {
    this.reads.register(requestId, this.log.committed);
    this.broadcastHeartbeat();
    this.releaseReads();
  }

  private releaseReads(): void {
    for (const rs of this.reads.release(this.config(), this.id, this.bugs.has('readIndexWithoutQuorum'))) this.readStates.push(rs);
  }

  // ---------------------------------------------------------------- application API

  propose(data: Uint8Array): ProposeResult {
    return this.proposeEntry(EntryType.Normal, data);
  }

  private proposeEntry(type: EntryType, data: Uint8Array): ProposeResult {
    if (this.state !== 'leader') return { ok: false, error: new NotLeaderError(this.lead) };
    if (this.leadTransferee !== 0) {
      return { ok: false, error: new RaftError('TRANSFER_IN_PROGRESS', `leadership is being transferred to node ${this.leadTransferee}: retry on the new leader`) };
    }
    if (data.length > this.maxProposalBytes) {
      return { ok: false, error: new RaftError('PROPOSAL_TOO_LARGE', `proposal of ${data.length} bytes exceeds the ${this.maxProposalBytes}-byte limit`) };
    }
    if (this.log.lastIndex() - this.log.committed >= this.maxUncommittedEntries) {
      return { ok: false, error: new RaftError('TOO_MANY_PENDING', `${this.maxUncommittedEntries} entries are waiting to commit: retry later`) };
    }
    const e: Entry = { term: this.term, index: 0, type, data };
    this.appendEntries([e]);
    return { ok: true, index: e.index, term: e.term };
  }

  proposeConfChange(change: ConfChange): ProposeResult {
    if (this.state !== 'leader') return { ok: false, error: new NotLeaderError(this.lead) };
    if (this.pendingConfIndex > this.log.committed) {
      return { ok: false, error: new RaftError('CONF_CHANGE_IN_PROGRESS', 'a configuration change is still being committed: retry when it is') };
    }
    if (change.id === this.id && (change.type === 'remove' || (change.type === 'assign' && change.role !== 'voter'))) {
      return { ok: false, error: new RaftError('INVALID_CONF_CHANGE', 'the leader cannot remove or demote itself: transfer leadership first') };
    }
    const next = applyConfChange(this.config(), change);
    if (next instanceof RaftError) return { ok: false, error: next };
    const result = this.proposeEntry(EntryType.ConfChange, encodeConfChange(change));
    if (result.ok) this.pendingConfIndex = result.index;
    return result;
  }

  /**
   * Hands leadership to voter `to` (e.g. before shutting down): it campaigns once caught up.
   * `to` = 0 picks the most up-to-date other voter. Proposals fail with TRANSFER_IN_PROGRESS
   * until it is done or abandoned (after an election timeout).
   */
  transferLeadership(to: NodeId = 0): OperationResult {
    if (this.state !== 'leader') return { ok: false, error: new NotLeaderError(this.lead) };
    if (to === 0) {
      let best: Progress | undefined;
      for (const id of voterIds(this.config())) {
        const pr = this.progress.get(id);
        if (id !== this.id && pr && (!best || pr.match > best.match)) {
          best = pr;
          to = id;
        }
      }
      if (to === 0) return { ok: false, error: new RaftError('INVALID_ARGUMENT', 'there is no other voter to transfer leadership to') };
    }
    if (to === this.id) return { ok: true };
    const pr = this.progress.get(to);
    if (!pr || !isVoter(this.config(), to)) return { ok: false, error: new RaftError('INVALID_ARGUMENT', `node ${to} is not a voter: cannot transfer leadership to it`) };
    if (this.leadTransferee === to) return { ok: true };
    this.leadTransferee = to;
    // The transfer is abandoned if not done within an election timeout (see tickLeader).
    this.electionElapsed = 0;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.sendAppend(to, pr, true);
    return { ok: true };
  }

  /**
   * Linearizable read: a ReadState with this requestId appears in a later Ready once a majority
   * confirmed this node is still leader; serve the read after applying up to its index.
   * Requests are dropped if leadership is lost: callers time out and retry.
   */
  readIndex(requestId: number): OperationResult {
    if (this.state !== 'leader') return { ok: false, error: new NotLeaderError(this.lead) };
    if (this.reads.isFull()) {
      return { ok: false, error: new RaftError('TOO_MANY_PENDING', `${this.maxPendingReads} reads are pending: retry later`) };
    }
    if (this.log.term(this.log.committed) !== this.term) {
      this.reads.deferUntilCommit(requestId);
      return { ok: true };
    }
    this.registerRead(requestId);
    return { ok: true };
  }

  // ---------------------------------------------------------------- Ready / advance

  private send(m: Message): void {
    // Raft tolerates lost messages: if the application stops draining Ready, drop rather than grow.
    if (this.msgs.length >= MESSAGES_PENDING_MAX) return;
    this.msgs.push(m);
  }

  private softState(): SoftState {
    return { leaderId: this.lead, state: this.state };
  }

  private hardState(): HardState {
    const vote = this.bugs.has('voteNotPersisted') ? 0 : this.vote;
    return { term: this.term, vote, commit: this.log.committed };
  }

  private flush(): void {
    if (this.needsBroadcast && this.state === 'leader') this.broadcastAppend();
    this.needsBroadcast = false;
  }

  hasReady(): boolean {
    if (this.outstanding) return false;
    this.flush();
    const ss = this.softState();
    const hs = this.hardState();
    return (
      ss.leaderId !== this.prevSoftState.leaderId ||
      ss.state !== this.prevSoftState.state ||
      hs.term !== this.prevHardState.term ||
      hs.vote !== this.prevHardState.vote ||
      hs.commit !== this.prevHardState.commit ||
      this.entriesToPersist().length > 0 ||
      this.log.unstableSnapshot !== undefined ||
      this.msgs.length > 0 ||
      this.readStates.length > 0 ||
      (this.log.unstableSnapshot === undefined && this.log.applicableIndex(this.asyncStorageWrites) > this.applying)
    );
  }

  private entriesToPersist(): Entry[] {
    return this.asyncStorageWrites ? this.log.entriesToHandOver() : this.log.unstableEntries;
  }

  /** What to persist, send and apply now. Call advance(ready) before the next ready(). */
  ready(): Ready {
    if (this.outstanding) throw new RaftError('INVALID_ARGUMENT', 'ready() called again before advance() of the previous Ready');
    this.flush();
    const rd: Ready = {
      entries: this.entriesToPersist().slice(),
      committedEntries: this.log.committedEntriesAfter(this.applying, this.maxCommittedBytesPerReady, this.log.applicableIndex(this.asyncStorageWrites)),
      messages: this.msgs,
      readStates: this.readStates,
    };
    const ss = this.softState();
    if (ss.leaderId !== this.prevSoftState.leaderId || ss.state !== this.prevSoftState.state) {
      rd.softState = ss;
      this.prevSoftState = ss;
    }
    const hs = this.hardState();
    if (hs.term !== this.prevHardState.term || hs.vote !== this.prevHardState.vote || hs.commit !== this.prevHardState.commit) {
      rd.hardState = hs;
      this.prevHardState = hs;
    }
    if (this.log.unstableSnapshot) rd.snapshot = this.log.unstableSnapshot;
    if (this.log.takeConfigurationChanged()) rd.configuration = cloneConfiguration(this.config());
    this.msgs = [];
    this.readStates = [];
    const outstanding: Outstanding = { appliedTo: this.applying };
    const lastEntry = rd.entries[rd.entries.length - 1];
    if (lastEntry && this.asyncStorageWrites) this.log.handedOver = lastEntry.index;
    else if (lastEntry) outstanding.lastEntry = { index: lastEntry.index, term: lastEntry.term };
    if (rd.snapshot) {
      outstanding.snapshotIndex = rd.snapshot.meta.index;
      outstanding.appliedTo = rd.snapshot.meta.index;
    }
    const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastCommitted) outstanding.appliedTo = lastCommitted.index;
    this.applying = outstanding.appliedTo;
    this.outstanding = outstanding;
    return rd;
  }

  /** The Ready returned by the last ready() has been persisted, sent and applied. */
  advance(_ready?: Ready): void {
    const o = this.outstanding;
    if (!o) return;
    this.outstanding = undefined;
    if (o.snapshotIndex !== undefined) this.log.stableSnapshotTo(o.snapshotIndex);
    if (o.lastEntry) {
      this.log.stableTo(o.lastEntry.index, o.lastEntry.term);
      if (this.state === 'leader' && this.maybeCommit() && !this.stepDownIfNotVoter()) this.needsBroadcast = true;
    }
    if (o.appliedTo > this.log.applied) {
      this.log.applied = o.appliedTo;
      // Configurations before the applied one can no longer be rolled back to or asked for.
      this.log.configurations.compactTo(this.log.applied);
    }
  }

  /**
   * With asyncStorageWrites: entries up to (index, term), handed over in earlier Readies, are
   * durable. Ignored when that entry was replaced meanwhile (its replacement is written next).
   */
  persisted(index: number, term: number): void {
    if (!this.asyncStorageWrites) throw new RaftError('INVALID_ARGUMENT', 'persisted() is for asyncStorageWrites; advance() reports writes otherwise');
    this.log.stableTo(index, term);
    if (this.state === 'leader' && this.maybeCommit() && !this.stepDownIfNotVoter()) this.needsBroadcast = true;
  }

  status(): RaftStatus {
    const s: RaftStatus = {
      id: this.id,
      term: this.term,
      vote: this.vote,
      state: this.state,
      leaderId: this.lead,
      commit: this.log.committed,
      applied: this.log.applied,
      firstIndex: this.log.firstIndex(),
      lastIndex: this.log.lastIndex(),
      configuration: cloneConfiguration(this.config()),
      leadTransferee: this.leadTransferee,
    };
    if (this.state === 'leader') {
      const progress: Record<number, ProgressStatus> = {};
      for (const [id, pr] of this.progress) {
        progress[id] = { match: pr.match, next: pr.next, state: pr.state, recentActive: pr.recentActive, inflight: pr.inflightCount() };
      }
      s.progress = progress;
    }
    return s;
  }

  /** The highest index known committed (cheap, unlike status()). */
  committedIndex(): number {
    return this.log.committed;
  }

  /** Term of log entry `index` (undefined if compacted or absent): for checks and tests. */
  termAt(index: number): number | undefined {
    return this.log.term(index);
  }

  /**
   * The configuration in effect at log index `index` (to store with a snapshot taken there).
   * Exact for index >= the applied index; older indexes get the oldest configuration kept.
   */
  configurationAt(index: number): Configuration {
    return cloneConfiguration(this.log.configurations.at(index));
  }
}

/**
 * A cluster node: the Raft core, the Ready loop that persists and sends for it, and the state
 * machine (src/fsm/) it feeds; plus the leader-side services clients depend on (barriers,
 * ReadIndex, membership). Hosts hand it client byte streams and peer channels; it knows nothing
 * of which runtime it is on, and uses only the runtime's clock, timers and randomness.
 *
 * A node that cannot go on safely (storage failed, a committed entry cannot be applied) stops
 * itself: `closed` rejects and `onFatal` is called with the original error. It never exits
 * the host process; that is for the host's command line to decide.
 */
import { peerIdleTimeoutMs } from './peer-idle-timeout.ts';
import type { Engine } from '../../wasm/index.ts';
import { deferred } from '../fsm/deferred.ts';
import { CommandKind } from '../fsm/commands.ts';
import { assert, leadershipLost, NodeError, notLeader, SQLITE_ERROR, SQLITE_FULL } from '../fsm/errors.ts';
import type { ProposeResult, ReplicatedDatabase } from '../fsm/replicated-database.ts';
import { StateMachine } from '../fsm/state-machine.ts';
import { PEER_MESSAGE_FRAMING_BYTES, resolveLimits, type Limits } from '../limits.ts';
import {
  decodeMessage,
  encodedMessageBytes,
  encodeMessageInto,
  encodeMessageWithHeadroom,
  MemoryStorage,
  type Message,
  MessageType,
  RaftNode,
  type Configuration,
  type Member,
  type NodeId,
  type Role,
  type SoftState,
  type StateName,
} from '../raft/index.ts';
import type { ByteStream, MessageChannel, Runtime, TimerHandle } from '../runtime.ts';
import { PEER_FRAME_HEADROOM_BYTES, PeerTransport, type TransportStats } from '../transport/index.ts';
import { AdminPolicy } from './admin-policy.ts';
import { NodeMetrics } from './metrics.ts';
import { AppliedWaiters } from './applied-waiters.ts';
import { BoundedWait } from './bounded-wait.ts';
import { FollowerReadIndex, isReadIndexMessage } from './follower-read-index.ts';
import { Gateway } from './gateway.ts';
import type { GatewayHost } from './gateway-host.ts';
import { handOverTarget, HandOverPolicy } from './hand-over.ts';
import { CLOCK_DRIFT_MAX_DEFAULT, LeaderLease } from './leader-lease.ts';
import { MembershipAdmin } from './membership-admin.ts';
import { resolveSettings, type NodeOptions, type NodeSettings, type NodeStatus, type UnsafeSwitches } from './node-options.ts';
import { RaftLog } from './raft-log.ts';
import type { ChangeLogSource } from '../live/change-feed.ts';
import { ReadBarrier } from './read-barrier.ts';
import { DEFAULT_READ_LEVEL, ReadPath, type ReadLevel } from './read-path.ts';
import { ReadyLoop, recoverRaftState } from './ready-loop.ts';
import { SnapshotWriter } from './snapshot-writer.ts';
import { SNAPSHOT_CHUNK_PREFIX_BYTES_MAX, SnapshotChunkReader } from './snapshot-chunk-reader.ts';
import { FramePool } from './frame-pool.ts';
import { PeerSendPacer } from './peer-send-pacer.ts';
import { LiveQueries, type LiveResult } from '../live/live-queries.ts';
import { LiveQuery } from '../live/live-query.ts';
import type { TypedValue } from '../protocol/index.ts';
import { jsHeapBytes, type NodeMemory } from './memory-usage.ts';

export type { NodeOptions, NodeStatus, UnsafeSwitches } from './node-options.ts';

/** After dropping a snapshot's bytes, the wait before asking for a collection: the Ready that held them is done by then. */
const GARBAGE_COLLECTION_DELAY_MS = 100;
/** WAL bytes a checkpoint must drop for the node to ask for a garbage collection after it (see collectGarbageSoon). */
const CHECKPOINTED_WAL_BYTES_COLLECTED_MIN = 64 * 2 ** 20;
/**
 * Bytes a snapshot must drop (its data and the log it compacted) for the node to ask for a
 * collection after it: below, V8 frees them in its own time, and a forced full collection every
 * 1024 entries stopped every node together for 34-62 ms each time under writes (kvwrite).
 */
const SNAPSHOT_DROPPED_BYTES_COLLECTED_MIN = 16 * 2 ** 20;
/** Longest wait for the followers' snapshots before a held-back checkpoint (see snapshotFinished). */
const CHECKPOINT_HOLD_AFTER_SNAPSHOT_MS_MAX = 10_000;

export class ClusterNode implements GatewayHost {
  readonly id: NodeId;
  readonly address: string;
  readonly adminPolicy: AdminPolicy;
  readonly metrics: NodeMetrics;
  readonly limits: Readonly<Limits>;
  readonly unsafe: Readonly<UnsafeSwitches>;
  /** Resolves when the node stopped; rejects with the original error when it stopped itself. */
  readonly closed: Promise<void>;
  private readonly closedSignal = deferred<void>();
  private readonly settings: NodeSettings;
  private readonly runtime: Runtime;
  private readonly log: RaftLog;
  private readonly memory = new MemoryStorage();
  private readonly engine: Engine;
  private raft!: RaftNode;
  private loop!: ReadyLoop;
  private readonly transport: PeerTransport;
  private readonly fsm: StateMachine;
  private readonly snapshots: SnapshotWriter;
  /** Reads chunks of the snapshot file for followers being sent it. */
  private readonly snapshotChunks: SnapshotChunkReader;
  /** Buffers of the large frames sent (appends, snapshot chunks), reused once written (frame-pool.ts). */
  private readonly frames: FramePool;
  /** Lets one large frame at a time go to each peer, the next once the socket wrote it. */
  private readonly pacer: PeerSendPacer;
  private readonly waits: BoundedWait;
  private readonly appliedWaiters = new AppliedWaiters();
  private readonly reads: ReadBarrier;
  private readonly followerReads: FollowerReadIndex;
  private readonly lease: LeaderLease;
  private readonly readPath: ReadPath;
  readonly defaultReadLevel: ReadLevel;
  /** Live queries on this replica's committed state (src/live/live-queries.ts). */
  readonly liveQueries: LiveQueries;
  /** When this node last heard from a leader (Append, Heartbeat, Snapshot of the newest term seen). */
  private leaderContactMs: number | undefined;
  private leaderContactTerm = 0;
  /** Until then, vote requests are ignored: a restarted voter must not break a leader's lease. */
  private votesHeldUntilMs = 0;
  private leaseRenewing = false;
  private readonly membership: MembershipAdmin;
  private readonly handOver: HandOverPolicy;
  private readonly gateways = new Set<Gateway>();
  private configuration: Configuration = { members: [] };
  private state: StateName = 'follower';
  private leaderId: NodeId = 0;
  /** The new term's first entry: until it is applied, no client statement may run. */
  private termStartIndex = 0;
  private ticker: TimerHandle | undefined;
  private stopped = false;
  private stopping: Promise<void> | undefined;
  private fatalError: Error | undefined;
  private snapshotCount = 0;
  private nextGatewayId = 1;
  private seedPeers: { id: NodeId; address: string }[];
  private readonly write: (line: string) => void;
  /** When the snapshot being written started, if it is to compact a large log (see snapshotFinished). */
  private largeSnapshotStartedMs: number | undefined;
  /** Checkpoints wait for the followers' snapshots (see snapshotFinished). */
  private checkpointsHeldForFollowers = false;
  private readonly onFatal: ((error: Error) => void) | undefined;

  private constructor(options: NodeOptions) {
    this.id = options.id;
    this.address = options.address;
    this.limits = Object.freeze(resolveLimits(options.limits));
    this.unsafe = Object.freeze({ ...options.unsafeForTesting });
    this.settings = resolveSettings(options);
    this.runtime = options.runtime;
    this.onFatal = options.onFatal;
    this.write = options.log ?? (() => {});
    this.adminPolicy = options.adminPolicy ?? new AdminPolicy();
    this.metrics = new NodeMetrics(() => this.runtime.clock.nowMs());
    this.closed = this.closedSignal.promise;
    this.seedPeers = (options.seedPeers ?? []).filter((p) => p.id !== options.id && p.address !== '');
    this.log = new RaftLog(options.storage, {
      diskSpace: { nowMs: () => this.runtime.clock.nowMs() },
      segmentBytesMax: this.limits.logSegmentBytesMax,
      snapshotWriteBytesMax: this.limits.snapshotWriteBytesMax,
      ...(this.unsafe.truncateOnCorruption && { unsafeForTesting: { truncateOnCorruption: true } }),
    });
    const clock = this.runtime.clock;
    this.engine = options.engine;
    this.fsm = newStateMachine(options.engine, this.runtime, this.settings, this.limits, this.unsafe, this.write, options.changeCapture !== false, () => this.checkpointHeld());
    this.transport = new PeerTransport({
      selfId: this.id,
      selfAddress: this.address,
      clusterKey: options.clusterKey,
      dialWebSocket: this.runtime.dialWebSocket,
      clock,
      maxMessageBytes: this.limits.peerMessageBytesMax,
      idleTimeoutMs: peerIdleTimeoutMs(this.settings.tickMs, this.settings.electionTimeoutTicks),
      secure: options.secure ?? false,
      onLog: (event) => {
        if (event.level === 'warn') this.write(`peer ${event.peerId ?? event.remoteAddress ?? '?'}: ${event.message}`);
      },
    });
    this.waits = new BoundedWait(clock, this.settings.commitTimeoutMs);
    this.reads = new ReadBarrier(
      {
        readIndex: (requestId) => this.raft.readIndex(requestId),
        isLeader: () => this.isLeader(),
        notLeader: () => notLeader(this.leader()?.address),
        schedule: () => this.loop.schedule(),
        nowMs: () => clock.nowMs(),
      },
      this.waits,
    );
    const electionTimeoutMs = this.settings.electionTimeoutTicks * this.settings.tickMs;
    this.defaultReadLevel = options.defaultReadLevel ?? DEFAULT_READ_LEVEL;
    this.lease = new LeaderLease({
      tickMs: this.settings.tickMs,
      electionTimeoutTicks: this.settings.electionTimeoutTicks,
      clockDriftMax: options.leaseClockDriftMax ?? CLOCK_DRIFT_MAX_DEFAULT,
    });
    this.votesHeldUntilMs = clock.nowMs() + electionTimeoutMs;
    this.followerReads = new FollowerReadIndex(
      {
        leaderId: () => this.leaderId,
        leaderAddress: () => this.leader()?.address,
        isLeader: () => this.isLeader(),
        send: (to, bytes) => this.transport.send(to, bytes),
        leaderReadIndex: () => this.leaderReadIndex(),
        log: this.write,
      },
      clock,
      electionTimeoutMs,
    );
    this.readPath = new ReadPath({
      isLeader: () => this.isLeader(),
      leaderReady: () => this.leaderReady(),
      leaderReadIndex: () => this.leaderReadIndex(),
      leaseHolds: () => this.isLeader() && this.lease.holds(clock.nowMs(), this.reads.confirmedRoundStartMs),
      renewLease: () => this.renewLease(),
      readIndexFromLeader: () => this.followerReads.readIndex(),
      appliedIndex: () => this.fsm.appliedIndex,
      applied: (index, what) => this.appliedAt(index, what),
      leaderContactAgeMs: () => {
        if (this.isLeader()) return 0;
        return this.leaderContactMs === undefined ? undefined : clock.nowMs() - this.leaderContactMs;
      },
      followerReadsWithoutReadIndex: this.unsafe.followerReadsWithoutReadIndex === true,
      readsWithoutBarrier: this.unsafe.readsWithoutBarrier === true,
    });
    this.liveQueries = new LiveQueries({
      commits: this.fsm.commits,
      clock,
      readView: (name) => this.fsm.database(name).engine.readView(),
      admitRead: (level) => this.readPath.admit(level),
      appliedIndex: () => this.fsm.appliedIndex,
      liveQueriesMax: this.limits.liveQueriesMax,
      liveResultBytesMax: this.limits.liveResultBytesMax,
      log: this.write,
    });
    this.membership = new MembershipAdmin(
      {
        id: this.id,
        isLeader: () => this.isLeader(),
        leaderId: () => this.leaderId,
        leaderAddress: () => this.leader()?.address,
        configuration: () => this.configuration,
        proposeConfChange: (change) => this.raft.proposeConfChange(change),
        transferLeadership: (to) => this.startTransfer(to),
        schedule: () => this.loop.schedule(),
      },
      this.appliedWaiters,
      this.waits,
      clock,
      {
        votersMax: this.settings.votersMax,
        standbysMax: this.settings.standbysMax,
        transferTimeoutMs: this.settings.electionTimeoutTicks * this.settings.tickMs * 3,
        transferPollMs: this.settings.tickMs,
      },
    );
    this.handOver = new HandOverPolicy(this.address === '', this.settings.leaderWithoutAddressHandOverMs);
    this.frames = new FramePool(
      Math.max(PEER_FRAME_HEADROOM_BYTES + this.limits.appendBytesMax + PEER_MESSAGE_FRAMING_BYTES, SNAPSHOT_CHUNK_PREFIX_BYTES_MAX + this.limits.snapshotChunkBytesMax),
    );
    this.pacer = new PeerSendPacer({
      isLarge: (message) => !message.snapshot && this.frames.serves(PEER_FRAME_HEADROOM_BYTES + encodedMessageBytes(message)),
      transmit: (message, large, written) => this.transmitMessage(message, large, written),
    });
    this.snapshotChunks = new SnapshotChunkReader({
      frames: this.frames,
      log: this.log,
      memory: this.memory,
      clock,
      chunksReady: () => {
        if (this.stopped || !this.raft) return;
        this.raft.snapshotChunksReady();
        this.snapshotChunks.readWanted();
        this.loop.schedule();
      },
      write: this.write,
    });
    this.snapshots = new SnapshotWriter({
      log: this.log,
      memory: this.memory,
      clock,
      snapshotBytesMax: this.limits.snapshotBytesMax,
      stored: (index) => {
        this.snapshotCount++;
        this.write(`took a snapshot at index ${index}`);
      },
      skipped: (index, reason) => this.write(`no snapshot at index ${index}: ${reason}; the log is kept whole`),
      failed: (error) => this.fatal(error),
      finished: (droppedBytes) => {
        if (droppedBytes >= SNAPSHOT_DROPPED_BYTES_COLLECTED_MIN) this.collectGarbageSoon();
        this.snapshotFinished();
      },
    });
  }

  /** Starts a node on its storage; rejects (LimitsError, a log or snapshot error) when it cannot. */
  static async start(options: NodeOptions): Promise<ClusterNode> {
    const node = new ClusterNode(options);
    await node.recover(options.bootstrap ?? false);
    return node;
  }

  // ---------------------------------------------------------------- start-up

  private async recover(bootstrap: boolean): Promise<void> {
    const first: Configuration | undefined = bootstrap ? { members: [{ id: this.id, address: this.address, role: 'voter' }] } : undefined;
    const recovered = await recoverRaftState(this.log, this.memory, first);
    for (const repair of recovered.repairs) this.write(repair);
    if (recovered.snapshot) this.fsm.restore(recovered.snapshot.data, recovered.snapshot.meta.index, recovered.snapshot.meta.term);
    // The databases hold what the snapshot holds; its bytes are read back from disk if a follower needs them.
    this.memory.releaseSnapshotData();
    if (recovered.bootstrapped) this.write(`bootstrapped a new cluster with this node (id ${this.id}) as its only voter`);
    const limits = this.limits;
    this.raft = new RaftNode({
      id: this.id,
      storage: this.memory,
      electionTimeoutTicks: this.settings.electionTimeoutTicks,
      heartbeatTicks: this.settings.heartbeatTicks,
      random: () => {
        const bytes = this.runtime.randomBytes(4);
        return ((bytes[0]! | (bytes[1]! << 8) | (bytes[2]! << 16)) >>> 0) / 0x1000000;
      },
      applied: this.fsm.appliedIndex,
      preVote: true,
      checkQuorum: true,
      maxProposalBytes: limits.proposalBytesMax,
      maxEntriesBytesPerAppend: limits.appendBytesMax,
      maxInflightBytes: limits.appendInflightBytesMax,
      snapshotChunkBytes: limits.snapshotChunkBytesMax,
      maxSnapshotBytes: limits.snapshotBytesMax,
      maxCommittedBytesPerReady: limits.committedBytesPerReadyMax,
      maxUncommittedEntries: limits.uncommittedEntriesMax,
      maxPendingReads: limits.pendingReadsMax,
      // The Ready loop writes entries in the background and reports them with persisted().
      asyncStorageWrites: true,
    });
    this.loop = new ReadyLoop(
      this.raft,
      this.log,
      this.memory,
      this.snapshots,
      {
        restore: (snapshot) => {
          this.fsm.restore(snapshot.data, snapshot.meta.index, snapshot.meta.term);
          this.memory.releaseSnapshotData();
          this.collectGarbageSoon();
          this.write(`installed a snapshot at index ${snapshot.meta.index} from the leader`);
        },
        stateChanged: (soft) => this.changeState(soft),
        configurationChanged: (configuration) => {
          this.configuration = configuration;
          this.updatePeers();
        },
        send: (messages) => {
          for (const message of messages) this.pacer.send(message);
        },
        apply: (entries) => {
          const applyStartedMs = this.runtime.clock.nowMs();
          const walBytesBefore = this.walBytes();
          for (const entry of entries) {
            this.fsm.apply(entry, this.isLeader() ? this : undefined);
            this.metrics.writes.applied(entry.index);
          }
          // A checkpoint of a load's WAL drops hundreds of MiB of chunks at once.
          if (walBytesBefore - this.walBytes() >= CHECKPOINTED_WAL_BYTES_COLLECTED_MIN) this.collectGarbageSoon();
          this.metrics.applied(entries.length, this.runtime.clock.nowMs() - applyStartedMs);
        },
        readStates: (states) => this.reads.confirmed(states),
        persisted: (count, lastIndex, durationMs) => {
          this.metrics.logWritten(count, durationMs);
          this.metrics.writes.persisted(lastIndex);
        },
        committed: (index) => this.metrics.writes.committed(index),
        appliedReady: () => {
          const applied = this.fsm.appliedIndex;
          this.reads.settle(applied);
          this.appliedWaiters.settle(applied);
          this.maybeSnapshot();
        },
        fatal: (error) => this.fatal(error),
      },
      () => this.runtime.clock.nowMs(),
      () => new Promise((resolve) => this.runtime.clock.setTimeout(resolve, 0)),
      this.runtime.clock.afterIo?.bind(this.runtime.clock),
    );
    this.configuration = this.raft.status().configuration;
    this.updatePeers();
    this.transport.onMessage((from, bytes) => this.receivePeerMessage(from, bytes));
    let ticks = 0;
    this.ticker = this.runtime.clock.setInterval(() => {
      this.raft.tick();
      this.handOverIfDue();
      if (++ticks % this.settings.electionTimeoutTicks === 0) this.membership.adjustRoles(this.write);
      this.snapshotChunks.readWanted();
      this.frames.trim(this.runtime.clock.nowMs());
      this.loop.schedule();
    }, this.settings.tickMs);
    this.loop.schedule();
    // Start-up read the snapshot and the whole log, and compiled the engine: let that go.
    this.collectGarbageSoon();
  }

  // ---------------------------------------------------------------- raft driving

  /**
   * Encodes `message` after the transport's header and sends it, once the pacer lets it go
   * (peer-send-pacer.ts). A snapshot chunk read for it goes out in the buffer it was read into
   * (SnapshotChunkReader); a large append (`large`) is encoded into a buffer of the frame pool,
   * given back once the socket wrote it; anything else into a new one.
   */
  private transmitMessage(message: Message, large: boolean, written: () => void): void {
    const chunk = this.snapshotChunks.frameInPlace(message, PEER_FRAME_HEADROOM_BYTES);
    if (chunk) {
      this.transport.sendFramed(message.to, chunk.frame, (reusable) => {
        chunk.released(reusable);
        written();
      });
      return;
    }
    if (large) {
      const buffer = this.frames.take(this.runtime.clock.nowMs());
      this.transport.sendFramed(message.to, encodeMessageInto(message, PEER_FRAME_HEADROOM_BYTES, buffer), (reusable) => {
        if (reusable) this.frames.give(buffer);
        written();
      });
      return;
    }
    this.transport.sendFramed(message.to, encodeMessageWithHeadroom(message, PEER_FRAME_HEADROOM_BYTES));
    written();
  }

  private receivePeerMessage(from: NodeId, bytes: Uint8Array): void {
    if (this.stopped) return;
    if (isReadIndexMessage(bytes)) {
      this.followerReads.receive(from, bytes);
      this.loop.schedule();
      return;
    }
    let message;
    try {
      // The transport hands each received payload over: entries may stay views into it.
      message = decodeMessage(bytes, 'adopt');
    } catch (error) {
      // Thrown to the transport, which closes the connection that carried it and logs why.
      throw new Error(`malformed Raft message from node ${from}: ${(error as Error).message}`);
    }
    if (message.from !== from || message.to !== this.id) {
      throw new Error(`a message from node ${from} claims to be from ${message.from} to ${message.to}`);
    }
    const type = message.type;
    if ((type === MessageType.Vote || type === MessageType.PreVote) && message.context !== 1 && this.runtime.clock.nowMs() < this.votesHeldUntilMs) {
      // Just started: this voter may have promised a leader, before it restarted, not to vote.
      return;
    }
    if ((type === MessageType.Append || type === MessageType.Heartbeat || type === MessageType.Snapshot) && message.term >= this.leaderContactTerm) {
      this.leaderContactTerm = message.term;
      this.leaderContactMs = this.runtime.clock.nowMs();
    }
    this.raft.step(message);
    if (type === MessageType.AppendResponse) this.metrics.writes.committed(this.raft.committedIndex());
    // A follower's answer may have asked for the next chunk of a snapshot (or its first).
    if (type === MessageType.HeartbeatResponse || type === MessageType.SnapshotResponse || type === MessageType.AppendResponse) this.snapshotChunks.readWanted();
    this.loop.schedule();
  }

  private changeState(soft: SoftState): void {
    const wasLeader = this.state === 'leader';
    if (soft.state !== this.state || soft.leaderId !== this.leaderId) {
      this.write(`state ${soft.state}, leader ${soft.leaderId === 0 ? 'unknown' : soft.leaderId}, term ${this.raft.status().term}`);
    }
    const leaderChanged = soft.leaderId !== this.leaderId;
    this.state = soft.state;
    this.leaderId = soft.leaderId;
    if (leaderChanged) this.followerReads.leaderChanged();
    if (wasLeader !== (soft.state === 'leader')) this.lease.leadershipChanged();
    if (!wasLeader && soft.state === 'leader') {
      this.handOver.becameLeader(this.runtime.clock.nowMs());
      // Until the new term's first entry is applied, entries of earlier leaders may still
      // arrive, and no client statement may run on top of them.
      if (!this.unsafe.statementsBeforeTermApplied) this.termStartIndex = this.raft.status().lastIndex;
    }
    if (wasLeader && soft.state !== 'leader') {
      this.memory.dropSnapshotChunks();
      this.fsm.abortPending('this node is no longer the leader');
      this.reads.rejectAll();
      this.appliedWaiters.rejectAll(leadershipLost('this node stopped being the leader while waiting for the log'));
    }
  }

  /** Bytes of the frames in every database's WAL (an estimate: frames of the database's page size). */
  private walBytes(): number {
    let bytes = 0;
    for (const db of this.fsm.all()) bytes += db.engine.walFrameCount() * db.engine.pageSize;
    return bytes;
  }

  /** A full garbage collection now, where the runtime offers one (the HTTP API's load, before its COMMIT). */
  collectGarbage(): void {
    this.runtime.collectGarbage?.call(this.runtime);
  }

  /**
   * A snapshot's bytes were just dropped: ask the host for a full collection once the code that
   * held them has returned (V8 would otherwise leave them resident for long; docs/memory.md).
   */
  private collectGarbageSoon(): void {
    const collect = this.runtime.collectGarbage;
    if (!collect || this.stopped) return;
    this.runtime.clock.setTimeout(() => collect.call(this.runtime), GARBAGE_COLLECTION_DELAY_MS);
  }

  /**
   * Whether the leader holds back checkpoints: while its in-memory log holds more than snapshots
   * keep it to (a load's parts) and the snapshot that compacts it is due or being written. A
   * checkpoint then would copy the whole WAL into the main file while the log still holds the
   * same bytes: three copies of the transaction at once on every node.
   */
  private checkpointHeld(): boolean {
    if (this.checkpointsHeldForFollowers) return true;
    if (!this.logHoldsLargeEntries()) return false;
    return this.snapshots.busy || this.fsm.snapshotDue();
  }

  /** More log in memory than snapshots keep it to: a large transaction's parts, not yet compacted. */
  private logHoldsLargeEntries(): boolean {
    return this.memory.entriesBytes() > this.limits.logTrailingBytesMax + this.limits.snapshotLogBytesMax;
  }

  /**
   * A snapshot is over. If it compacted a large log, the followers are taking theirs at the same
   * index, started when they applied it, a little after this node: the checkpoints it held back
   * wait as long again as its own snapshot took (at most CHECKPOINT_HOLD_AFTER_SNAPSHOT_MS_MAX)
   * before they are proposed.
   */
  private snapshotFinished(): void {
    const startedMs = this.largeSnapshotStartedMs;
    this.largeSnapshotStartedMs = undefined;
    if (startedMs === undefined || !this.isLeader()) {
      this.proposeHeldCheckpoints();
      return;
    }
    const holdMs = Math.min(Math.max(0, this.runtime.clock.nowMs() - startedMs), CHECKPOINT_HOLD_AFTER_SNAPSHOT_MS_MAX);
    this.checkpointsHeldForFollowers = true;
    this.runtime.clock.setTimeout(() => {
      this.checkpointsHeldForFollowers = false;
      this.proposeHeldCheckpoints();
    }, holdMs);
  }

  /** The checkpoints held back (checkpointHeld) are proposed once nothing holds them any more. */
  private proposeHeldCheckpoints(): void {
    if (this.stopped || !this.isLeader() || this.checkpointHeld()) return;
    for (const db of this.fsm.all()) db.maybeProposeCheckpoint(this, this.settings.walFramesMax);
  }

  /** Starts a snapshot when one is due: a copy now, at the applied index; the write in the background. */
  private maybeSnapshot(): void {
    if (this.snapshots.busy || !this.fsm.snapshotDue()) return;
    const copy = this.fsm.snapshot();
    const term = this.raft.termAt(copy.index);
    assert(term !== undefined, `no term known for applied index ${copy.index}`);
    this.fsm.snapshotStarted(copy.index);
    this.largeSnapshotStartedMs = this.logHoldsLargeEntries() ? this.runtime.clock.nowMs() : undefined;
    this.snapshots.start({
      copy,
      term,
      configuration: this.raft.configurationAt(copy.index),
      compactIndex: this.fsm.compactionIndex(copy.index, (index) => this.memory.entryBytes(index)),
    });
  }

  private handOverIfDue(): void {
    if (this.stopped || !this.handOver.due(this.isLeader(), this.runtime.clock.nowMs())) return;
    const status = this.raft.status();
    const target = handOverTarget(status, this.configuration, this.id);
    if (!target) return;
    const result = this.startTransfer(target.id);
    if (result.ok) {
      this.write(
        `handing leadership to listening voter ${target.id} (its log at ${target.match} of ${status.lastIndex}): clients cannot reach a leader without an address`,
      );
    }
  }

  private updatePeers(): void {
    const members = this.configuration.members;
    if (members.some((m) => m.id === this.id)) this.seedPeers = [];
    const seeds = this.seedPeers.filter((seed) => !members.some((m) => m.id === seed.id));
    this.transport.setPeers(
      [...members, ...seeds].filter((m) => m.id !== this.id).map((m) => ({ id: m.id, address: m.address })),
    );
  }

  // ---------------------------------------------------------------- leader services

  isLeader(): boolean {
    return this.state === 'leader';
  }

  leader(): { id: NodeId; address: string } | undefined {
    if (this.leaderId === 0) return undefined;
    const member = this.configuration.members.find((m) => m.id === this.leaderId);
    return member ? { id: member.id, address: member.address } : undefined;
  }

  requireLeader(): void {
    if (!this.isLeader()) throw notLeader(this.leader()?.address);
  }

  /** For statements: leader, and caught up with every entry of earlier terms (dqlite's barrier). */
  requireReadyLeader(): void {
    this.requireLeader();
    const applied = this.fsm.appliedIndex;
    if (applied < this.termStartIndex) {
      throw notLeader(undefined, `this node was just elected and is still applying entries ${applied + 1}..${this.termStartIndex}`);
    }
  }

  /** Waits until this new leader applied every entry of earlier terms; then statements may run. */
  async leaderReady(): Promise<void> {
    this.requireLeader();
    if (this.fsm.appliedIndex >= this.termStartIndex) return;
    const applied = this.appliedWaiters.wait(this.termStartIndex);
    this.loop.schedule();
    await this.waits.wait(applied, "applying the previous leader's entries");
  }

  propose(data: Uint8Array): ProposeResult {
    // Only client transactions are refused on a full disk: the reserve is for everything else
    // (checkpoints, barriers, configuration changes must never fail for want of space).
    const refusal = data[0] === CommandKind.Frames || data[0] === CommandKind.TransactionPart ? this.log.proposalRefusal(data.length) : undefined;
    if (refusal) throw new NodeError(SQLITE_FULL, refusal.message);
    const result = this.raft.propose(data);
    if (!result.ok) {
      if (result.error.code === 'NOT_LEADER') throw notLeader(this.leader()?.address);
      throw new NodeError(SQLITE_ERROR, `cannot replicate: ${result.error.message}`);
    }
    if (data[0] === CommandKind.Frames) this.metrics.writes.proposed(result.index);
    this.loop.scheduleProposal();
    return { index: result.index, term: result.term };
  }

  /** Resolves once this node confirmed, after the call, that it still leads, and applied all it had committed then. */
  readBarrier(): Promise<number> {
    return this.reads.barrier();
  }

  /** A ReadIndex round on this leader, bounded: resolves with its index once applied that far. */
  private leaderReadIndex(): Promise<number> {
    let round: Promise<number>;
    try {
      round = this.reads.barrier();
    } catch (error) {
      return Promise.reject(error);
    }
    return this.waits.wait(round, 'confirming leadership for a read');
  }

  private async appliedAt(index: number, what: string): Promise<void> {
    if (this.fsm.appliedIndex >= index) return;
    const applied = this.appliedWaiters.wait(index);
    this.loop.schedule();
    await this.waits.wait(applied, what);
  }

  /** A ReadIndex round in the background once the lease is past half its life; one at a time. */
  private renewLease(): void {
    if (this.leaseRenewing || this.runtime.clock.nowMs() - this.reads.confirmedRoundStartMs < this.lease.durationMs / 2) return;
    this.leaseRenewing = true;
    this.leaderReadIndex()
      .catch(() => undefined)
      .finally(() => {
        this.leaseRenewing = false;
      });
  }

  private startTransfer(to: NodeId): ReturnType<RaftNode['transferLeadership']> {
    this.lease.transferStarted();
    return this.raft.transferLeadership(to);
  }

  /** Resolves when a read at `level` may run on this node's committed state (read-path.ts). */
  admitRead(level: ReadLevel): Promise<void> {
    return this.readPath.admit(level);
  }

  /** This replica's applied log and commit events, for change feeds (src/live/change-feed.ts). */
  changeLog(): ChangeLogSource {
    return {
      commits: this.fsm.commits,
      appliedIndex: () => this.fsm.appliedIndex,
      firstLogIndex: () => this.memory.firstIndex(),
      logEntries: (lo, hi, bytesMax) => this.memory.entries(lo, hi, bytesMax),
    };
  }

  appliedIndex(): number {
    return this.fsm.appliedIndex;
  }

  /**
   * A live query on this replica: the result at `level` now, then again whenever a committed
   * transaction changed a table it reads (src/live/live-queries.ts). Iterate it, or `onChange`.
   */
  live(database: string, sql: string, params: readonly TypedValue[] = [], level: ReadLevel = this.defaultReadLevel): LiveQuery<LiveResult> {
    return new LiveQuery<LiveResult>(async (sink) => {
      const subscription = await this.liveQueries.subscribe(database, sql, params, level, sink);
      sink.result(subscription.first);
      return subscription.unsubscribe;
    });
  }

  async writeSettled(barrier: Promise<void> | undefined): Promise<void> {
    if (!barrier || this.unsafe.ackBeforeCommit) return;
    await this.waits.wait(barrier, 'waiting for the write to commit');
  }

  async readSettled(barrier: Promise<void> | undefined): Promise<void> {
    if (this.unsafe.readsWithoutBarrier) return;
    await this.waits.wait<unknown>(barrier ?? this.reads.barrier(), 'waiting for a read to be confirmed');
  }

  addMember(id: NodeId, address: string): Promise<void> {
    return this.membership.addMember(id, address);
  }

  assignRole(id: NodeId, role: Role): Promise<void> {
    return this.membership.assignRole(id, role);
  }

  removeMember(id: NodeId): Promise<void> {
    return this.membership.removeMember(id);
  }

  /** The role a newly joined node should get, as go-dqlite's app decides it. */
  roleForNewMember(): Role {
    return this.membership.roleForNewMember();
  }

  transferLeadership(to: NodeId): Promise<void> {
    return this.membership.transferLeadership(to);
  }

  /** Resolves once node `id` proved it holds the cluster key; a leader asks before adding it. */
  proveMember(id: NodeId, address: string): Promise<void> {
    return this.transport.proveMember(id, address);
  }

  transportStats(): TransportStats {
    return this.transport.stats();
  }

  members(): Member[] {
    return this.membership.members();
  }

  describe(): { failureDomain: bigint; weight: bigint } {
    return this.membership.describe();
  }

  setWeight(weight: bigint): void {
    this.membership.setWeight(weight);
  }

  // ---------------------------------------------------------------- databases and clients

  /** The database `name`, opened (created empty) on first use, identically on every node. */
  database(name: string): ReplicatedDatabase {
    return this.fsm.database(name);
  }

  existingDatabase(name: string): ReplicatedDatabase | undefined {
    return this.fsm.existingDatabase(name);
  }

  /** A dqlite-protocol client connected (raw TCP, or a WebSocket carrying the same bytes). */
  acceptClient(stream: ByteStream): void {
    if (this.stopped) {
      stream.close();
      return;
    }
    // A host's stream may keep only one close handler, a later one replacing the earlier:
    // registering ours beside the gateway's would then cancel its clean-up (the rollback of a
    // departed client's transaction), so ours rides on the gateway's.
    const gateway: Gateway = new Gateway(this, afterClose(stream, () => this.gateways.delete(gateway)), this.nextGatewayId++, this.write);
    this.gateways.add(gateway);
  }

  /** A peer connected for Raft traffic. */
  acceptPeer(channel: MessageChannel, headers: Record<string, string | string[] | undefined>): void {
    if (this.stopped) {
      channel.close('node is stopping');
      return;
    }
    this.transport.acceptConnection(channel, headers);
  }

  /** Writes one line to the node's log (for long operations that report progress, such as /db/load). */
  logLine(line: string): void {
    this.write(line);
  }

  status(): NodeStatus {
    const raftStatus = this.raft.status();
    return {
      id: this.id,
      address: this.address,
      state: this.state,
      leaderId: this.leaderId,
      leaderAddress: this.leader()?.address ?? '',
      term: raftStatus.term,
      commitIndex: raftStatus.commit,
      appliedIndex: this.fsm.appliedIndex,
      lastIndex: raftStatus.lastIndex,
      snapshotIndex: this.memory.snapshot().meta.index,
      members: this.members(),
      reachablePeers: this.transport.reachablePeers(),
      databases: this.fsm.all().map((db) => ({ name: db.name, walFrames: db.engine.walFrameCount(), pending: db.pendingCount })),
      checkpoints: this.fsm.checkpoints,
      snapshots: this.snapshotCount,
      liveQueries: { subscriptions: this.liveQueries.subscriptions, queries: this.liveQueries.queries, evaluations: this.liveQueries.evaluations },
      memory: this.memoryUsage(),
    };
  }

  /** What this node holds in memory, by part (docs/memory.md). */
  memoryUsage(): NodeMemory {
    return {
      logBytes: this.memory.entriesBytes(),
      databasesBytes: this.engine.filesBytes(),
      snapshotBytes: this.memory.snapshotHeldBytes() + this.snapshots.heldBytes + this.snapshotChunks.heldBytes,
      wasmBytes: this.engine.wasmBytes(),
      jsHeapBytes: jsHeapBytes(),
    };
  }

  /** Stops the node for good, keeping `error` (the original failure) for `closed` and `onFatal`. */
  private fatal(error: unknown): void {
    if (this.fatalError) return;
    const failure = error instanceof Error ? error : new Error(String(error));
    this.fatalError = failure;
    this.write(`fatal: ${failure.stack ?? failure.message}; stopping this node (restart it to rebuild its state from the snapshot and the log)`);
    void this.stop();
    this.closedSignal.reject(failure);
    this.onFatal?.(failure);
  }

  /** Stops serving. With `handOver`, a leader first transfers leadership to another voter. */
  stop(options: { handOver?: boolean } = {}): Promise<void> {
    this.stopping ??= this.shutDown(options.handOver ?? false);
    return this.stopping;
  }

  private async shutDown(handOver: boolean): Promise<void> {
    if (handOver && this.isLeader() && !this.fatalError) {
      try {
        await this.transferLeadership(0);
      } catch (error) {
        this.write(`could not hand leadership over before stopping: ${(error as Error).message}`);
      }
    }
    this.stopped = true;
    this.liveQueries.close();
    this.loop?.stop();
    this.ticker?.cancel();
    for (const gateway of this.gateways) gateway.close();
    this.pacer.clear();
    this.transport.close();
    this.followerReads.rejectAll();
    this.fsm.abortPending('the node is stopping');
    // The storage may be closed once this resolves: no snapshot or log write may still be writing to it.
    await this.loop?.idle();
    await this.snapshots.idle();
    await this.snapshotChunks.stop();
    this.closedSignal.resolve();
  }
}

function newStateMachine(
  engine: Engine,
  runtime: Runtime,
  settings: NodeSettings,
  limits: Limits,
  unsafe: UnsafeSwitches,
  log: (line: string) => void,
  changeCapture: boolean,
  checkpointHeld: () => boolean,
): StateMachine {
  return new StateMachine({
    engine,
    clock: runtime.clock,
    busyTimeoutMs: settings.busyTimeoutMs,
    databaseQueuedTasksMax: limits.databaseQueuedTasksMax,
    proposalBytesMax: limits.proposalBytesMax,
    databaseBytesMax: limits.databaseBytesMax,
    ...(changeCapture && { changeSetBytesMax: limits.changeSetBytesMax }),
    walFramesMax: settings.walFramesMax,
    compaction: {
      snapshotThresholdEntries: settings.snapshotThresholdEntries,
      trailingEntries: settings.snapshotTrailingEntries,
      trailingBytesMax: limits.logTrailingBytesMax,
      snapshotThresholdBytes: limits.snapshotLogBytesMax,
    },
    checkpointHeld,
    ...(unsafe.keepTransactionOnRefusedProposal && { keepTransactionOnRefusedProposal: true }),
    ...(unsafe.snapshotBetweenParts && { snapshotBetweenParts: true }),
    proposePartsGradually: true,
    log,
  });
}

/** `stream`, with `hook` run after whatever close handler its user registers. */
function afterClose(stream: ByteStream, hook: () => void): ByteStream {
  return {
    write: (bytes) => stream.write(bytes),
    onData: (handler) => stream.onData(handler),
    onClose: (handler) =>
      stream.onClose((error) => {
        handler(error);
        hook();
      }),
    close: () => stream.close(),
    get remoteAddress() {
      return stream.remoteAddress;
    },
    ...(stream.authenticated !== undefined && { authenticated: stream.authenticated }),
  };
}

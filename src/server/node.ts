/**
 * A cluster node: drives the Raft core (ticks, persistence, messages), applies committed entries
 * to the databases, and runs the leader-side checks clients depend on. Hosts hand it client byte
 * streams and peer channels; it knows nothing of which runtime it is on.
 */
import type { Engine } from '../../wasm/index.ts';
import { CommandKind, decodeCommand, type Command } from '../fsm/commands.ts';
import { decodeSnapshot, encodeSnapshot } from '../fsm/snapshot-codec.ts';
import {
  applyConfChange,
  decodeConfChange,
  decodeConfiguration,
  decodeMessage,
  encodeMessage,
  EntryType,
  MemoryStorage,
  RaftError,
  RaftNode,
  type ConfChange,
  type Configuration,
  type Entry,
  type Member,
  type NodeId,
  type Ready,
  type Role,
  type Snapshot,
} from '../raft/index.ts';
import type { ByteStream, DurableStorage, MessageChannel, Runtime, TimerHandle } from '../runtime.ts';
import { PeerTransport } from '../transport/index.ts';
import { DatabaseLoop } from './database-loop.ts';
import { deferred, type Deferred } from './deferred.ts';
import { leadershipLost, NodeError, notLeader, SQLITE_ERROR, SQLITE_IOERR_LEADERSHIP_LOST } from './errors.ts';
import { Gateway } from './gateway.ts';
import { RaftLog } from './raft-log.ts';
import { ReplicatedDatabase, type ProposeResult, type Replicator } from './replicated-database.ts';

export interface NodeOptions {
  id: NodeId;
  /** "host:port" peers and clients reach this node at; empty for a node that cannot listen. */
  address: string;
  runtime: Runtime;
  storage: DurableStorage;
  engine: Engine;
  clusterKey: string;
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
  peerMessageBytesMax?: number;
  /**
   * Deliberately unsafe behaviour, only for proving that the fault-injection checkers catch it.
   * `ackBeforeCommit` answers writes before Raft commits them; `readsWithoutBarrier` answers
   * reads without confirming leadership or waiting for the transactions they saw.
   * The other three undo fixes of bugs the fault suite found, so the whole-cluster simulator
   * can show it finds them: `keepTransactionOnRefusedProposal` leaves the engine's transaction
   * in place when a proposal is refused mid-batch; `statementsBeforeTermApplied` lets a new
   * leader run client statements before it applied the entries of earlier terms;
   * `runRequestsOfDepartedClients` runs a queued request whose client already left.
   */
  unsafeForTesting?: UnsafeSwitches;
  log?: (line: string) => void;
  /** Called when the node stopped because it cannot go on safely (storage failed, a replica diverged). */
  onFatal?: (error: Error) => void;
}

export interface UnsafeSwitches {
  ackBeforeCommit?: boolean;
  readsWithoutBarrier?: boolean;
  keepTransactionOnRefusedProposal?: boolean;
  statementsBeforeTermApplied?: boolean;
  runRequestsOfDepartedClients?: boolean;
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
}

interface ReadWaiter {
  index: number | undefined;
  done: Deferred<void>;
}

const DEFAULTS = {
  tickMs: 100,
  electionTimeoutTicks: 10,
  heartbeatTicks: 1,
  walFramesMax: 1000,
  snapshotThresholdEntries: 1024,
  snapshotTrailingEntries: 8192,
  busyTimeoutMs: 5000,
  commitTimeoutMs: 10_000,
  leaderWithoutAddressHandOverMs: 1000,
  votersMax: 3,
  standbysMax: 3,
  peerMessageBytesMax: 64 * 1024 * 1024,
};

export class ClusterNode implements Replicator {
  readonly id: NodeId;
  readonly address: string;
  private readonly settings: typeof DEFAULTS;
  private readonly runtime: Runtime;
  private readonly engine: Engine;
  private readonly log: RaftLog;
  private readonly memory = new MemoryStorage();
  private raft!: RaftNode;
  private readonly transport: PeerTransport;
  private readonly databases = new Map<string, ReplicatedDatabase>();
  private readonly gateways = new Set<Gateway>();
  private configuration: Configuration = { members: [] };
  private committedConfiguration: Configuration = { members: [] };
  private state = 'follower';
  private leaderId: NodeId = 0;
  private appliedIndex = 0;
  private snapshotIndex = 0;
  private ticker: TimerHandle | undefined;
  private processing = false;
  private processAgain = false;
  private stopped = false;
  private nextReadId = 1;
  private readonly readWaiters = new Map<number, ReadWaiter>();
  private readRoundInFlight: ReadWaiter | undefined;
  private nextReadRound: Deferred<void> | undefined;
  private readonly appliedWaiters: { index: number; done: Deferred<void> }[] = [];
  private checkpoints = 0;
  private snapshots = 0;
  private nextGatewayId = 1;
  private failureDomain = 0n;
  private weight = 0n;
  /** When this node last became leader (clock ms), for the hand-over of an address-less leader. */
  private leaderSinceMs = 0;
  private termStartIndex = 0;
  private seedPeers: { id: NodeId; address: string }[];
  private readonly write: (line: string) => void;
  private readonly onFatal: ((error: Error) => void) | undefined;
  private readonly unsafe: NonNullable<NodeOptions['unsafeForTesting']>;

  private constructor(options: NodeOptions) {
    this.unsafe = options.unsafeForTesting ?? {};
    this.onFatal = options.onFatal;
    this.seedPeers = (options.seedPeers ?? []).filter((p) => p.id !== options.id && p.address !== '');
    this.id = options.id;
    this.address = options.address;
    this.runtime = options.runtime;
    this.engine = options.engine;
    this.settings = { ...DEFAULTS, ...stripUndefined(options) };
    this.log = new RaftLog(options.storage);
    this.write = options.log ?? (() => {});
    this.transport = new PeerTransport({
      selfId: this.id,
      selfAddress: this.address,
      clusterKey: options.clusterKey,
      dialWebSocket: this.runtime.dialWebSocket,
      clock: this.runtime.clock,
      maxMessageBytes: this.settings.peerMessageBytesMax,
    });
  }

  static async start(options: NodeOptions): Promise<ClusterNode> {
    const node = new ClusterNode(options);
    await node.recover(options.bootstrap ?? false);
    return node;
  }

  // ---------------------------------------------------------------- startup and recovery

  private async recover(bootstrap: boolean): Promise<void> {
    const loaded = await this.log.load();
    if (loaded.snapshot) {
      this.memory.applySnapshot(loaded.snapshot);
      this.restoreStateMachine(loaded.snapshot);
    }
    this.memory.append(loaded.entries);
    this.memory.setHardState(loaded.hardState);
    const empty = !loaded.snapshot && loaded.entries.length === 0 && loaded.hardState.term === 0;
    if (empty && bootstrap) {
      const configuration: Configuration = { members: [{ id: this.id, address: this.address, role: 'voter' }] };
      RaftNode.bootstrap(this.memory, configuration);
      await this.log.append(this.memory.entries(this.memory.firstIndex(), this.memory.lastIndex() + 1));
      await this.log.saveHardState(this.memory.hardState());
      this.write(`bootstrapped a new cluster with this node (id ${this.id}) as its only voter`);
    }
    this.raft = new RaftNode({
      id: this.id,
      storage: this.memory,
      electionTimeoutTicks: this.settings.electionTimeoutTicks,
      heartbeatTicks: this.settings.heartbeatTicks,
      random: () => {
        const bytes = this.runtime.randomBytes(4);
        return ((bytes[0]! | (bytes[1]! << 8) | (bytes[2]! << 16)) >>> 0) / 0x1000000;
      },
      applied: this.appliedIndex,
      preVote: true,
      checkQuorum: true,
    });
    this.configuration = this.raft.status().configuration;
    this.updatePeers();
    this.transport.onMessage((from, bytes) => this.receivePeerMessage(from, bytes));
    this.ticker = this.runtime.clock.setInterval(() => {
      this.raft.tick();
      this.handOverIfUnreachable();
      this.scheduleProcessing();
    }, this.settings.tickMs);
    this.scheduleProcessing();
  }

  private restoreStateMachine(snapshot: Snapshot): void {
    const files = decodeSnapshot(snapshot.data);
    const names = new Set(files.map((f) => f.name));
    for (const [name, db] of this.databases) {
      db.abortPending('a snapshot from the leader replaced this database');
      if (!names.has(name)) {
        db.engine.close();
        this.databases.delete(name);
      }
    }
    for (const file of files) {
      const engineDb = this.engine.restore(file.name, { main: file.main, wal: file.wal });
      const existing = this.databases.get(file.name);
      if (existing) {
        existing.engine = engineDb;
      } else {
        this.databases.set(file.name, this.newDatabase(file.name, engineDb));
      }
    }
    this.appliedIndex = snapshot.meta.index;
    this.snapshotIndex = snapshot.meta.index;
    this.committedConfiguration = snapshot.meta.configuration;
  }

  // ---------------------------------------------------------------- raft driving

  private receivePeerMessage(from: NodeId, bytes: Uint8Array): void {
    if (this.stopped) return;
    let message;
    try {
      message = decodeMessage(bytes);
    } catch (error) {
      this.write(`dropped a malformed message from node ${from}: ${(error as Error).message}`);
      return;
    }
    if (message.from !== from || message.to !== this.id) {
      this.write(`dropped a message from node ${from} that claims to be from ${message.from} to ${message.to}`);
      return;
    }
    this.raft.step(message);
    this.scheduleProcessing();
  }

  private scheduleProcessing(): void {
    if (this.stopped) return;
    if (this.processing) {
      this.processAgain = true;
      return;
    }
    if (!this.raft.hasReady()) return;
    this.processing = true;
    void this.processReadies().catch((error: unknown) => {
      // Storage failed under us: the node cannot keep its promises, so it stops serving.
      this.fatal((error as Error).stack ?? String(error));
    });
  }

  private async processReadies(): Promise<void> {
    try {
      do {
        this.processAgain = false;
        while (this.raft.hasReady() && !this.stopped) {
          const ready = this.raft.ready();
          await this.handleReady(ready);
          this.raft.advance(ready);
        }
      } while (this.processAgain && !this.stopped);
    } finally {
      this.processing = false;
    }
    if (!this.stopped && this.raft.hasReady()) this.scheduleProcessing();
  }

  private async handleReady(ready: Ready): Promise<void> {
    if (ready.snapshot) {
      await this.log.resetToSnapshot(ready.snapshot);
      this.memory.applySnapshot(ready.snapshot);
      this.restoreStateMachine(ready.snapshot);
      this.write(`installed a snapshot at index ${ready.snapshot.meta.index} from the leader`);
    }
    // Term and vote must be durable before any message that depends on them leaves.
    if (ready.hardState) {
      await this.log.saveHardState(ready.hardState);
      this.memory.setHardState(ready.hardState);
    }
    if (ready.configuration) {
      this.configuration = ready.configuration;
      this.updatePeers();
    }
    // A leader may replicate entries while it writes them itself (Raft thesis §10.2.1): clients
    // are answered only when committed entries are applied, after this write completed. A
    // follower's acknowledgements must wait for its own write.
    const leading = (ready.softState?.state ?? this.state) === 'leader';
    if (leading) this.sendMessages(ready);
    if (ready.entries.length > 0) {
      await this.log.append(ready.entries);
      this.memory.append(ready.entries);
    }
    if (!leading) this.sendMessages(ready);
    if (ready.softState) this.changeState(ready.softState.state, ready.softState.leaderId);
    for (const entry of ready.committedEntries) this.applyEntry(entry);
    for (const readState of ready.readStates) {
      const waiter = this.readWaiters.get(readState.requestId);
      if (waiter) waiter.index = readState.index;
    }
    this.settleWaiters();
    if (ready.committedEntries.length > 0) await this.maybeSnapshot();
  }

  private sendMessages(ready: Ready): void {
    for (const message of ready.messages) this.transport.send(message.to, encodeMessage(message));
  }

  private changeState(state: string, leaderId: NodeId): void {
    const wasLeader = this.state === 'leader';
    if (state !== this.state || leaderId !== this.leaderId) {
      this.write(`state ${state}, leader ${leaderId === 0 ? 'unknown' : leaderId}, term ${this.raft.status().term}`);
    }
    this.state = state;
    this.leaderId = leaderId;
    if (!wasLeader && state === 'leader') {
      this.leaderSinceMs = this.runtime.clock.nowMs();
      // The new term's first entry: until it is applied, entries of earlier leaders may still
      // arrive, and no client statement may run on top of them.
      this.termStartIndex = this.raft.status().lastIndex;
    }
    if (wasLeader && state !== 'leader') {
      for (const db of this.databases.values()) db.abortPending('this node is no longer the leader');
      for (const [id, waiter] of this.readWaiters) {
        waiter.done.reject(leadershipLost('this node stopped being the leader during a read'));
        this.readWaiters.delete(id);
      }
      for (const waiter of this.appliedWaiters.splice(0)) {
        waiter.done.reject(leadershipLost('this node stopped being the leader while waiting for the log'));
      }
    }
  }

  private applyEntry(entry: Entry): void {
    switch (entry.type) {
      case EntryType.Normal:
        this.applyCommand(entry);
        break;
      case EntryType.ConfChange: {
        const next = applyConfChange(this.committedConfiguration, decodeConfChange(entry.data));
        if (!(next instanceof RaftError)) this.committedConfiguration = next;
        break;
      }
      case EntryType.Configuration:
        this.committedConfiguration = decodeConfiguration(entry.data);
        break;
      default:
        break;
    }
    this.appliedIndex = entry.index;
  }

  private applyCommand(entry: Entry): void {
    if (entry.data.length === 0) return;
    let command: Command;
    try {
      command = decodeCommand(entry.data);
    } catch (error) {
      // Every replica decodes the same bytes the same way, so skipping keeps them identical.
      this.write(`skipped undecodable entry ${entry.index}: ${(error as Error).message}`);
      return;
    }
    if (command.kind === CommandKind.Barrier) return;
    const db = this.database(command.database);
    try {
      if (command.kind === CommandKind.Frames) {
        db.applyFrames(entry.index, entry.term, command.payload);
        if (this.state === 'leader') db.maybeProposeCheckpoint(this, this.settings.walFramesMax);
      } else {
        db.applyCheckpoint(entry.index);
        this.checkpoints++;
        this.write(`checkpointed database ${db.name} at index ${entry.index}`);
      }
    } catch (error) {
      // Going on would leave this replica different from the others: stop, and let a restart
      // rebuild the databases from the snapshot and the log.
      this.fatal(`failed to apply entry ${entry.index} to database ${db.name}: ${(error as Error).message}`);
    }
  }

  private async maybeSnapshot(): Promise<void> {
    if (this.appliedIndex - this.snapshotIndex < this.settings.snapshotThresholdEntries) return;
    const files = [...this.databases.values()].map((db) => ({ name: db.name, ...db.engine.snapshot() }));
    const snapshot = this.memory.createSnapshot(this.appliedIndex, this.committedConfiguration, encodeSnapshot(files));
    const compactIndex = Math.max(0, this.appliedIndex - this.settings.snapshotTrailingEntries);
    await this.log.saveSnapshot(snapshot, compactIndex);
    this.memory.compact(compactIndex);
    this.snapshotIndex = this.appliedIndex;
    this.snapshots++;
    this.write(`took a snapshot at index ${this.appliedIndex}`);
  }

  /**
   * Clients reach only listening nodes, and a listening follower can only point them at the
   * leader's address: a leader without one (a browser node) would leave every client without a
   * leader. So it hands leadership to the listening voter with the longest log that it heard from
   * recently; Raft's transfer first catches that voter up.
   */
  private handOverIfUnreachable(): void {
    if (this.address !== '' || this.state !== 'leader' || this.stopped) return;
    if (this.runtime.clock.nowMs() - this.leaderSinceMs < this.settings.leaderWithoutAddressHandOverMs) return;
    const status = this.raft.status();
    if (status.leadTransferee !== 0 || !status.progress) return;
    let best: { id: NodeId; match: number } | undefined;
    for (const member of this.configuration.members) {
      if (member.role !== 'voter' || member.id === this.id || member.address === '') continue;
      const progress = status.progress[member.id];
      if (!progress?.recentActive) continue;
      if (!best || progress.match > best.match) best = { id: member.id, match: progress.match };
    }
    if (!best) return;
    const result = this.raft.transferLeadership(best.id);
    if (result.ok) {
      this.write(
        `handing leadership to listening voter ${best.id} (its log at ${best.match} of ${status.lastIndex}): clients cannot reach a leader without an address`,
      );
    }
  }

  private settleWaiters(): void {
    for (const [id, waiter] of this.readWaiters) {
      if (waiter.index !== undefined && waiter.index <= this.appliedIndex) {
        waiter.done.resolve();
        this.readWaiters.delete(id);
      }
    }
    for (let i = this.appliedWaiters.length - 1; i >= 0; i--) {
      const waiter = this.appliedWaiters[i]!;
      if (waiter.index <= this.appliedIndex) {
        waiter.done.resolve();
        this.appliedWaiters.splice(i, 1);
      }
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
    if (this.appliedIndex < this.termStartIndex) {
      throw notLeader(undefined, `this node was just elected and is still applying entries ${this.appliedIndex + 1}..${this.termStartIndex}`);
    }
  }

  /** Waits until this new leader applied every entry of earlier terms; then statements may run. */
  async leaderReady(): Promise<void> {
    this.requireLeader();
    if (this.appliedIndex >= this.termStartIndex) return;
    const done = deferred<void>();
    this.appliedWaiters.push({ index: this.termStartIndex, done });
    this.scheduleProcessing();
    await this.withTimeout(done.promise, "applying the previous leader's entries");
  }

  propose(data: Uint8Array): ProposeResult {
    const result = this.raft.propose(data);
    if (!result.ok) {
      if (result.error.code === 'NOT_LEADER') throw notLeader(this.leader()?.address);
      throw new NodeError(SQLITE_ERROR, `cannot replicate: ${result.error.message}`);
    }
    this.scheduleProcessing();
    return { index: result.index, term: result.term };
  }

  /**
   * Resolves once this node has confirmed, after the call, that it still leads, and applied all
   * it had committed then. Reads share confirmation rounds: a read that arrives while a round is
   * in flight cannot use it (it began before the read ran) and joins the next one, which starts
   * when the current one ends, so concurrent readers cost one heartbeat round, not one each.
   */
  readBarrier(): Promise<void> {
    this.requireLeader();
    if (!this.readRoundInFlight) return this.startReadRound();
    this.nextReadRound ??= deferred<void>();
    return this.nextReadRound.promise;
  }

  private startReadRound(): Promise<void> {
    const requestId = this.nextReadId++;
    const result = this.raft.readIndex(requestId);
    if (!result.ok) {
      if (result.error.code === 'NOT_LEADER') return Promise.reject(notLeader(this.leader()?.address));
      return Promise.reject(new NodeError(SQLITE_ERROR, `cannot confirm leadership: ${result.error.message}`));
    }
    const waiter: ReadWaiter = { index: undefined, done: deferred<void>() };
    this.readWaiters.set(requestId, waiter);
    this.readRoundInFlight = waiter;
    const round = this.withTimeout(waiter.done.promise, 'confirming leadership for a read', () => {
      this.readWaiters.delete(requestId);
    });
    const next = (): void => {
      if (this.readRoundInFlight === waiter) this.readRoundInFlight = undefined;
      const waiting = this.nextReadRound;
      this.nextReadRound = undefined;
      if (!waiting) return;
      let started: Promise<void>;
      try {
        started = this.isLeader() ? this.startReadRound() : Promise.reject(notLeader(this.leader()?.address));
      } catch (error) {
        started = Promise.reject(error);
      }
      started.then(waiting.resolve, waiting.reject);
    };
    round.then(next, next);
    this.scheduleProcessing();
    return round;
  }

  /** Resolves when a write's answer may go out: its transaction, and all it saw, committed. */
  async writeSettled(barrier: Promise<void> | undefined): Promise<void> {
    if (!barrier || this.unsafe.ackBeforeCommit) return;
    await this.withTimeout(barrier, 'waiting for the write to commit');
  }

  /** Resolves when a read's answer may go out: what it saw committed and leadership confirmed. */
  async readSettled(barrier: Promise<void> | undefined): Promise<void> {
    if (this.unsafe.readsWithoutBarrier) return;
    await this.withTimeout(barrier ?? this.readBarrier(), 'waiting for a read to be confirmed');
  }

  /** Bounds a wait on Raft: without a quorum it fails with a clear error instead of hanging. */
  withTimeout<T>(promise: Promise<T>, what: string, onTimeout?: () => void): Promise<T> {
    const timeoutMs = this.settings.commitTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const timer = this.runtime.clock.setTimeout(() => {
        onTimeout?.();
        reject(
          new NodeError(
            SQLITE_IOERR_LEADERSHIP_LOST,
            `timed out after ${timeoutMs} ms ${what}: no quorum of voters answered; the cluster needs a majority of its voters up`,
          ),
        );
      }, timeoutMs);
      promise.then(
        (value) => {
          timer.cancel();
          resolve(value);
        },
        (error: unknown) => {
          timer.cancel();
          reject(error);
        },
      );
    });
  }

  private async changeMembership(change: ConfChange): Promise<void> {
    this.requireLeader();
    const result = this.raft.proposeConfChange(change);
    if (!result.ok) {
      if (result.error.code === 'NOT_LEADER') throw notLeader(this.leader()?.address);
      throw new NodeError(SQLITE_ERROR, `membership change refused: ${result.error.message}`);
    }
    this.scheduleProcessing();
    const done = deferred<void>();
    this.appliedWaiters.push({ index: result.index, done });
    await this.withTimeout(done.promise, 'committing a membership change');
  }

  addMember(id: NodeId, address: string): Promise<void> {
    return this.changeMembership({ type: 'add', id, address, role: 'spare' });
  }

  assignRole(id: NodeId, role: Role): Promise<void> {
    return this.changeMembership({ type: 'assign', id, role });
  }

  removeMember(id: NodeId): Promise<void> {
    return this.changeMembership({ type: 'remove', id });
  }

  /** The role a newly joined node should get, as go-dqlite's app decides it. */
  roleForNewMember(): Role {
    const voters = this.configuration.members.filter((m) => m.role === 'voter').length;
    const standbys = this.configuration.members.filter((m) => m.role === 'standby').length;
    if (voters < this.settings.votersMax) return 'voter';
    if (standbys < this.settings.standbysMax) return 'standby';
    return 'spare';
  }

  async transferLeadership(to: NodeId): Promise<void> {
    this.requireLeader();
    if (to === 0) {
      const candidate = this.configuration.members.find((m) => m.role === 'voter' && m.id !== this.id);
      if (!candidate) throw new NodeError(SQLITE_ERROR, 'no other voter to transfer leadership to');
      to = candidate.id;
    }
    const result = this.raft.transferLeadership(to);
    if (!result.ok) throw new NodeError(SQLITE_ERROR, `leadership transfer refused: ${result.error.message}`);
    this.scheduleProcessing();
    const deadline = this.runtime.clock.nowMs() + this.settings.electionTimeoutTicks * this.settings.tickMs * 3;
    while (this.leaderId !== to) {
      if (this.runtime.clock.nowMs() > deadline) {
        throw new NodeError(SQLITE_ERROR, `leadership transfer to node ${to} did not complete; node ${to} may be behind or down`);
      }
      await new Promise<void>((resolve) => this.runtime.clock.setTimeout(resolve, this.settings.tickMs));
    }
  }

  members(): Member[] {
    return this.configuration.members.map((m) => ({ ...m }));
  }

  describe(): { failureDomain: bigint; weight: bigint } {
    return { failureDomain: this.failureDomain, weight: this.weight };
  }

  setWeight(weight: bigint): void {
    this.weight = weight;
  }

  // ---------------------------------------------------------------- databases and clients

  /** The database `name`, opened (created empty) on first use, identically on every node. */
  database(name: string): ReplicatedDatabase {
    let db = this.databases.get(name);
    if (!db) {
      db = this.newDatabase(name, this.engine.open(name));
      this.databases.set(name, db);
    }
    return db;
  }

  existingDatabase(name: string): ReplicatedDatabase | undefined {
    return this.databases.get(name);
  }

  private newDatabase(name: string, engineDb: ReturnType<Engine['open']>): ReplicatedDatabase {
    const holder: { db?: ReplicatedDatabase } = {};
    const loop = new DatabaseLoop({
      busyTimeoutMs: this.settings.busyTimeoutMs,
      queueLengthMax: 10_000,
      nowMs: () => this.runtime.clock.nowMs(),
      inTransaction: () => holder.db?.engine.inTransaction() ?? false,
      setTimer: (callback, delayMs) => this.runtime.clock.setTimeout(callback, delayMs),
    });
    holder.db = new ReplicatedDatabase(name, engineDb, loop);
    return holder.db;
  }

  /** A dqlite-protocol client connected (raw TCP, or a WebSocket carrying the same bytes). */
  acceptClient(stream: ByteStream): void {
    if (this.stopped) {
      stream.close();
      return;
    }
    // Hosts keep one close handler per stream, a later one replacing the earlier: registering
    // ours beside the gateway's would cancel its clean-up (the rollback of a departed client's
    // transaction), so ours rides on the gateway's.
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
      appliedIndex: this.appliedIndex,
      lastIndex: raftStatus.lastIndex,
      snapshotIndex: this.snapshotIndex,
      members: this.members(),
      reachablePeers: this.transport.reachablePeers(),
      databases: [...this.databases.values()].map((db) => ({
        name: db.name,
        walFrames: db.engine.walFrameCount(),
        pending: db.pendingCount,
      })),
      checkpoints: this.checkpoints,
      snapshots: this.snapshots,
    };
  }

  private fatal(message: string): void {
    this.write(`fatal: ${message}; stopping this node (restart it to rebuild its state from the log)`);
    void this.stop();
    this.onFatal?.(new Error(message));
  }

  /** Stops serving. With `handOver`, a leader first transfers leadership to another voter. */
  async stop(options: { handOver?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    if (options.handOver && this.isLeader()) {
      try {
        await this.transferLeadership(0);
      } catch (error) {
        this.write(`could not hand leadership over before stopping: ${(error as Error).message}`);
      }
    }
    this.stopped = true;
    this.ticker?.cancel();
    for (const gateway of this.gateways) gateway.close();
    this.transport.close();
    for (const db of this.databases.values()) db.abortPending('the node is stopping');
  }
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
  };
}

function stripUndefined<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<T>;
}

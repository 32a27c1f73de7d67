/**
 * A node's Prometheus metrics (`GET /metrics`): what the gateway and the node count as they work
 * (requests, latencies, client bytes), plus what is read from the node's status and the peer
 * transport when scraped (Raft indexes, WAL frames, snapshots, peers, peer bytes).
 */
import type { TransportStats } from '../transport/index.ts';
import { MetricsRegistry, type Counter, type Gauge, type Histogram } from './metrics-registry.ts';
import type { NodeStatus } from './node.ts';
import { WriteAnatomy } from './write-anatomy.ts';

/** Seconds; from a fast local commit (sub-millisecond) to a write waiting out a lost quorum. */
const LATENCY_BUCKETS_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Seconds, finer at the low end: the stages of one write are tenths of a millisecond to milliseconds. */
const STAGE_BUCKETS_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1, 2.5, 5, 10];

/** Entries per durable log write: how much group commit batches. */
const BATCH_BUCKETS_ENTRIES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

export type RequestResult = 'ok' | 'error';

export class NodeMetrics {
  private readonly registry = new MetricsRegistry();
  private readonly requests: Counter;
  private readonly requestSeconds: Histogram;
  private readonly commitSeconds: Histogram;
  private readonly applySeconds: Histogram;
  private readonly appliedEntries: Counter;
  private readonly logWriteSeconds: Histogram;
  private readonly logWriteEntries: Histogram;
  /** The stages of each write this node leads, as `dqlite_wasm_write_stage_seconds{stage}`. */
  readonly writes: WriteAnatomy;
  private readonly bytesSent: Counter;
  private readonly bytesReceived: Counter;
  private readonly adminRefused: Counter;
  private readonly clientConnections: Gauge;
  private readonly term: Gauge;
  private readonly commitIndex: Gauge;
  private readonly appliedIndex: Gauge;
  private readonly lastIndex: Gauge;
  private readonly snapshotIndex: Gauge;
  private readonly leader: Gauge;
  private readonly members: Gauge;
  private readonly peersReachable: Gauge;
  private readonly walFrames: Gauge;
  private readonly pendingTransactions: Gauge;
  private readonly snapshots: Counter;
  private readonly memoryBytes: Gauge;
  private readonly checkpoints: Counter;
  private readonly peerMessages: Counter;
  private readonly peerDropped: Counter;
  private readonly peerRefused: Counter;
  private readonly liveSubscriptions: Gauge;
  private readonly liveQueries: Gauge;
  private readonly liveEvaluations: Counter;
  /** The series of each request type, keyed once (request() runs for every request). */
  private readonly requestSeries = new Map<string, { ok: () => void; error: () => void; seconds: (value: number) => void }>();
  private readonly observeCommitSeconds: (seconds: number) => void;
  private readonly observeApplySeconds: (seconds: number) => void;
  private readonly countAppliedEntries: (entries: number) => void;
  private readonly observeLogWriteSeconds: (seconds: number) => void;
  private readonly observeLogWriteEntries: (entries: number) => void;
  private clientBytesSent = 0;
  private clientBytesReceived = 0;
  private openClients = 0;

  constructor(readonly nowMs: () => number) {
    const r = this.registry;
    this.requests = r.counter('dqlite_wasm_requests_total', 'dqlite protocol requests answered, by request type and result.', ['type', 'result']);
    this.requestSeconds = r.histogram(
      'dqlite_wasm_request_duration_seconds',
      'Time from reading a dqlite request to its answer, by request type.',
      LATENCY_BUCKETS_SECONDS,
      ['type'],
    );
    this.commitSeconds = r.histogram(
      'dqlite_wasm_commit_latency_seconds',
      'Time a write waits after running for Raft to commit and apply it (what a client sees on top of SQLite).',
      LATENCY_BUCKETS_SECONDS,
    );
    this.applySeconds = r.histogram(
      'dqlite_wasm_apply_latency_seconds',
      'Time to apply one batch of committed Raft entries to the databases.',
      LATENCY_BUCKETS_SECONDS,
    );
    this.writes = new WriteAnatomy(
      nowMs,
      r.histogram(
        'dqlite_wasm_write_stage_seconds',
        'Time of each stage of a write on the leader, from the end of the stage before: execute (received to proposed, with the wait for the database), persist (to the leader\'s own log write), quorum (to a quorum holding it), apply, answer.',
        STAGE_BUCKETS_SECONDS,
        ['stage'],
      ),
    );
    this.logWriteSeconds = r.histogram(
      'dqlite_wasm_raft_log_write_seconds',
      'Time of one durable write of Raft entries to this node\'s log (write and fsync).',
      STAGE_BUCKETS_SECONDS,
    );
    this.logWriteEntries = r.histogram('dqlite_wasm_raft_log_write_entries', 'Raft entries per durable log write.', BATCH_BUCKETS_ENTRIES);
    this.appliedEntries = r.counter('dqlite_wasm_applied_entries_total', 'Committed Raft entries applied on this node.');
    this.bytesSent = r.counter('dqlite_wasm_bytes_sent_total', 'Bytes sent, by channel (client: dqlite protocol; peer: Raft).', ['channel']);
    this.bytesReceived = r.counter('dqlite_wasm_bytes_received_total', 'Bytes received, by channel (client: dqlite protocol; peer: Raft).', ['channel']);
    this.adminRefused = r.counter('dqlite_wasm_admin_refused_total', 'Membership and leadership requests refused for missing credentials, by type.', ['type']);
    this.clientConnections = r.gauge('dqlite_wasm_client_connections', 'Open dqlite protocol client connections.');
    this.term = r.gauge('dqlite_wasm_raft_term', 'Current Raft term.');
    this.commitIndex = r.gauge('dqlite_wasm_raft_commit_index', 'Highest Raft log index known committed.');
    this.appliedIndex = r.gauge('dqlite_wasm_raft_applied_index', 'Highest Raft log index applied to the databases.');
    this.lastIndex = r.gauge('dqlite_wasm_raft_last_index', 'Last index in this node\'s Raft log.');
    this.snapshotIndex = r.gauge('dqlite_wasm_raft_snapshot_index', 'Index of the latest snapshot.');
    this.leader = r.gauge('dqlite_wasm_raft_leader', '1 while this node is the leader, else 0.');
    this.members = r.gauge('dqlite_wasm_raft_members', 'Cluster members by role.', ['role']);
    this.peersReachable = r.gauge('dqlite_wasm_peers_reachable', 'Peers with an open, authenticated connection to this node.');
    this.walFrames = r.gauge('dqlite_wasm_wal_frames', 'Frames in each database\'s WAL.', ['database']);
    this.pendingTransactions = r.gauge('dqlite_wasm_pending_transactions', 'Transactions proposed to Raft and not yet applied, by database.', ['database']);
    this.memoryBytes = r.gauge(
      'dqlite_wasm_memory_bytes',
      'Bytes this node holds in memory, by part: log (Raft entries kept in memory), databases (main files and WALs), snapshot (the latest kept for followers and one being taken), wasm (the SQLite engine\'s WASM memory), js_heap (the host\'s JS heap with array buffers, where reported).',
      ['part'],
    );
    this.snapshots = r.counter('dqlite_wasm_snapshots_total', 'Snapshots this node took since it started.');
    this.checkpoints = r.counter('dqlite_wasm_checkpoints_total', 'Replicated WAL checkpoints applied since this node started.');
    this.liveSubscriptions = r.gauge('dqlite_wasm_live_subscriptions', 'Live query subscriptions on this node (docs/live-queries.md).');
    this.liveQueries = r.gauge('dqlite_wasm_live_queries', 'Distinct live queries (database, SQL, parameters) this node keeps up to date.');
    this.liveEvaluations = r.counter('dqlite_wasm_live_evaluations_total', 'Live query evaluations since this node started (shared ones count once).');
    this.peerMessages = r.counter('dqlite_wasm_peer_messages_total', 'Raft messages over the peer transport, by direction.', ['direction']);
    this.peerDropped = r.counter('dqlite_wasm_peer_messages_dropped_total', 'Raft messages the peer transport dropped, by reason.', ['reason']);
    this.peerRefused = r.counter(
      'dqlite_wasm_peer_connections_refused_total',
      'Peer connections refused or closed, by reason (bad_key, handshake, malformed, idle).',
      ['reason'],
    );
    this.observeCommitSeconds = this.commitSeconds.bind();
    this.observeApplySeconds = this.applySeconds.bind();
    this.countAppliedEntries = this.appliedEntries.bind();
    this.observeLogWriteSeconds = this.logWriteSeconds.bind();
    this.observeLogWriteEntries = this.logWriteEntries.bind();
  }

  request(type: string, result: RequestResult, durationMs: number): void {
    let bound = this.requestSeries.get(type);
    if (!bound) {
      // Request types are a fixed set (the decoder's), so this map stays small.
      bound = {
        ok: this.requests.bind({ type, result: 'ok' }),
        error: this.requests.bind({ type, result: 'error' }),
        seconds: this.requestSeconds.bind({ type }),
      };
      this.requestSeries.set(type, bound);
    }
    bound[result]();
    bound.seconds(durationMs / 1000);
  }

  commitWaited(durationMs: number): void {
    this.observeCommitSeconds(durationMs / 1000);
  }

  applied(entries: number, durationMs: number): void {
    if (entries === 0) return;
    this.countAppliedEntries(entries);
    this.observeApplySeconds(durationMs / 1000);
  }

  logWritten(entries: number, durationMs: number): void {
    this.observeLogWriteSeconds(durationMs / 1000);
    this.observeLogWriteEntries(entries);
  }

  adminRefusal(type: string): void {
    this.adminRefused.inc({ type });
  }

  clientSent(bytes: number): void {
    this.clientBytesSent += bytes;
  }

  clientReceived(bytes: number): void {
    this.clientBytesReceived += bytes;
  }

  clientOpened(): void {
    this.openClients++;
  }

  clientClosed(): void {
    this.openClients--;
  }

  /** The exposition, with the scrape-time values read from `status` and `transport`. */
  render(status: NodeStatus, transport: TransportStats | undefined): string {
    this.clientConnections.set({}, this.openClients);
    this.bytesSent.set({ channel: 'client' }, this.clientBytesSent);
    this.bytesReceived.set({ channel: 'client' }, this.clientBytesReceived);
    this.term.set({}, status.term);
    this.commitIndex.set({}, status.commitIndex);
    this.appliedIndex.set({}, status.appliedIndex);
    this.lastIndex.set({}, status.lastIndex);
    this.snapshotIndex.set({}, status.snapshotIndex);
    this.leader.set({}, status.state === 'leader' ? 1 : 0);
    for (const role of ['voter', 'standby', 'spare']) {
      this.members.set({ role }, status.members.filter((m) => m.role === role).length);
    }
    this.peersReachable.set({}, status.reachablePeers.length);
    this.walFrames.reset();
    this.pendingTransactions.reset();
    for (const db of status.databases) {
      this.walFrames.set({ database: db.name }, db.walFrames);
      this.pendingTransactions.set({ database: db.name }, db.pending);
    }
    this.snapshots.set({}, status.snapshots);
    const memory = status.memory;
    this.memoryBytes.reset();
    this.memoryBytes.set({ part: 'log' }, memory.logBytes);
    this.memoryBytes.set({ part: 'databases' }, memory.databasesBytes);
    this.memoryBytes.set({ part: 'snapshot' }, memory.snapshotBytes);
    this.memoryBytes.set({ part: 'wasm' }, memory.wasmBytes);
    if (memory.jsHeapBytes !== null) this.memoryBytes.set({ part: 'js_heap' }, memory.jsHeapBytes);
    this.checkpoints.set({}, status.checkpoints);
    if (status.liveQueries) {
      this.liveSubscriptions.set({}, status.liveQueries.subscriptions);
      this.liveQueries.set({}, status.liveQueries.queries);
      this.liveEvaluations.set({}, status.liveQueries.evaluations);
    }
    if (transport) {
      this.bytesSent.set({ channel: 'peer' }, transport.bytesSent);
      this.bytesReceived.set({ channel: 'peer' }, transport.bytesReceived);
      this.peerMessages.set({ direction: 'sent' }, transport.messagesSent);
      this.peerMessages.set({ direction: 'received' }, transport.messagesReceived);
      this.peerMessages.set({ direction: 'relayed' }, transport.messagesRelayed);
      this.peerDropped.set({ reason: 'unreachable' }, transport.droppedUnreachable);
      this.peerDropped.set({ reason: 'queue_full' }, transport.droppedQueueFull);
      this.peerDropped.set({ reason: 'oversized' }, transport.droppedOversized);
      this.peerDropped.set({ reason: 'hop_limit' }, transport.droppedHopLimit);
      this.peerRefused.set({ reason: 'bad_key' }, transport.refusedBadKey);
      this.peerRefused.set({ reason: 'handshake' }, transport.refusedHandshake);
      this.peerRefused.set({ reason: 'malformed' }, transport.closedMalformed);
      this.peerRefused.set({ reason: 'idle' }, transport.closedIdle);
    }
    return this.registry.render();
  }
}

import type { Clock, DialWebSocket, MessageChannel, TimerHandle } from '../runtime.ts';
import {
  DATA_HEADER_BYTES,
  HOPS_MAX,
  constantTimeEqual,
  decodeFrame,
  encodeData,
  encodeHello,
  encodePing,
  isNodeId,
  withNextHop,
  writeDataHeader,
  type HelloFrame,
} from './envelope.ts';
import { probePeer } from './peer-probe.ts';

/** The WebSocket path peers dial; the listener routes upgrades on it to `acceptConnection`. */
export const PEER_WEBSOCKET_PATH = '/raft';
/** Upgrade header carrying the cluster key where the dialer can set headers (not browsers). */
export const CLUSTER_KEY_HEADER = 'x-dqlite-cluster-key';
/** Bytes a payload for `sendFramed` leaves free in front of it, for the frame's header. */
export const PEER_FRAME_HEADROOM_BYTES = DATA_HEADER_BYTES;

/** Hears that the transport is done with a frame given to `sendFramed`: see there for `reusable`. */
export type FrameReleased = (reusable: boolean) => void;

/** A peer connection silent this long is closed, unless the node sets its own (it scales it with its tick). */
export const PEER_IDLE_TIMEOUT_MS_DEFAULT = 5000;

export interface PeerAddress {
  id: number;
  /** `host:port`, or '' for a node that cannot listen (a browser node). */
  address: string;
}

export interface TransportLogEvent {
  level: 'info' | 'warn';
  message: string;
  peerId?: number;
  remoteAddress?: string;
}

export interface PeerTransportOptions {
  selfId: number;
  /** This node's listening `host:port`; '' when it cannot listen (it then never relays). */
  selfAddress: string;
  clusterKey: string;
  dialWebSocket: DialWebSocket;
  clock: Clock;
  /** Bound on one envelope on the wire (18 header bytes + payload); larger sends are dropped. */
  maxMessageBytes: number;
  /** Per peer, messages waiting while a connection is being set up. Default 1024. */
  queueMessagesMax?: number;
  /** Per peer, bytes waiting while a connection is being set up. Default 4 × maxMessageBytes, capped at 64 MiB. */
  queueBytesMax?: number;
  /** First reconnect delay after a failure; doubles up to `backoffMaxMs`. Default 100. */
  backoffInitialMs?: number;
  /** Default 3000. */
  backoffMaxMs?: number;
  /** A connection must complete its hello exchange within this time. Default 5000. */
  handshakeTimeoutMs?: number;
  /**
   * Keep connections to every peer with an address open, without waiting for a first send.
   * Default: true when `selfAddress` is '' (a node that cannot listen receives only on the
   * connections it opened).
   */
  dialEagerly?: boolean;
  /**
   * Bound on bytes handed to a connection but not yet on the network (where the channel can
   * tell); beyond it messages are dropped rather than piling up for a stalled peer.
   * Default max(2 × maxMessageBytes, 16 MiB).
   */
  sendBufferBytesMax?: number;
  /** An open connection with nothing to send gets a ping this often. Default 1000. */
  keepaliveIntervalMs?: number;
  /**
   * An open connection on which nothing arrived for this long is closed (and redialed if
   * wanted): a silently dead peer or a black-holed link must not hold our traffic. Default
   * PEER_IDLE_TIMEOUT_MS_DEFAULT.
   */
  idleTimeoutMs?: number;
  /** `wss://` instead of `ws://`. */
  secure?: boolean;
  onLog?(event: TransportLogEvent): void;
}

export interface TransportStats {
  messagesSent: number;
  messagesReceived: number;
  messagesRelayed: number;
  /** No open connection and none could be made (or the peer is in reconnect backoff). */
  droppedUnreachable: number;
  /** The connect queue or the connection's send buffer was full. */
  droppedQueueFull: number;
  droppedOversized: number;
  /** A relayed envelope that would need a second relay. */
  droppedHopLimit: number;
  /** Sent after `close()`, or received with no `onMessage` handler. */
  droppedClosed: number;
  /** Inbound connections refused for a missing or wrong cluster key. */
  refusedBadKey: number;
  /** Handshakes that timed out, or whose peer was not the node we dialed. */
  refusedHandshake: number;
  /** Connections closed because the peer sent bytes that are not a valid envelope. */
  closedMalformed: number;
  /** Open connections closed because nothing arrived within `idleTimeoutMs`. */
  closedIdle: number;
  dialsStarted: number;
  dialsFailed: number;
  /** Envelope bytes handed to connections (pings and hellos included). */
  bytesSent: number;
  /** Envelope bytes received on every connection, valid or not. */
  bytesReceived: number;
}

const MIB = 1024 * 1024;

type ConnectionState = 'handshaking' | 'open' | 'closed';

interface Connection {
  readonly channel: MessageChannel;
  readonly direction: 'inbound' | 'outbound';
  state: ConnectionState;
  /** Known from the start for outbound connections, from the hello for inbound ones. */
  peerId: number | undefined;
  peerAddress: string;
  handshakeTimer: TimerHandle | undefined;
  lastReceivedMs: number;
  lastSentMs: number;
}

/** A frame waiting for a connection, and who wants to hear when the transport is done with it. */
interface QueuedFrame {
  frame: Uint8Array;
  released: FrameReleased | undefined;
}

interface PeerLink {
  readonly id: number;
  address: string;
  queue: QueuedFrame[];
  queueBytes: number;
  dialing: boolean;
  /** Set once something was sent to this peer (or eagerly): only wanted peers get redialed. */
  wanted: boolean;
  backoffMs: number;
  nextDialAtMs: number;
  retryTimer: TimerHandle | undefined;
}

export class PeerTransportError extends Error {
  constructor(
    readonly code: 'INVALID_OPTIONS',
    message: string,
  ) {
    super(message);
    this.name = 'PeerTransportError';
  }
}

/**
 * Best-effort peer messaging for Raft over WebSockets. `send` never blocks and never throws for
 * network reasons: an unreachable peer costs a dropped message (counted), and Raft resends.
 * Messages on one connection arrive in order; a reconnect may lose some in between.
 */
export class PeerTransport {
  private readonly options: Required<Omit<PeerTransportOptions, 'onLog'>> & Pick<PeerTransportOptions, 'onLog'>;
  private readonly links = new Map<number, PeerLink>();
  private readonly connections = new Set<Connection>();
  /** Open connections per peer, oldest first; the oldest carries our traffic. */
  private readonly openByPeer = new Map<number, Connection[]>();
  private readonly handlers: ((from: number, payload: Uint8Array) => void)[] = [];
  private readonly counters: TransportStats = {
    messagesSent: 0,
    messagesReceived: 0,
    messagesRelayed: 0,
    droppedUnreachable: 0,
    droppedQueueFull: 0,
    droppedOversized: 0,
    droppedHopLimit: 0,
    droppedClosed: 0,
    refusedBadKey: 0,
    refusedHandshake: 0,
    closedMalformed: 0,
    closedIdle: 0,
    dialsStarted: 0,
    dialsFailed: 0,
    bytesSent: 0,
    bytesReceived: 0,
  };
  private closed = false;
  private readonly helloBytes: Uint8Array;
  private readonly pingBytes = encodePing();
  private keepaliveTimer: TimerHandle | undefined;
  private lastKeepaliveMs = 0;

  constructor(options: PeerTransportOptions) {
    if (!isNodeId(options.selfId)) {
      throw new PeerTransportError('INVALID_OPTIONS', `selfId must be a positive safe integer, got ${options.selfId}`);
    }
    if (!Number.isSafeInteger(options.maxMessageBytes) || options.maxMessageBytes <= DATA_HEADER_BYTES) {
      throw new PeerTransportError(
        'INVALID_OPTIONS',
        `maxMessageBytes must be an integer above ${DATA_HEADER_BYTES}, got ${options.maxMessageBytes}`,
      );
    }
    if (options.clusterKey.length === 0) {
      throw new PeerTransportError('INVALID_OPTIONS', 'clusterKey must not be empty: peers authenticate with it');
    }
    const maxMessageBytes = options.maxMessageBytes;
    // `??` rather than a spread: an option passed as undefined means "the default".
    this.options = {
      selfId: options.selfId,
      selfAddress: options.selfAddress,
      clusterKey: options.clusterKey,
      dialWebSocket: options.dialWebSocket,
      clock: options.clock,
      maxMessageBytes,
      queueMessagesMax: options.queueMessagesMax ?? 1024,
      queueBytesMax: options.queueBytesMax ?? Math.max(maxMessageBytes, Math.min(4 * maxMessageBytes, 64 * MIB)),
      backoffInitialMs: options.backoffInitialMs ?? 100,
      backoffMaxMs: options.backoffMaxMs ?? 3000,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? 5000,
      sendBufferBytesMax: options.sendBufferBytesMax ?? Math.max(2 * maxMessageBytes, 16 * MIB),
      keepaliveIntervalMs: options.keepaliveIntervalMs ?? 1000,
      idleTimeoutMs: options.idleTimeoutMs ?? PEER_IDLE_TIMEOUT_MS_DEFAULT,
      dialEagerly: options.dialEagerly ?? options.selfAddress === '',
      secure: options.secure ?? false,
      onLog: options.onLog,
    };
    // Also validates the key and address lengths up front.
    this.helloBytes = encodeHello({ nodeId: options.selfId, address: options.selfAddress, clusterKey: options.clusterKey });
  }

  get selfId(): number {
    return this.options.selfId;
  }

  /** The cluster's nodes (this node may be among them; it is skipped). Replaces the previous list. */
  setPeers(peers: readonly PeerAddress[]): void {
    const next = new Map<number, string>();
    for (const peer of peers) {
      if (peer.id !== this.options.selfId && isNodeId(peer.id)) next.set(peer.id, peer.address);
    }
    for (const [id, link] of this.links) {
      if (!next.has(id)) {
        link.retryTimer?.cancel();
        this.dropQueue(link);
        this.links.delete(id);
      }
    }
    for (const [id, address] of next) {
      let link = this.links.get(id);
      if (!link) {
        link = {
          id,
          address,
          queue: [],
          queueBytes: 0,
          dialing: false,
          wanted: false,
          backoffMs: this.options.backoffInitialMs,
          nextDialAtMs: 0,
          retryTimer: undefined,
        };
        this.links.set(id, link);
      } else if (link.address !== address) {
        link.address = address;
        link.backoffMs = this.options.backoffInitialMs;
        link.nextDialAtMs = 0;
      }
      if (this.options.dialEagerly && address !== '' && !this.closed) {
        link.wanted = true;
        if (!this.openConnectionTo(id) && !link.dialing && !link.retryTimer) this.dial(link);
      }
    }
  }

  /** Best effort; never blocks. See `stats()` for what was dropped and why. */
  send(to: number, payload: Uint8Array): void {
    if (!this.sendable(to, DATA_HEADER_BYTES + payload.byteLength)) return;
    this.route(to, encodeData({ hops: 0, from: this.options.selfId, to, payload }), undefined);
  }

  /**
   * As `send`, for a payload its producer encoded after PEER_FRAME_HEADROOM_BYTES bytes it left
   * free: the transport writes its header there and sends `frame` as it is, saving a copy of the
   * payload (a Raft append's entries) per peer. `frame` is the transport's from then on; with
   * `released`, until it calls that, once: `released(true)` when the frame was written to the
   * network or dropped (the caller may reuse its buffer), `released(false)` as soon as it was
   * handed to a channel that cannot tell when it wrote it (the buffer is that channel's for good).
   */
  sendFramed(to: number, frame: Uint8Array, released?: FrameReleased): void {
    if (frame.byteLength < DATA_HEADER_BYTES) throw new RangeError(`a framed payload needs ${DATA_HEADER_BYTES} bytes of headroom, got ${frame.byteLength} bytes in all`);
    if (!this.sendable(to, frame.byteLength)) {
      released?.(true);
      return;
    }
    writeDataHeader(frame, 0, this.options.selfId, to);
    this.route(to, frame, released);
  }

  /** Whether a frame of `frameBytes` to `to` may go; counts (and logs) the drop when not. */
  private sendable(to: number, frameBytes: number): boolean {
    if (this.closed) {
      this.counters.droppedClosed++;
      return false;
    }
    if (!isNodeId(to) || to === this.options.selfId) {
      this.counters.droppedUnreachable++;
      return false;
    }
    if (frameBytes > this.options.maxMessageBytes) {
      this.counters.droppedOversized++;
      this.log('warn', `dropped a ${frameBytes - DATA_HEADER_BYTES}-byte message: above maxMessageBytes ${this.options.maxMessageBytes}`, to);
      return false;
    }
    return true;
  }

  private route(to: number, frame: Uint8Array, released: FrameReleased | undefined): void {
    const connection = this.openConnectionTo(to);
    if (connection) {
      this.transmit(connection, frame, released);
      return;
    }
    const link = this.links.get(to);
    if (link && link.address !== '') {
      link.wanted = true;
      if (link.dialing) {
        this.enqueue(link, frame, released);
      } else if (this.options.clock.nowMs() >= link.nextDialAtMs) {
        this.enqueue(link, frame, released);
        this.dial(link);
      } else {
        this.counters.droppedUnreachable++;
        released?.(true);
        this.scheduleRetry(link);
      }
      return;
    }
    // A node without an address (a browser) is reached through a listening node it dialed.
    const relay = this.relayConnection();
    if (relay) this.transmit(relay, frame, released);
    else {
      this.counters.droppedUnreachable++;
      released?.(true);
    }
  }

  /**
   * `payload` is the handler's to keep: channels deliver each message in a buffer of its own
   * that they never reuse, and the transport hands on a view of it.
   */
  onMessage(handler: (from: number, payload: Uint8Array) => void): void {
    this.handlers.push(handler);
  }

  /**
   * For a listener's pre-upgrade check: a refusal reason when the upgrade headers carry a wrong
   * key, undefined otherwise (a missing header is fine: browsers send the key in the hello).
   */
  refusalForUpgrade(headers: Record<string, string | string[] | undefined>): string | undefined {
    const key = headerValue(headers, CLUSTER_KEY_HEADER);
    if (key !== undefined && !constantTimeEqual(key, this.options.clusterKey)) {
      this.counters.refusedBadKey++;
      this.log('warn', 'refused a peer upgrade: wrong cluster key');
      return 'wrong cluster key';
    }
    return undefined;
  }

  /** An inbound peer WebSocket handed over by the listener. */
  acceptConnection(channel: MessageChannel, upgradeHeaders: Record<string, string | string[] | undefined> = {}): void {
    if (this.closed) {
      channel.close('node is shutting down');
      return;
    }
    const refusal = this.refusalForUpgrade(upgradeHeaders);
    if (refusal) {
      channel.close(refusal);
      return;
    }
    this.attach({
      channel,
      direction: 'inbound',
      state: 'handshaking',
      peerId: undefined,
      peerAddress: '',
      handshakeTimer: undefined,
      lastReceivedMs: 0,
      lastSentMs: 0,
    });
  }

  /**
   * Resolves once node `id` proved it holds the cluster key: it has an open connection to this
   * node (its hello carried the key), or it answers a probe at `address` with its own hello.
   * Rejects with the reason otherwise. A leader asks this before adding a member.
   */
  async proveMember(id: number, address: string): Promise<void> {
    if (!isNodeId(id)) throw new Error(`node id ${id} is not a positive safe integer`);
    if (this.openByPeer.has(id)) return;
    if (address === '') {
      // A node that cannot listen dials us as it starts joining: give its hello time to arrive.
      if (await this.connectedWithin(id, this.options.handshakeTimeoutMs)) return;
      throw new Error(
        `node ${id} has no address and no open peer connection to this node: a node that cannot listen must connect to the leader (with the cluster key) before it is added`,
      );
    }
    await probePeer(
      {
        selfId: this.options.selfId,
        selfAddress: this.options.selfAddress,
        clusterKey: this.options.clusterKey,
        dialWebSocket: this.options.dialWebSocket,
        clock: this.options.clock,
        secure: this.options.secure,
        timeoutMs: this.options.handshakeTimeoutMs,
      },
      id,
      address,
    );
  }

  private async connectedWithin(id: number, timeoutMs: number): Promise<boolean> {
    const deadlineMs = this.options.clock.nowMs() + timeoutMs;
    while (!this.openByPeer.has(id)) {
      if (this.closed || this.options.clock.nowMs() >= deadlineMs) return false;
      await new Promise<void>((resolve) => this.options.clock.setTimeout(resolve, 50));
    }
    return true;
  }

  /** Peers with an open direct connection, ascending. */
  reachablePeers(): number[] {
    return [...this.openByPeer.keys()].sort((a, b) => a - b);
  }

  stats(): TransportStats {
    return { ...this.counters };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.keepaliveTimer?.cancel();
    this.keepaliveTimer = undefined;
    for (const link of this.links.values()) {
      link.retryTimer?.cancel();
      link.retryTimer = undefined;
      this.dropQueue(link);
    }
    for (const connection of [...this.connections]) connection.channel.close('node is shutting down');
  }

  private openConnectionTo(peerId: number): Connection | undefined {
    return this.openByPeer.get(peerId)?.[0];
  }

  /** Any open connection to a listening node; relays forward at most one hop. */
  private relayConnection(): Connection | undefined {
    for (const list of this.openByPeer.values()) {
      const connection = list.find((candidate) => candidate.peerAddress !== '');
      if (connection) return connection;
    }
    return undefined;
  }

  private transmit(connection: Connection, frame: Uint8Array, released: FrameReleased | undefined): void {
    if (this.sendFrame(connection, frame, released)) this.counters.messagesSent++;
  }

  /** Counts the drop itself when it returns false; `released` hears of the frame either way. */
  private sendFrame(connection: Connection, frame: Uint8Array, released?: FrameReleased): boolean {
    if ((connection.channel.bufferedBytes ?? 0) + frame.byteLength > this.options.sendBufferBytesMax) {
      this.counters.droppedQueueFull++;
      released?.(true);
      return false;
    }
    const release = released && onceOnly(released);
    const tells = release !== undefined && connection.channel.reportsWrites === true;
    if (!(tells ? connection.channel.send(frame, () => release(true)) : connection.channel.send(frame))) {
      this.counters.droppedUnreachable++;
      release?.(true);
      return false;
    }
    // The channel keeps the bytes as they are, for as long as it likes.
    if (!tells) release?.(false);
    this.counters.bytesSent += frame.byteLength;
    connection.lastSentMs = this.options.clock.nowMs();
    return true;
  }

  private ensureKeepalive(): void {
    if (this.keepaliveTimer || this.closed) return;
    this.lastKeepaliveMs = this.options.clock.nowMs();
    this.keepaliveTimer = this.options.clock.setInterval(() => this.keepalive(), this.options.keepaliveIntervalMs);
  }

  private keepalive(): void {
    const nowMs = this.options.clock.nowMs();
    // After our own event loop stalled (a long checkpoint, a GC pause), timers run before the
    // pending socket reads: give peers one interval of grace instead of blaming them.
    const stalled = nowMs - this.lastKeepaliveMs > 2 * this.options.keepaliveIntervalMs;
    this.lastKeepaliveMs = nowMs;
    for (const connection of [...this.connections]) {
      if (connection.state !== 'open') continue;
      if (stalled) connection.lastReceivedMs = Math.max(connection.lastReceivedMs, nowMs - this.options.keepaliveIntervalMs);
      if (nowMs - connection.lastReceivedMs > this.options.idleTimeoutMs) {
        this.counters.closedIdle++;
        this.closeConnection(connection, `nothing received for ${this.options.idleTimeoutMs} ms`);
        continue;
      }
      if (nowMs - connection.lastSentMs >= this.options.keepaliveIntervalMs) {
        // Pings bypass the send-buffer bound: a full buffer means the peer is already stalled.
        if (connection.channel.send(this.pingBytes)) {
          connection.lastSentMs = nowMs;
          this.counters.bytesSent += this.pingBytes.byteLength;
        }
      }
    }
  }

  private enqueue(link: PeerLink, frame: Uint8Array, released: FrameReleased | undefined): void {
    if (link.queue.length >= this.options.queueMessagesMax || link.queueBytes + frame.byteLength > this.options.queueBytesMax) {
      this.counters.droppedQueueFull++;
      released?.(true);
      return;
    }
    link.queue.push({ frame, released });
    link.queueBytes += frame.byteLength;
  }

  private dropQueue(link: PeerLink): void {
    this.counters.droppedUnreachable += link.queue.length;
    const dropped = link.queue;
    link.queue = [];
    link.queueBytes = 0;
    for (const queued of dropped) queued.released?.(true);
  }

  private dial(link: PeerLink): void {
    link.retryTimer?.cancel();
    link.retryTimer = undefined;
    link.dialing = true;
    this.counters.dialsStarted++;
    // The sender's id in the URL is informational (authentication is the key and the hello):
    // it lets a fault-injecting proxy on the path tell which link a connection belongs to.
    const url = `${this.options.secure ? 'wss' : 'ws'}://${link.address}${PEER_WEBSOCKET_PATH}?from=${this.options.selfId}&to=${link.id}`;
    const dialedAddress = link.address;
    this.options
      .dialWebSocket(url, {
        headers: { [CLUSTER_KEY_HEADER]: this.options.clusterKey },
        timeoutMs: this.options.handshakeTimeoutMs,
      })
      .then(
        (channel) => {
          if (this.closed || this.links.get(link.id) !== link || link.address !== dialedAddress) {
            channel.close('dial no longer needed');
            link.dialing = false;
            return;
          }
          const connection: Connection = {
            channel,
            direction: 'outbound',
            state: 'handshaking',
            peerId: link.id,
            peerAddress: link.address,
            handshakeTimer: undefined,
            lastReceivedMs: 0,
            lastSentMs: 0,
          };
          this.attach(connection);
          if (connection.state === 'handshaking' && channel.send(this.helloBytes)) this.counters.bytesSent += this.helloBytes.byteLength;
        },
        (error: unknown) => {
          link.dialing = false;
          this.dialFailed(link, error instanceof Error ? error.message : String(error));
        },
      );
  }

  private dialFailed(link: PeerLink, reason: string): void {
    this.counters.dialsFailed++;
    this.log('info', `cannot reach node ${link.id} at ${link.address}: ${reason}`, link.id);
    this.dropQueue(link);
    link.nextDialAtMs = this.options.clock.nowMs() + link.backoffMs;
    link.backoffMs = Math.min(link.backoffMs * 2, this.options.backoffMaxMs);
    if (link.wanted && !this.closed) this.scheduleRetry(link);
  }

  private scheduleRetry(link: PeerLink): void {
    if (link.retryTimer || link.dialing || this.closed) return;
    const delayMs = Math.max(0, link.nextDialAtMs - this.options.clock.nowMs());
    link.retryTimer = this.options.clock.setTimeout(() => {
      link.retryTimer = undefined;
      if (this.closed || this.links.get(link.id) !== link || link.dialing) return;
      if (this.openConnectionTo(link.id)) return;
      this.dial(link);
    }, delayMs);
  }

  private attach(connection: Connection): void {
    this.connections.add(connection);
    this.ensureKeepalive();
    connection.handshakeTimer = this.options.clock.setTimeout(() => {
      connection.handshakeTimer = undefined;
      if (connection.state !== 'handshaking') return;
      this.counters.refusedHandshake++;
      this.closeConnection(connection, `no hello within ${this.options.handshakeTimeoutMs} ms`);
    }, this.options.handshakeTimeoutMs);
    connection.channel.onMessage((message) => this.receive(connection, message));
    connection.channel.onClose((error) => this.detach(connection, error));
  }

  private receive(connection: Connection, message: Uint8Array): void {
    if (connection.state === 'closed') return;
    this.counters.bytesReceived += message.byteLength;
    const decoded = decodeFrame(message, this.options.maxMessageBytes);
    if (!decoded.ok) {
      this.counters.closedMalformed++;
      this.closeConnection(connection, `malformed peer message: ${decoded.reason}`);
      return;
    }
    const frame = decoded.frame;
    connection.lastReceivedMs = this.options.clock.nowMs();
    if (connection.state === 'handshaking') {
      if (frame.kind !== 'hello') {
        this.counters.closedMalformed++;
        this.closeConnection(connection, 'expected a hello message first');
        return;
      }
      this.completeHandshake(connection, frame);
      return;
    }
    if (frame.kind === 'hello') {
      this.counters.closedMalformed++;
      this.closeConnection(connection, 'unexpected second hello');
      return;
    }
    if (frame.kind === 'ping') return;
    if (frame.hops === 0 && frame.from !== connection.peerId) {
      this.counters.closedMalformed++;
      this.closeConnection(connection, `envelope claims sender ${frame.from} on the connection of node ${connection.peerId}`);
      return;
    }
    if (frame.to === this.options.selfId) {
      this.deliver(connection, frame.from, frame.payload, frame.hops);
      return;
    }
    this.relay(connection, message, frame.to, frame.hops);
  }

  private completeHandshake(connection: Connection, hello: HelloFrame): void {
    if (!constantTimeEqual(hello.clusterKey, this.options.clusterKey)) {
      this.counters.refusedBadKey++;
      this.log('warn', `refused a peer claiming to be node ${hello.nodeId}: wrong cluster key`, hello.nodeId, connection.channel.remoteAddress);
      this.closeConnection(connection, 'wrong cluster key');
      return;
    }
    if (hello.nodeId === this.options.selfId) {
      this.counters.refusedHandshake++;
      this.closeConnection(connection, `peer claims this node's id ${hello.nodeId}`);
      return;
    }
    if (connection.direction === 'outbound' && hello.nodeId !== connection.peerId) {
      this.counters.refusedHandshake++;
      this.closeConnection(connection, `dialed node ${connection.peerId} at ${connection.peerAddress} but node ${hello.nodeId} answered`);
      return;
    }
    if (connection.direction === 'inbound') {
      connection.peerId = hello.nodeId;
      connection.peerAddress = hello.address;
      if (!connection.channel.send(this.helloBytes)) return;
      this.counters.bytesSent += this.helloBytes.byteLength;
    }
    connection.lastSentMs = this.options.clock.nowMs();
    connection.handshakeTimer?.cancel();
    connection.handshakeTimer = undefined;
    connection.state = 'open';
    const peerId = hello.nodeId;
    const list = this.openByPeer.get(peerId) ?? [];
    list.push(connection);
    this.openByPeer.set(peerId, list);
    this.log('info', `connected to node ${peerId} (${connection.direction})`, peerId, connection.channel.remoteAddress);

    const link = this.links.get(peerId);
    if (link && connection.direction === 'outbound') {
      link.dialing = false;
      link.backoffMs = this.options.backoffInitialMs;
      link.nextDialAtMs = 0;
    }
    if (link && link.queue.length > 0) {
      const queued = link.queue;
      link.queue = [];
      link.queueBytes = 0;
      for (const { frame, released } of queued) this.transmit(connection, frame, released);
    }
  }

  /**
   * A handler throws for a payload it cannot use (not a Raft message, or one that lies about its
   * sender): nothing later on that connection can be trusted either, so it is closed. A relayed
   * payload was written by someone else than the relay, so the relay's connection stays.
   */
  private deliver(connection: Connection, from: number, payload: Uint8Array, hops: number): void {
    if (this.handlers.length === 0) {
      this.counters.droppedClosed++;
      return;
    }
    this.counters.messagesReceived++;
    for (const handler of this.handlers) {
      try {
        handler(from, payload);
      } catch (error) {
        const reason = `unusable message from node ${from}: ${(error as Error).message}`;
        if (hops > 0) {
          this.log('warn', `dropped a relayed ${reason}`, from, connection.channel.remoteAddress);
          return;
        }
        this.counters.closedMalformed++;
        this.closeConnection(connection, reason);
        return;
      }
    }
  }

  private relay(source: Connection, message: Uint8Array, to: number, hops: number): void {
    if (hops >= HOPS_MAX) {
      this.counters.droppedHopLimit++;
      return;
    }
    if (this.options.selfAddress === '') {
      // Only listening nodes relay; a browser node receiving someone else's mail drops it.
      this.counters.droppedUnreachable++;
      return;
    }
    const target = this.openConnectionTo(to);
    if (!target || target === source) {
      this.counters.droppedUnreachable++;
      return;
    }
    if (this.sendFrame(target, withNextHop(message))) this.counters.messagesRelayed++;
  }

  private closeConnection(connection: Connection, reason: string): void {
    this.log('warn', `closing connection: ${reason}`, connection.peerId, connection.channel.remoteAddress);
    connection.channel.close(reason);
    // Some channels report the close only later; stop using this one now.
    this.detach(connection, undefined);
  }

  private detach(connection: Connection, error: Error | undefined): void {
    if (connection.state === 'closed') return;
    const wasHandshaking = connection.state === 'handshaking';
    connection.state = 'closed';
    connection.handshakeTimer?.cancel();
    connection.handshakeTimer = undefined;
    this.connections.delete(connection);
    if (this.connections.size === 0) {
      this.keepaliveTimer?.cancel();
      this.keepaliveTimer = undefined;
    }
    const peerId = connection.peerId;
    // A failure the channel reports (a message over the WebSocket bound, a reset) is worth a line
    // whoever the peer is; a failed dial is reported by dialFailed instead.
    const failedDial = connection.direction === 'outbound' && wasHandshaking;
    if (error && !failedDial && !this.closed) {
      const who = peerId === undefined ? `from ${connection.channel.remoteAddress}` : `to node ${peerId}`;
      this.log('warn', `connection ${who} failed: ${error.message}`, peerId, connection.channel.remoteAddress);
    }
    if (peerId === undefined) return;
    const list = this.openByPeer.get(peerId);
    if (list) {
      const remaining = list.filter((candidate) => candidate !== connection);
      if (remaining.length > 0) this.openByPeer.set(peerId, remaining);
      else this.openByPeer.delete(peerId);
    }
    if (this.closed) return;
    const link = this.links.get(peerId);
    if (!link || link.address === '') return;
    if (connection.direction === 'outbound' && wasHandshaking) {
      link.dialing = false;
      this.dialFailed(link, error?.message ?? 'the connection closed during the hello exchange');
      return;
    }
    if (!wasHandshaking) {
      if (!error) this.log('info', `connection to node ${peerId} closed`, peerId);
      if (link.wanted && !this.openConnectionTo(peerId) && !link.dialing) {
        link.nextDialAtMs = this.options.clock.nowMs() + link.backoffMs;
        link.backoffMs = Math.min(link.backoffMs * 2, this.options.backoffMaxMs);
        this.scheduleRetry(link);
      }
    }
  }

  private log(level: TransportLogEvent['level'], message: string, peerId?: number, remoteAddress?: string): void {
    const event: TransportLogEvent = { level, message };
    if (peerId !== undefined) event.peerId = peerId;
    if (remoteAddress !== undefined) event.remoteAddress = remoteAddress;
    this.options.onLog?.(event);
  }
}

/** `callback`, run at most once however often the channel calls it. */
function onceOnly(callback: FrameReleased): FrameReleased {
  let called = false;
  return (reusable) => {
    if (called) return;
    called = true;
    callback(reusable);
  };
}

function headerValue(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name] ?? headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

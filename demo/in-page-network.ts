/**
 * A network inside one browser tab: nodes in Web Workers "listen" on fake addresses (`node-1`)
 * and dial each other with the same `DialWebSocket` interface a real WebSocket host offers, so
 * the unchanged PeerTransport and dqlite client run over it. Every message travels
 * endpoint → broker (the page) → endpoint over MessagePorts; because the broker sees all
 * traffic, it can cut links (partitions) and delay them (slow links) like a real network would.
 */
import { dialOverWebSocket } from '../src/client/message-stream.ts';
import type { DialStream, DialWebSocket, MessageChannel } from '../src/runtime.ts';

/** The part of a MessagePort (or a Worker) this network uses. */
export interface PortLike {
  postMessage(message: unknown, transfer: Transferable[]): void;
  onmessage: ((event: MessageEvent) => void) | null;
}

/** What travels on a port between an endpoint and the broker. */
export type NetworkMessage =
  | { kind: 'dial'; conn: number; url: string; headers: Record<string, string> }
  | { kind: 'opened'; conn: number }
  | { kind: 'refused'; conn: number; reason: string }
  | { kind: 'accept'; conn: number; url: string; path: string; headers: Record<string, string>; from: string }
  | { kind: 'data'; conn: number; bytes: Uint8Array }
  | { kind: 'close'; conn: number; reason: string };

export class InPageNetworkError extends Error {
  constructor(
    readonly code: 'REFUSED' | 'UNREACHABLE' | 'TIMEOUT' | 'CLOSED' | 'TOO_LARGE' | 'TOO_MANY' | 'BAD_URL' | 'DUPLICATE_ADDRESS',
    message: string,
  ) {
    super(message);
    this.name = 'InPageNetworkError';
  }
}

/** Bound on one message; matches the peer transport's default envelope bound. */
export const MESSAGE_BYTES_MAX = 64 * 1024 * 1024;
/** Bound on open connections per endpoint. */
export const CONNECTIONS_PER_ENDPOINT_MAX = 256;
/** Bound on messages held back by a slow link, per connection direction. */
export const DELAYED_MESSAGES_MAX = 4096;
const DIAL_TIMEOUT_DEFAULT_MS = 5000;
/** Bound on messages held for a channel whose owner has not set `onMessage` yet. */
const EARLY_MESSAGES_MAX = 1024;

function parseUrl(url: string): { address: string; path: string } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InPageNetworkError('BAD_URL', `"${url}" is not a URL: dial ws://<address>/<path>`);
  }
  return { address: parsed.host, path: parsed.pathname };
}

function copyForTransfer(bytes: Uint8Array): Uint8Array {
  // Structured clone of a view copies its whole buffer; a tight copy can be transferred instead.
  return bytes.slice();
}

// ------------------------------------------------------------------------------------ broker

interface BrokerEndpoint {
  readonly address: string;
  readonly port: PortLike;
  /** The endpoint's own connection ids → the connection. */
  readonly connections: Map<number, BrokerConnection>;
  /** Ids this side picks for connections it accepts; negative so they never collide with dials. */
  nextAcceptId: number;
}

interface BrokerSide {
  endpoint: BrokerEndpoint;
  conn: number;
  /** Messages towards this side held back by a slow link, oldest first (one timer keeps their order). */
  delayed: { atMs: number; deliver: () => void }[];
  timer: ReturnType<typeof setTimeout> | undefined;
}

interface BrokerConnection {
  dialer: BrokerSide;
  acceptor: BrokerSide;
}

export interface LinkState {
  a: string;
  b: string;
  blocked: boolean;
  delayMs: number;
}

export interface BrokerStats {
  messagesDelivered: number;
  messagesDropped: number;
  bytesDelivered: number;
  dialsRefused: number;
}

/**
 * The page side: endpoints attach with their address; `isolate`, `heal` and `setDelay` change
 * links between two attached addresses. Links involving an address in `alwaysReachable` (the
 * page's own console) are never cut or slowed: the demo's operator sees every node.
 */
export class InPageBroker {
  private readonly endpoints = new Map<string, BrokerEndpoint>();
  private readonly isolated = new Set<string>();
  private readonly delays = new Map<string, number>();
  private readonly alwaysReachable: Set<string>;
  private readonly nowMs: () => number;
  readonly stats: BrokerStats = { messagesDelivered: 0, messagesDropped: 0, bytesDelivered: 0, dialsRefused: 0 };

  constructor(options: { alwaysReachable?: string[]; nowMs?: () => number } = {}) {
    this.alwaysReachable = new Set(options.alwaysReachable ?? []);
    this.nowMs = options.nowMs ?? (() => performance.now());
  }

  /** Connects an endpoint's port; it is then reachable (and may dial) as `address`. */
  attach(address: string, port: PortLike): void {
    if (this.endpoints.has(address)) {
      throw new InPageNetworkError('DUPLICATE_ADDRESS', `an endpoint already uses the address ${address}: detach it first`);
    }
    const endpoint: BrokerEndpoint = { address, port, connections: new Map(), nextAcceptId: -1 };
    this.endpoints.set(address, endpoint);
    port.onmessage = (event) => this.receive(endpoint, event.data as NetworkMessage);
  }

  /** The endpoint is gone (its worker was terminated): its peers see their connections close. */
  detach(address: string, reason = `${address} went away`): void {
    const endpoint = this.endpoints.get(address);
    if (!endpoint) return;
    endpoint.port.onmessage = null;
    this.endpoints.delete(address);
    for (const connection of new Set(endpoint.connections.values())) {
      const other = connection.dialer.endpoint === endpoint ? connection.acceptor : connection.dialer;
      other.endpoint.connections.delete(other.conn);
      other.endpoint.port.postMessage({ kind: 'close', conn: other.conn, reason } satisfies NetworkMessage, []);
    }
    endpoint.connections.clear();
  }

  /** Cuts every link between `address` and the other endpoints (messages are silently lost). */
  isolate(address: string): void {
    this.isolated.add(address);
  }

  /** Restores the links of `address`, or of every endpoint when no address is given. */
  heal(address?: string): void {
    if (address === undefined) this.isolated.clear();
    else this.isolated.delete(address);
  }

  /** Every message between `a` and `b` (both directions) arrives `delayMs` late; 0 restores. */
  setDelay(a: string, b: string, delayMs: number): void {
    if (!Number.isFinite(delayMs) || delayMs < 0 || delayMs > 60_000) {
      throw new RangeError(`a link delay must be between 0 and 60000 ms, got ${delayMs}`);
    }
    const key = linkKey(a, b);
    if (delayMs === 0) this.delays.delete(key);
    else this.delays.set(key, delayMs);
  }

  isIsolated(address: string): boolean {
    return this.isolated.has(address);
  }

  link(a: string, b: string): LinkState {
    return { a, b, blocked: this.blocked(a, b), delayMs: this.delayOf(a, b) };
  }

  /** Links with a delay or a cut, for display. */
  impairedLinks(): LinkState[] {
    const addresses = [...this.endpoints.keys()].filter((a) => !this.alwaysReachable.has(a)).sort();
    const out: LinkState[] = [];
    for (let i = 0; i < addresses.length; i++) {
      for (let j = i + 1; j < addresses.length; j++) {
        const state = this.link(addresses[i]!, addresses[j]!);
        if (state.blocked || state.delayMs > 0) out.push(state);
      }
    }
    return out;
  }

  private blocked(a: string, b: string): boolean {
    if (this.alwaysReachable.has(a) || this.alwaysReachable.has(b)) return false;
    return this.isolated.has(a) || this.isolated.has(b);
  }

  private delayOf(a: string, b: string): number {
    if (this.alwaysReachable.has(a) || this.alwaysReachable.has(b)) return 0;
    return this.delays.get(linkKey(a, b)) ?? 0;
  }

  private receive(endpoint: BrokerEndpoint, message: NetworkMessage): void {
    switch (message.kind) {
      case 'dial':
        return this.dial(endpoint, message);
      case 'data':
      case 'close': {
        const connection = endpoint.connections.get(message.conn);
        if (!connection) return; // Already closed from the other side.
        const [from, to] = connection.dialer.endpoint === endpoint && connection.dialer.conn === message.conn
          ? [connection.dialer, connection.acceptor]
          : [connection.acceptor, connection.dialer];
        if (message.kind === 'close') {
          from.endpoint.connections.delete(from.conn);
          to.endpoint.connections.delete(to.conn);
        }
        this.forward(from, to, message);
        return;
      }
      default:
        return; // Endpoints never send the other kinds.
    }
  }

  private dial(endpoint: BrokerEndpoint, message: Extract<NetworkMessage, { kind: 'dial' }>): void {
    const refuse = (reason: string): void => {
      this.stats.dialsRefused++;
      endpoint.port.postMessage({ kind: 'refused', conn: message.conn, reason } satisfies NetworkMessage, []);
    };
    let target: { address: string; path: string };
    try {
      target = parseUrl(message.url);
    } catch (error) {
      return refuse((error as Error).message);
    }
    const acceptor = this.endpoints.get(target.address);
    if (!acceptor) return refuse(`connection refused: nothing listens at ${target.address}`);
    if (this.blocked(endpoint.address, target.address)) {
      return refuse(`${target.address} is unreachable from ${endpoint.address} (network partition)`);
    }
    if (endpoint.connections.size >= CONNECTIONS_PER_ENDPOINT_MAX || acceptor.connections.size >= CONNECTIONS_PER_ENDPOINT_MAX) {
      return refuse(`too many connections (at most ${CONNECTIONS_PER_ENDPOINT_MAX} per endpoint)`);
    }
    const acceptId = acceptor.nextAcceptId--;
    const connection: BrokerConnection = {
      dialer: { endpoint, conn: message.conn, delayed: [], timer: undefined },
      acceptor: { endpoint: acceptor, conn: acceptId, delayed: [], timer: undefined },
    };
    endpoint.connections.set(message.conn, connection);
    acceptor.connections.set(acceptId, connection);
    acceptor.port.postMessage(
      { kind: 'accept', conn: acceptId, url: message.url, path: target.path, headers: message.headers, from: endpoint.address } satisfies NetworkMessage,
      [],
    );
    endpoint.port.postMessage({ kind: 'opened', conn: message.conn } satisfies NetworkMessage, []);
  }

  private forward(from: BrokerSide, to: BrokerSide, message: Extract<NetworkMessage, { kind: 'data' | 'close' }>): void {
    const a = from.endpoint.address;
    const b = to.endpoint.address;
    if (this.blocked(a, b)) {
      this.stats.messagesDropped++;
      return;
    }
    const out: NetworkMessage = { ...message, conn: to.conn };
    const deliver = (): void => {
      if (this.endpoints.get(b) !== to.endpoint) return; // The receiver went away meanwhile.
      // A link cut while the message was in flight loses it, as a real one would.
      if (this.blocked(a, b)) {
        this.stats.messagesDropped++;
        return;
      }
      this.stats.messagesDelivered++;
      if (out.kind === 'data') {
        this.stats.bytesDelivered += out.bytes.byteLength;
        to.endpoint.port.postMessage(out, [out.bytes.buffer as ArrayBuffer]);
      } else {
        to.endpoint.port.postMessage(out, []);
      }
    };
    const delayMs = this.delayOf(a, b);
    if (delayMs === 0 && to.delayed.length === 0) {
      deliver();
      return;
    }
    if (to.delayed.length >= DELAYED_MESSAGES_MAX) {
      this.stats.messagesDropped++;
      return;
    }
    const last = to.delayed[to.delayed.length - 1];
    to.delayed.push({ atMs: Math.max(this.nowMs() + delayMs, last?.atMs ?? 0), deliver });
    if (!to.timer) this.pump(to);
  }

  /** Delivers what is due towards `side`, in order, and sleeps until the next message is. */
  private pump(side: BrokerSide): void {
    side.timer = undefined;
    const now = this.nowMs();
    while (side.delayed.length > 0 && side.delayed[0]!.atMs <= now) side.delayed.shift()!.deliver();
    const next = side.delayed[0];
    if (next) side.timer = setTimeout(() => this.pump(side), Math.max(1, Math.ceil(next.atMs - now)));
  }
}

function linkKey(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}

// ---------------------------------------------------------------------------------- endpoint

export interface AcceptedConnection {
  channel: MessageChannel;
  /** The dialed URL's path, such as `/raft` or `/dqlite`. */
  path: string;
  url: string;
  headers: Record<string, string>;
}

interface EndpointChannel {
  readonly conn: number;
  readonly remoteAddress: string;
  open: boolean;
  messageHandler: ((message: Uint8Array) => void) | undefined;
  /** Messages that arrived before a handler was set. */
  early: Uint8Array[];
  closeHandlers: ((error?: Error) => void)[];
  closeError: Error | undefined;
  closed: boolean;
}

interface PendingDial {
  resolve: (channel: MessageChannel) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
  state: EndpointChannel;
}

/**
 * One participant of the network (a node's worker, or the page's console). Dials with
 * `dialWebSocket` / `dialStream`, and hands connections dialed to it to the `onAccept` handler.
 */
export class InPageEndpoint {
  readonly address: string;
  private readonly port: PortLike;
  private readonly channels = new Map<number, EndpointChannel>();
  private readonly pending = new Map<number, PendingDial>();
  private nextConn = 1;
  private acceptHandler: ((accepted: AcceptedConnection) => void) | undefined;
  private closed = false;

  constructor(port: PortLike, address: string) {
    this.port = port;
    this.address = address;
    port.onmessage = (event) => this.receive(event.data as NetworkMessage);
  }

  /** Connections dialed to this endpoint arrive here; until set, they are refused. */
  onAccept(handler: (accepted: AcceptedConnection) => void): void {
    this.acceptHandler = handler;
  }

  readonly dialWebSocket: DialWebSocket = (url, options = {}) => {
    if (this.closed) return Promise.reject(new InPageNetworkError('CLOSED', `the endpoint ${this.address} is closed`));
    let target: string;
    try {
      target = parseUrl(url).address;
    } catch (error) {
      return Promise.reject(error);
    }
    const conn = this.nextConn++;
    const state = this.newChannelState(conn, target);
    const timeoutMs = options.timeoutMs ?? DIAL_TIMEOUT_DEFAULT_MS;
    return new Promise<MessageChannel>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(conn);
        this.post({ kind: 'close', conn, reason: 'dial timed out' });
        reject(new InPageNetworkError('TIMEOUT', `dialing ${url} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(conn, { resolve, reject, timer, state });
      this.post({ kind: 'dial', conn, url, headers: { ...(options.headers ?? {}) } });
    });
  };

  /** A DialStream for the dqlite client protocol: reaches `address` on its `/dqlite` path. */
  readonly dialStream: DialStream = dialOverWebSocket(this.dialWebSocket, (address) => `ws://${address}/dqlite`);

  /** Closes every connection; the endpoint cannot be used afterwards. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const [conn, dial] of this.pending) {
      clearTimeout(dial.timer);
      dial.reject(new InPageNetworkError('CLOSED', `the endpoint ${this.address} closed while dialing`));
      this.post({ kind: 'close', conn, reason: 'endpoint closed' });
    }
    this.pending.clear();
    for (const state of [...this.channels.values()]) this.closeLocally(state, 'endpoint closed', true);
  }

  private post(message: NetworkMessage): void {
    if (message.kind === 'data') this.port.postMessage(message, [message.bytes.buffer as ArrayBuffer]);
    else this.port.postMessage(message, []);
  }

  private newChannelState(conn: number, remoteAddress: string): EndpointChannel {
    return { conn, remoteAddress, open: false, messageHandler: undefined, early: [], closeHandlers: [], closeError: undefined, closed: false };
  }

  private makeChannel(state: EndpointChannel): MessageChannel {
    return {
      remoteAddress: state.remoteAddress,
      send: (message) => {
        if (state.closed) return false;
        if (message.byteLength > MESSAGE_BYTES_MAX) {
          this.closeLocally(state, `a message of ${message.byteLength} bytes exceeds the ${MESSAGE_BYTES_MAX}-byte bound`, true);
          return false;
        }
        this.post({ kind: 'data', conn: state.conn, bytes: copyForTransfer(message) });
        return true;
      },
      onMessage: (handler) => {
        state.messageHandler = handler;
        const early = state.early;
        state.early = [];
        for (const message of early) handler(message);
      },
      onClose: (handler) => {
        if (state.closed) queueMicrotask(() => handler(state.closeError));
        else state.closeHandlers.push(handler);
      },
      close: (reason) => this.closeLocally(state, reason ?? 'closed', true),
    };
  }

  private closeLocally(state: EndpointChannel, reason: string, tellPeer: boolean, error?: Error): void {
    if (state.closed) return;
    state.closed = true;
    state.closeError = error;
    this.channels.delete(state.conn);
    if (tellPeer) this.post({ kind: 'close', conn: state.conn, reason });
    const handlers = state.closeHandlers;
    state.closeHandlers = [];
    for (const handler of handlers) handler(error);
  }

  private receive(message: NetworkMessage): void {
    switch (message.kind) {
      case 'opened': {
        const dial = this.pending.get(message.conn);
        if (!dial) return;
        this.pending.delete(message.conn);
        clearTimeout(dial.timer);
        dial.state.open = true;
        this.channels.set(message.conn, dial.state);
        dial.resolve(this.makeChannel(dial.state));
        return;
      }
      case 'refused': {
        const dial = this.pending.get(message.conn);
        if (!dial) return;
        this.pending.delete(message.conn);
        clearTimeout(dial.timer);
        const code = message.reason.includes('unreachable') ? 'UNREACHABLE' : 'REFUSED';
        dial.reject(new InPageNetworkError(code, message.reason));
        return;
      }
      case 'accept': {
        if (this.closed || !this.acceptHandler) {
          this.post({ kind: 'close', conn: message.conn, reason: `${this.address} is not accepting connections yet` });
          return;
        }
        const state = this.newChannelState(message.conn, message.from);
        state.open = true;
        this.channels.set(message.conn, state);
        this.acceptHandler({ channel: this.makeChannel(state), path: message.path, url: message.url, headers: message.headers });
        return;
      }
      case 'data': {
        const state = this.channels.get(message.conn);
        if (!state || state.closed) return;
        if (state.messageHandler) state.messageHandler(message.bytes);
        else if (state.early.length < EARLY_MESSAGES_MAX) state.early.push(message.bytes);
        else this.closeLocally(state, `more than ${EARLY_MESSAGES_MAX} messages arrived before anyone listened`, true);
        return;
      }
      case 'close': {
        const pendingDial = this.pending.get(message.conn);
        if (pendingDial) {
          this.pending.delete(message.conn);
          clearTimeout(pendingDial.timer);
          pendingDial.reject(new InPageNetworkError('REFUSED', message.reason));
          return;
        }
        const state = this.channels.get(message.conn);
        if (!state) return;
        this.closeLocally(state, message.reason, false, new InPageNetworkError('CLOSED', `${state.remoteAddress} closed the connection: ${message.reason}`));
        return;
      }
      default:
        return;
    }
  }
}

/**
 * An in-memory network of hosts, with the faults a real one has. Connections are what peers and
 * clients really use: WebSocket message channels for Raft (`dialWebSocket`, the way
 * `PeerTransport` dials) and byte streams for dqlite clients (`ByteStream`, as TCP).
 *
 * A connection delivers in order and at most once, like TCP: it never reorders or duplicates
 * within itself. Faults are what a network does to TCP connections: latency and jitter (which
 * reorder messages across connections), slow hosts, partitions (one-way too) during which a
 * connection's traffic is held, as TCP retransmits it, until the partition heals or an idle
 * timeout closes the connection, resets that break connections and lose what was in flight,
 * dials that time out across a partition and are refused by a host that is down. Byte streams
 * are also cut into arbitrary chunks, as TCP may.
 *
 * Handlers follow the Node host (`runtimes/node`): one data handler and one close handler per
 * end, a later registration replacing the earlier one.
 */
import { decodeMessage, MessageType } from '../../src/raft/index.ts';
import { decodeFrame } from '../../src/transport/index.ts';
import type { ByteStream, DialStream, DialWebSocket, MessageChannel } from '../../src/runtime.ts';
import type { Prng } from '../sim/prng.ts';
import type { Scheduler } from './scheduler.ts';


/** The simulated host whose sessions administer the cluster. */
export const ADMIN_HOST = 'admin';
export interface HostListener {
  acceptPeer(channel: MessageChannel, headers: Record<string, string | string[] | undefined>): void;
  acceptClient(stream: ByteStream): void;
}

export interface NetworkStats {
  connectionsOpened: number;
  connectionsReset: number;
  dialsRefused: number;
  dialsTimedOut: number;
  messagesDelivered: number;
  messagesLost: number;
}

/** `survivesCrash`: it left the host just before the host died (the crash was aimed after it). */
type PipeItem = { kind: 'data'; bytes: Uint8Array; survivesCrash?: boolean } | { kind: 'close'; error: Error | undefined };

interface Pipe {
  from: string;
  to: string;
  target: End;
  lastDeliveryMs: number;
  held: PipeItem[];
  /** The sending host died at this time: its data still on the way is lost with it. */
  diedAtMs: number | undefined;
}

class End {
  closed = false;
  /** The host died: nothing reaches its code any more. */
  frozen = false;
  messageHandler: ((message: Uint8Array) => void) | undefined;
  closeHandler: ((error?: Error) => void) | undefined;
  early: Uint8Array[] = [];
  closeReported = false;
  closeError: Error | undefined;
  outgoing!: Pipe;
  /** The serving end of a dqlite client connection: what it sends are answers to clients. */
  answersClients = false;

  constructor(
    readonly host: string,
    readonly remoteAddress: string,
    readonly network: SimNetwork,
  ) {}

  receive(bytes: Uint8Array): void {
    if (this.closed || this.frozen) return;
    this.network.stats.messagesDelivered++;
    if (this.messageHandler) this.messageHandler(bytes);
    else this.early.push(bytes);
  }

  /** The connection is over for this end; its close handler learns it once, in a later event. */
  finish(error: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.closeError = error;
    this.network.later(() => this.reportClose());
  }

  reportClose(): void {
    if (!this.closed || this.closeReported || !this.closeHandler || this.frozen) return;
    this.closeReported = true;
    this.closeHandler(this.closeError);
  }

  channel(): MessageChannel {
    return {
      send: (message) => this.network.send(this, { kind: 'data', bytes: message.slice() }),
      onMessage: (handler) => {
        this.messageHandler = handler;
        for (const message of this.early.splice(0)) handler(message);
      },
      onClose: (handler) => {
        this.closeHandler = handler;
        this.network.later(() => this.reportClose());
      },
      close: () => this.network.closeEnd(this),
      remoteAddress: this.remoteAddress,
    };
  }

  stream(): ByteStream {
    const channel = this.channel();
    return {
      write: (bytes) => this.network.sendChunked(this, bytes),
      onData: (handler) => channel.onMessage(handler),
      onClose: (handler) => channel.onClose(handler),
      close: () => channel.close(),
      remoteAddress: this.remoteAddress,
    };
  }
}

/** The commit index a Raft append or heartbeat carries, when `bytes` is a peer data frame of one. */
function announcedCommit(bytes: Uint8Array): number | undefined {
  const decoded = decodeFrame(bytes, Number.MAX_SAFE_INTEGER);
  if (!decoded.ok || decoded.frame.kind !== 'data') return undefined;
  try {
    const message = decodeMessage(decoded.frame.payload);
    return message.type === MessageType.Append || message.type === MessageType.Heartbeat ? message.commit : undefined;
  } catch {
    return undefined;
  }
}

export class SimNetwork {
  private readonly listeners = new Map<string, HostListener>();
  private readonly ends = new Set<End>();
  /** Pipes holding traffic behind a partition. */
  private readonly heldPipes = new Set<Pipe>();
  /** Directed host pairs "a>b" whose traffic is held. */
  private readonly blocked = new Set<string>();
  /** Blocked pairs whose dials are refused at once instead of timing out. */
  private readonly rejected = new Set<string>();
  private readonly slowHosts = new Map<string, number>();
  private readonly linkLatencyMs = new Map<string, number>();
  /** Hosts to crash as soon as they announce a new commit index, with what does the crash. */
  private readonly crashOnCommit = new Map<string, { commitSent: Map<string, number>; crash: () => void }>();
  /** Hosts whose aimed crash is due in this instant: their answers to clients still get out. */
  private readonly dying = new Set<string>();
  readonly stats: NetworkStats = { connectionsOpened: 0, connectionsReset: 0, dialsRefused: 0, dialsTimedOut: 0, messagesDelivered: 0, messagesLost: 0 };

  constructor(
    private readonly scheduler: Scheduler,
    private readonly rng: Prng,
    private readonly baseLatencyMs: number,
  ) {}

  listen(address: string, listener: HostListener): void {
    this.listeners.set(address, listener);
  }

  /**
   * The host died (power, kernel): it stops listening, its ends go silent, what it sent that is
   * still on the way is lost, and the peers see their connections reset once that can reach them.
   */
  crashHost(host: string): void {
    this.listeners.delete(host);
    this.crashOnCommit.delete(host);
    for (const end of [...this.ends]) {
      if (end.host !== host) continue;
      end.frozen = true;
      const pipe = end.outgoing;
      pipe.diedAtMs = this.scheduler.nowMs;
      this.stats.messagesLost += pipe.held.length;
      pipe.held = [];
      this.heldPipes.delete(pipe);
      this.closeEnd(end, new Error('connection reset by peer'));
    }
  }

  /** Breaks every open connection of `host` (a reset, a NAT timeout): both sides see an error. */
  resetConnections(host: string): number {
    let count = 0;
    for (const end of [...this.ends]) {
      if (end.host !== host || end.closed) continue;
      count++;
      this.stats.connectionsReset++;
      this.breakConnection(end);
    }
    return count;
  }

  /**
   * Traffic from every host in `from` to every host in `to` is held until `heal` (a firewall
   * that drops). With `reject` (one that answers with resets), the connections between them
   * break now and dials fail at once.
   */
  block(from: readonly string[], to: readonly string[], reject = false): void {
    for (const a of from) for (const b of to) if (a !== b) this.blocked.add(`${a}>${b}`);
    if (!reject) return;
    for (const a of from) for (const b of to) this.rejected.add(`${a}>${b}`);
    for (const end of [...this.ends]) {
      const other = end.outgoing.target;
      if (!end.closed && from.includes(end.host) && to.includes(other.host)) {
        this.stats.connectionsReset++;
        this.breakConnection(end);
      }
    }
  }

  heal(): void {
    this.blocked.clear();
    this.rejected.clear();
    for (const pipe of [...this.heldPipes]) this.releaseHeld(pipe);
  }

  isBlocked(from: string, to: string): boolean {
    return this.blocked.has(`${from}>${to}`);
  }

  setSlow(host: string, extraMs: number): void {
    if (extraMs <= 0) this.slowHosts.delete(host);
    else this.slowHosts.set(host, extraMs);
  }

  /**
   * Arms a crash of `host` for the moment it next announces a higher commit index to a peer:
   * its answers to the clients whose writes just committed get out, the announcement (and all
   * else it sent its peers) dies with it. Followers then hold acknowledged entries without
   * knowing they committed.
   */
  crashOnNextCommit(host: string, crash: () => void): void {
    this.crashOnCommit.set(host, { commitSent: new Map(), crash });
  }

  /** How `host` dials WebSockets: the upgrade's headers reach the listener as a real one's would. */
  dialWebSocket(host: string): DialWebSocket {
    return async (url, options) => {
      const parsed = new URL(url);
      const end = await this.connect(host, parsed.host, options?.timeoutMs ?? 5000, (listener, server) => {
        if (parsed.pathname === '/raft') {
          listener.acceptPeer(server.channel(), { ...(options?.headers ?? {}) });
        } else {
          server.answersClients = true;
          listener.acceptClient(server.stream());
        }
      });
      return end.channel();
    };
  }

  dialStream(host: string): DialStream {
    return async (address, options) => {
      const end = await this.connect(host, address, options?.timeoutMs ?? 5000, (listener, server) => {
        server.answersClients = true;
        // The admin host holds the cluster's credentials (as an operator with the key or a client
        // certificate would), so its membership changes pass the node's admin policy.
        const stream = server.stream();
        listener.acceptClient(host === ADMIN_HOST ? { ...stream, authenticated: true } : stream);
      });
      return end.stream();
    };
  }

  // ------------------------------------------------------------ used by ends

  later(run: () => void): void {
    this.scheduler.after(0, run);
  }

  send(from: End, item: PipeItem): boolean {
    if (from.closed || from.frozen) return false;
    const aimed = this.crashOnCommit.get(from.host);
    if (aimed && item.kind === 'data' && !from.answersClients) {
      const commit = announcedCommit(item.bytes);
      const peer = from.outgoing.to;
      const before = aimed.commitSent.get(peer);
      if (commit !== undefined && before === undefined) aimed.commitSent.set(peer, commit);
      if (commit !== undefined && before !== undefined && commit > before) {
        this.crashOnCommit.delete(from.host);
        this.dying.add(from.host);
        this.later(() => {
          this.dying.delete(from.host);
          aimed.crash();
        });
      }
    }
    this.push(from.outgoing, item);
    return true;
  }

  /** A byte stream write, cut into up to three chunks as TCP segments may arrive. */
  sendChunked(from: End, bytes: Uint8Array): boolean {
    if (from.closed || from.frozen) return false;
    if (this.dying.has(from.host)) {
      this.push(from.outgoing, { kind: 'data', bytes: bytes.slice(), survivesCrash: true });
      return true;
    }
    if (bytes.length < 2 || !this.rng.chance(0.2)) return this.send(from, { kind: 'data', bytes: bytes.slice() });
    const cut = 1 + this.rng.int(bytes.length - 1);
    this.push(from.outgoing, { kind: 'data', bytes: bytes.slice(0, cut) });
    this.push(from.outgoing, { kind: 'data', bytes: bytes.slice(cut) });
    return true;
  }

  /** A clean close: the other side sees it after everything sent before it. */
  closeEnd(end: End, error?: Error): void {
    if (end.closed) return;
    this.push(end.outgoing, { kind: 'close', error });
    end.finish(error);
    this.ends.delete(end);
  }

  // ------------------------------------------------------------ internals

  private async connect(
    from: string,
    address: string,
    timeoutMs: number,
    accept: (listener: HostListener, server: End) => void,
  ): Promise<End> {
    const rttMs = 2 * this.latency(from, address);
    if (this.rejected.has(`${from}>${address}`) || this.rejected.has(`${address}>${from}`)) {
      await this.scheduler.sleep(rttMs);
      this.stats.dialsRefused++;
      throw new Error(`connect EHOSTUNREACH ${address}`);
    }
    if (this.isBlocked(from, address) || this.isBlocked(address, from)) {
      await this.scheduler.sleep(timeoutMs);
      this.stats.dialsTimedOut++;
      throw new Error(`connect ETIMEDOUT ${address}`);
    }
    await this.scheduler.sleep(rttMs / 2);
    const listener = this.listeners.get(address);
    if (!listener) {
      await this.scheduler.sleep(rttMs / 2);
      this.stats.dialsRefused++;
      throw new Error(`connect ECONNREFUSED ${address}`);
    }
    const client = new End(from, address, this);
    const server = new End(address, `${from}:${40000 + this.stats.connectionsOpened}`, this);
    client.outgoing = { from, to: address, target: server, lastDeliveryMs: 0, held: [], diedAtMs: undefined };
    server.outgoing = { from: address, to: from, target: client, lastDeliveryMs: 0, held: [], diedAtMs: undefined };
    this.ends.add(client);
    this.ends.add(server);
    this.stats.connectionsOpened++;
    accept(listener, server);
    await this.scheduler.sleep(rttMs / 2);
    return client;
  }

  private breakConnection(end: End): void {
    const error = new Error('connection reset');
    const other = end.outgoing.target;
    for (const side of [end, other]) {
      this.stats.messagesLost += side.outgoing.held.length;
      side.outgoing.held = [];
      this.heldPipes.delete(side.outgoing);
      this.ends.delete(side);
    }
    end.finish(error);
    other.finish(error);
  }

  private push(pipe: Pipe, item: PipeItem): void {
    if (this.isBlocked(pipe.from, pipe.to) || pipe.held.length > 0) {
      pipe.held.push(item);
      this.heldPipes.add(pipe);
      return;
    }
    this.schedule(pipe, item);
  }

  private releaseHeld(pipe: Pipe): void {
    if (this.isBlocked(pipe.from, pipe.to)) return;
    this.heldPipes.delete(pipe);
    for (const item of pipe.held.splice(0)) this.schedule(pipe, item);
  }

  private schedule(pipe: Pipe, item: PipeItem): void {
    const atMs = Math.max(this.scheduler.nowMs + this.latency(pipe.from, pipe.to), pipe.lastDeliveryMs);
    pipe.lastDeliveryMs = atMs;
    this.scheduler.at(atMs, () => {
      const target = pipe.target;
      if (item.kind === 'data') {
        if (target.closed || (pipe.diedAtMs !== undefined && !item.survivesCrash)) this.stats.messagesLost++;
        else target.receive(item.bytes);
      } else {
        this.ends.delete(target);
        target.finish(item.error);
      }
    });
  }

  private latency(from: string, to: string): number {
    const key = from < to ? `${from}|${to}` : `${to}|${from}`;
    let base = this.linkLatencyMs.get(key);
    if (base === undefined) {
      base = this.baseLatencyMs * (0.5 + this.rng.next());
      this.linkLatencyMs.set(key, base);
    }
    const slow = (this.slowHosts.get(from) ?? 0) + (this.slowHosts.get(to) ?? 0);
    return base * (0.8 + 0.4 * this.rng.next()) + slow * this.rng.next();
  }
}

/**
 * A fault-injecting TCP proxy on loopback. Each node listens on a private port and advertises
 * the proxy's port, so every peer and client connection to it crosses the proxy. A peer
 * connection is a WebSocket upgrade to `/raft?from=<dialer>&to=<node>`: reading the request line
 * tells which pair of nodes it links; bytes flowing dialer→node carry from→to traffic and the
 * reverse flow carries to→from traffic (peers reply on connections they accepted).
 *
 * Rules are per directed link (sender id → receiver id):
 * - blocked: a fully blocked pair has its connections cut and new ones refused; a link blocked
 *   in one direction only has that direction black-holed (the receiver's idle timeout then
 *   closes the connection, as with a one-way network failure);
 * - delayMs: every chunk in that direction is held this long (order kept);
 * - lossy: connections on the link are cut now and then (`cutLossyLinks`).
 * Client connections (dqlite protocol, HTTP) pass untouched: the faults are between peers.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

/** Bound on the bytes read before the request line of a connection is known. */
const SNIFF_BYTES_MAX = 4096;

export type LinkKey = `${number}>${number}`;

export function linkKey(from: number, to: number): LinkKey {
  return `${from}>${to}`;
}

interface PeerConnection {
  from: number;
  to: number;
  dialerSide: Socket;
  nodeSide: Socket;
  /** Directions black-holed on this connection; it is cut when the network heals. */
  blackHoled: Set<LinkKey>;
  /** Per direction: chunks held back by a delay, oldest first. */
  delayed: Map<LinkKey, { chunk: Buffer; dueMs: number }[]>;
}

export interface ProxyStats {
  peerConnections: number;
  clientConnections: number;
  refused: number;
  cut: number;
}

export class FaultNetwork {
  private readonly blocked = new Set<LinkKey>();
  private readonly delays = new Map<LinkKey, number>();
  private readonly lossy = new Set<LinkKey>();
  private readonly peers = new Set<PeerConnection>();
  private readonly sockets = new Set<Socket>();
  private readonly servers: Server[] = [];
  /** Proxy port → where it forwards (host:port). */
  private readonly targets = new Map<number, string>();
  readonly stats: ProxyStats = { peerConnections: 0, clientConnections: 0, refused: 0, cut: 0 };

  /** Starts a proxy on `listenPort` (0: any) that forwards to `target` (host:port); returns its port. */
  async addProxy(listenPort: number, target: string): Promise<number> {
    let port = 0;
    const server = createServer((socket) => {
      const [host, portText] = splitAddress(this.targets.get(port)!);
      this.accept(socket, host, Number(portText));
    });
    this.servers.push(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listenPort, '127.0.0.1', () => resolve());
    });
    port = (server.address() as { port: number }).port;
    this.targets.set(port, target);
    return port;
  }

  /** Points the proxy on `proxyPort` at a new target (a node restarted on another port). */
  retarget(proxyPort: number, target: string): void {
    if (!this.targets.has(proxyPort)) throw new Error(`no proxy listens on port ${proxyPort}`);
    splitAddress(target);
    this.targets.set(proxyPort, target);
  }

  /** Blocks `from`→`to` traffic (node ids). */
  block(from: number, to: number): void {
    this.blocked.add(linkKey(from, to));
    this.enforce();
  }

  /** Blocks both directions between every node of `a` and every node of `b`. */
  partition(a: readonly number[], b: readonly number[]): void {
    for (const x of a) {
      for (const y of b) {
        this.blocked.add(linkKey(x, y));
        this.blocked.add(linkKey(y, x));
      }
    }
    this.enforce();
  }

  slow(from: number, to: number, delayMs: number): void {
    this.delays.set(linkKey(from, to), delayMs);
  }

  makeLossy(from: number, to: number): void {
    this.lossy.add(linkKey(from, to));
  }

  /** Cuts each connection on a lossy link with probability `p` (`random` in [0, 1)). */
  cutLossyLinks(p: number, random: () => number): void {
    for (const peer of [...this.peers]) {
      const lossy = this.lossy.has(linkKey(peer.from, peer.to)) || this.lossy.has(linkKey(peer.to, peer.from));
      if (lossy && random() < p) this.cut(peer);
    }
  }

  /** Removes every rule; connections that lost a direction are cut so peers redial cleanly. */
  heal(): void {
    this.blocked.clear();
    this.delays.clear();
    this.lossy.clear();
    for (const peer of [...this.peers]) if (peer.blackHoled.size > 0) this.cut(peer);
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }

  private isBlocked(from: number, to: number): boolean {
    return this.blocked.has(linkKey(from, to));
  }

  private enforce(): void {
    for (const peer of [...this.peers]) {
      const forward = this.isBlocked(peer.from, peer.to);
      const backward = this.isBlocked(peer.to, peer.from);
      if (forward && backward) this.cut(peer);
      else if (forward) peer.blackHoled.add(linkKey(peer.from, peer.to));
      else if (backward) peer.blackHoled.add(linkKey(peer.to, peer.from));
    }
  }

  private cut(peer: PeerConnection): void {
    if (!this.peers.delete(peer)) return;
    this.stats.cut++;
    peer.dialerSide.destroy();
    peer.nodeSide.destroy();
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    // Resets from cut connections are expected; without a listener they would crash the process.
    socket.on('error', () => socket.destroy());
  }

  private accept(socket: Socket, host: string, port: number): void {
    this.track(socket);
    let sniffed = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      sniffed = Buffer.concat([sniffed, chunk]);
      const first = sniffed[0]!;
      const isLetter = (first >= 0x41 && first <= 0x5a) || (first >= 0x61 && first <= 0x7a);
      const lineEnd = isLetter ? sniffed.indexOf('\r\n') : -1;
      if (isLetter && lineEnd < 0) {
        if (sniffed.length > SNIFF_BYTES_MAX) socket.destroy();
        return;
      }
      socket.off('data', onData);
      socket.pause();
      this.route(socket, sniffed, isLetter ? sniffed.subarray(0, lineEnd).toString('latin1') : undefined, host, port);
    };
    socket.on('data', onData);
  }

  private route(socket: Socket, head: Buffer, requestLine: string | undefined, host: string, port: number): void {
    const match = requestLine ? /^GET \/raft\?from=(\d+)&to=(\d+)/.exec(requestLine) : null;
    if (!match) {
      this.stats.clientConnections++;
      const upstream = connect(port, host);
      this.track(upstream);
      upstream.write(head);
      socket.pipe(upstream);
      upstream.pipe(socket);
      socket.on('close', () => upstream.destroy());
      upstream.on('close', () => socket.destroy());
      socket.resume();
      return;
    }
    const from = Number(match[1]);
    const to = Number(match[2]);
    if (this.isBlocked(from, to) && this.isBlocked(to, from)) {
      this.stats.refused++;
      socket.destroy();
      return;
    }
    this.stats.peerConnections++;
    const nodeSide = connect(port, host);
    this.track(nodeSide);
    const peer: PeerConnection = { from, to, dialerSide: socket, nodeSide, blackHoled: new Set(), delayed: new Map() };
    this.peers.add(peer);
    this.enforce();
    const forward = linkKey(from, to);
    const backward = linkKey(to, from);
    this.pass(peer, forward, head, nodeSide);
    socket.on('data', (chunk: Buffer) => this.pass(peer, forward, chunk, nodeSide));
    nodeSide.on('data', (chunk: Buffer) => this.pass(peer, backward, chunk, socket));
    socket.on('close', () => this.cut(peer));
    nodeSide.on('close', () => this.cut(peer));
    socket.resume();
  }

  private pass(peer: PeerConnection, direction: LinkKey, chunk: Buffer, into: Socket): void {
    if (!this.peers.has(peer) || peer.blackHoled.has(direction)) return;
    const delayMs = this.delays.get(direction) ?? 0;
    let queue = peer.delayed.get(direction);
    if (delayMs === 0 && !queue) {
      into.write(chunk);
      return;
    }
    // One FIFO and one timer per direction: chunks leave in the order they came, whatever the
    // delay was when each arrived (timers of different durations may fire out of order).
    if (!queue) {
      queue = [];
      peer.delayed.set(direction, queue);
    }
    queue.push({ chunk, dueMs: Date.now() + delayMs });
    if (queue.length === 1) this.drainLater(peer, direction, into);
  }

  private drainLater(peer: PeerConnection, direction: LinkKey, into: Socket): void {
    const queue = peer.delayed.get(direction)!;
    setTimeout(() => {
      if (!this.peers.has(peer) || peer.blackHoled.has(direction)) {
        peer.delayed.delete(direction);
        return;
      }
      const now = Date.now();
      while (queue.length > 0 && queue[0]!.dueMs <= now) into.write(queue.shift()!.chunk);
      if (queue.length === 0) peer.delayed.delete(direction);
      else this.drainLater(peer, direction, into);
    }, Math.max(0, queue[0]!.dueMs - Date.now()));
  }
}

function splitAddress(address: string): [string, string] {
  const colon = address.lastIndexOf(':');
  if (colon < 0) throw new Error(`expected host:port, got "${address}"`);
  return [address.slice(0, colon), address.slice(colon + 1)];
}

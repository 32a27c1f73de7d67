import type { DialWebSocket } from '../../src/runtime.ts';
import { PeerTransport, PEER_WEBSOCKET_PATH, type PeerTransportOptions, type TransportLogEvent } from '../../src/transport/index.ts';
import { dialWebSocket, listen, nodeClock, type Listener } from '../../runtimes/node/index.ts';

export interface TestNode {
  id: number;
  transport: PeerTransport;
  listener: Listener | undefined;
  /** '' for a node that does not listen. */
  address: string;
  received: { from: number; text: string }[];
  logs: TransportLogEvent[];
  stop(): Promise<void>;
}

const decoder = new TextDecoder();
export const encode = (text: string): Uint8Array => new TextEncoder().encode(text);

export interface StartOptions {
  clusterKey?: string;
  listening?: boolean;
  /** Reuse a port (restart on the same address). */
  port?: number;
  dial?: DialWebSocket;
  /** Refuse a wrong key header before the upgrade (true) or leave it to acceptConnection. */
  precheckUpgrade?: boolean;
  transport?: Partial<PeerTransportOptions>;
}

/** A transport wired to the real Node listener and `ws` dialer, as the server wires them. */
export async function startNode(id: number, options: StartOptions = {}): Promise<TestNode> {
  let transport: PeerTransport | undefined;
  let listener: Listener | undefined;
  if (options.listening ?? true) {
    listener = await listen({
      host: '127.0.0.1',
      port: options.port ?? 0,
      onStream: (stream) => stream.close(),
      checkUpgrade: (request) => {
        if (request.path !== PEER_WEBSOCKET_PATH) return { status: 404, reason: `no WebSocket endpoint at ${request.path}` };
        if (options.precheckUpgrade === false) return undefined;
        const refusal = transport?.refusalForUpgrade(request.headers);
        return refusal ? { status: 401, reason: refusal } : undefined;
      },
      onWebSocket: (channel, request) => transport!.acceptConnection(channel, request.headers),
    });
  }
  const address = listener?.address ?? '';
  const received: { from: number; text: string }[] = [];
  const logs: TransportLogEvent[] = [];
  transport = new PeerTransport({
    selfId: id,
    selfAddress: address,
    clusterKey: options.clusterKey ?? 'cluster-secret',
    dialWebSocket: options.dial ?? dialWebSocket,
    clock: nodeClock,
    maxMessageBytes: 64 * 1024,
    backoffInitialMs: 20,
    backoffMaxMs: 200,
    handshakeTimeoutMs: 1000,
    onLog: (event) => logs.push(event),
    ...options.transport,
  });
  transport.onMessage((from, payload) => received.push({ from, text: decoder.decode(payload) }));
  const node: TestNode = {
    id,
    transport,
    listener,
    address,
    received,
    logs,
    async stop() {
      node.transport.close();
      await listener?.close();
    },
  };
  return node;
}

/** A dialer that drops upgrade headers, as a browser's WebSocket does. */
export const dialWithoutHeaders: DialWebSocket = (url, options) =>
  dialWebSocket(url, options?.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs });

/** Nodes 1 and 2, started by `start` (which tracks them for cleanup), each knowing both. */
export async function startPeerPair(start: (id: number) => Promise<TestNode>): Promise<[TestNode, TestNode]> {
  const a = await start(1);
  const b = await start(2);
  const peers = [
    { id: 1, address: a.address },
    { id: 2, address: b.address },
  ];
  a.transport.setPeers(peers);
  b.transport.setPeers(peers);
  return [a, b];
}

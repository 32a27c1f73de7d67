/**
 * A cluster node in a Deno process: data directory through Deno's file APIs, and either the
 * one-port listener (raw dqlite TCP + WebSocket + HTTP, via Deno's Node compatibility) or, for
 * hosts that offer only HTTP, a `Deno.serve` listener with WebSockets only.
 */
import { Engine } from '../../wasm/index.ts';
import { dialOverWebSocket } from '../../src/client/message-stream.ts';
import type { DialStream } from '../../src/runtime.ts';
import { byteStreamFromChannel } from '../../src/server/channel-stream.ts';
import { joinCluster } from '../../src/server/join.ts';
import { ClusterNode, type NodeStatus } from '../../src/server/node.ts';
import { PEER_WEBSOCKET_PATH } from '../../src/transport/index.ts';
import { listen } from '../node/listener.ts';
import { dialTcp } from '../node/tcp.ts';
import { dialStandardWebSocket } from '../browser/websocket.ts';
import { lockDenoDirectory } from './directory-lock.ts';
import { denoRuntime } from './runtime.ts';
import { openDenoDirectoryStorage } from './storage.ts';
import { listenWebSocketOnly } from './websocket-only-listener.ts';

export const CLIENT_WEBSOCKET_PATH = '/dqlite';
/** Same file and format as the Node runtime's, so a data directory moves between the two. */
const IDENTITY_FILE = 'node.json';

export interface DenoNodeOptions {
  address: string;
  advertise?: string;
  dir: string;
  join: string[];
  clusterKey: string;
  /** Serve WebSockets and HTTP only (no raw dqlite TCP); dial peers' dqlite port over WebSocket too. */
  webSocketOnly?: boolean;
  tickMs?: number;
  walFramesMax?: number;
  snapshotThresholdEntries?: number;
  snapshotTrailingEntries?: number;
  commitTimeoutMs?: number;
  busyTimeoutMs?: number;
  log?: (line: string) => void;
}

export interface RunningDenoNode {
  node: ClusterNode;
  /** host:port actually bound. */
  address: string;
  stop(options?: { handOver?: boolean }): Promise<void>;
}

interface NodeIdentity {
  id: number;
  address: string;
}

function splitAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const port = Number(address.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`--address must be host:port with a port from 0 to 65535, got "${address}"`);
  }
  return { host: address.slice(0, colon).replace(/^\[|\]$/g, ''), port };
}

function randomNodeId(randomBytes: (n: number) => Uint8Array): number {
  let id = 0;
  for (const byte of randomBytes(7)) id = id * 256 + byte;
  // Ids 0 and 1 are reserved (0: none; 1: go-dqlite's bootstrap id).
  return (id % (Number.MAX_SAFE_INTEGER - 1)) + 2;
}

function statusResponse(node: ClusterNode | undefined, path: string): { status: number; headers?: Record<string, string>; body: string } {
  if (!node) return { status: 503, body: 'starting\n' };
  const status: NodeStatus = node.status();
  const json = { 'content-type': 'application/json' };
  if (path === '/health') {
    const healthy = status.leaderId !== 0;
    return { status: healthy ? 200 : 503, headers: json, body: JSON.stringify({ ok: healthy, state: status.state, leader: status.leaderAddress }) + '\n' };
  }
  if (path === '/metrics' || path === '/status') return { status: 200, headers: json, body: JSON.stringify(status, null, 2) + '\n' };
  return { status: 404, body: 'not found: try /health or /metrics\n' };
}

function upgradeRefusal(path: string): { status: number; reason: string } | undefined {
  if (path === PEER_WEBSOCKET_PATH || path === CLIENT_WEBSOCKET_PATH) return undefined;
  return { status: 404, reason: `unknown WebSocket path ${path}: use ${PEER_WEBSOCKET_PATH} or ${CLIENT_WEBSOCKET_PATH}` };
}

export async function startDenoNode(options: DenoNodeOptions): Promise<RunningDenoNode> {
  const log = options.log ?? ((line: string) => console.log(line));
  const { host, port } = splitAddress(options.address);
  await Deno.mkdir(options.dir, { recursive: true });
  const lock = await lockDenoDirectory(options.dir);
  const storage = await openDenoDirectoryStorage(options.dir);
  const dialStream: DialStream = options.webSocketOnly
    ? dialOverWebSocket(dialStandardWebSocket, (address) => `ws://${address}${CLIENT_WEBSOCKET_PATH}`)
    : dialTcp;
  const runtime = { ...denoRuntime(), dialStream };
  let node: ClusterNode | undefined;

  const onChannel = (channel: Parameters<ClusterNode['acceptPeer']>[0], path: string, headers: Record<string, string | string[] | undefined>): void => {
    if (!node) return channel.close('node is starting');
    if (path === PEER_WEBSOCKET_PATH) node.acceptPeer(channel, headers);
    else node.acceptClient(byteStreamFromChannel(channel));
  };
  let listenerAddress: string;
  let closeListener: () => Promise<void>;
  if (options.webSocketOnly) {
    const listener = await listenWebSocketOnly({
      host,
      port,
      checkUpgrade: (request) => upgradeRefusal(request.path),
      onWebSocket: (channel, request) => onChannel(channel, request.path, request.headers),
      onHttp: (request) => statusResponse(node, request.path),
    });
    listenerAddress = listener.address;
    closeListener = () => listener.close();
  } else {
    const listener = await listen({
      host,
      port,
      onStream: (stream) => (node ? node.acceptClient(stream) : stream.close()),
      checkUpgrade: (request) => upgradeRefusal(request.path),
      onWebSocket: (channel, request) => onChannel(channel, request.path, request.headers),
      onHttp: (request) => statusResponse(node, request.path),
    });
    listenerAddress = listener.address;
    closeListener = () => listener.close();
  }
  const advertised = options.advertise ?? (port === 0 ? listenerAddress : options.address);

  let identity: NodeIdentity;
  let fresh = false;
  const stored = await storage.read(IDENTITY_FILE);
  if (stored) {
    identity = JSON.parse(new TextDecoder().decode(stored)) as NodeIdentity;
    if (identity.address !== advertised) {
      await closeListener();
      await lock.release();
      throw new Error(`${options.dir} belongs to the node at ${identity.address}, not ${advertised}: start it with --address ${identity.address}, or use a new --dir`);
    }
  } else {
    identity = { id: randomNodeId(runtime.randomBytes), address: advertised };
    await storage.writeAtomic(IDENTITY_FILE, new TextEncoder().encode(JSON.stringify(identity) + '\n'));
    fresh = true;
  }

  node = await ClusterNode.start({
    id: identity.id,
    address: advertised,
    runtime,
    storage,
    engine: await Engine.create(),
    clusterKey: options.clusterKey,
    bootstrap: fresh && options.join.length === 0,
    ...(options.tickMs !== undefined && { tickMs: options.tickMs }),
    ...(options.walFramesMax !== undefined && { walFramesMax: options.walFramesMax }),
    ...(options.snapshotThresholdEntries !== undefined && { snapshotThresholdEntries: options.snapshotThresholdEntries }),
    ...(options.snapshotTrailingEntries !== undefined && { snapshotTrailingEntries: options.snapshotTrailingEntries }),
    ...(options.commitTimeoutMs !== undefined && { commitTimeoutMs: options.commitTimeoutMs }),
    ...(options.busyTimeoutMs !== undefined && { busyTimeoutMs: options.busyTimeoutMs }),
    log: (line) => log(`[node ${identity.id} ${advertised}] ${line}`),
    // As on Node: the node stopped itself to protect the data; exit so a supervisor restarts it.
    onFatal: () => {
      void lock.release().finally(() => Deno.exit(70));
    },
  });
  log(`deno node ${identity.id} listening on ${listenerAddress}${options.webSocketOnly ? ' (WebSocket only)' : ''} (data in ${options.dir})`);

  if (fresh && options.join.length > 0) {
    await joinCluster({
      dial: dialStream,
      clock: runtime.clock,
      servers: options.join.filter((a) => a !== advertised),
      id: identity.id,
      address: advertised,
      votersMax: 3,
      standbysMax: 3,
      timeoutMs: 60_000,
      log: (line) => log(`[node ${identity.id}] ${line}`),
    });
  }

  const running = node;
  let stopping: Promise<void> | undefined;
  return {
    node: running,
    address: listenerAddress,
    stop: (stopOptions = {}) => {
      stopping ??= (async () => {
        await running.stop(stopOptions);
        await closeListener();
        await storage.close();
        await lock.release();
      })();
      return stopping;
    },
  };
}

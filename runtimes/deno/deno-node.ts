/**
 * A cluster node in a Deno process: data directory through Deno's file APIs, and either the
 * one-port listener (raw dqlite TCP + WebSocket + HTTP, via Deno's Node compatibility) or, for
 * hosts that offer only HTTP, a `Deno.serve` listener with WebSockets only.
 */
import { Engine } from '../../wasm/index.ts';
import { dialOverWebSocket } from '../../src/client/message-stream.ts';
import type { DialStream } from '../../src/runtime.ts';
import {
  acceptWebSocket,
  CLIENT_WEBSOCKET_PATH,
  createIdentity,
  markAuthenticated,
  readIdentity,
  httpResponse,
  statusResponse,
  upgradeRefusal,
} from '../../src/server/host.ts';
import { joinCluster } from '../../src/server/join.ts';
import { LIMITS } from '../../src/limits.ts';
import { ClusterNode } from '../../src/server/node.ts';
import { listen } from '../node/listener.ts';
import { dialTcp, tlsStreamDialer } from '../node/tcp.ts';
import { resolveTlsSettings, type TlsOptionsPem } from '../node/tls.ts';
import { webSocketDialer } from '../node/websocket.ts';
import { tlsErrorLog } from '../node/throttled-log.ts';
import { dialStandardWebSocket } from '../browser/websocket.ts';
import { lockDenoDirectory } from './directory-lock.ts';
import { denoRuntime } from './runtime.ts';
import { openDenoDirectoryStorage } from './storage.ts';
import { listenWebSocketOnly } from './websocket-only-listener.ts';

export { CLIENT_WEBSOCKET_PATH };

export interface DenoNodeOptions {
  address: string;
  advertise?: string;
  dir: string;
  join: string[];
  clusterKey: string;
  /** Serve WebSockets and HTTP only (no raw dqlite TCP); dial peers' dqlite port over WebSocket too. */
  webSocketOnly?: boolean;
  /**
   * Mutual TLS (PEM text) for everything the node serves and dials, as on Node: through Deno's
   * Node compatibility (`node:tls`, `ws`), because Deno's own WebSocket cannot present a client
   * certificate. Not with `webSocketOnly` (there the host in front terminates TLS).
   */
  tls?: TlsOptionsPem;
  /** With `tls`: browsers without a client certificate may open WebSockets (see the Node listener). */
  tlsWebSocketsWithoutCertificate?: boolean;
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
  /** Resolves once stopped; rejects with the original error when the node stopped itself (port and directory released by then). */
  closed: Promise<void>;
  stop(options?: { handOver?: boolean }): Promise<void>;
}

function splitAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const port = Number(address.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`--address must be host:port with a port from 0 to 65535, got "${address}"`);
  }
  return { host: address.slice(0, colon).replace(/^\[|\]$/g, ''), port };
}

export async function startDenoNode(options: DenoNodeOptions): Promise<RunningDenoNode> {
  const log = options.log ?? ((line: string) => console.log(line));
  const { host, port } = splitAddress(options.address);
  await Deno.mkdir(options.dir, { recursive: true });
  const lock = await lockDenoDirectory(options.dir);
  const storage = await openDenoDirectoryStorage(options.dir);
  if (options.tls && options.webSocketOnly) {
    throw new Error('--tls-* and --websocket-only do not go together: with --websocket-only the host in front of the node terminates TLS');
  }
  const tls = options.tls ? resolveTlsSettings(options.tls) : undefined;
  const dialStream: DialStream = options.webSocketOnly
    ? dialOverWebSocket(dialStandardWebSocket, (address) => `ws://${address}${CLIENT_WEBSOCKET_PATH}`)
    : tls
      ? tlsStreamDialer(tls)
      : dialTcp;
  const runtime = { ...denoRuntime(), dialStream, ...(tls && { dialWebSocket: webSocketDialer(tls) }) };
  let node: ClusterNode | undefined;

  let listenerAddress: string;
  let closeListener: () => Promise<void>;
  if (options.webSocketOnly) {
    const listener = await listenWebSocketOnly({
      host,
      port,
      webSocketMessageBytesMax: LIMITS.peerMessageBytesMax,
      checkUpgrade: (request) => upgradeRefusal(request.path),
      onWebSocket: (channel, request) => acceptWebSocket(node, channel, request.path, request.headers),
      onHttp: (request) => statusResponse(node, request.path),
    });
    listenerAddress = listener.address;
    closeListener = () => listener.close();
  } else {
    const listener = await listen({
      host,
      port,
      // Peers' messages arrive as WebSocket messages: the largest one must get through.
      webSocketMessageBytesMax: LIMITS.peerMessageBytesMax,
      // A client certificate of the cluster CA authenticates a connection as the cluster key does.
      onStream: (stream, connection) => (node ? node.acceptClient(connection.secure ? markAuthenticated(stream) : stream) : stream.close()),
      checkUpgrade: (request) => upgradeRefusal(request.path),
      onWebSocket: (channel, request) =>
        acceptWebSocket(node, channel, request.path, request.headers, { certificateVerified: request.connection.secure }),
      onHttp: (request) => httpResponse(node, request, dialStream),
      ...(tls && {
        tls,
        tlsWebSocketsWithoutCertificate: options.tlsWebSocketsWithoutCertificate ?? false,
        onTlsError: tlsErrorLog(log),
      }),
    });
    listenerAddress = listener.address;
    closeListener = () => listener.close();
  }
  const advertised = options.advertise ?? (port === 0 ? listenerAddress : options.address);

  let existing;
  try {
    existing = await readIdentity(storage, advertised, options.dir);
  } catch (error) {
    await closeListener();
    await lock.release();
    throw error;
  }
  const fresh = !existing;
  const identity = existing ?? (await createIdentity(storage, advertised, runtime.randomBytes));

  node = await ClusterNode.start({
    id: identity.id,
    address: advertised,
    runtime,
    storage,
    engine: await Engine.create({ fileBytesMax: LIMITS.databaseBytesMax }),
    clusterKey: options.clusterKey,
    secure: tls !== undefined,
    bootstrap: fresh && options.join.length === 0,
    ...(options.tickMs !== undefined && { tickMs: options.tickMs }),
    ...(options.walFramesMax !== undefined && { walFramesMax: options.walFramesMax }),
    ...(options.snapshotThresholdEntries !== undefined && { snapshotThresholdEntries: options.snapshotThresholdEntries }),
    ...(options.snapshotTrailingEntries !== undefined && { snapshotTrailingEntries: options.snapshotTrailingEntries }),
    ...(options.commitTimeoutMs !== undefined && { commitTimeoutMs: options.commitTimeoutMs }),
    ...(options.busyTimeoutMs !== undefined && { busyTimeoutMs: options.busyTimeoutMs }),
    log: (line) => log(`[node ${identity.id} ${advertised}] ${line}`),
  });
  log(`deno node ${identity.id} listening on ${listenerAddress}${options.webSocketOnly ? ' (WebSocket only)' : ''}${tls ? ` with mutual TLS as "${tls.subject}"` : ''} (data in ${options.dir})`);

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
  const stop = (stopOptions: { handOver?: boolean } = {}): Promise<void> => {
    stopping ??= (async () => {
      await running.stop(stopOptions);
      await closeListener();
      await storage.close();
      await lock.release();
    })();
    return stopping;
  };
  // As on Node: library code never exits; main.ts (the command line) does.
  const closed = running.closed.catch(async (error: unknown) => {
    await stop().catch(() => undefined);
    throw error;
  });
  closed.catch(() => undefined);
  return { node: running, address: listenerAddress, closed, stop };
}

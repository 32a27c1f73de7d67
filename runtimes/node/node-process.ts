/**
 * A cluster node on Node.js: data directory (locked), one listening port for the dqlite
 * protocol, Raft peers and HTTP. Library code: it never exits the process. A node that stops
 * itself to protect its data releases its port and directory, then rejects `closed` with the
 * original error (and calls `onFatal`); the command line (bin/) decides to exit.
 */
import { mkdir } from 'node:fs/promises';
import { Engine } from '../../wasm/index.ts';
import {
  acceptWebSocket,
  CLIENT_WEBSOCKET_PATH,
  createIdentity,
  IDENTITY_FILE,
  markAuthenticated,
  httpResponse,
  readIdentity,
  upgradeRefusal,
} from '../../src/server/host.ts';
import { dialOverWebSocket } from '../../src/client/message-stream.ts';
import { AdminPolicy } from '../../src/server/admin-policy.ts';
import { ClientAccess } from '../../src/server/client-access.ts';
import { joinCluster, JoinRefusedError } from '../../src/server/join.ts';
import { ClusterNode } from '../../src/server/node.ts';
import { CLUSTER_KEY_HEADER } from '../../src/transport/index.ts';
import type { DialStream, DialWebSocket } from '../../src/runtime.ts';
import { resolveLimits, type Limits } from '../../src/limits.ts';
import { NODE_DEFAULTS } from '../../src/server/node-options.ts';
import type { ReadLevel } from '../../src/server/read-path.ts';
import { type UnsafeSwitches } from '../../src/server/node.ts';
import { lockDirectory } from './directory-lock.ts';
import { listen, type Listener, type HttpResponse } from './listener.ts';
import { openDirectoryStorage } from './storage.ts';
import { dialTcp, tlsStreamDialer } from './tcp.ts';
import { tlsErrorLog } from './throttled-log.ts';
import { resolveTlsSettings, type TlsOptionsPem } from './tls.ts';
import { webSocketDialer } from './websocket.ts';
import { nodeRuntime } from './index.ts';

export interface NodeProcessOptions {
  /** Where to listen, host:port. */
  address: string;
  /** The address peers and clients are told to use, when it differs (a proxy in front). */
  advertise?: string;
  dir: string;
  join: string[];
  clusterKey: string;
  /** `--admin-allow`: addresses allowed to change the membership without credentials. Default loopback. */
  adminAllow?: string;
  /** `--allow-origin`: browser page origins allowed on `/dqlite` without a client token. Default loopback. */
  allowOrigin?: string;
  /**
   * Mutual TLS for everything the node serves and dials (PEM text): dqlite over TCP, `wss://`
   * peers and browser clients, HTTPS. Every client and peer must present a certificate of `ca`.
   */
  tls?: TlsOptionsPem;
  /**
   * With `tls`: browsers without a client certificate may open WebSockets (peers on `/raft`
   * still prove the cluster key); raw dqlite and plain HTTP still need a certificate.
   */
  tlsWebSocketsWithoutCertificate?: boolean;
  tickMs?: number;
  walFramesMax?: number;
  snapshotThresholdEntries?: number;
  snapshotTrailingEntries?: number;
  commitTimeoutMs?: number;
  busyTimeoutMs?: number;
  /** Read level of plain dqlite read requests (src/server/read-path.ts). */
  defaultReadLevel?: ReadLevel;
  /** Overrides of the limits table (src/limits.ts). */
  limits?: Partial<Limits>;
  unsafeForTesting?: UnsafeSwitches;
  log?: (line: string) => void;
  /** The node stopped itself (its port and directory are released by then), with the original error. */
  onFatal?: (error: Error) => void;
}

export interface RunningNode {
  node: ClusterNode;
  listener: Listener;
  /** Resolves once stopped; rejects with the original error when the node stopped itself. */
  closed: Promise<void>;
  stop(options?: { handOver?: boolean }): Promise<void>;
}

export { CLIENT_WEBSOCKET_PATH };

function splitAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const port = Number(address.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error(`--address must be host:port with a port from 1 to 65535, got "${address}"`);
  }
  return { host: address.slice(0, colon).replace(/^\[|\]$/g, ''), port };
}

/**
 * Joins go over the `/dqlite` WebSocket with the cluster key in the upgrade: the members then
 * know the add request comes from a holder of the key, whatever `--admin-allow` says.
 */
function authenticatedDial(dialWebSocket: DialWebSocket, clusterKey: string, secure: boolean): DialStream {
  return dialOverWebSocket(
    (url, dialOptions) => dialWebSocket(url, { ...dialOptions, headers: { ...dialOptions?.headers, [CLUSTER_KEY_HEADER]: clusterKey } }),
    (address) => `${secure ? 'wss' : 'ws'}://${address}${CLIENT_WEBSOCKET_PATH}`,
  );
}

export async function startNodeProcess(options: NodeProcessOptions): Promise<RunningNode> {
  const log = options.log ?? ((line: string) => console.log(line));
  const { host, port } = splitAddress(options.address);
  await mkdir(options.dir, { recursive: true });
  const lock = await lockDirectory(options.dir);
  const tls = options.tls ? resolveTlsSettings(options.tls) : undefined;
  const dialStream = tls ? tlsStreamDialer(tls) : dialTcp;
  const runtime = { ...nodeRuntime(), dialStream, dialWebSocket: webSocketDialer(tls) };
  const advertised = options.advertise ?? options.address;
  const storage = await openDirectoryStorage(options.dir);
  const existing = await readIdentity(storage, advertised, options.dir);
  const fresh = !existing;
  const identity = existing ?? (await createIdentity(storage, advertised, runtime.randomBytes));
  // With certificate-less browsers admitted (websocket-optional), connections without a
  // certificate are judged as on a cluster without TLS: by the --admin-allow list.
  const adminPolicy = new AdminPolicy({
    ...(options.adminAllow !== undefined && { allow: options.adminAllow }),
    tls: tls !== undefined && options.tlsWebSocketsWithoutCertificate !== true,
  });
  const access = await ClientAccess.create({
    clusterKey: options.clusterKey,
    ...(options.allowOrigin !== undefined && { allowOrigin: options.allowOrigin }),
  });
  const limits = resolveLimits(options.limits);
  const engine = await Engine.create({ fileBytesMax: limits.databaseBytesMax });
  let node: ClusterNode | undefined;

  const listener = await listen({
    host,
    port,
    // Peers' messages arrive as WebSocket messages: the largest one must get through.
    webSocketMessageBytesMax: limits.peerMessageBytesMax,
    // A client certificate of the cluster CA authenticates a connection as the cluster key does.
    onStream: (stream, connection) => (node ? node.acceptClient(connection.secure ? markAuthenticated(stream) : stream) : stream.close()),
    checkUpgrade: (request) => (request.connection.secure ? upgradeRefusal(request.path) : upgradeRefusal(request.path, request, access)),
    onWebSocket: (channel, request) =>
      acceptWebSocket(
        node,
        channel,
        request.path,
        request.headers,
        request.connection.secure ? { certificateVerified: true, query: request.query } : { access, query: request.query },
      ),
    onHttp: (request): Promise<HttpResponse> => httpResponse(node, request, runtime.dialStream),
    ...(tls && {
      tls,
      tlsWebSocketsWithoutCertificate: options.tlsWebSocketsWithoutCertificate ?? false,
      onTlsError: tlsErrorLog(log),
    }),
  });

  const bootstrap = fresh && options.join.length === 0;
  node = await ClusterNode.start({
    id: identity.id,
    address: advertised,
    runtime,
    storage,
    engine,
    clusterKey: options.clusterKey,
    adminPolicy,
    secure: tls !== undefined,
    bootstrap,
    ...(options.tickMs !== undefined && { tickMs: options.tickMs }),
    ...(options.walFramesMax !== undefined && { walFramesMax: options.walFramesMax }),
    ...(options.snapshotThresholdEntries !== undefined && { snapshotThresholdEntries: options.snapshotThresholdEntries }),
    ...(options.snapshotTrailingEntries !== undefined && { snapshotTrailingEntries: options.snapshotTrailingEntries }),
    ...(options.commitTimeoutMs !== undefined && { commitTimeoutMs: options.commitTimeoutMs }),
    ...(options.busyTimeoutMs !== undefined && { busyTimeoutMs: options.busyTimeoutMs }),
    ...(options.defaultReadLevel && { defaultReadLevel: options.defaultReadLevel }),
    ...(options.limits && { limits: options.limits }),
    ...(options.unsafeForTesting && { unsafeForTesting: options.unsafeForTesting }),
    log: (line) => log(`[node ${identity.id} ${advertised}] ${line}`),
  });
  log(`node ${identity.id} listening on ${listener.address}${tls ? ` with mutual TLS as "${tls.subject}"` : ''} (data in ${options.dir})`);

  if (fresh && options.join.length > 0) {
    await joinCluster({
      dial: authenticatedDial(runtime.dialWebSocket, options.clusterKey, tls !== undefined),
      clock: runtime.clock,
      servers: options.join.filter((a) => a !== advertised),
      id: identity.id,
      address: advertised,
      votersMax: NODE_DEFAULTS.votersMax,
      standbysMax: NODE_DEFAULTS.standbysMax,
      timeoutMs: 60_000,
      log: (line) => log(`[node ${identity.id}] ${line}`),
    }).catch(async (error: unknown) => {
      // Never a member: forget the identity, so a restart with the right key joins afresh.
      if (error instanceof JoinRefusedError) {
        await node?.stop();
        await listener.close();
        await storage.remove(IDENTITY_FILE);
        await storage.close?.();
        await lock.release();
      }
      throw error;
    });
  }

  const running = node;
  let stopping: Promise<void> | undefined;
  const stop = (stopOptions: { handOver?: boolean } = {}): Promise<void> => {
    stopping ??= (async () => {
      await running.stop(stopOptions);
      await listener.close();
      await storage.close?.();
      await lock.release();
    })();
    return stopping;
  };
  // A node that stopped itself gives its port and directory back, so a supervisor (or the
  // caller) can restart it at once; a restart rebuilds the databases from the snapshot and the log.
  const closed = running.closed.catch(async (error: unknown) => {
    await stop().catch(() => undefined);
    options.onFatal?.(error as Error);
    throw error;
  });
  closed.catch(() => undefined);
  return { node: running, listener, closed, stop };
}


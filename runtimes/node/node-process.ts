/**
 * A cluster node as a Node.js process: data directory (locked), one listening port for the dqlite
 * protocol, Raft peers and HTTP, and a clean hand-over of leadership on SIGTERM/SIGINT.
 */
import { mkdir } from 'node:fs/promises';
import { Engine } from '../../wasm/index.ts';
import {
  acceptWebSocket,
  CLIENT_WEBSOCKET_PATH,
  createIdentity,
  readIdentity,
  statusResponse,
  upgradeRefusal,
} from '../../src/server/host.ts';
import { joinCluster } from '../../src/server/join.ts';
import { ClusterNode } from '../../src/server/node.ts';
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
  unsafeForTesting?: { ackBeforeCommit?: boolean; readsWithoutBarrier?: boolean };
  log?: (line: string) => void;
}

export interface RunningNode {
  node: ClusterNode;
  listener: Listener;
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
  const engine = await Engine.create();
  let node: ClusterNode | undefined;

  const listener = await listen({
    host,
    port,
    onStream: (stream) => (node ? node.acceptClient(stream) : stream.close()),
    checkUpgrade: (request) => upgradeRefusal(request.path),
    onWebSocket: (channel, request) => acceptWebSocket(node, channel, request.path, request.headers),
    onHttp: (request): HttpResponse => statusResponse(node, request.path),
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
    secure: tls !== undefined,
    bootstrap,
    ...(options.tickMs !== undefined && { tickMs: options.tickMs }),
    ...(options.walFramesMax !== undefined && { walFramesMax: options.walFramesMax }),
    ...(options.snapshotThresholdEntries !== undefined && { snapshotThresholdEntries: options.snapshotThresholdEntries }),
    ...(options.snapshotTrailingEntries !== undefined && { snapshotTrailingEntries: options.snapshotTrailingEntries }),
    ...(options.commitTimeoutMs !== undefined && { commitTimeoutMs: options.commitTimeoutMs }),
    ...(options.busyTimeoutMs !== undefined && { busyTimeoutMs: options.busyTimeoutMs }),
    ...(options.unsafeForTesting && { unsafeForTesting: options.unsafeForTesting }),
    log: (line) => log(`[node ${identity.id} ${advertised}] ${line}`),
    // The node stopped itself to protect the data; exiting lets a supervisor restart it, and a
    // restart rebuilds the databases from the snapshot and the log.
    onFatal: () => {
      void lock.release().finally(() => process.exit(70));
    },
  });
  log(`node ${identity.id} listening on ${listener.address}${tls ? ` with mutual TLS as "${tls.subject}"` : ''} (data in ${options.dir})`);

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
    listener,
    stop: (stopOptions = {}) => {
      stopping ??= (async () => {
        await running.stop(stopOptions);
        await listener.close();
        await storage.close?.();
        await lock.release();
      })();
      return stopping;
    },
  };
}


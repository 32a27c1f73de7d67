/**
 * A cluster node as a Node.js process: data directory (locked), one listening port for the dqlite
 * protocol, Raft peers and HTTP, and a clean hand-over of leadership on SIGTERM/SIGINT.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join as joinPath } from 'node:path';
import { Engine } from '../../wasm/index.ts';
import { byteStreamFromChannel } from '../../src/server/channel-stream.ts';
import { joinCluster } from '../../src/server/join.ts';
import { ClusterNode } from '../../src/server/node.ts';
import { PEER_WEBSOCKET_PATH } from '../../src/transport/index.ts';
import { lockDirectory } from './directory-lock.ts';
import { listen, type Listener, type HttpResponse } from './listener.ts';
import { openDirectoryStorage } from './storage.ts';
import { dialTcp } from './tcp.ts';
import { nodeRuntime } from './index.ts';

export interface NodeProcessOptions {
  /** Where to listen, host:port. */
  address: string;
  /** The address peers and clients are told to use, when it differs (a proxy in front). */
  advertise?: string;
  dir: string;
  join: string[];
  clusterKey: string;
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

interface NodeIdentity {
  id: number;
  address: string;
}

const IDENTITY_FILE = 'node.json';
export const CLIENT_WEBSOCKET_PATH = '/dqlite';

function splitAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const port = Number(address.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error(`--address must be host:port with a port from 1 to 65535, got "${address}"`);
  }
  return { host: address.slice(0, colon).replace(/^\[|\]$/g, ''), port };
}

async function loadIdentity(dir: string, address: string, randomId: () => number): Promise<{ identity: NodeIdentity; fresh: boolean }> {
  const path = joinPath(dir, IDENTITY_FILE);
  try {
    const identity = JSON.parse(await readFile(path, 'utf8')) as NodeIdentity;
    if (identity.address !== address) {
      throw new Error(
        `${dir} belongs to the node at ${identity.address}, not ${address}: start it with --address ${identity.address}, or use a new --dir`,
      );
    }
    return { identity, fresh: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const identity = { id: randomId(), address };
  await writeFile(path, JSON.stringify(identity) + '\n');
  return { identity, fresh: true };
}

export async function startNodeProcess(options: NodeProcessOptions): Promise<RunningNode> {
  const log = options.log ?? ((line: string) => console.log(line));
  const { host, port } = splitAddress(options.address);
  await mkdir(options.dir, { recursive: true });
  const lock = await lockDirectory(options.dir);
  const runtime = { ...nodeRuntime(), dialStream: dialTcp };
  const randomId = (): number => {
    const b = runtime.randomBytes(7);
    let id = 0;
    for (const byte of b) id = id * 256 + byte;
    return (id % (Number.MAX_SAFE_INTEGER - 1)) + 2;
  };
  const advertised = options.advertise ?? options.address;
  const { identity, fresh } = await loadIdentity(options.dir, advertised, randomId);
  const storage = await openDirectoryStorage(options.dir);
  const engine = await Engine.create();
  let node: ClusterNode | undefined;

  const listener = await listen({
    host,
    port,
    onStream: (stream) => (node ? node.acceptClient(stream) : stream.close()),
    checkUpgrade: (request) => {
      if (request.path === PEER_WEBSOCKET_PATH || request.path === CLIENT_WEBSOCKET_PATH) return undefined;
      return { status: 404, reason: `unknown WebSocket path ${request.path}: use ${PEER_WEBSOCKET_PATH} or ${CLIENT_WEBSOCKET_PATH}` };
    },
    onWebSocket: (channel, request) => {
      if (!node) return channel.close('node is starting');
      if (request.path === PEER_WEBSOCKET_PATH) node.acceptPeer(channel, request.headers);
      else node.acceptClient(byteStreamFromChannel(channel));
    },
    onHttp: (request): HttpResponse => {
      if (!node) return { status: 503, body: 'starting\n' };
      const status = node.status();
      if (request.path === '/health') {
        const healthy = status.leaderId !== 0;
        return {
          status: healthy ? 200 : 503,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ ok: healthy, state: status.state, leader: status.leaderAddress }) + '\n',
        };
      }
      if (request.path === '/metrics' || request.path === '/status') {
        return { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(status, null, 2) + '\n' };
      }
      return { status: 404, body: 'not found: try /health or /metrics\n' };
    },
  });

  const bootstrap = fresh && options.join.length === 0;
  node = await ClusterNode.start({
    id: identity.id,
    address: advertised,
    runtime,
    storage,
    engine,
    clusterKey: options.clusterKey,
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
  log(`node ${identity.id} listening on ${listener.address} (data in ${options.dir})`);

  if (fresh && options.join.length > 0) {
    await joinCluster({
      dial: dialTcp,
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


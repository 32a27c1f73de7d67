/**
 * One cluster node in a dedicated Web Worker: SQLite WASM engine, Raft log on OPFS, peers and
 * clients over the page's in-page network. The page drives it through comlink (`NodeWorkerApi`).
 */
import * as Comlink from 'comlink';
import { Engine } from '../wasm/index.ts';
import { InPageEndpoint, type PortLike } from '../runtimes/browser/in-page-network.ts';
import { webClock, webRandomBytes } from '../runtimes/browser/runtime.ts';
import { byteStreamFromChannel } from '../src/server/channel-stream.ts';
import { markAuthenticated } from '../src/server/host.ts';
import { joinCluster } from '../src/server/join.ts';
import { ClusterNode, type NodeStatus } from '../src/server/node.ts';
import type { Runtime } from '../src/runtime.ts';
import { PEER_WEBSOCKET_PATH } from '../src/transport/index.ts';
import { OpfsStorage } from './opfs-storage.ts';

export interface NodeWorkerConfig {
  id: number;
  /** The node's in-page address, such as `node-1`. */
  address: string;
  /** Addresses to join through when this node's storage is new; empty: bootstrap a new cluster. */
  join: string[];
  clusterKey: string;
  /** OPFS directory of this node, under the origin's private root. */
  storagePath: string[];
  tickMs: number;
  commitTimeoutMs: number;
  walFramesMax: number;
  snapshotThresholdEntries: number;
  snapshotTrailingEntries: number;
  votersMax: number;
}

export type NodePhase = 'starting' | 'joining' | 'running' | 'stopped' | 'failed';

export interface NodeLogLine {
  atMs: number;
  text: string;
}

export interface NodePoll {
  phase: NodePhase;
  error?: string;
  /** True when this start recovered existing storage rather than creating a node. */
  recovered: boolean;
  status?: NodeStatus;
  logs: NodeLogLine[];
}

export interface NodeWorkerApi {
  start(config: NodeWorkerConfig, networkPort: MessagePort): Promise<void>;
  poll(): NodePoll;
  stop(): Promise<void>;
}

const IDENTITY_FILE = 'identity.json';
/** Bound on log lines kept between two polls. */
const LOG_LINES_MAX = 500;

const clock = webClock;

let phase: NodePhase = 'starting';
let failure: string | undefined;
let recovered = false;
let node: ClusterNode | undefined;
let endpoint: InPageEndpoint | undefined;
let storage: OpfsStorage | undefined;
let logs: NodeLogLine[] = [];

function log(text: string): void {
  if (logs.length >= LOG_LINES_MAX) logs.shift();
  logs.push({ atMs: Date.now(), text });
}

async function start(config: NodeWorkerConfig, networkPort: MessagePort): Promise<void> {
  try {
    endpoint = new InPageEndpoint(networkPort as PortLike, config.address);
    storage = await OpfsStorage.open(config.storagePath);
    const identityBytes = await storage.read(IDENTITY_FILE);
    const identity = identityBytes ? (JSON.parse(new TextDecoder().decode(identityBytes)) as { id: number; address: string }) : undefined;
    if (identity && (identity.id !== config.id || identity.address !== config.address)) {
      throw new Error(`the storage at ${config.storagePath.join('/')} belongs to node ${identity.id} (${identity.address}); reset the demo`);
    }
    recovered = identity !== undefined;
    const runtime: Runtime = {
      name: 'browser',
      clock,
      randomBytes: webRandomBytes,
      dialWebSocket: endpoint.dialWebSocket,
      dialStream: endpoint.dialStream,
    };
    const engine = await Engine.create();
    const started = await ClusterNode.start({
      id: config.id,
      address: config.address,
      runtime,
      storage,
      engine,
      clusterKey: config.clusterKey,
      bootstrap: !recovered && config.join.length === 0,
      tickMs: config.tickMs,
      commitTimeoutMs: config.commitTimeoutMs,
      walFramesMax: config.walFramesMax,
      snapshotThresholdEntries: config.snapshotThresholdEntries,
      snapshotTrailingEntries: config.snapshotTrailingEntries,
      votersMax: config.votersMax,
      log,
    });
    node = started;
    endpoint.onAccept(({ channel, path, headers }) => {
      if (path === PEER_WEBSOCKET_PATH) started.acceptPeer(channel, headers);
      // Every endpoint of the in-page network is this page's own: its clients may administer.
      else if (path === '/dqlite') started.acceptClient(markAuthenticated(byteStreamFromChannel(channel)));
      else channel.close(`unknown path ${path}: use ${PEER_WEBSOCKET_PATH} or /dqlite`);
    });
    log(recovered ? `recovered from OPFS (${config.storagePath.join('/')})` : `started with empty OPFS storage`);
    if (!recovered && config.join.length > 0) {
      phase = 'joining';
      await joinCluster({
        dial: endpoint.dialStream,
        clock,
        servers: config.join,
        id: config.id,
        address: config.address,
        votersMax: config.votersMax,
        standbysMax: 3,
        timeoutMs: 60_000,
        log,
      });
    }
    if (!recovered) await storage.writeAtomic(IDENTITY_FILE, new TextEncoder().encode(JSON.stringify({ id: config.id, address: config.address })));
    phase = 'running';
  } catch (error) {
    phase = 'failed';
    failure = error instanceof Error ? error.message : String(error);
    log(`failed: ${failure}`);
    throw error;
  }
}

const api: NodeWorkerApi = {
  start,
  poll() {
    const out: NodePoll = { phase, recovered, logs };
    if (failure !== undefined) out.error = failure;
    if (node) out.status = node.status();
    logs = [];
    return out;
  },
  async stop() {
    await node?.stop({ handOver: true });
    endpoint?.close();
    await storage?.close();
    phase = 'stopped';
  },
};

Comlink.expose(api);

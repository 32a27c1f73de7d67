/**
 * A cluster node in a browser (a dedicated Web Worker): it cannot listen, so it has no address;
 * it dials every listening member over WebSocket (Raft on `/raft`, dqlite clients on `/dqlite`)
 * and receives on those connections. State lives in OPFS, or IndexedDB where OPFS is missing, so
 * a reloaded tab comes back as the same node.
 */
import { acceptWebSocket, CLIENT_WEBSOCKET_PATH, createIdentity, readIdentity } from '../../src/server/host.ts';
import { Engine } from '../../wasm/index.ts';
import { connect, connectCluster, type Database, type ExecResult, type LiveQueryResult, type Param, type QueryResult, type ReadOptions } from '../../src/client/index.ts';
import { toLiveQueryResult } from '../../src/live/live-client.ts';
import { toTypedValue } from '../../src/protocol/index.ts';
import { STALENESS_DEFAULT_MS } from '../../src/server/read-path.ts';
import { dialOverWebSocket } from '../../src/client/message-stream.ts';
import type { DialStream, DialWebSocket, DurableStorage, MessageChannel } from '../../src/runtime.ts';
import { joinCluster } from '../../src/server/join.ts';
import { LIMITS, type Limits } from '../../src/limits.ts';
import { ClusterNode, type NodeStatus } from '../../src/server/node.ts';
import { NODE_DEFAULTS } from '../../src/server/node-options.ts';
import { JOIN_TIMEOUT_MS_DEFAULT } from '../../src/server/startup.ts';
import type { Member, Role } from '../../src/raft/index.ts';
import { IndexedDbStorage } from './indexeddb-storage.ts';
import { OpfsStorage, opfsAvailable } from './opfs-storage.ts';
import { browserNodeStorageName } from './node-storage-name.ts';
import { withCertificateChoice } from './certificate-choice.ts';
import { browserRuntime } from './runtime.ts';

export { CLIENT_WEBSOCKET_PATH };

/**
 * A network the worker's host provides (a custom worker entry, see worker-api.ts) on which this
 * node can be dialed at `BrowserNodeOptions.address`: an in-page network of several nodes in
 * one tab, say. Every endpoint on it is the page's own, so its dqlite clients may administer.
 */
export interface ListeningNetwork {
  dialWebSocket: DialWebSocket;
  /** Connections other endpoints opened to this node: Raft on `/raft`, dqlite clients on `/dqlite`. */
  onAccept(handler: (connection: { channel: MessageChannel; path: string; headers: Record<string, string> }) => void): void;
  close(): void;
}

export interface BrowserNodeOptions {
  /** Names this node's storage (an OPFS directory or IndexedDB database); one running node per name. */
  name: string;
  /** Listening members ("host:port") to join through, and to reach clients' leader through. */
  join: string[];
  clusterKey: string;
  /**
   * Dial `wss://` instead of `ws://`, for peers and dqlite clients alike: the listening members
   * serve TLS (an https page may open only wss://). Start them with
   * `--tls-client-cert websocket-optional` unless this browser holds a client certificate of the
   * cluster CA; the browser verifies the members' certificates against its own trust store.
   */
  secure?: boolean;
  /** 'auto' (default): OPFS when the worker has it, else IndexedDB. */
  storage?: 'auto' | 'opfs' | 'indexeddb';
  /**
   * The address peers dial this node at, on the worker host's `ListeningNetwork`; default ''
   * (a browser node cannot listen on a real network).
   */
  address?: string;
  /** A new node with nothing to join starts a new cluster alone (needs an address to be reached). */
  bootstrap?: boolean;
  /** How long opening the node's OPFS files waits for a terminated worker to release them (ms). */
  lockWaitMs?: number;
  tickMs?: number;
  commitTimeoutMs?: number;
  walFramesMax?: number;
  snapshotThresholdEntries?: number;
  snapshotTrailingEntries?: number;
  /** Overrides of the limits table (src/limits.ts), e.g. logTrailingBytesMax. */
  limits?: Partial<Limits>;
  /** Voters the cluster keeps when this node joins or promotes others (default 3). */
  votersMax?: number;
  leaderWithoutAddressHandOverMs?: number;
  /** Lines of the node's log; default console.log. */
  log?: (line: string) => void;
}

export interface BrowserNodeInfo {
  id: number;
  storage: 'opfs' | 'indexeddb';
  /** False when this start recovered an existing node from storage. */
  fresh: boolean;
}

export class BrowserNodeError extends Error {
  constructor(
    readonly code: 'IN_USE' | 'NO_JOIN' | 'NO_NETWORK' | 'NOT_STARTED',
    message: string,
  ) {
    super(message);
    this.name = 'BrowserNodeError';
  }
}

async function openStorage(options: BrowserNodeOptions): Promise<{ storage: DurableStorage & { close(): Promise<void> }; kind: 'opfs' | 'indexeddb' }> {
  const wanted = options.storage ?? 'auto';
  const name = browserNodeStorageName(options.name);
  if (wanted === 'opfs' || (wanted === 'auto' && opfsAvailable())) {
    return { storage: await OpfsStorage.open(name, options.lockWaitMs !== undefined ? { lockWaitMs: options.lockWaitMs } : {}), kind: 'opfs' };
  }
  return { storage: await IndexedDbStorage.open(name), kind: 'indexeddb' };
}

/** How long a start waits for the Web Lock of a node whose worker was just terminated. */
const NAME_LOCK_WAIT_MS_DEFAULT = 10_000;

/**
 * Holds a Web Lock on the node's name while it runs, so that two tabs cannot run the same node.
 * A terminated worker's lock is released shortly after it is gone: wait that long, not forever.
 */
async function lockName(name: string, waitMs: number): Promise<() => void> {
  const locks = (globalThis.navigator as { locks?: LockManager } | undefined)?.locks;
  if (!locks) return () => undefined;
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const acquired = await new Promise<boolean>((resolve) => {
    locks.request(browserNodeStorageName(name), { signal: AbortSignal.timeout(waitMs) }, () => {
      resolve(true);
      return held;
    }).catch(() => resolve(false));
  });
  if (!acquired) throw new BrowserNodeError('IN_USE', `the node "${name}" still runs in another tab or worker of this origin after ${waitMs} ms: close it, or start this node under another name`);
  return release;
}

/**
 * The listening members, with their ids, as the cluster reports them: a node that cannot listen
 * must dial them before the leader can reach it. A recovered node also finds them in its log, so
 * for it this is best effort.
 */
async function listeningMembers(
  dial: DialStream,
  servers: string[],
  required: boolean,
  log: (line: string) => void,
): Promise<{ id: number; address: string }[]> {
  if (servers.length === 0) return [];
  try {
    const cluster = await connectCluster({ servers, dial, timeoutMs: required ? JOIN_TIMEOUT_MS_DEFAULT : 5_000 });
    try {
      return (await cluster.members()).filter((m) => m.address !== '').map((m) => ({ id: Number(m.id), address: m.address }));
    } finally {
      await cluster.close();
    }
  } catch (error) {
    if (required) throw error;
    log(`could not ask ${servers.join(', ')} for the members (${(error as Error).message}); using those in the log`);
    return [];
  }
}

export class BrowserNode {
  private readonly databases = new Map<string, Promise<Database>>();

  private constructor(
    readonly node: ClusterNode,
    readonly info: BrowserNodeInfo,
    private readonly options: BrowserNodeOptions,
    private readonly dial: DialStream,
    private readonly release: () => Promise<void>,
  ) {}

  /** `network`: where the node listens at `options.address`, when the worker's host gives it one. */
  static async start(options: BrowserNodeOptions, network?: ListeningNetwork): Promise<BrowserNode> {
    const log = options.log ?? ((line: string) => console.log(line));
    const address = options.address ?? '';
    if (address !== '' && !network) {
      throw new BrowserNodeError('NO_NETWORK', `a browser node cannot listen at "${address}": only a worker host with a network (worker-api.ts) gives it an address`);
    }
    const unlock = await lockName(options.name, options.lockWaitMs ?? NAME_LOCK_WAIT_MS_DEFAULT);
    let storage: (DurableStorage & { close(): Promise<void> }) | undefined;
    try {
      const opened = await openStorage(options);
      storage = opened.storage;
      return await BrowserNode.startOn(options, address, opened, network, log, unlock);
    } catch (error) {
      await storage?.close().catch(() => undefined);
      network?.close();
      unlock();
      throw error;
    }
  }

  private static async startOn(
    options: BrowserNodeOptions,
    address: string,
    { storage, kind }: { storage: DurableStorage & { close(): Promise<void> }; kind: 'opfs' | 'indexeddb' },
    network: ListeningNetwork | undefined,
    log: (line: string) => void,
    unlock: () => void,
  ): Promise<BrowserNode> {
    const plainRuntime = browserRuntime();
    const dialWebSocket = network ? network.dialWebSocket : options.secure ? withCertificateChoice(plainRuntime.dialWebSocket) : plainRuntime.dialWebSocket;
    const runtime = { ...plainRuntime, dialWebSocket };
    const scheme = options.secure ? 'wss' : 'ws';
    const dial = dialOverWebSocket(runtime.dialWebSocket, (to) => `${scheme}://${to}${CLIENT_WEBSOCKET_PATH}`);

    let identity = await readIdentity(storage, address, `browser node ${options.name}`);
    const fresh = !identity;
    const bootstrap = fresh && options.bootstrap === true;
    if (!identity) {
      if (options.join.length === 0 && !bootstrap) {
        throw new BrowserNodeError('NO_JOIN', 'a new browser node needs listening members to join (options.join): it cannot start a cluster alone');
      }
      identity = await createIdentity(storage, address, runtime.randomBytes);
    }
    const id = identity.id;
    const nodeLog = (line: string): void => log(`[browser node ${id}] ${line}`);
    // A node without an address must dial the members before the leader can reach it.
    const seedPeers = address === '' ? await listeningMembers(dial, options.join, fresh, log) : [];
    const node = await ClusterNode.start({
      id,
      address,
      seedPeers,
      runtime,
      storage,
      engine: await Engine.create({ fileBytesMax: LIMITS.databaseBytesMax }),
      clusterKey: options.clusterKey,
      secure: options.secure ?? false,
      bootstrap,
      ...(options.tickMs !== undefined && { tickMs: options.tickMs }),
      ...(options.commitTimeoutMs !== undefined && { commitTimeoutMs: options.commitTimeoutMs }),
      ...(options.walFramesMax !== undefined && { walFramesMax: options.walFramesMax }),
      ...(options.snapshotThresholdEntries !== undefined && { snapshotThresholdEntries: options.snapshotThresholdEntries }),
      ...(options.snapshotTrailingEntries !== undefined && { snapshotTrailingEntries: options.snapshotTrailingEntries }),
      ...(options.votersMax !== undefined && { votersMax: options.votersMax }),
      ...(options.limits && { limits: options.limits }),
      ...(options.leaderWithoutAddressHandOverMs !== undefined && { leaderWithoutAddressHandOverMs: options.leaderWithoutAddressHandOverMs }),
      log: nodeLog,
    });
    network?.onAccept(({ channel, path, headers }) => acceptWebSocket(node, channel, path, headers, { certificateVerified: true }));
    // A recovered node knows its peers from its log; a fresh one must be added by the leader.
    if (fresh && !bootstrap) {
      try {
        await joinCluster({
          dial,
          clock: runtime.clock,
          servers: options.join,
          id,
          address,
          votersMax: options.votersMax ?? NODE_DEFAULTS.votersMax,
          standbysMax: NODE_DEFAULTS.standbysMax,
          timeoutMs: JOIN_TIMEOUT_MS_DEFAULT,
          log: nodeLog,
        });
      } catch (error) {
        await node.stop().catch(() => undefined);
        throw error;
      }
    }
    const release = async (): Promise<void> => {
      network?.close();
      await storage.close();
      unlock();
    };
    return new BrowserNode(node, { id, storage: kind, fresh }, options, dial, release);
  }

  status(): NodeStatus {
    return this.node.status();
  }

  members(): Member[] {
    return this.node.members();
  }

  /** The listening members' addresses: where a client of this node's SQL API connects. */
  private servers(): string[] {
    const known = this.node.members().filter((m) => m.address !== '').map((m) => m.address);
    return [...new Set([...known, ...this.options.join])];
  }

  private database(name: string): Promise<Database> {
    let db = this.databases.get(name);
    if (!db) {
      db = connect({ servers: this.servers(), database: name, dial: this.dial, timeoutMs: 20_000 });
      this.databases.set(name, db);
      db.catch(() => this.databases.delete(name));
    }
    return db;
  }

  async exec(database: string, sql: string, params: readonly Param[] = []): Promise<ExecResult> {
    return (await this.database(database)).exec(sql, params);
  }

  async query(database: string, sql: string, params: readonly Param[] = []): Promise<QueryResult> {
    return (await this.database(database)).query(sql, params);
  }

  /**
   * A live query evaluated by this node on its own replica (docs/live-queries.md): `onResult` gets
   * the first result, then each new one; `onError` the error that ended it (bad SQL, a statement
   * that writes, a dropped table). Returns the unsubscribe.
   */
  live(
    database: string,
    sql: string,
    params: readonly Param[],
    options: ReadOptions,
    onResult: (result: LiveQueryResult) => void,
    onError: (message: string) => void,
  ): () => void {
    const level = { consistency: options.consistency ?? 'linearizable', bookmark: 0, maxStalenessMs: options.maxStalenessMs ?? STALENESS_DEFAULT_MS } as const;
    const typed = params.map((param) => toTypedValue(param));
    return this.node.live(database, sql, typed, level).onChange(
      (result) => onResult(toLiveQueryResult(result.columns, result.rows, result.index)),
      (error) => onError(error.message),
    );
  }

  /** This replica's database and WAL bytes, as the node holds them now (for comparisons). */
  files(database: string): { main: Uint8Array; wal: Uint8Array } | undefined {
    const db = this.node.existingDatabase(database);
    if (!db) return undefined;
    const { main, wal } = db.engine.snapshot();
    return { main, wal };
  }

  addMember(id: number, address: string): Promise<void> {
    return this.node.addMember(id, address);
  }

  assignRole(id: number, role: Role): Promise<void> {
    return this.node.assignRole(id, role);
  }

  removeMember(id: number): Promise<void> {
    return this.node.removeMember(id);
  }

  transferLeadership(to: number): Promise<void> {
    return this.node.transferLeadership(to);
  }

  async stop(options: { handOver?: boolean } = {}): Promise<void> {
    for (const db of this.databases.values()) void db.then((d) => d.close()).catch(() => undefined);
    this.databases.clear();
    await this.node.stop(options);
    await this.release();
  }
}

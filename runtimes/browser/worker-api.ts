/**
 * What a node's Web Worker serves the page through comlink: one cluster node per worker. The
 * package's worker (worker.ts) serves it as is; a custom worker entry may give the node a
 * network to listen on (`WorkerHost.network`), as the demo's in-page network does.
 */
import { expose } from 'comlink';
import type { ExecResult, LiveQueryResult, Param, QueryResult, ReadOptions } from '../../src/client/index.ts';
import type { Member, Role } from '../../src/raft/index.ts';
import type { NodeStatus } from '../../src/server/node.ts';
import { byteStreamFromPort } from './port-stream.ts';
import { BrowserNode, BrowserNodeError, type BrowserNodeInfo, type BrowserNodeOptions, type ListeningNetwork } from './browser-node.ts';

/** What the page may call. Values cross the worker boundary by structured clone. */
export interface WorkerNodeApi {
  /**
   * Starts (or recovers from storage) the node. `log` options are replaced by `onLog`;
   * `hostPort` goes to the worker host's `network` (a custom worker entry).
   */
  start(options: Omit<BrowserNodeOptions, 'log'>, onLog?: (line: string) => void, hostPort?: MessagePort): Promise<BrowserNodeInfo>;
  status(): NodeStatus;
  members(): Member[];
  exec(database: string, sql: string, params?: Param[]): Promise<ExecResult>;
  query(database: string, sql: string, params?: Param[]): Promise<QueryResult>;
  files(database: string): { main: Uint8Array; wal: Uint8Array } | undefined;
  /**
   * A live query on this node's own replica (docs/live-queries.md). `onResult` and `onError` must
   * be comlink proxies (the page's `WorkerNode.live` wraps them); returns the id `stopLive` takes.
   */
  live(
    database: string,
    sql: string,
    params: Param[] | undefined,
    options: ReadOptions | undefined,
    onResult: (result: LiveQueryResult) => void,
    onError: (message: string) => void,
  ): number;
  stopLive(id: number): void;
  addMember(id: number, address: string): Promise<void>;
  assignRole(id: number, role: Role): Promise<void>;
  removeMember(id: number): Promise<void>;
  transferLeadership(to: number): Promise<void>;
  stop(options?: { handOver?: boolean }): Promise<void>;
  /** Serves the dqlite protocol on `port` (a page's `Database`, see start-node.ts). */
  acceptClientPort(port: MessagePort): void;
  /** Settles when the node stops: rejects with the original error when it stopped itself. */
  whenClosed(): Promise<void>;
}

/** What a custom worker entry adds to the node's host. */
export interface WorkerHost {
  /** A network the node listens on at `options.address`, reached through the page's `hostPort`. */
  network?(hostPort: MessagePort, address: string): ListeningNetwork;
}

/** Serves one node to the page that started this worker. Call once, at the worker's top level. */
export function exposeWorkerNode(host: WorkerHost = {}): void {
  let running: BrowserNode | undefined;
  const lives = new Map<number, () => void>();
  let nextLiveId = 1;

  function node(): BrowserNode {
    if (!running) throw new BrowserNodeError('NOT_STARTED', 'the node is not started: call start() first');
    return running;
  }

  const api: WorkerNodeApi = {
    async start(options, onLog, hostPort) {
      if (running) return running.info;
      if (hostPort && !host.network) throw new BrowserNodeError('NO_NETWORK', 'this worker gives nodes no network: hostPort needs a custom worker entry (exposeWorkerNode({ network }))');
      const network = hostPort && host.network ? host.network(hostPort, options.address ?? '') : undefined;
      running = await BrowserNode.start({ ...options, log: (line) => (onLog ? void onLog(line) : console.log(line)) }, network);
      return running.info;
    },
    status: () => node().status(),
    members: () => node().members(),
    exec: (database, sql, params) => node().exec(database, sql, params ?? []),
    query: (database, sql, params) => node().query(database, sql, params ?? []),
    files: (database) => node().files(database),
    live: (database, sql, params, options, onResult, onError) => {
      const id = nextLiveId++;
      lives.set(id, node().live(database, sql, params ?? [], options ?? {}, onResult, onError));
      return id;
    },
    stopLive: (id) => {
      lives.get(id)?.();
      lives.delete(id);
    },
    addMember: (id, address) => node().addMember(id, address),
    assignRole: (id, role) => node().assignRole(id, role),
    removeMember: (id) => node().removeMember(id),
    transferLeadership: (to) => node().transferLeadership(to),
    acceptClientPort: (port) => node().node.acceptClient(byteStreamFromPort(port, 'page')),
    whenClosed: () => node().node.closed,
    async stop(options) {
      for (const stop of lives.values()) stop();
      lives.clear();
      const current = running;
      running = undefined;
      await current?.stop(options);
    },
  };

  expose(api);
}

/**
 * The Web Worker entry: one cluster node per worker, driven from the page through comlink.
 * Bundle it with `npm run build:browser` (dist/browser/worker.js, with sqlite3.wasm beside it)
 * and start it with `startWorkerNode` from ./page.ts.
 */
import { expose } from 'comlink';
import type { ExecResult, Param, QueryResult } from '../../src/client/index.ts';
import type { Member, Role } from '../../src/raft/index.ts';
import type { NodeStatus } from '../../src/server/node.ts';
import { byteStreamFromPort } from './port-stream.ts';
import { BrowserNode, BrowserNodeError, type BrowserNodeInfo, type BrowserNodeOptions } from './browser-node.ts';

/** What the page may call. Values cross the worker boundary by structured clone. */
export interface WorkerNodeApi {
  /** Starts (or recovers from storage) the node. `log` options are replaced by `onLog`. */
  start(options: Omit<BrowserNodeOptions, 'log'>, onLog?: (line: string) => void): Promise<BrowserNodeInfo>;
  status(): NodeStatus;
  members(): Member[];
  exec(database: string, sql: string, params?: Param[]): Promise<ExecResult>;
  query(database: string, sql: string, params?: Param[]): Promise<QueryResult>;
  files(database: string): { main: Uint8Array; wal: Uint8Array } | undefined;
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

let running: BrowserNode | undefined;

function node(): BrowserNode {
  if (!running) throw new BrowserNodeError('NOT_STARTED', 'the node is not started: call start() first');
  return running;
}

const api: WorkerNodeApi = {
  async start(options, onLog) {
    if (running) return running.info;
    running = await BrowserNode.start({ ...options, log: (line) => (onLog ? void onLog(line) : console.log(line)) });
    return running.info;
  },
  status: () => node().status(),
  members: () => node().members(),
  exec: (database, sql, params) => node().exec(database, sql, params ?? []),
  query: (database, sql, params) => node().query(database, sql, params ?? []),
  files: (database) => node().files(database),
  addMember: (id, address) => node().addMember(id, address),
  assignRole: (id, role) => node().assignRole(id, role),
  removeMember: (id) => node().removeMember(id),
  transferLeadership: (to) => node().transferLeadership(to),
  acceptClientPort: (port) => node().node.acceptClient(byteStreamFromPort(port, 'page')),
  whenClosed: () => node().node.closed,
  async stop(options) {
    const current = running;
    running = undefined;
    await current?.stop(options);
  },
};

expose(api);

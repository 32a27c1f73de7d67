/**
 * `startNode` in a browser page: the node runs in a Web Worker shipped in the package
 * (dist/browser/worker.js, with sqlite3.wasm beside it), with OPFS storage (IndexedDB where OPFS
 * is missing). `database(name)` is the client's `Database`: it reaches the worker's node over a
 * MessagePort and follows the leader over the `/dqlite` WebSocket, like any client.
 */
import { transfer } from 'comlink';
import { Database, type ConnectOptions } from '../../src/client/database.ts';
import type { DialStream } from '../../src/runtime.ts';
import type { NodeStatus } from '../../src/server/node-options.ts';
import type { BrowserNodeInfo, BrowserNodeOptions } from './browser-node.ts';
import { startWorkerNode, type WorkerNode } from './page.ts';
import { byteStreamFromPort } from './port-stream.ts';

/** The name the page's client gives the worker's node (a browser node has no address). */
const WORKER_SERVER = 'worker';

export interface BrowserStartNodeOptions extends Omit<BrowserNodeOptions, 'log'> {
  /**
   * Where the worker bundle is served. Default: next to this module in the package
   * (`new URL('../../browser/worker.js', import.meta.url)`), which Vite follows; with esbuild,
   * copy `dist/browser/worker.js` and `sqlite3.wasm` from the package and give their URL here.
   */
  workerUrl?: string | URL;
  /** The worker's name in the browser's developer tools. */
  workerName?: string;
  /**
   * A port for the worker host's network, with a custom `workerUrl` whose entry gives one
   * (`exposeWorkerNode({ network })`, worker-api.ts); then `address` names this node on it.
   */
  hostPort?: MessagePort;
  log?: (line: string) => void;
}

export type BrowserDatabaseOptions = Partial<Omit<ConnectOptions, 'database' | 'servers' | 'dial'>>;

/** Dispatched once on a `BrowserEmbeddedNode` whose node stopped itself to protect its data. */
export class BrowserNodeFatalEvent extends Event {
  constructor(readonly error: Error) {
    super('fatal');
  }
}

export class BrowserEmbeddedNode extends EventTarget {
  private readonly databases = new Set<Database>();
  private closing: Promise<void> | undefined;
  private settle!: () => void;
  /** Resolves once closed; rejects with the original error when the node stopped itself. */
  readonly closed: Promise<void>;

  /** `joinedThrough`: members to ask for the leader when the worker's node knows none (a spare). */
  constructor(
    private readonly worker: WorkerNode,
    private readonly remoteDial: DialStream,
    private readonly joinedThrough: readonly string[],
  ) {
    super();
    this.closed = new Promise<void>((resolve, reject) => {
      this.settle = resolve;
      worker.api.whenClosed().then(resolve, (error: unknown) => {
        const failure = error instanceof Error ? error : new Error(String(error));
        this.dispatchEvent(new BrowserNodeFatalEvent(failure));
        reject(failure);
      });
    });
    this.closed.catch(() => undefined);
  }

  get info(): BrowserNodeInfo {
    return this.worker.info;
  }

  get id(): number {
    return this.worker.info.id;
  }

  status(): Promise<NodeStatus> {
    return this.worker.api.status();
  }

  async database(name: string, options: BrowserDatabaseOptions = {}): Promise<Database> {
    if (this.closing) throw new Error(`the browser node ${this.id} is closed: start a new one to open ${name}`);
    const database = new Database({ ...options, database: name, servers: [WORKER_SERVER, ...this.joinedThrough], dial: this.dial });
    await database.ping();
    this.databases.add(database);
    return database;
  }

  /**
   * Ends the node's worker at once, as a crashed tab would: no hand-over, nothing beyond what the
   * node already synced. For fault drills; a later `startNode` with the same name recovers it.
   */
  kill(): void {
    if (this.closing) return;
    this.closing = Promise.resolve();
    for (const database of this.databases) void database.close().catch(() => undefined);
    this.databases.clear();
    this.worker.kill();
    this.settle();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      const open = [...this.databases];
      this.databases.clear();
      await Promise.all(open.map((database) => database.close().catch(() => undefined)));
      await this.worker.terminate();
      this.settle();
    })();
    return this.closing;
  }

  private readonly dial: DialStream = async (address, dialOptions) => {
    if (address !== WORKER_SERVER) return this.remoteDial(address, dialOptions);
    const channel = new MessageChannel();
    await this.worker.api.acceptClientPort(transfer(channel.port2, [channel.port2]));
    return byteStreamFromPort(channel.port1, WORKER_SERVER);
  };
}

export async function startBrowserNode(options: BrowserStartNodeOptions, remoteDial: DialStream): Promise<BrowserEmbeddedNode> {
  const { workerUrl, workerName, hostPort, log, ...nodeOptions } = options;
  const worker = await startWorkerNode(workerUrl ?? new URL('../../browser/worker.js', import.meta.url), nodeOptions, log, {
    ...(hostPort !== undefined && { hostPort }),
    ...(workerName !== undefined && { workerName }),
  });
  return new BrowserEmbeddedNode(worker, remoteDial, nodeOptions.join);
}

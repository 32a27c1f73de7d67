/**
 * Page side: starts a node in a module Web Worker and returns its API (comlink proxy).
 *
 *   const node = await startWorkerNode(new URL('./worker.js', import.meta.url), {
 *     name: 'tab-node', join: ['127.0.0.1:9001'], clusterKey: 'secret' });
 *   await node.api.exec('app', 'CREATE TABLE t (x)');
 */
import { proxy, releaseProxy, transfer, wrap, type Remote } from 'comlink';
import type { LiveQueryResult, Param, ReadOptions } from '../../src/client/index.ts';
import type { BrowserNodeInfo, BrowserNodeOptions } from './browser-node.ts';
import type { WorkerNodeApi } from './worker-api.ts';

export interface WorkerNode {
  api: Remote<WorkerNodeApi>;
  info: BrowserNodeInfo;
  /** Stops the node (handing leadership over if it leads) and ends the worker. */
  terminate(): Promise<void>;
  /** Ends the worker at once, without stopping the node: what a crashed tab does to it. */
  kill(): void;
  /**
   * A live query evaluated by the worker's node on its own replica (docs/live-queries.md):
   * `onResult` gets the first result, then each new one; `onError` what ended it. Resolves with
   * the unsubscribe.
   */
  live(
    database: string,
    sql: string,
    params: Param[],
    onResult: (result: LiveQueryResult) => void,
    onError?: (message: string) => void,
    options?: ReadOptions,
  ): Promise<() => void>;
}

/**
 * `hostPort`: handed to the worker host's network (a custom worker entry, see worker-api.ts).
 * `workerName`: the worker's name in the browser's developer tools.
 */
export async function startWorkerNode(
  workerUrl: URL | string,
  options: Omit<BrowserNodeOptions, 'log'>,
  onLog?: (line: string) => void,
  extra: { hostPort?: MessagePort; workerName?: string } = {},
): Promise<WorkerNode> {
  const worker = new Worker(workerUrl, { type: 'module', ...(extra.workerName !== undefined && { name: extra.workerName }) });
  const api = wrap<WorkerNodeApi>(worker);
  try {
    const log = onLog ? proxy(onLog) : undefined;
    const info = extra.hostPort ? await api.start(options, log, transfer(extra.hostPort, [extra.hostPort])) : await api.start(options, log);
    return {
      api,
      info,
      terminate: async () => {
        try {
          await api.stop({ handOver: true });
        } finally {
          worker.terminate();
        }
      },
      kill: () => {
        api[releaseProxy]();
        worker.terminate();
      },
      live: async (database, sql, params, onResult, onError = () => undefined, liveOptions = {}) => {
        const id = await api.live(database, sql, params, liveOptions, proxy(onResult), proxy(onError));
        return () => void api.stopLive(id);
      },
    };
  } catch (error) {
    worker.terminate();
    throw error;
  }
}

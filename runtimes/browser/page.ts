/**
 * Page side: starts a node in a module Web Worker and returns its API (comlink proxy).
 *
 *   const node = await startWorkerNode(new URL('./worker.js', import.meta.url), {
 *     name: 'tab-node', join: ['127.0.0.1:9001'], clusterKey: 'secret' });
 *   await node.api.exec('app', 'CREATE TABLE t (x)');
 */
import { proxy, wrap, type Remote } from 'comlink';
import type { BrowserNodeInfo, BrowserNodeOptions } from './browser-node.ts';
import type { WorkerNodeApi } from './worker.ts';

export interface WorkerNode {
  api: Remote<WorkerNodeApi>;
  info: BrowserNodeInfo;
  /** Stops the node (handing leadership over if it leads) and ends the worker. */
  terminate(): Promise<void>;
}

export async function startWorkerNode(
  workerUrl: URL | string,
  options: Omit<BrowserNodeOptions, 'log'>,
  onLog?: (line: string) => void,
): Promise<WorkerNode> {
  const worker = new Worker(workerUrl, { type: 'module' });
  const api = wrap<WorkerNodeApi>(worker);
  try {
    const info = await api.start(options, onLog ? proxy(onLog) : undefined);
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
    };
  } catch (error) {
    worker.terminate();
    throw error;
  }
}

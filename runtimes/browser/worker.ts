/**
 * The package's Web Worker entry: one cluster node per worker, driven from the page through
 * comlink. Bundled by `npm run build:browser` (dist/browser/worker.js, with sqlite3.wasm beside
 * it) and started by `startNode` (start-node.ts) or `startWorkerNode` (page.ts).
 */
import { exposeWorkerNode } from './worker-api.ts';

exposeWorkerNode();

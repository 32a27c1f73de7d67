/**
 * The demo's node worker: the package's node worker (runtimes/browser/worker-api.ts, what
 * `startNode` runs) with one host primitive added, the page's in-page network, so that nodes of
 * one tab can listen at `node-N` and dial each other through the page's broker.
 */
import { exposeWorkerNode } from '../runtimes/browser/worker-api.ts';
import { InPageEndpoint } from './in-page-network.ts';

exposeWorkerNode({ network: (hostPort, address) => new InPageEndpoint(hostPort, address) });

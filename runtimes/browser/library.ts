/**
 * The package's entry in a browser (the `browser` export condition): the client, with the
 * `/dqlite` WebSocket as its transport, since a page cannot open TCP. `servers` are "host:port"
 * (dialed as ws://host:port/dqlite, wss:// on an https page) or full ws:// / wss:// URLs.
 */
import {
  type Cluster,
  type ClusterOptions,
  type ConnectOptions,
  type Database,
  connect as connectWith,
  connectCluster as connectClusterWith,
  dialOverWebSocket,
} from '../../src/client/index.ts';
import type { DialStream } from '../../src/runtime.ts';
import { dialStandardWebSocket } from './websocket.ts';
import { startBrowserNode, type BrowserEmbeddedNode, type BrowserStartNodeOptions } from './start-node.ts';

export * from '../../src/client/index.ts';

function webSocketUrl(address: string): string {
  if (/^wss?:\/\//.test(address)) return address;
  const secure = typeof location !== 'undefined' && location.protocol === 'https:';
  return `${secure ? 'wss' : 'ws'}://${address}/dqlite`;
}

export const dialBrowserWebSocket: DialStream = dialOverWebSocket(dialStandardWebSocket, webSocketUrl);

export type BrowserConnectOptions = Omit<ConnectOptions, 'dial'> & Partial<Pick<ConnectOptions, 'dial'>>;
export type BrowserClusterOptions = Omit<ClusterOptions, 'dial'> & Partial<Pick<ClusterOptions, 'dial'>>;

export function connect(options: BrowserConnectOptions): Promise<Database> {
  return connectWith({ ...options, dial: options.dial ?? dialBrowserWebSocket });
}

export function connectCluster(options: BrowserClusterOptions): Promise<Cluster> {
  return connectClusterWith({ ...options, dial: options.dial ?? dialBrowserWebSocket });
}

export { eraseBrowserNode } from './node-storage-name.ts';
export { BrowserEmbeddedNode, BrowserNodeFatalEvent, type BrowserDatabaseOptions, type BrowserStartNodeOptions } from './start-node.ts';

/** Starts a node in a Web Worker of this page; see docs/embedding.md. */
export function startNode(options: BrowserStartNodeOptions): Promise<BrowserEmbeddedNode> {
  return startBrowserNode(options, dialBrowserWebSocket);
}

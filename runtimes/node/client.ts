/** The Node (and Deno) entry of the client: `connect` with TCP as the default transport. */
import {
  type Cluster,
  type ConnectOptions,
  type ClusterOptions,
  type Database,
  connect as connectWith,
  connectCluster as connectClusterWith,
} from '../../src/client/index.ts';
import { dialTcp } from './tcp.ts';

export * from '../../src/client/index.ts';
export { dialTcp } from './tcp.ts';
/** A Node WebSocket dialer that sends upgrade headers (the cluster key), for `dialOverWebSocket`. */
export { dialWebSocket } from './websocket.ts';

export type NodeConnectOptions = Omit<ConnectOptions, 'dial'> & Partial<Pick<ConnectOptions, 'dial'>>;
export type NodeClusterOptions = Omit<ClusterOptions, 'dial'> & Partial<Pick<ClusterOptions, 'dial'>>;

export function connect(options: NodeConnectOptions): Promise<Database> {
  return connectWith({ ...options, dial: options.dial ?? dialTcp });
}

export function connectCluster(options: NodeClusterOptions): Promise<Cluster> {
  return connectClusterWith({ ...options, dial: options.dial ?? dialTcp });
}

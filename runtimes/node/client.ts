/** The Node (and Deno) entry of the client: `connect` with TCP as the default transport. */
import {
  type Cluster,
  type ConnectOptions,
  type ClusterOptions,
  type Database,
  connect as connectWith,
  connectCluster as connectClusterWith,
} from '../../src/client/index.ts';
import type { DialStream } from '../../src/runtime.ts';
import { dialTcp, tlsStreamDialer } from './tcp.ts';
import { resolveTlsSettings, type TlsOptionsPem } from './tls.ts';

export * from '../../src/client/index.ts';
export { dialTcp, tlsStreamDialer } from './tcp.ts';
/** A Node WebSocket dialer that sends upgrade headers (the cluster key), for `dialOverWebSocket`. */
export { dialWebSocket } from './websocket.ts';
export { resolveTlsSettings, TlsSetupError, type TlsOptionsPem, type TlsSettings } from './tls.ts';

interface TlsOption {
  /**
   * Mutual TLS (PEM text), as a node started with `--tls-*` requires: our certificate and key,
   * and the CA to verify nodes with (default: the certificates in `cert`, go-dqlite's setup).
   */
  tls?: TlsOptionsPem;
}

export type NodeConnectOptions = Omit<ConnectOptions, 'dial'> & Partial<Pick<ConnectOptions, 'dial'>> & TlsOption;
export type NodeClusterOptions = Omit<ClusterOptions, 'dial'> & Partial<Pick<ClusterOptions, 'dial'>> & TlsOption;

function dialerFor(options: { dial?: DialStream } & TlsOption): DialStream {
  if (options.dial) return options.dial;
  return options.tls ? tlsStreamDialer(resolveTlsSettings(options.tls)) : dialTcp;
}

export function connect(options: NodeConnectOptions): Promise<Database> {
  const { tls: _tls, ...rest } = options;
  return connectWith({ ...rest, dial: dialerFor(options) });
}

export function connectCluster(options: NodeClusterOptions): Promise<Cluster> {
  const { tls: _tls, ...rest } = options;
  return connectClusterWith({ ...rest, dial: dialerFor(options) });
}

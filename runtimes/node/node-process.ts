/**
 * A cluster member on Node.js: the Node primitives (files, lock, the one-port listener with
 * optional mutual TLS, TCP and WebSocket dialing, clock, randomness) given to the host-neutral
 * start-up in `src/server/startup.ts`. Library code: it never exits the process. A node that
 * stops itself releases its port and directory, then rejects `closed` with the original error
 * (and calls `onFatal`); the command line (bin/) decides to exit.
 */
import { mkdir } from 'node:fs/promises';
import { CLIENT_WEBSOCKET_PATH } from '../../src/server/host.ts';
import { startMember, type MemberHost, type MemberOptions, type RunningMember } from '../../src/server/startup.ts';
import { lockDirectory } from './directory-lock.ts';
import { listen, type Listener } from './listener.ts';
import { openDirectoryStorage } from './storage.ts';
import { writeSecretFile } from './secret-file.ts';
import { dialTcp, tlsStreamDialer } from './tcp.ts';
import { tlsErrorLog } from './throttled-log.ts';
import { resolveTlsSettings, type TlsOptionsPem } from './tls.ts';
import { webSocketDialer } from './websocket.ts';
import { nodeRuntime } from './index.ts';

export interface NodeTlsOptions {
  /**
   * Mutual TLS for everything the node serves and dials (PEM text): dqlite over TCP, `wss://`
   * peers and browser clients, HTTPS. Every client and peer must present a certificate of `ca`.
   */
  tls?: TlsOptionsPem;
  /**
   * With `tls`: browsers without a client certificate may open WebSockets (peers on `/raft`
   * still prove the cluster key); raw dqlite and plain HTTP still need a certificate.
   */
  tlsWebSocketsWithoutCertificate?: boolean;
}

export type NodeProcessOptions = MemberOptions & NodeTlsOptions;

export interface RunningNode extends RunningMember {
  listener: Listener;
}

export { CLIENT_WEBSOCKET_PATH };

export interface NodeMemberHostOptions extends NodeTlsOptions {
  /** Learns the listener the member serves on. */
  onListener?: (listener: Listener) => void;
  /** Where TLS handshake failures are reported (throttled). */
  log?: (line: string) => void;
}

/** The primitives of a Node.js host. */
export function nodeMemberHost(options: NodeMemberHostOptions = {}): MemberHost {
  const tls = options.tls ? resolveTlsSettings(options.tls) : undefined;
  const webSocketsWithoutCertificate = options.tlsWebSocketsWithoutCertificate ?? false;
  const dialStream = tls ? tlsStreamDialer(tls) : dialTcp;
  const runtime = { ...nodeRuntime(), dialStream, dialWebSocket: webSocketDialer(tls) };
  const log = options.log ?? ((line: string) => console.log(line));
  return {
    runtime,
    makeDirectory: async (dir) => {
      await mkdir(dir, { recursive: true });
    },
    lockDirectory,
    openStorage: openDirectoryStorage,
    writeSecret: writeSecretFile,
    ...(tls && { tls: { subject: tls.subject, webSocketsWithoutCertificate } }),
    listen: async (where, handlers) => {
      const listener = await listen({
        host: where.host,
        port: where.port,
        // Peers' messages arrive as WebSocket messages: the largest one must get through.
        webSocketMessageBytesMax: where.webSocketMessageBytesMax,
        onStream: handlers.onStream,
        checkUpgrade: handlers.checkUpgrade,
        onWebSocket: handlers.onWebSocket,
        onHttp: handlers.onHttp,
        ...(tls && { tls, tlsWebSocketsWithoutCertificate: webSocketsWithoutCertificate, onTlsError: tlsErrorLog(log) }),
      });
      options.onListener?.(listener);
      return listener;
    },
  };
}

export async function startNodeProcess(options: NodeProcessOptions): Promise<RunningNode> {
  const { tls, tlsWebSocketsWithoutCertificate, ...member } = options;
  let bound: Listener | undefined;
  const host = nodeMemberHost({
    ...(tls && { tls }),
    ...(tlsWebSocketsWithoutCertificate !== undefined && { tlsWebSocketsWithoutCertificate }),
    ...(options.log && { log: options.log }),
    onListener: (listener) => (bound = listener),
  });
  const running = await startMember(member, host);
  if (!bound) throw new Error('the member started without a listener');
  return { ...running, listener: bound };
}

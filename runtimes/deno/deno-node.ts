/**
 * A cluster member in a Deno process: Deno's file APIs and lock, and either the one-port
 * listener (raw dqlite TCP + WebSocket + HTTP, via Deno's Node compatibility) or, for hosts that
 * offer only HTTP, a `Deno.serve` listener with WebSockets only. The start-up itself is
 * `src/server/startup.ts`, the same as on Node.
 */
import { dialOverWebSocket } from '../../src/client/message-stream.ts';
import type { DialStream } from '../../src/runtime.ts';
import { CLIENT_WEBSOCKET_PATH } from '../../src/server/host.ts';
import { startMember, type MemberHost, type MemberOptions, type RunningMember } from '../../src/server/startup.ts';
import { listen } from '../node/listener.ts';
import { dialTcp, tlsStreamDialer } from '../node/tcp.ts';
import { tlsErrorLog } from '../node/throttled-log.ts';
import { resolveTlsSettings, type TlsOptionsPem } from '../node/tls.ts';
import { webSocketDialer } from '../node/websocket.ts';
import { dialStandardWebSocket } from '../browser/websocket.ts';
import { lockDenoDirectory } from './directory-lock.ts';
import { denoRuntime } from './runtime.ts';
import { openDenoDirectoryStorage } from './storage.ts';
import { listenWebSocketOnly } from './websocket-only-listener.ts';

export { CLIENT_WEBSOCKET_PATH };

export interface DenoNodeOptions extends MemberOptions {
  /** Serve WebSockets and HTTP only (no raw dqlite TCP); dial peers' dqlite port over WebSocket too. */
  webSocketOnly?: boolean;
  /**
   * Mutual TLS (PEM text) for everything the node serves and dials, as on Node: through Deno's
   * Node compatibility (`node:tls`, `ws`), because Deno's own WebSocket cannot present a client
   * certificate. Not with `webSocketOnly` (there the host in front terminates TLS).
   */
  tls?: TlsOptionsPem;
  /** With `tls`: browsers without a client certificate may open WebSockets (see the Node listener). */
  tlsWebSocketsWithoutCertificate?: boolean;
}

export type RunningDenoNode = RunningMember;

async function writeDenoSecret(directory: string, name: string, bytes: Uint8Array): Promise<void> {
  const target = `${directory}/${name}`;
  const temp = `${directory}/.tmp-secret-${Deno.pid}-${name}`;
  try {
    const file = await Deno.open(temp, { write: true, create: true, truncate: true, mode: 0o600 });
    try {
      // The creation mode is filtered by the umask; the key must never be readable by others.
      await Deno.chmod(temp, 0o600);
      let offset = 0;
      while (offset < bytes.length) offset += await file.write(bytes.subarray(offset));
      await file.syncData();
    } finally {
      file.close();
    }
    await Deno.rename(temp, target);
    const dir = await Deno.open(directory, { read: true });
    try {
      await dir.sync();
    } finally {
      dir.close();
    }
  } catch (error) {
    await Deno.remove(temp).catch(() => undefined);
    throw new Error(`writing ${target} failed: ${(error as Error).message}`, { cause: error });
  }
}

export interface DenoMemberHostOptions {
  webSocketOnly?: boolean;
  tls?: TlsOptionsPem;
  tlsWebSocketsWithoutCertificate?: boolean;
  /** Where TLS handshake failures are reported (throttled). */
  log?: (line: string) => void;
}

export function denoMemberHost(options: DenoMemberHostOptions = {}): MemberHost {
  if (options.tls && options.webSocketOnly) {
    throw new Error('--tls-* and --websocket-only do not go together: with --websocket-only the host in front of the node terminates TLS');
  }
  const tls = options.tls ? resolveTlsSettings(options.tls) : undefined;
  const webSocketsWithoutCertificate = options.tlsWebSocketsWithoutCertificate ?? false;
  const log = options.log ?? ((line: string) => console.log(line));
  const dialStream: DialStream = options.webSocketOnly
    ? dialOverWebSocket(dialStandardWebSocket, (address) => `ws://${address}${CLIENT_WEBSOCKET_PATH}`)
    : tls
      ? tlsStreamDialer(tls)
      : dialTcp;
  return {
    label: options.webSocketOnly ? 'deno node (WebSocket only)' : 'deno node',
    runtime: { ...denoRuntime(), dialStream, ...(tls && { dialWebSocket: webSocketDialer(tls) }) },
    ...(tls && { tls: { subject: tls.subject, webSocketsWithoutCertificate } }),
    makeDirectory: (dir) => Deno.mkdir(dir, { recursive: true }),
    lockDirectory: lockDenoDirectory,
    openStorage: openDenoDirectoryStorage,
    writeSecret: writeDenoSecret,
    // The web WebSocket sends no upgrade headers: a Deno member joins as it dials its peers,
    // unauthenticated through the members' --admin-allow (loopback by default), or with TLS
    // over a verified raw stream, which authenticates it as the cluster key does.
    joinDial: () => dialStream,
    listen: (where, handlers) =>
      options.webSocketOnly
        ? listenWebSocketOnly({
            host: where.host,
            port: where.port,
            webSocketMessageBytesMax: where.webSocketMessageBytesMax,
            checkUpgrade: handlers.checkUpgrade,
            onWebSocket: handlers.onWebSocket,
            onHttp: handlers.onHttp,
          })
        : listen({
            ...(tls && { tls, tlsWebSocketsWithoutCertificate: webSocketsWithoutCertificate, onTlsError: tlsErrorLog(log) }),
            host: where.host,
            port: where.port,
            webSocketMessageBytesMax: where.webSocketMessageBytesMax,
            onStream: handlers.onStream,
            checkUpgrade: handlers.checkUpgrade,
            onWebSocket: handlers.onWebSocket,
            onHttp: handlers.onHttp,
          }),
  };
}

export async function startDenoNode(options: DenoNodeOptions): Promise<RunningDenoNode> {
  const { webSocketOnly, tls, tlsWebSocketsWithoutCertificate, ...member } = options;
  return startMember(
    member,
    denoMemberHost({
      ...(webSocketOnly !== undefined && { webSocketOnly }),
      ...(tls && { tls }),
      ...(tlsWebSocketsWithoutCertificate !== undefined && { tlsWebSocketsWithoutCertificate }),
      ...(options.log && { log: options.log }),
    }),
  );
}

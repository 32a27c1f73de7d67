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
import { dialTcp } from '../node/tcp.ts';
import { dialStandardWebSocket } from '../browser/websocket.ts';
import { lockDenoDirectory } from './directory-lock.ts';
import { denoRuntime } from './runtime.ts';
import { openDenoDirectoryStorage } from './storage.ts';
import { listenWebSocketOnly } from './websocket-only-listener.ts';

export { CLIENT_WEBSOCKET_PATH };

export interface DenoNodeOptions extends MemberOptions {
  /** Serve WebSockets and HTTP only (no raw dqlite TCP); dial peers' dqlite port over WebSocket too. */
  webSocketOnly?: boolean;
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

export function denoMemberHost(options: { webSocketOnly?: boolean } = {}): MemberHost {
  const dialStream: DialStream = options.webSocketOnly
    ? dialOverWebSocket(dialStandardWebSocket, (address) => `ws://${address}${CLIENT_WEBSOCKET_PATH}`)
    : dialTcp;
  return {
    label: options.webSocketOnly ? 'deno node (WebSocket only)' : 'deno node',
    runtime: { ...denoRuntime(), dialStream },
    makeDirectory: (dir) => Deno.mkdir(dir, { recursive: true }),
    lockDirectory: lockDenoDirectory,
    openStorage: openDenoDirectoryStorage,
    writeSecret: writeDenoSecret,
    // The web WebSocket sends no upgrade headers: a Deno member joins unauthenticated, through
    // the members' --admin-allow (loopback by default), as it dials its peers.
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

export function startDenoNode(options: DenoNodeOptions): Promise<RunningDenoNode> {
  const { webSocketOnly, ...member } = options;
  return startMember(member, denoMemberHost({ ...(webSocketOnly !== undefined && { webSocketOnly }) }));
}

/**
 * A cluster member on Node.js: the Node primitives (files, lock, the one-port listener, TCP and
 * WebSocket dialing, clock, randomness) given to the host-neutral start-up in
 * `src/server/startup.ts`. Library code: it never exits the process. A node that stops itself
 * releases its port and directory, then rejects `closed` with the original error (and calls
 * `onFatal`); the command line (bin/) decides to exit.
 */
import { mkdir } from 'node:fs/promises';
import { CLIENT_WEBSOCKET_PATH } from '../../src/server/host.ts';
import { startMember, type MemberHost, type MemberOptions, type RunningMember } from '../../src/server/startup.ts';
import { lockDirectory } from './directory-lock.ts';
import { listen, type Listener } from './listener.ts';
import { openDirectoryStorage } from './storage.ts';
import { writeSecretFile } from './secret-file.ts';
import { dialTcp } from './tcp.ts';
import { nodeRuntime } from './index.ts';

export type NodeProcessOptions = MemberOptions;

export interface RunningNode extends RunningMember {
  listener: Listener;
}

export { CLIENT_WEBSOCKET_PATH };

/** The primitives of a Node.js host; `onListener` learns the listener the member serves on. */
export function nodeMemberHost(onListener?: (listener: Listener) => void): MemberHost {
  return {
    runtime: { ...nodeRuntime(), dialStream: dialTcp },
    makeDirectory: async (dir) => {
      await mkdir(dir, { recursive: true });
    },
    lockDirectory,
    openStorage: openDirectoryStorage,
    writeSecret: writeSecretFile,
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
      });
      onListener?.(listener);
      return listener;
    },
  };
}

export async function startNodeProcess(options: NodeProcessOptions): Promise<RunningNode> {
  let bound: Listener | undefined;
  const member = await startMember(options, nodeMemberHost((listener) => (bound = listener)));
  if (!bound) throw new Error('the member started without a listener');
  return { ...member, listener: bound };
}

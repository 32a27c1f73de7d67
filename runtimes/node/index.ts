import type { Runtime } from '../../src/runtime.ts';
import { nodeClock } from './clock.ts';
import { randomBytes } from './random.ts';
import { dialWebSocket } from './websocket.ts';
import { dialTcp } from './tcp.ts';
import { collectGarbage } from './garbage.ts';

export { nodeClock } from './clock.ts';
export { randomBytes, RANDOM_BYTES_MAX } from './random.ts';
export { dialWebSocket, webSocketDialer, messageChannelFromWebSocket, WebSocketDialError, DIAL_MESSAGE_BYTES_MAX } from './websocket.ts';
export { byteStreamFromSocket } from './socket-stream.ts';
export { dialTcp, tlsStreamDialer, parseAddress } from './tcp.ts';
export {
  resolveTlsSettings,
  serverTlsOptions,
  clientTlsOptions,
  TlsSetupError,
  TLS_MIN_VERSION,
  type TlsOptionsPem,
  type TlsSettings,
} from './tls.ts';
export {
  listen,
  WEBSOCKET_MESSAGE_BYTES_MAX_DEFAULT,
  type ListenOptions,
  type Listener,
  type UpgradeRequest,
  type UpgradeRejection,
  type HttpRequest,
  type HttpResponse,
  type RequestHeaders,
  type ConnectionInfo,
} from './listener.ts';
export {
  NodeDirectoryStorage,
  openDirectoryStorage,
  StorageError,
  STORAGE_NAME_BYTES_MAX,
  LOCK_FILE_NAME,
  type StorageErrorCode,
} from './storage.ts';
export { lockDirectory, DirectoryLockError, type DirectoryLock, type DirectoryLockErrorCode } from './directory-lock.ts';

/** The host interface on Node.js. */
export function nodeRuntime(): Runtime {
  return {
    name: 'node',
    clock: nodeClock,
    randomBytes,
    dialStream: dialTcp,
    dialWebSocket,
    collectGarbage,
  };
}

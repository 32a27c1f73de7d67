/** The browser runtime: a node in a Web Worker, OPFS/IndexedDB storage, standard WebSockets. */
export { startWorkerNode, type WorkerNode } from './page.ts';
export { exposeWorkerNode, type WorkerHost, type WorkerNodeApi } from './worker-api.ts';
export { BrowserNode, BrowserNodeError, type BrowserNodeInfo, type BrowserNodeOptions, type ListeningNetwork } from './browser-node.ts';
export { browserNodeStorageName, eraseBrowserNode } from './node-storage-name.ts';
export { OpfsStorage, OpfsStorageError, opfsAvailable, removeOpfsDirectory, OPFS_LOCK_WAIT_MS_DEFAULT, OPFS_NAME_BYTES_MAX } from './opfs-storage.ts';
export { IndexedDbStorage, IndexedDbStorageError, INDEXEDDB_UNSYNCED_BYTES_MAX } from './indexeddb-storage.ts';
export { browserRuntime, webClock, webRandomBytes, BROWSER_RANDOM_BYTES_MAX } from './runtime.ts';
export {
  dialStandardWebSocket,
  messageChannelFromStandardWebSocket,
  StandardWebSocketDialError,
  STANDARD_WEBSOCKET_MESSAGE_BYTES_MAX,
} from './websocket.ts';

/**
 * Where a browser node named `name` keeps its state: the OPFS directory or IndexedDB database
 * of that name, and the Web Lock that keeps a second tab off it. No engine here, so that a page
 * can erase a node's storage without loading SQLite.
 */
import { OpfsStorageError, opfsAvailable, removeOpfsDirectory } from './opfs-storage.ts';

const STORAGE_PREFIX = 'dqlite-wasm-';

export function browserNodeStorageName(name: string): string {
  return STORAGE_PREFIX + name;
}

/**
 * Erases the stored state of the browser node `name` (both OPFS and IndexedDB), for a node that
 * no longer runs: the next start with that name is a new node. Waits up to `lockWaitMs` for a
 * terminated worker to release its files.
 */
export async function eraseBrowserNode(name: string, options: { lockWaitMs?: number } = {}): Promise<void> {
  const storageName = browserNodeStorageName(name);
  const root = (globalThis.navigator as { storage?: { getDirectory?: unknown } } | undefined)?.storage;
  // A page has OPFS's directory API even where only workers have sync access handles.
  if (typeof root?.getDirectory === 'function' || opfsAvailable()) await removeOpfsDirectory(storageName, options);
  if (typeof indexedDB !== 'undefined') {
    await new Promise<void>((resolve, reject) => {
      const request = indexedDB.deleteDatabase(storageName);
      request.onsuccess = () => resolve();
      request.onerror = () => reject(new OpfsStorageError('IO', `delete IndexedDB ${storageName}: ${request.error?.message ?? 'unknown error'}`));
      // Another connection (a node still running) keeps it open: say so instead of waiting forever.
      request.onblocked = () => reject(new OpfsStorageError('LOCKED', `IndexedDB ${storageName} is open elsewhere: stop the node "${name}" first`));
    });
  }
}

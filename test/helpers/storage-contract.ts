/**
 * The DurableStorage checks every host's storage goes through (Deno's directory storage in
 * test/deno/storage-check.js, OPFS and IndexedDB in test/browser/storage-check-worker.ts): each
 * records what it observed in `result`, under the names the tests expect.
 */
import type { DurableStorage } from '../../src/runtime.ts';

export const text = (bytes: Uint8Array | undefined): string | null => (bytes ? new TextDecoder().decode(bytes) : null);
export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Read of a missing file, append and sync, truncate, replace, list, remove (twice: harmless). */
export async function checkFiles(storage: DurableStorage, result: Record<string, unknown>): Promise<void> {
  result['missing'] = text(await storage.read('nothing'));
  await storage.append('seg', enc('abc'));
  await storage.append('seg', enc('def'));
  await storage.sync('seg');
  result['appended'] = text(await storage.read('seg'));
  await storage.truncate('seg', 4);
  await storage.append('seg', enc('XY'));
  await storage.sync('seg');
  result['truncated'] = text(await storage.read('seg'));
  await storage.writeAtomic('meta', enc('one'));
  await storage.writeAtomic('meta', enc('two'));
  result['replaced'] = text(await storage.read('meta'));
  result['listed'] = await storage.list();
  await storage.remove('meta');
  await storage.remove('meta');
  result['afterRemove'] = await storage.list();
}

/**
 * A file written a piece at a time (one buffer reused) and patched where written replaces its
 * name on commit only; an aborted writer changes nothing. `whileOpen` runs before the commit.
 */
export async function checkAtomicWriter(storage: DurableStorage, result: Record<string, unknown>, whileOpen?: () => Promise<void>): Promise<void> {
  await storage.writeAtomic('big', enc('old'));
  const writer = await storage.openAtomicWriter!('big');
  const piece = new Uint8Array(3);
  piece.set(enc('abc'));
  await writer.write(piece);
  piece.set(enc('def'));
  await writer.write(piece);
  await writer.writeAt(2, enc('CD'));
  result['beforeCommit'] = text(await storage.read('big'));
  await whileOpen?.();
  await writer.commit();
  result['committed'] = text(await storage.read('big'));
  const aborted = await storage.openAtomicWriter!('big');
  await aborted.write(enc('zzz'));
  await aborted.abort();
  result['afterAbort'] = text(await storage.read('big'));
}

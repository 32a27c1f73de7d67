/**
 * Bundled and run in a Chromium module worker by storage.test.ts: the OPFS and IndexedDB
 * storages through the same checks, plus the crash-recovery path of OPFS's replace. Posts one
 * object with what it observed.
 */
import type { DurableStorage } from '../../src/runtime.ts';
import { IndexedDbStorage } from '../../runtimes/browser/indexeddb-storage.ts';
import { OpfsStorage } from '../../runtimes/browser/opfs-storage.ts';

const text = (bytes: Uint8Array | undefined): string | null => (bytes ? new TextDecoder().decode(bytes) : null);
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

async function check(open: () => Promise<DurableStorage & { close(): Promise<void> }>): Promise<Record<string, unknown>> {
  const result: Record<string, unknown> = {};
  const storage = await open();
  result.missing = text(await storage.read('nothing'));
  await storage.append('seg', enc('abc'));
  await storage.append('seg', enc('def'));
  await storage.sync('seg');
  result.appended = text(await storage.read('seg'));
  await storage.truncate('seg', 4);
  await storage.append('seg', enc('XY'));
  await storage.sync('seg');
  result.truncated = text(await storage.read('seg'));
  await storage.writeAtomic('meta', enc('one'));
  await storage.writeAtomic('meta', enc('two'));
  result.replaced = text(await storage.read('meta'));
  result.listed = await storage.list();
  await storage.remove('meta');
  await storage.remove('meta');
  result.afterRemove = await storage.list();
  // A file written a piece at a time (one buffer reused) replaces its name on commit only.
  await storage.writeAtomic('big', enc('old'));
  const writer = await storage.openAtomicWriter!('big');
  const piece = new Uint8Array(3);
  piece.set(enc('abc'));
  await writer.write(piece);
  piece.set(enc('def'));
  await writer.write(piece);
  await writer.writeAt(2, enc('CD'));
  result.beforeCommit = text(await storage.read('big'));
  result.listedWhileWriting = await storage.list();
  try {
    await storage.writeAtomic('big', enc('x'));
    result.replaceWhileWriting = 'accepted';
  } catch {
    result.replaceWhileWriting = 'rejected';
  }
  await writer.commit();
  result.committed = text(await storage.read('big'));
  const aborted = await storage.openAtomicWriter!('big');
  await aborted.write(enc('zzz'));
  await aborted.abort();
  result.afterAbort = text(await storage.read('big'));
  await storage.remove('big');
  await storage.writeAtomic('snap', enc('0123456789'));
  const reader = await storage.openReader!('snap');
  result.rangeSize = reader?.sizeBytes;
  result.range = text(await reader!.read(2, 5));
  result.rangePastEnd = text(await reader!.read(8, 5));
  result.rangeMissing = (await storage.openReader!('nothing')) === undefined;
  await storage.writeAtomic('snap', enc('new'));
  try {
    result.rangeAfterReplace = text(await reader!.read(0, 3));
  } catch {
    result.rangeAfterReplace = 'rejected';
  }
  await reader!.close();
  await storage.remove('snap');
  try {
    await storage.append('../escape', enc('x'));
    result.badName = 'accepted';
  } catch (error) {
    result.badName = (error as { code?: string }).code;
  }
  await storage.close();
  const reopened = await open();
  result.reopened = text(await reopened.read('seg'));
  await reopened.close();
  return result;
}

/** A replace interrupted after the old file was removed leaves only `.done-NAME`: it must win. */
async function interruptedReplace(): Promise<Record<string, unknown>> {
  const root = await navigator.storage.getDirectory();
  const dir = await root.getDirectoryHandle('dqlite-wasm-crash', { create: true });
  const done = await dir.getFileHandle('.done-meta', { create: true });
  const writable = await done.createWritable();
  await writable.write('complete');
  await writable.close();
  const partial = await dir.getFileHandle('.tmp-other', { create: true });
  const w2 = await partial.createWritable();
  await w2.write('torn');
  await w2.close();
  const storage = await OpfsStorage.open('dqlite-wasm-crash');
  const result = { listed: await storage.list(), meta: text(await storage.read('meta')), other: text(await storage.read('other')) };
  await storage.close();
  return result;
}

const report = {
  opfs: await check(() => OpfsStorage.open('dqlite-wasm-check')),
  indexeddb: await check(() => IndexedDbStorage.open('dqlite-wasm-check')),
  crash: await interruptedReplace(),
};
postMessage(report);

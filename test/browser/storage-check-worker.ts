/**
 * Bundled and run in a Chromium module worker by storage.test.ts: the OPFS and IndexedDB
 * storages through the same checks, plus the crash-recovery path of OPFS's replace. Posts one
 * object with what it observed.
 */
import type { DurableStorage } from '../../src/runtime.ts';
import { IndexedDbStorage } from '../../runtimes/browser/indexeddb-storage.ts';
import { OpfsStorage } from '../../runtimes/browser/opfs-storage.ts';
import { checkAtomicWriter, checkFiles, enc, text } from '../helpers/storage-contract.ts';


async function check(open: () => Promise<DurableStorage & { close(): Promise<void> }>): Promise<Record<string, unknown>> {
  const result: Record<string, unknown> = {};
  const storage = await open();
  await checkFiles(storage, result);
  await checkAtomicWriter(storage, result, async () => {
    result.listedWhileWriting = await storage.list();
    try {
      await storage.writeAtomic('big', enc('x'));
      result.replaceWhileWriting = 'accepted';
    } catch {
      result.replaceWhileWriting = 'rejected';
    }
  });
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

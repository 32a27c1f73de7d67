// Run by deno-node.test.ts under Deno: DenoDirectoryStorage and the directory lock against a
// real directory. Prints one JSON line with what it observed. Plain JavaScript so that the
// project's tsc (which has no Deno types) leaves it alone; Deno runs it with the .ts imports.
import { DenoDirectoryStorage, openDenoDirectoryStorage } from '../../runtimes/deno/storage.ts';
import { lockDenoDirectory } from '../../runtimes/deno/directory-lock.ts';

const dir = Deno.args[0];
const text = (bytes) => (bytes ? new TextDecoder().decode(bytes) : null);
const enc = (s) => new TextEncoder().encode(s);
const result = {};

const lock = await lockDenoDirectory(dir);
try {
  await lockDenoDirectory(dir);
  result.secondLock = 'taken';
} catch (error) {
  result.secondLock = error.code;
}
const storage = await openDenoDirectoryStorage(dir);
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
// A file written a piece at a time (one buffer reused), patched where written, replaces its name on commit only.
await storage.writeAtomic('big', enc('old'));
const writer = await storage.openAtomicWriter('big');
const piece = new Uint8Array(3);
piece.set(enc('abc'));
await writer.write(piece);
piece.set(enc('def'));
await writer.write(piece);
await writer.writeAt(2, enc('CD'));
result.beforeCommit = text(await storage.read('big'));
await writer.commit();
result.committed = text(await storage.read('big'));
const aborted = await storage.openAtomicWriter('big');
await aborted.write(enc('zzz'));
await aborted.abort();
result.afterAbort = text(await storage.read('big'));
result.temporaries = [...Deno.readDirSync(dir)].filter((entry) => entry.name.startsWith('.tmp-')).length;
await storage.remove('big');
try {
  await storage.append('../escape', enc('x'));
  result.badName = 'accepted';
} catch (error) {
  result.badName = error.code;
}
await storage.close();
const reopened = new DenoDirectoryStorage(dir);
result.reopened = text(await reopened.read('seg'));
await reopened.close();
await lock.release();
const again = await lockDenoDirectory(dir);
await again.release();
result.relocked = true;
console.log(JSON.stringify(result));

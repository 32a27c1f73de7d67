// Run by deno-node.test.ts under Deno: DenoDirectoryStorage and the directory lock against a
// real directory. Prints one JSON line with what it observed. Plain JavaScript so that the
// project's tsc (which has no Deno types) leaves it alone; Deno runs it with the .ts imports.
import { DenoDirectoryStorage, openDenoDirectoryStorage } from '../../runtimes/deno/storage.ts';
import { lockDenoDirectory } from '../../runtimes/deno/directory-lock.ts';
import { checkAtomicWriter, checkFiles, enc, text } from '../helpers/storage-contract.ts';

const dir = Deno.args[0];
const result = {};

const lock = await lockDenoDirectory(dir);
try {
  await lockDenoDirectory(dir);
  result.secondLock = 'taken';
} catch (error) {
  result.secondLock = error.code;
}
const storage = await openDenoDirectoryStorage(dir);
await checkFiles(storage, result);
await checkAtomicWriter(storage, result);
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

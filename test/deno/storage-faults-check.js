// Run by storage-faults.test.ts under Deno: the Deno storage after a failed fsync, its free-space
// answer, and the directory lock left by a zombie. Prints one JSON line with what it observed.
// Plain JavaScript so that the project's tsc (which has no Deno types) leaves it alone.
import { openDenoDirectoryStorage } from '../../runtimes/deno/storage.ts';
import { lockDenoDirectory } from '../../runtimes/deno/directory-lock.ts';

const [storageDir, zombieLockedDir] = Deno.args;
const enc = (s) => new TextEncoder().encode(s);
const result = {};
const outcome = async (operation) => {
  try {
    await operation();
    return 'ok';
  } catch (error) {
    return error.code ?? error.name;
  }
};

const storage = await openDenoDirectoryStorage(storageDir);
await storage.append('log', enc('kept'));
await storage.sync('log');
result.freeBytesIsNumber = typeof (await storage.freeBytes()) === 'number';
// `pipe` is a FIFO made by the test: fsync of a FIFO fails with EINVAL, a real failed fsync.
result.failedSync = await outcome(() => storage.sync('pipe'));
result.afterwards = {
  sync: await outcome(() => storage.sync('log')),
  append: await outcome(() => storage.append('log', enc('more'))),
  writeAtomic: await outcome(() => storage.writeAtomic('meta', enc('x'))),
  truncate: await outcome(() => storage.truncate('log', 0)),
  remove: await outcome(() => storage.remove('log')),
};
result.read = new TextDecoder().decode(await storage.read('log'));
await storage.close();

result.zombieLock = await outcome(async () => {
  const lock = await lockDenoDirectory(zombieLockedDir);
  await lock.release();
});
console.log(JSON.stringify(result));

/**
 * One process per data directory: a `LOCK` file holding the owner's pid, created with
 * `createNew` so two processes cannot both win. A lock whose pid no longer runs (or is a zombie,
 * killed but not yet reaped by its parent) is taken over.
 * Same file and format as the Node runtime's lock, so the two refuse each other too.
 */
import { LOCK_FILE_NAME } from './storage.ts';

export class DenoDirectoryLockError extends Error {
  readonly code = 'DIRECTORY_LOCKED';
  constructor(message: string) {
    super(message);
    this.name = 'DenoDirectoryLockError';
  }
}

export interface DenoDirectoryLock {
  release(): Promise<void>;
}

const TAKEOVER_ATTEMPTS_MAX = 3;

async function processRuns(pid: number): Promise<boolean> {
  if (pid === Deno.pid) return true;
  let stat: string;
  try {
    stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    // Without /proc we cannot tell: assume the holder is alive rather than risk two writers.
    return true;
  }
  // A holder killed with -9 stays a zombie until its parent reaps it; it can no longer write,
  // so it must not block a restart. The state follows the command name, which may hold ')'.
  const state = stat.slice(stat.lastIndexOf(')') + 1).trimStart()[0];
  return state !== 'Z' && state !== 'X' && state !== 'x';
}

export async function lockDenoDirectory(directory: string): Promise<DenoDirectoryLock> {
  const path = `${directory}/${LOCK_FILE_NAME}`;
  for (let attempt = 0; attempt < TAKEOVER_ATTEMPTS_MAX; attempt++) {
    try {
      const file = await Deno.open(path, { write: true, createNew: true });
      try {
        await file.write(new TextEncoder().encode(`${Deno.pid}\n`));
        await file.syncData();
      } finally {
        file.close();
      }
      let released = false;
      return {
        release: async () => {
          if (released) return;
          released = true;
          const holder = Number((await Deno.readTextFile(path).catch(() => '')).trim());
          if (holder === Deno.pid) await Deno.remove(path).catch(() => undefined);
        },
      };
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    }
    const holder = Number((await Deno.readTextFile(path).catch(() => '')).trim());
    if (Number.isInteger(holder) && holder > 0 && (await processRuns(holder))) {
      throw new DenoDirectoryLockError(`${directory} is in use by process ${holder}: stop it first, or use another --dir`);
    }
    await Deno.remove(path).catch(() => undefined);
  }
  throw new DenoDirectoryLockError(`could not take the lock on ${directory}: another process keeps taking it`);
}

import { link, mkdir, open, readFile, unlink } from 'node:fs/promises';
import { unlinkSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isProcessAlive } from './process-liveness.ts';
import { LOCK_FILE_NAME } from './storage.ts';

export { isDeadOnLinux, processStateIsDead } from './process-liveness.ts';

export type DirectoryLockErrorCode = 'DIRECTORY_LOCKED' | 'LOCK_FAILED';

export class DirectoryLockError extends Error {
  constructor(
    readonly code: DirectoryLockErrorCode,
    message: string,
    readonly holderPid?: number,
  ) {
    super(message);
    this.name = 'DirectoryLockError';
  }
}

export interface DirectoryLock {
  readonly directory: string;
  readonly lockPath: string;
  /** Removes the lock file (only if it is still ours). Idempotent. */
  release(): Promise<void>;
}

/** Lock files this process holds: a lock naming our own pid but not in here is stale (pid reuse
 * after a container restart). */
const heldLockPaths = new Set<string>();

/** Stale locks are taken over at most this many times in a row before giving up. */
const TAKEOVER_ATTEMPTS_MAX = 3;

/**
 * Makes this process the only user of `directory`: a `LOCK` file holds the owner's pid. A second
 * process gets DIRECTORY_LOCKED; a lock left by a dead process is taken over.
 *
 * The lock file is created with its content in one step (write a private temp file, then
 * hard-link it to `LOCK`, which fails if `LOCK` exists), so nobody ever sees an empty lock.
 * A holder that is a zombie (killed, not yet reaped by its parent) counts as dead.
 * Known limit: a pid reused by an unrelated live process makes a stale lock look held.
 */
export async function lockDirectory(directory: string): Promise<DirectoryLock> {
  await mkdir(directory, { recursive: true });
  const lockPath = resolve(directory, LOCK_FILE_NAME);
  const ownContent = `${process.pid}\n`;
  const tempPath = join(directory, `.lock-${process.pid}-${Date.now()}`);
  const temp = await open(tempPath, 'w');
  try {
    await temp.writeFile(ownContent);
    await temp.sync();
  } finally {
    await temp.close();
  }
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await link(tempPath, lockPath);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new DirectoryLockError('LOCK_FAILED', `cannot create ${lockPath}: ${(error as Error).message}`);
        }
      }
      const holderContent = await readFile(lockPath, 'utf8').catch(() => undefined);
      if (holderContent === undefined) continue; // removed meanwhile: try again
      const holderPid = parsePid(holderContent);
      const heldByUs = holderPid === process.pid && heldLockPaths.has(lockPath);
      const heldByOther = holderPid !== undefined && holderPid !== process.pid && isProcessAlive(holderPid);
      if (heldByUs || heldByOther) {
        throw new DirectoryLockError(
          'DIRECTORY_LOCKED',
          `data directory ${directory} is in use by process ${holderPid}` +
            (holderPid === process.pid ? ' (this process)' : '') +
            `; stop that process or use another directory`,
          holderPid,
        );
      }
      if (attempt >= TAKEOVER_ATTEMPTS_MAX) {
        throw new DirectoryLockError(
          'LOCK_FAILED',
          `cannot take over the stale lock ${lockPath} (another process keeps replacing it); remove it by hand if no node uses ${directory}`,
        );
      }
      // Re-read right before removing, so a lock that a live process took over meanwhile is kept.
      const again = await readFile(lockPath, 'utf8').catch(() => undefined);
      if (again === holderContent) await unlink(lockPath).catch(() => undefined);
    }
  } finally {
    await unlink(tempPath).catch(() => undefined);
  }

  heldLockPaths.add(lockPath);
  let released = false;
  const releaseSync = (): void => {
    try {
      if (readFileSync(lockPath, 'utf8') === ownContent) unlinkSync(lockPath);
    } catch {
      // Already gone; nothing to release.
    }
  };
  process.on('exit', releaseSync);
  return {
    directory,
    lockPath,
    async release(): Promise<void> {
      if (released) return;
      released = true;
      heldLockPaths.delete(lockPath);
      process.off('exit', releaseSync);
      const content = await readFile(lockPath, 'utf8').catch(() => undefined);
      if (content === ownContent) await unlink(lockPath).catch(() => undefined);
    },
  };
}

function parsePid(content: string): number | undefined {
  const trimmed = content.trim();
  if (!/^\d{1,10}$/.test(trimmed)) return undefined;
  const pid = Number(trimmed);
  return pid > 0 ? pid : undefined;
}

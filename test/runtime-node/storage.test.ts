import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DirectoryLockError, lockDirectory, openDirectoryStorage, StorageError } from '../../runtimes/node/index.ts';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (value: Uint8Array | undefined): string | undefined =>
  value === undefined ? undefined : new TextDecoder().decode(value);

let directory: string;
beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'dqlite-wasm-storage-'));
});
afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe('NodeDirectoryStorage', () => {
  it('appends in call order, syncs, and reads back after reopening', async () => {
    const storage = await openDirectoryStorage(directory);
    const writes: Promise<void>[] = [];
    for (let index = 0; index < 200; index++) writes.push(storage.append('log-1', bytes(`${index},`)));
    await Promise.all(writes);
    await storage.sync('log-1');
    await storage.close();

    const reopened = await openDirectoryStorage(directory);
    const expected = Array.from({ length: 200 }, (_, index) => `${index},`).join('');
    expect(text(await reopened.read('log-1'))).toBe(expected);
    await reopened.append('log-1', bytes('tail'));
    await reopened.sync('log-1');
    expect(text(await reopened.read('log-1'))).toBe(`${expected}tail`);
    await reopened.close();
  });

  it('reads a missing file as undefined and lists only its own files', async () => {
    const storage = await openDirectoryStorage(directory);
    expect(await storage.read('nothing')).toBeUndefined();
    await storage.append('b', bytes('1'));
    await storage.writeAtomic('a', bytes('2'));
    const lock = await lockDirectory(directory);
    expect(await storage.list()).toEqual(['a', 'b']);
    await lock.release();
    await storage.close();
  });

  it('replaces a file atomically, leaving no temporary files, also over an appended file', async () => {
    const storage = await openDirectoryStorage(directory);
    await storage.append('meta', bytes('old contents'));
    await storage.writeAtomic('meta', bytes('new'));
    expect(text(await storage.read('meta'))).toBe('new');
    await storage.append('meta', bytes('+more'));
    await storage.sync('meta');
    expect(text(await storage.read('meta'))).toBe('new+more');
    expect((await readdir(directory)).sort()).toEqual(['meta']);
    await storage.close();
  });

  it('truncates (with and without an open append handle) and removes', async () => {
    const storage = await openDirectoryStorage(directory);
    await storage.append('seg', bytes('0123456789'));
    await storage.truncate('seg', 4);
    await storage.append('seg', bytes('AB'));
    expect(text(await storage.read('seg'))).toBe('0123AB');
    await storage.close();

    const again = await openDirectoryStorage(directory);
    await again.truncate('seg', 2);
    expect(text(await again.read('seg'))).toBe('01');
    await again.remove('seg');
    await again.remove('seg');
    expect(await again.read('seg')).toBeUndefined();
    expect(await again.list()).toEqual([]);
    await expect(again.truncate('seg', -1)).rejects.toBeInstanceOf(StorageError);
    await again.close();
  });

  it('refuses unsafe names with INVALID_NAME', async () => {
    const storage = await openDirectoryStorage(directory);
    for (const name of ['', '../escape', 'a/b', '.hidden', 'LOCK', 'x'.repeat(300)]) {
      await expect(storage.append(name, bytes('x'))).rejects.toMatchObject({ code: 'INVALID_NAME' });
    }
    await storage.close();
    await expect(storage.read('a')).rejects.toMatchObject({ code: 'CLOSED' });
  });
});

function startLockHolder(dir: string): { child: ChildProcess; firstLine: Promise<string> } {
  const child = spawn(process.execPath, ['--import', './scripts/ts-loader.mjs', 'test/runtime-node/fixtures/hold-lock.ts', dir], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const firstLine = new Promise<string>((resolve, reject) => {
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const end = output.indexOf('\n');
      if (end >= 0) resolve(output.slice(0, end));
    });
    child.once('exit', (code) => reject(new Error(`lock holder exited with ${code} before reporting: ${output}`)));
  });
  return { child, firstLine };
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

describe('lockDirectory', () => {
  it('refuses a second process while the first holds the lock, and takes over after kill -9', async () => {
    const holder = startLockHolder(directory);
    try {
      expect(await holder.firstLine).toBe('locked');
      const error = await lockDirectory(directory).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(DirectoryLockError);
      expect(error).toMatchObject({ code: 'DIRECTORY_LOCKED', holderPid: holder.child.pid });
      expect((error as Error).message).toContain(String(holder.child.pid));
    } finally {
      holder.child.kill('SIGKILL');
      await exited(holder.child);
    }
    // The dead holder's LOCK file is still there; it is stale now.
    expect(await readdir(directory)).toContain('LOCK');
    const lock = await lockDirectory(directory);
    const second = startLockHolder(directory);
    try {
      expect(await second.firstLine).toMatch(/^refused DIRECTORY_LOCKED: .*in use by process \d+/);
    } finally {
      second.child.kill('SIGKILL');
      await exited(second.child);
    }
    await lock.release();
    expect(await readdir(directory)).not.toContain('LOCK');
  });

  it('refuses a second lock in the same process and treats our own pid left by an earlier run as stale', async () => {
    const lock = await lockDirectory(directory);
    await expect(lockDirectory(directory)).rejects.toMatchObject({ code: 'DIRECTORY_LOCKED' });
    await lock.release();
    await lock.release();
    // A previous incarnation with the same pid (containers restart as pid 1) left its lock.
    await writeFile(join(directory, 'LOCK'), `${process.pid}\n`);
    const again = await lockDirectory(directory);
    await again.release();
    // Garbage in LOCK is treated as stale too.
    await writeFile(join(directory, 'LOCK'), 'not a pid');
    const third = await lockDirectory(directory);
    await third.release();
  });
});

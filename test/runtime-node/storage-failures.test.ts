/**
 * Failed fsyncs and full disks at the Node storage layer, with real system calls failing: an
 * fsync of a FIFO fails (EINVAL) and a tmpfs mounted for the test runs out of space (ENOSPC).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDirectoryStorage, type NodeDirectoryStorage } from '../../runtimes/node/storage.ts';
import { RaftLog } from '../../src/server/raft-log.ts';
import { EntryType } from '../../src/raft/index.ts';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (value: Uint8Array | undefined): string | undefined => (value === undefined ? undefined : new TextDecoder().decode(value));

let directory: string;
let storage: NodeDirectoryStorage | undefined;
beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'dqlite-wasm-storage-failures-'));
});
afterEach(async () => {
  await storage?.close();
  storage = undefined;
  await rm(directory, { recursive: true, force: true });
});

describe('NodeDirectoryStorage after a failed fsync', () => {
  it('refuses every later change, so a failed fsync is never retried into a false success', async () => {
    storage = await openDirectoryStorage(directory);
    await storage.append('log', bytes('kept'));
    await storage.sync('log');
    execFileSync('mkfifo', [join(directory, 'pipe')]);

    const failed = await storage.sync('pipe').catch((caught: unknown) => caught);
    expect(failed).toMatchObject({ code: 'IO' });
    expect((failed as Error).message).toMatch(/sync pipe/);

    for (const change of [
      () => storage!.sync('pipe'),
      () => storage!.append('log', bytes('more')),
      () => storage!.sync('log'),
      () => storage!.writeAtomic('meta', bytes('x')),
      () => storage!.truncate('log', 0),
      () => storage!.remove('log'),
    ]) {
      const error = await change().catch((caught: unknown) => caught);
      expect(error).toMatchObject({ code: 'FAILED' });
      expect((error as Error).message).toMatch(/refuses further writes since an earlier write or fsync failed/);
    }
    // Reading stays possible, and shows nothing changed after the failure.
    expect(text(await storage.read('log'))).toBe('kept');

    // A restart recovers from what is durable.
    await storage.close();
    storage = await openDirectoryStorage(directory);
    await storage.append('log', bytes('+again'));
    await storage.sync('log');
    expect(text(await storage.read('log'))).toBe('kept+again');
  });
});

describe('NodeDirectoryStorage at open', () => {
  it('removes temporary files that crashed writers left, and keeps those of live ones', async () => {
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
    await writeFile(join(directory, `.tmp-${gone}-0-snapshot`), new Uint8Array(1000));
    await writeFile(join(directory, `.tmp-${process.pid}-7-meta`), 'mine');
    await writeFile(join(directory, '.tmp-1-0-snapshot'), 'init still runs');
    await writeFile(join(directory, 'snapshot'), 'kept');
    storage = await openDirectoryStorage(directory);
    expect((await readdir(directory)).sort()).toEqual(['.tmp-1-0-snapshot', `.tmp-${process.pid}-7-meta`, 'snapshot'].sort());
  });
});

/** Mounts a tmpfs of `sizeBytes` on a new directory, or says why it cannot. */
function mountSmallFileSystem(sizeBytes: number): { path: string; unmount: () => void } | string {
  const path = execFileSync('mktemp', ['-d', join(tmpdir(), 'dqlite-wasm-small-fs-XXXXXX')]).toString().trim();
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', path], { stdio: 'pipe' });
  } catch (error) {
    execFileSync('rmdir', [path]);
    return `cannot mount a tmpfs here (${(error as Error).message.split('\n')[0]})`;
  }
  return {
    path,
    unmount: () => {
      execFileSync('umount', [path]);
      execFileSync('rmdir', [path]);
    },
  };
}

const small = process.platform === 'linux' && process.getuid?.() === 0 ? mountSmallFileSystem(4 * 1024 * 1024) : 'needs root on Linux';
if (typeof small !== 'string') small.unmount();

describe.skipIf(typeof small === 'string')('a full disk under the storage and the log', () => {
  let fileSystem: { path: string; unmount: () => void };
  beforeEach(() => {
    const mounted = mountSmallFileSystem(4 * 1024 * 1024);
    if (typeof mounted === 'string') throw new Error(mounted);
    fileSystem = mounted;
  });
  afterEach(async () => {
    await storage?.close();
    storage = undefined;
    fileSystem.unmount();
  });

  it('reports free space, says the disk is full, and a snapshot that does not fit leaves the log usable', async () => {
    storage = await openDirectoryStorage(fileSystem.path);
    const free = await storage.freeBytes();
    expect(free).toBeGreaterThan(3 * 1024 * 1024);
    expect(free).toBeLessThanOrEqual(4 * 1024 * 1024);

    const log = new RaftLog(storage, { diskSpace: { reserveBytes: 1024 * 1024, measureIntervalMs: 0 } });
    await log.load();
    const entry = (index: number, size: number) => ({ index, term: 1, type: EntryType.Normal, data: new Uint8Array(size).fill(index) });
    await log.append([entry(1, 1000)]);
    expect(log.proposalRefusal(1000)).toBeUndefined();

    // Another file takes most of what is left (the log holds its preallocated segment space
    // too): proposals are refused with a clear error.
    const left = (await storage.freeBytes())!;
    await writeFile(join(fileSystem.path, '.filler'), new Uint8Array(left - 512 * 1024));
    const refusal = await waitForValue(() => log.proposalRefusal(1000));
    expect(refusal.code).toBe('DISK_FULL');
    expect(refusal.message).toMatch(/disk holding this node's data is full .* writes are refused .* reads still work/);

    // A snapshot larger than what is left fails with DISK_FULL and harms nothing.
    const snapshot = { meta: { index: 1, term: 1, configuration: { members: [] } }, data: new Uint8Array(2 * 1024 * 1024).fill(9) };
    const full = await log.saveSnapshot(snapshot, 0).catch((caught: unknown) => caught);
    expect(full).toMatchObject({ code: 'DISK_FULL' });
    await log.append([entry(2, 1000)]);

    // Space comes back: proposals are accepted again after the next measurement.
    await rm(join(fileSystem.path, '.filler'));
    await waitForValue(() => (log.proposalRefusal(1000) === undefined ? true : undefined));
    await log.append([entry(3, 1000)]);
    await log.saveSnapshot(snapshot, 0);
    await storage.close();
    storage = await openDirectoryStorage(fileSystem.path);
    const loaded = await new RaftLog(storage).load();
    expect(loaded.snapshot?.meta.index).toBe(1);
    expect(loaded.entries.map((e) => e.index)).toEqual([2, 3]);
  });

  it('a log write that hits ENOSPC stops the log with a message that says the disk is full', async () => {
    storage = await openDirectoryStorage(fileSystem.path);
    const log = new RaftLog(storage, { diskSpace: { reserveBytes: 0 } });
    await log.load();
    await writeFile(join(fileSystem.path, '.filler'), new Uint8Array(4 * 1024 * 1024 - 16 * 1024)).catch(() => undefined);
    const error = await log.append([{ index: 1, term: 1, type: EntryType.Normal, data: new Uint8Array(64 * 1024) }]).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'RAFT_LOG_FAILED' });
    expect((error as Error).message).toMatch(/disk is full/);
    await expect(log.saveHardState({ term: 2, vote: 1, commit: 0 })).rejects.toBe(error);
    // What a restart finds: a torn tail at most, which it cuts.
    await rm(join(fileSystem.path, '.filler'));
    await storage.close();
    storage = await openDirectoryStorage(fileSystem.path);
    const loaded = await new RaftLog(storage).load();
    expect(loaded.entries).toEqual([]);
  });
});

async function waitForValue<T>(probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting for the disk-space measurement');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

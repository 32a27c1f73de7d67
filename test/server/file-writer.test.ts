/**
 * Atomic writers of the directory storage on real files (Node): a file written a piece at a time
 * (and patched where written) replaces its name only on commit; until then, and after an abort, a failed write or a closed
 * storage, the name keeps its old file and no temporary file is left behind.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { DirectoryStorage, type HostFileSystem } from '../../src/server/directory-storage.ts';
import { openDirectoryStorage } from '../../runtimes/node/index.ts';
import { nodeFileSystem } from '../../runtimes/node/storage.ts';

const temporaries = (dir: string): string[] => readdirSync(dir).filter((name) => name.startsWith('.tmp-'));

describe('DirectoryStorage.openAtomicWriter', () => {
  const dirs: string[] = [];
  const newDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'dqlite-wasm-writer-'));
    dirs.push(dir);
    return dir;
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  test('the pieces replace the name on commit, not before; an abort leaves the old file', async () => {
    const dir = newDir();
    const storage = await openDirectoryStorage(dir);
    try {
      await storage.writeAtomic('snapshot', new Uint8Array([1, 2, 3]));
      const writer = await storage.openAtomicWriter!('snapshot');
      const piece = new Uint8Array(100_000);
      const expected: number[] = [];
      for (let i = 0; i < 5; i++) {
        // One buffer reused for every piece, as the snapshot writer does.
        piece.fill(i + 10);
        await writer.write(piece);
        expected.push(...piece);
      }
      expect(await storage.read('snapshot')).toEqual(new Uint8Array([1, 2, 3]));
      expect(temporaries(dir)).toHaveLength(1);
      await expect(storage.writeAtomic('snapshot', new Uint8Array(1))).rejects.toThrow(/a writer of it is open/);
      await expect(storage.openAtomicWriter!('snapshot')).rejects.toThrow(/already open/);
      // A header patched at the end, across two pieces; nothing past what was written.
      await writer.writeAt(99_998, new Uint8Array([1, 2, 3, 4]));
      expected.splice(99_998, 4, 1, 2, 3, 4);
      await expect(writer.writeAt(499_999, new Uint8Array(2))).rejects.toThrow(/not all written yet/);
      await writer.commit();
      expect(new Uint8Array(readFileSync(join(dir, 'snapshot')))).toEqual(new Uint8Array(expected));
      expect(temporaries(dir)).toEqual([]);
      await expect(writer.write(piece)).rejects.toThrow(/closed/);

      const aborted = await storage.openAtomicWriter!('snapshot');
      await aborted.write(new Uint8Array(10).fill(99));
      await aborted.abort();
      expect(await storage.read('snapshot')).toEqual(new Uint8Array(expected));
      expect(temporaries(dir)).toEqual([]);
      expect(await storage.list()).toEqual(['snapshot']);
    } finally {
      await storage.close();
    }
  });

  test('a failed write removes the temporary file and leaves the name alone; closing the storage discards an open writer', async () => {
    const dir = newDir();
    let writesLeft = 2;
    // Node's file primitives, with the third write to a temporary file failing as a bad disk would.
    const failing: HostFileSystem = {
      ...nodeFileSystem,
      async openEmpty(path) {
        const file = await nodeFileSystem.openEmpty(path);
        return {
          ...file,
          write: async (bytes) => {
            if (writesLeft-- <= 0) throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
            return file.write(bytes);
          },
        };
      },
    };
    const storage = new DirectoryStorage(dir, failing);
    await storage.writeAtomic('snapshot', new Uint8Array([4, 5]));
    writesLeft = 2;
    const writer = await storage.openAtomicWriter('snapshot');
    await writer.write(new Uint8Array(1000));
    await writer.write(new Uint8Array(1000));
    await expect(writer.write(new Uint8Array(1000))).rejects.toThrow(/replace snapshot in .* failed: EIO/);
    await writer.abort();
    expect(temporaries(dir)).toEqual([]);
    expect(await storage.read('snapshot')).toEqual(new Uint8Array([4, 5]));
    // Only the temporary file saw the failure: the storage goes on.
    writesLeft = 100;
    await storage.append('segment', new Uint8Array([1]));

    const open = await storage.openAtomicWriter('snapshot');
    await open.write(new Uint8Array(10));
    await storage.close();
    expect(temporaries(dir)).toEqual([]);
    expect(new Uint8Array(readFileSync(join(dir, 'snapshot')))).toEqual(new Uint8Array([4, 5]));
  });
});

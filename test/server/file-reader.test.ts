/**
 * Ranged reads of the directory storage on real files (Node): a reader reads the file as it was
 * opened, a range at a time (into a new buffer, or into the caller's), and keeps reading it after
 * a newer file was renamed over its name.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { openDirectoryStorage } from '../../runtimes/node/index.ts';

describe('DirectoryStorage.openReader', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  test('reads ranges of the file as opened, also after it was replaced; a missing file has no reader', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dqlite-wasm-reader-'));
    dirs.push(dir);
    const storage = await openDirectoryStorage(dir);
    try {
      expect(await storage.openReader!('absent')).toBeUndefined();
      const first = new Uint8Array(300_000).map((_, i) => i % 251);
      await storage.writeAtomic('snapshot', first);
      const reader = (await storage.openReader!('snapshot'))!;
      expect(reader.sizeBytes).toBe(first.length);
      expect(await reader.read(1000, 70_000)).toEqual(first.subarray(1000, 71_000));
      // Past the end: what there is.
      expect(await reader.read(first.length - 10, 100)).toEqual(first.subarray(first.length - 10));
      expect(await reader.read(first.length + 5, 100)).toEqual(new Uint8Array(0));
      await expect(reader.read(-1, 10)).rejects.toThrow(/non-negative integers/);

      // A newer file renamed over the name: the reader still reads the old one, a new reader the new.
      const second = new Uint8Array(1000).fill(7);
      await storage.writeAtomic('snapshot', second);
      expect(await reader.read(299_000, 1000)).toEqual(first.subarray(299_000));
      // Into the caller's buffer, the same one again and again; past the end is an error, not a short read.
      const into = new Uint8Array(64_000);
      for (const offset of [0, 64_000, 200_000]) {
        await reader.readInto!(offset, into);
        expect(into).toEqual(first.subarray(offset, offset + into.length));
      }
      await expect(reader.readInto!(first.length - 10, into.subarray(0, 100))).rejects.toThrow(/ended at byte 300000/);
      await expect(reader.readInto!(-1, into)).rejects.toThrow(/non-negative integers/);
      const newer = (await storage.openReader!('snapshot'))!;
      expect(newer.sizeBytes).toBe(second.length);
      expect(await newer.read(0, 2000)).toEqual(second);
      await newer.close();

      // Reads queue one after the other; a closed reader reads no more.
      const both = await Promise.all([reader.read(0, 10), reader.read(10, 10)]);
      expect(both).toEqual([first.subarray(0, 10), first.subarray(10, 20)]);
      await reader.close();
      await expect(reader.read(0, 1)).rejects.toThrow(/closed/);
      await expect(reader.readInto!(0, into)).rejects.toThrow(/closed/);
    } finally {
      await storage.close();
    }
  });
});

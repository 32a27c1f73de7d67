/**
 * Properties of the log's recovery on real files, over random histories of appends (with
 * conflicting suffixes replaced, as a follower does) followed by one fault:
 * - the last append torn anywhere (cut short, or garbage over any part of it): the log loads,
 *   every earlier append is intact, and of the last one a prefix survives;
 * - any byte of an earlier append damaged: the log refuses to load, naming the segment.
 */
import fc from 'fast-check';
import { mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { openDirectoryStorage } from '../../runtimes/node/storage.ts';
import { EntryType, type Entry } from '../../src/raft/index.ts';
import { RaftLog, RaftLogCorruptError } from '../../src/server/raft-log.ts';
import { segmentName } from '../../src/server/raft-log-format.ts';

const RECORD_OVERHEAD_BYTES = 8 + 25;
const HEADER_BYTES = 24;
const SEGMENT = segmentName(1);

interface BatchPlan {
  /** How far back the batch starts, as a fraction of the log (0: right after the last entry). */
  back: number;
  sizes: number[];
}

const batchPlan = fc.record({
  back: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1, noNaN: true })),
  sizes: fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 5 }),
});

interface Written {
  directory: string;
  /** What the log holds: the model. */
  entries: Entry[];
  /** Entries of the last append. */
  last: Entry[];
  /** Byte range of the last append in the segment. */
  lastStart: number;
  lastEnd: number;
}

async function writeHistory(plans: BatchPlan[]): Promise<Written> {
  const directory = await mkdtemp(join(tmpdir(), 'dqlite-wasm-raft-log-prop-'));
  const storage = await openDirectoryStorage(directory);
  const log = new RaftLog(storage, { diskSpace: { reserveBytes: 0 } });
  await log.load();
  let entries: Entry[] = [];
  let last: Entry[] = [];
  let lastStart = 0;
  for (let b = 0; b < plans.length; b++) {
    const plan = plans[b]!;
    const first = Math.max(1, entries.length + 1 - Math.floor(plan.back * entries.length));
    const batch = plan.sizes.map((size, i): Entry => {
      const data = new Uint8Array(size);
      for (let k = 0; k < size; k++) data[k] = (first + i + k * 7 + b) & 0xff;
      return { index: first + i, term: b + 1, type: EntryType.Normal, data };
    });
    entries = entries.filter((e) => e.index < first).concat(batch);
    const kept = entries.filter((e) => e.index < first);
    lastStart = kept.length === 0 ? 0 : HEADER_BYTES + kept.reduce((sum, e) => sum + RECORD_OVERHEAD_BYTES + e.data.length, 0);
    await log.append(batch);
    last = batch;
  }
  await storage.close();
  const lastEnd = (await stat(join(directory, SEGMENT))).size;
  return { directory, entries, last, lastStart, lastEnd };
}

async function load(directory: string): Promise<Entry[] | RaftLogCorruptError> {
  const storage = await openDirectoryStorage(directory);
  try {
    return (await new RaftLog(storage).load()).entries;
  } catch (error) {
    if (error instanceof RaftLogCorruptError) return error;
    throw error;
  } finally {
    await storage.close();
  }
}

const history = fc.array(batchPlan, { minLength: 2, maxLength: 6 });

describe('RaftLog recovery properties', () => {
  test('a torn last append loads: earlier appends intact, a prefix of the last one kept', async () => {
    await fc.assert(
      fc.asyncProperty(history, fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), fc.boolean(), async (plans, where, length, cut) => {
        const written = await writeHistory(plans);
        try {
          const path = join(written.directory, SEGMENT);
          const span = written.lastEnd - written.lastStart;
          const from = written.lastStart + Math.floor(where * span);
          if (cut) {
            await truncate(path, from);
          } else {
            const content = await readFile(path);
            const to = Math.min(written.lastEnd, from + 1 + Math.floor(length * (written.lastEnd - from)));
            for (let i = from; i < to; i++) content[i] = (content[i]! * 131 + 17 + i) & 0xff;
            await writeFile(path, content);
          }
          const loaded = await load(written.directory);
          expect(loaded).not.toBeInstanceOf(RaftLogCorruptError);
          const entries = loaded as Entry[];
          const earlier = written.entries.slice(0, written.entries.length - written.last.length);
          expect(entries.length).toBeGreaterThanOrEqual(earlier.length);
          expect(entries.length).toBeLessThanOrEqual(written.entries.length);
          for (let i = 0; i < entries.length; i++) {
            expect(entries[i]!.index).toBe(written.entries[i]!.index);
            expect(entries[i]!.term).toBe(written.entries[i]!.term);
            expect(Buffer.from(entries[i]!.data).equals(Buffer.from(written.entries[i]!.data))).toBe(true);
          }
        } finally {
          await rm(written.directory, { recursive: true, force: true });
        }
      }),
      { numRuns: 80 },
    );
  }, 120_000);

  test('a damaged byte anywhere in an earlier append is refused', async () => {
    await fc.assert(
      fc.asyncProperty(history, fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 1, max: 255 }), async (plans, where, flip) => {
        const written = await writeHistory(plans);
        try {
          fc.pre(written.lastStart > 0);
          const path = join(written.directory, SEGMENT);
          const content = await readFile(path);
          const offset = Math.min(written.lastStart - 1, Math.floor(where * written.lastStart));
          content[offset] = content[offset]! ^ flip;
          await writeFile(path, content);
          const loaded = await load(written.directory);
          expect(loaded).toBeInstanceOf(RaftLogCorruptError);
          expect((loaded as RaftLogCorruptError).file).toBe(SEGMENT);
          expect((loaded as RaftLogCorruptError).offset).toBeLessThanOrEqual(offset);
        } finally {
          await rm(written.directory, { recursive: true, force: true });
        }
      }),
      { numRuns: 80 },
    );
  }, 120_000);
});

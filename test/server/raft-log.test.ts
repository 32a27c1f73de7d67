/**
 * The Raft log's recovery on real files (Node directory storage on a temporary directory): a
 * torn tail is cut, damage is refused with the file and offset, whatever file it hits.
 */
import { mkdtemp, readFile, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { openDirectoryStorage, type NodeDirectoryStorage } from '../../runtimes/node/storage.ts';
import { EntryType, type Entry } from '../../src/raft/index.ts';
import { crc32 } from '../../src/util/crc32.ts';
import { RaftLog, RaftLogCorruptError, RaftLogError, SEGMENT_PREALLOCATE_BYTES } from '../../src/server/raft-log.ts';
import { encodeRecord, segmentName } from '../../src/server/raft-log-format.ts';

const DATA_BYTES = 40;
/** Bytes of one record with DATA_BYTES of data: 8 header + 25 fixed + data. */
const RECORD_BYTES = 8 + 25 + DATA_BYTES;
const HEADER_BYTES = 24;

let directory: string;
let storages: NodeDirectoryStorage[];

beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'dqlite-wasm-raft-log-'));
  storages = [];
});
afterEach(async () => {
  for (const storage of storages) await storage.close();
  await rm(directory, { recursive: true, force: true });
});

function entry(index: number, term = 1): Entry {
  const data = new Uint8Array(DATA_BYTES);
  for (let i = 0; i < DATA_BYTES; i++) data[i] = (index * 31 + i) & 0xff;
  return { index, term, type: EntryType.Normal, data };
}

function range(first: number, last: number): Entry[] {
  return Array.from({ length: last - first + 1 }, (_, i) => entry(first + i));
}

async function openLog(options: { directory?: string; preallocateBytes?: number; segmentBytesMax?: number } = {}): Promise<RaftLog> {
  const storage = await openDirectoryStorage(options.directory ?? directory);
  storages.push(storage);
  return new RaftLog(storage, { diskSpace: { reserveBytes: 0 }, preallocateBytes: options.preallocateBytes, segmentBytesMax: options.segmentBytesMax });
}

/** Writes batches of entries (each one append, so one fsync) into a fresh log. */
async function writeBatches(batches: Entry[][]): Promise<void> {
  const log = await openLog();
  await log.load();
  for (const batch of batches) await log.append(batch);
}

/** Byte offset of entry `index`'s record in the first segment (fixed-size records). */
function recordOffset(index: number): number {
  return HEADER_BYTES + (index - 1) * RECORD_BYTES;
}

async function overwrite(name: string, offset: number, bytes: number): Promise<void> {
  const path = join(directory, name);
  const content = await readFile(path);
  for (let i = 0; i < bytes; i++) content[offset + i] = (content[offset + i]! ^ 0x5a) | 1;
  await writeFile(path, content);
}

async function loadError(): Promise<RaftLogCorruptError> {
  const log = await openLog();
  const error = await log.load().catch((caught: unknown) => caught);
  expect(error).toBeInstanceOf(RaftLogCorruptError);
  return error as RaftLogCorruptError;
}

const SEGMENT = segmentName(1);

describe('RaftLog recovery', () => {
  test('reads back what was appended, term and vote included', async () => {
    const log = await openLog();
    await log.load();
    await log.append(range(1, 5));
    await log.append(range(6, 9));
    await log.saveHardState({ term: 7, vote: 2, commit: 0 });
    const loaded = await (await openLog()).load();
    expect(loaded.entries.map((e) => e.index)).toEqual(range(1, 9).map((e) => e.index));
    expect(loaded.entries[3]!.data).toEqual(entry(4).data);
    expect(loaded.hardState).toMatchObject({ term: 7, vote: 2 });
    expect(loaded.repairs).toEqual([]);
  });

  test('a segment of 200,000 small entries, written in one append, reads back', async () => {
    const entries = Array.from({ length: 200_000 }, (_, i): Entry => ({ index: i + 1, term: 1, type: EntryType.Normal, data: new Uint8Array(0) }));
    await writeBatches([entries]);
    const loaded = await (await openLog()).load();
    expect(loaded.entries).toHaveLength(200_000);
    expect(loaded.entries.at(-1)!.index).toBe(200_000);
  });

  test('a record cut short at the end of the last segment is a torn write: cut off, and the log goes on', async () => {
    await writeBatches([range(1, 10), range(11, 12)]);
    const cutAt = recordOffset(12) + 20;
    await truncate(join(directory, SEGMENT), cutAt);
    const log = await openLog();
    const loaded = await log.load();
    expect(loaded.entries.map((e) => e.index).at(-1)).toBe(11);
    expect(loaded.repairs.join('\n')).toMatch(new RegExp(`${SEGMENT} at byte ${recordOffset(12)}`));
    expect((await stat(join(directory, SEGMENT))).size).toBe(recordOffset(12));
    await log.append([entry(12, 2)]);
    const again = await (await openLog()).load();
    expect(again.entries.map((e) => [e.index, e.term]).at(-1)).toEqual([12, 2]);
  });

  test('garbage inside the last append, even before whole records of that same append, is a torn write', async () => {
    // A crash can persist the sectors of one write in any order: a later record of the last
    // append may be whole while an earlier one is not. None of it was acknowledged.
    await writeBatches([range(1, 10), range(11, 20)]);
    await overwrite(SEGMENT, recordOffset(13) + 10, 64);
    const loaded = await (await openLog()).load();
    expect(loaded.entries.at(-1)!.index).toBe(12);
    expect(loaded.repairs).toHaveLength(1);
  });

  test('a record-shaped payload inside the torn append is data, not evidence of a later append', async () => {
    const embedded = { ...entry(12), data: encodeRecord(entry(99), 99) };
    await writeBatches([range(1, 10), [entry(11), embedded]]);
    await overwrite(SEGMENT, recordOffset(11) + 12, 8);
    const loaded = await (await openLog()).load();
    expect(loaded.entries.at(-1)!.index).toBe(10);
    expect(loaded.repairs).toHaveLength(1);
  });

  test('a record-shaped payload inside the damaged record itself is not taken for a later append', async () => {
    const embedded = { ...entry(11), data: encodeRecord(entry(99), 99) };
    await writeBatches([range(1, 10), [embedded, entry(12)]]);
    // The term of entry 11 changes, so its checksum fails; its length and its payload hold.
    await overwrite(SEGMENT, recordOffset(11) + 8, 2);
    const loaded = await (await openLog()).load();
    expect(loaded.entries.at(-1)!.index).toBe(10);
  });

  test('a bad record followed by a record of a later append is damage: refused, naming the file and offset', async () => {
    await writeBatches([range(1, 40), range(41, 60), range(61, 100)]);
    const badAt = recordOffset(30) + 5;
    const sizeBefore = (await stat(join(directory, SEGMENT))).size;
    await overwrite(SEGMENT, badAt, 64);
    const error = await loadError();
    expect(error.code).toBe('RAFT_LOG_CORRUPT');
    expect(error.file).toBe(SEGMENT);
    expect(error.offset).toBe(recordOffset(30));
    expect(error.message).toMatch(new RegExp(`${SEGMENT} is damaged at byte ${recordOffset(30)}`));
    expect(error.message).toMatch(/later append follows/);
    expect(error.message).toMatch(/restore the data directory from a backup|add this node back as a new, empty member/);
    // Nothing was cut: the evidence stays for the operator.
    expect((await stat(join(directory, SEGMENT))).size).toBe(sizeBefore);
  });

  test('damage across the boundary of two appends, the last one otherwise whole, is refused', async () => {
    await writeBatches([range(1, 10), range(11, 20)]);
    await overwrite(SEGMENT, recordOffset(11) - 30, 64);
    const error = await loadError();
    expect(error.offset).toBe(recordOffset(10));
  });

  test('a record with an impossible length followed by later appends is refused', async () => {
    await writeBatches([range(1, 5), range(6, 10)]);
    const path = join(directory, SEGMENT);
    const content = await readFile(path);
    new DataView(content.buffer, content.byteOffset).setUint32(recordOffset(3), 0xfffffff0, true);
    await writeFile(path, content);
    const error = await loadError();
    expect(error.offset).toBe(recordOffset(3));
    expect(error.message).toMatch(/impossible/);
  });

  /** Segments 1..5 and 6..8: the second made in another directory, by a log that restarted from a snapshot at 5. */
  async function writeTwoSegments(): Promise<void> {
    await writeBatches([range(1, 5)]);
    const other = await mkdtemp(join(tmpdir(), 'dqlite-wasm-raft-log-other-'));
    try {
      const storage = await openDirectoryStorage(other);
      storages.push(storage);
      const log = new RaftLog(storage);
      await log.load();
      await log.resetToSnapshot({ meta: { index: 5, term: 1, configuration: { members: [] } }, data: new Uint8Array(1) });
      await log.append(range(6, 8));
      await writeFile(join(directory, segmentName(6)), await readFile(join(other, segmentName(6))));
    } finally {
      await rm(other, { recursive: true, force: true });
    }
    expect((await (await openLog()).load()).entries.map((e) => e.index)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  }

  test('damage in a segment that the snapshot covers entirely is harmless', async () => {
    await writeTwoSegments();
    const log = await openLog();
    await log.load();
    await log.saveSnapshot({ meta: { index: 6, term: 1, configuration: { members: [] } }, data: new Uint8Array(4) }, 0);
    await overwrite(SEGMENT, recordOffset(3) + 3, 8);
    const loaded = await (await openLog()).load();
    expect(loaded.entries.map((e) => e.index)).toEqual([7, 8]);
    expect(loaded.repairs.join()).toMatch(new RegExp(`ignored damage in ${SEGMENT} at byte ${recordOffset(3)}`));
  });

  test('a bad record in a segment before the last is refused', async () => {
    await writeTwoSegments();
    // The last record of the first segment: no later append follows inside that file.
    await overwrite(SEGMENT, recordOffset(5) + 3, 8);
    const error = await loadError();
    expect(error.file).toBe(SEGMENT);
    expect(error.offset).toBe(recordOffset(5));
    expect(error.message).toMatch(/later segments follow it/);
  });

  test('a damaged segment header followed by a later append is refused; a torn first write is removed', async () => {
    await writeBatches([range(1, 3), range(4, 6)]);
    await overwrite(SEGMENT, 2, 4);
    const error = await loadError();
    expect(error.file).toBe(SEGMENT);
    expect(error.offset).toBe(0);
    expect(error.message).toMatch(/header/);

    await rm(join(directory, SEGMENT));
    await writeBatches([range(1, 3)]);
    await truncate(join(directory, SEGMENT), 10);
    const loaded = await (await openLog()).load();
    expect(loaded.entries).toEqual([]);
    expect(loaded.repairs.join()).toMatch(/removed/);
    expect((await readdir(directory)).filter((n) => n.startsWith('segment-'))).toEqual([]);
  });

  test('an entry larger than a segment, appended where a crash tore the first record of the last segment, goes into that segment', async () => {
    const segmentBytesMax = 64 * 1024;
    const large = (term: number): Entry => ({ index: 1, term, type: EntryType.Normal, data: new Uint8Array(100 * 1024).fill(term) });
    const first = await openLog({ segmentBytesMax });
    await first.load();
    await first.append([large(1)]);
    // The crash tore the record: the segment keeps its header and nothing else.
    await truncate(join(directory, SEGMENT), HEADER_BYTES + 20);
    const log = await openLog({ segmentBytesMax });
    const loaded = await log.load();
    expect(loaded.entries).toEqual([]);
    expect((await stat(join(directory, SEGMENT))).size).toBe(HEADER_BYTES);
    await log.append([large(2)]);
    const again = await (await openLog({ segmentBytesMax })).load();
    expect(again.entries.map((e) => [e.index, e.term])).toEqual([[1, 2]]);
  });

  test('a damaged term and vote file is refused; the old 16-byte format is still read', async () => {
    const log = await openLog();
    await log.load();
    await log.saveHardState({ term: 3, vote: 1, commit: 0 });
    await overwrite('meta', 12, 1);
    const error = await loadError();
    expect(error.file).toBe('meta');
    expect(error.message).toMatch(/term and vote/);

    const legacy = new Uint8Array(16);
    new DataView(legacy.buffer).setBigUint64(0, 9n, true);
    new DataView(legacy.buffer).setBigUint64(8, 4n, true);
    await writeFile(join(directory, 'meta'), legacy);
    expect((await (await openLog()).load()).hardState).toMatchObject({ term: 9, vote: 4 });
    // Rewritten in format 2 at once: an older version then refuses the directory at its first
    // check instead of taking a segment header for a torn record.
    expect((await stat(join(directory, 'meta'))).size).toBe(24);
    expect((await (await openLog()).load()).hardState).toMatchObject({ term: 9, vote: 4 });
  });

  test('a damaged snapshot file is refused', async () => {
    const log = await openLog();
    await log.load();
    await log.append(range(1, 4));
    await log.saveSnapshot({ meta: { index: 4, term: 1, configuration: { members: [] } }, data: new Uint8Array(100).fill(7) }, 0);
    await overwrite('snapshot', 60, 2);
    const error = await loadError();
    expect(error.file).toBe('snapshot');
    expect(error.message).toMatch(/checksum/);
  });

  test('a missing segment (a gap after the snapshot) is refused', async () => {
    await writeBatches([range(1, 3)]);
    const log = await openLog();
    await log.load();
    await log.resetToSnapshot({ meta: { index: 3, term: 1, configuration: { members: [] } }, data: new Uint8Array(1) });
    await log.append(range(5, 6));
    const error = await loadError();
    expect(error.message).toMatch(/entries 4\.\.4 after the snapshot at index 3 are missing/);
  });

  test('a log left behind by a crash while a snapshot from the leader replaced it is removed', async () => {
    const log = await openLog();
    await log.load();
    await log.append(range(1, 8));
    // The snapshot was saved, the crash came before the old segments were removed.
    await log.saveSnapshot({ meta: { index: 5, term: 2, configuration: { members: [] } }, data: new Uint8Array(2) }, 0);
    const reopened = await openLog();
    const loaded = await reopened.load();
    expect(loaded.entries).toEqual([]);
    expect(loaded.repairs.join()).toMatch(/removed the log the snapshot at index 5 replaced \(entries 6\.\.8 followed term 1 at index 5 where the snapshot has term 2\)/);
    expect((await readdir(directory)).filter((n) => n.startsWith('segment-'))).toEqual([]);
    await reopened.append([entry(6, 2)]);
    const again = await (await openLog()).load();
    expect(again.entries.map((e) => [e.index, e.term])).toEqual([[6, 2]]);
  });

  test('a whole record whose term goes down is refused', async () => {
    const log = await openLog();
    await log.load();
    await log.append([entry(1, 3), entry(2, 3)]);
    await log.append([entry(3, 2)]);
    const error = await loadError();
    expect(error.offset).toBe(recordOffset(3));
    expect(error.message).toMatch(/entry 3 has term 2, lower than the term 3 before it/);
  });

  test('a format 1 segment whose first record is damaged is refused, not taken for a torn header', async () => {
    await writeFile(join(directory, SEGMENT), Buffer.concat(range(1, 3).map(formatOneRecord)));
    await overwrite(SEGMENT, 10, 4);
    const error = await loadError();
    expect(error.offset).toBe(0);
    expect(error.message).toMatch(/follows at byte/);
  });

  test('a format 1 segment (no header) is read and never appended to', async () => {
    const records = range(1, 3).map(formatOneRecord);
    await writeFile(join(directory, SEGMENT), Buffer.concat(records));
    const log = await openLog();
    expect((await log.load()).entries.map((e) => e.index)).toEqual([1, 2, 3]);
    await log.append(range(4, 5));
    expect((await readdir(directory)).filter((n) => n.startsWith('segment-'))).toEqual([SEGMENT, segmentName(4)]);
    expect((await (await openLog()).load()).entries.map((e) => e.index)).toEqual([1, 2, 3, 4, 5]);
  });

  test('overlapping appends are refused: each must be durable before the next begins', async () => {
    const log = await openLog();
    await log.load();
    const first = log.append(range(1, 3));
    await expect(log.append(range(4, 5))).rejects.toThrow(/another append is in flight/);
    await first;
    await log.append(range(4, 5));
    expect((await (await openLog()).load()).entries.map((e) => e.index)).toEqual([1, 2, 3, 4, 5]);
  });

  test('a write after a failed one is refused with the first failure, never retried', async () => {
    const log = await openLog();
    await log.load();
    await log.append(range(1, 2));
    // A real failure under the log: its directory disappears, so no file can be replaced.
    await rm(directory, { recursive: true, force: true });
    const first = await log.saveHardState({ term: 5, vote: 1, commit: 0 }).catch((caught: unknown) => caught);
    expect(first).toBeInstanceOf(RaftLogError);
    expect((first as RaftLogError).code).toBe('RAFT_LOG_FAILED');
    expect((first as Error).message).toMatch(/stops rather than retry/);
    await expect(log.append(range(3, 3))).rejects.toBe(first);
    await expect(log.saveHardState({ term: 6, vote: 1, commit: 0 })).rejects.toBe(first);
  });
});

describe('RaftLog preallocated segments (the storage writes in place)', () => {
  const appendedDirectory = (): string => join(directory, 'appended');

  /** The same appends into a preallocated log (in `directory`) and an appending one. */
  async function writeBoth(batches: Entry[][]): Promise<{ preallocated: Buffer; appended: Buffer }> {
    const preallocated = await openLog();
    const appended = await openLog({ directory: appendedDirectory(), preallocateBytes: 0 });
    await preallocated.load();
    await appended.load();
    for (const batch of batches) {
      await preallocated.append(batch);
      await appended.append(batch);
    }
    return { preallocated: await readFile(join(directory, SEGMENT)), appended: await readFile(join(appendedDirectory(), SEGMENT)) };
  }

  test('holds the records an appending log writes, then zeros; loads with no repair and goes on in place', async () => {
    const first = await writeBoth([range(1, 10), range(11, 12)]);
    expect(first.appended.length).toBe(recordOffset(13));
    expect(first.preallocated.length).toBe(recordOffset(11) + SEGMENT_PREALLOCATE_BYTES);
    expect(first.preallocated.subarray(0, first.appended.length).equals(first.appended)).toBe(true);
    expect(first.preallocated.subarray(first.appended.length).every((byte) => byte === 0)).toBe(true);

    const log = await openLog();
    const loaded = await log.load();
    expect(loaded.entries.map((e) => e.index)).toEqual(range(1, 12).map((e) => e.index));
    expect(loaded.repairs).toEqual([]);
    await log.append(range(13, 15));
    const again = await readFile(join(directory, SEGMENT));
    expect(again.length).toBe(first.preallocated.length);
    expect((await (await openLog()).load()).entries.map((e) => e.index)).toEqual(range(1, 15).map((e) => e.index));
  });

  test('an append inside the preallocated space writes its records only', async () => {
    const storage = await openDirectoryStorage(directory);
    storages.push(storage);
    const written: number[] = [];
    const writeAt = storage.writeAt!;
    Object.defineProperty(storage, 'writeAt', {
      value: (name: string, offset: number, bytes: Uint8Array) => {
        written.push(bytes.length);
        return writeAt(name, offset, bytes);
      },
    });
    const log = new RaftLog(storage, { diskSpace: { reserveBytes: 0 } });
    await log.load();
    await log.append(range(1, 10));
    await log.append(range(11, 12));
    expect(written).toEqual([recordOffset(11) + SEGMENT_PREALLOCATE_BYTES, 2 * RECORD_BYTES]);
  });

  test('every append is encoded into one kept array, growing the file or not, and none carries bytes of an earlier one', async () => {
    // A fresh array per append is external memory to V8, which answered it with full collections.
    const buffersOf = async (dir: string, preallocateBytes?: number): Promise<{ log: RaftLog; buffers: Set<ArrayBufferLike> }> => {
      const storage = await openDirectoryStorage(dir);
      storages.push(storage);
      const buffers = new Set<ArrayBufferLike>();
      const writeAt = storage.writeAt!.bind(storage);
      const append = storage.append.bind(storage);
      Object.defineProperty(storage, 'writeAt', {
        value: (name: string, offset: number, bytes: Uint8Array) => {
          buffers.add(bytes.buffer);
          return writeAt(name, offset, bytes);
        },
      });
      Object.defineProperty(storage, 'append', {
        value: (name: string, bytes: Uint8Array) => {
          buffers.add(bytes.buffer);
          return append(name, bytes);
        },
      });
      const log = new RaftLog(storage, { diskSpace: { reserveBytes: 0 }, preallocateBytes });
      await log.load();
      return { log, buffers };
    };
    const sized = (index: number, bytes: number): Entry => ({ index, term: 1, type: EntryType.Normal, data: new Uint8Array(bytes).fill(index & 0xff) });
    const preallocated = await buffersOf(directory);
    const appended = await buffersOf(appendedDirectory(), 0);
    // Appends of a few KiB inside the preallocated space, then one that runs past it (the file
    // grows by zeros written from the same array the small ones dirtied), then more small ones.
    const batches: Entry[][] = [];
    let index = 1;
    for (let i = 0; i < 50; i++) batches.push([sized(index++, 18_000 + i * 100)]);
    batches.push([sized(index++, 200_000)]);
    for (let i = 0; i < 5; i++) batches.push([sized(index++, 9_000), sized(index++, 20_000)]);
    for (const batch of batches) {
      await preallocated.log.append(batch);
      await appended.log.append(batch);
    }
    expect(preallocated.buffers.size).toBe(1);
    expect(appended.buffers.size).toBe(1);
    const preallocatedFile = await readFile(join(directory, SEGMENT));
    const appendedFile = await readFile(join(appendedDirectory(), SEGMENT));
    expect(preallocatedFile.length).toBeGreaterThan(appendedFile.length + SEGMENT_PREALLOCATE_BYTES / 2);
    expect(preallocatedFile.subarray(0, appendedFile.length).equals(appendedFile)).toBe(true);
    expect(preallocatedFile.subarray(appendedFile.length).every((byte) => byte === 0)).toBe(true);
    const loaded = await (await openLog()).load();
    expect(loaded.repairs).toEqual([]);
    expect(loaded.entries.map((e) => [e.index, e.data.length, e.data[0]])).toEqual(batches.flat().map((e) => [e.index, e.data.length, e.data[0]]));
  });

  test('grows by another stretch of zeros when an append runs past the file', async () => {
    const big = (index: number): Entry => ({ index, term: 1, type: EntryType.Normal, data: new Uint8Array(SEGMENT_PREALLOCATE_BYTES / 2).fill(index) });
    const { preallocated, appended } = await writeBoth([[big(1)], [big(2)], [big(3)]]);
    expect(preallocated.subarray(0, appended.length).equals(appended)).toBe(true);
    expect(preallocated.length).toBeGreaterThan(appended.length);
    expect(preallocated.subarray(appended.length).every((byte) => byte === 0)).toBe(true);
    const loaded = await (await openLog()).load();
    expect(loaded.entries.map((e) => e.data[0])).toEqual([1, 2, 3]);
    expect(loaded.repairs).toEqual([]);
  });

  test('a record torn inside the preallocated space is cut as a torn write, and the log goes on', async () => {
    const { appended } = await writeBoth([range(1, 10), range(11, 12)]);
    // What a crash leaves of the next append: the first bytes of a record, zeros after them.
    const path = join(directory, SEGMENT);
    const content = await readFile(path);
    content.set(encodeRecord(entry(13), 13).subarray(0, 40), appended.length);
    await writeFile(path, content);
    const log = await openLog();
    const loaded = await log.load();
    expect(loaded.entries.map((e) => e.index).at(-1)).toBe(12);
    expect(loaded.repairs.join('\n')).toMatch(new RegExp(`${SEGMENT} at byte ${appended.length}`));
    await log.append([entry(13, 2)]);
    expect((await (await openLog()).load()).entries.map((e) => [e.index, e.term]).at(-1)).toEqual([13, 2]);
  });

  test('a replaced suffix leaves no record of the old one behind the new', async () => {
    // A follower replacing entries 6..12 by a shorter 6..7: the old records past the new end
    // must be gone, or a restart would read them back as the log's continuation.
    const log = await openLog();
    await log.load();
    await log.append(range(1, 12));
    await log.append([entry(6, 2), entry(7, 2)]);
    const loaded = await (await openLog()).load();
    expect(loaded.entries.map((e) => [e.index, e.term])).toEqual([...range(1, 5).map((e) => [e.index, 1]), [6, 2], [7, 2]]);
    expect(loaded.repairs).toEqual([]);
  });

  test('a log opened where the storage only appends cuts the preallocated zeros off before it appends', async () => {
    await writeBoth([range(1, 10)]);
    const log = await openLog({ preallocateBytes: 0 });
    await log.load();
    await log.append(range(11, 12));
    expect((await stat(join(directory, SEGMENT))).size).toBe(recordOffset(13));
    const loaded = await (await openLog()).load();
    expect(loaded.entries.map((e) => e.index)).toEqual(range(1, 12).map((e) => e.index));
    expect(loaded.repairs).toEqual([]);
  });

  test('a full segment is cut down to its records when the next one begins; zeros never go past the segment size', async () => {
    const segmentBytesMax = 256 * 1024;
    const log = await openLog({ segmentBytesMax, preallocateBytes: 64 * 1024 });
    await log.load();
    const big = (index: number): Entry => ({ index, term: 1, type: EntryType.Normal, data: new Uint8Array(100 * 1024).fill(index) });
    await log.append([big(1)]);
    const recordsBytes = (n: number) => HEADER_BYTES + n * (33 + 100 * 1024);
    expect((await stat(join(directory, SEGMENT))).size).toBe(recordsBytes(1) + 64 * 1024);
    await log.append([big(2)]);
    // Preallocation stops at the segment's size.
    expect((await stat(join(directory, SEGMENT))).size).toBe(segmentBytesMax);
    // A third would not fit: a new segment begins and the full one is cut to its records.
    await log.append([big(3)]);
    expect((await stat(join(directory, SEGMENT))).size).toBe(recordsBytes(2));
    expect((await readdir(directory)).filter((name) => name.startsWith('segment-')).sort()).toEqual([SEGMENT, segmentName(3)]);
    const loaded = await (await openLog({ segmentBytesMax })).load();
    expect(loaded.entries.map((e) => e.index)).toEqual([1, 2, 3]);
  }, 60_000);
});

function formatOneRecord(e: Entry): Uint8Array {
  const record = new Uint8Array(8 + 17 + e.data.length);
  const view = new DataView(record.buffer);
  view.setUint32(0, 17 + e.data.length, true);
  view.setBigUint64(8, BigInt(e.term), true);
  view.setBigUint64(16, BigInt(e.index), true);
  record[24] = e.type;
  record.set(e.data, 25);
  view.setUint32(4, crc32(record, 8), true);
  return record;
}

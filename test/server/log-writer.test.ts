/**
 * The pipelined log writer on a real directory: one durable write at a time, whatever is handed
 * over meanwhile goes to the disk as one write, a replaced tail is written as Raft replaced it,
 * and acknowledgements wait for everything handed over before them.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { openDirectoryStorage, type NodeDirectoryStorage } from '../../runtimes/node/storage.ts';
import { EntryType, type Entry } from '../../src/raft/index.ts';
import { LOG_WRITE_BYTES_MAX } from '../../src/limits.ts';
import { LogWriter } from '../../src/server/log-writer.ts';
import { RaftLog } from '../../src/server/raft-log.ts';

let directory: string;
let storages: NodeDirectoryStorage[];

beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'dqlite-wasm-log-writer-'));
  storages = [];
});
afterEach(async () => {
  for (const storage of storages) await storage.close();
  await rm(directory, { recursive: true, force: true });
});

function entries(first: number, last: number, term = 1): Entry[] {
  return Array.from({ length: last - first + 1 }, (_, i) => ({ index: first + i, term, type: EntryType.Normal, data: new Uint8Array([first + i, term]) }));
}

async function openLog(): Promise<RaftLog> {
  const storage = await openDirectoryStorage(directory);
  storages.push(storage);
  const log = new RaftLog(storage, { diskSpace: { reserveBytes: 0 } });
  await log.load();
  return log;
}

describe('LogWriter', () => {
  test('entries handed over while a write is on the disk go to the disk together as the next write', async () => {
    const log = await openLog();
    const writes: number[][] = [];
    const failures: unknown[] = [];
    const writer = new LogWriter(log, () => performance.now(), (written) => writes.push(written.map((e) => e.index)), (error) => failures.push(error));
    writer.write(entries(1, 2));
    writer.write(entries(3, 3));
    writer.write(entries(4, 6));
    await writer.idle();
    expect(failures).toEqual([]);
    expect(writes).toEqual([[1, 2], [3, 4, 5, 6]]);
    const reloaded = await (await openLog()).load();
    expect(reloaded.entries.map((e) => e.index)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  test('a hand-over that replaces entries still waiting, or being written, leaves the log as Raft has it', async () => {
    const log = await openLog();
    const writes: string[] = [];
    const writer = new LogWriter(log, () => performance.now(), (written) => writes.push(written.map((e) => `${e.index}@${e.term}`).join(' ')), (error) => {
      throw error;
    });
    writer.write(entries(1, 4)); // on the disk
    writer.write(entries(5, 8)); // waiting
    writer.write(entries(7, 9, 2)); // replaces 7..8 of the waiting batch
    writer.write(entries(3, 3, 3)); // replaces the rest, down into the batch being written
    await writer.idle();
    expect(writes).toEqual(['1@1 2@1 3@1 4@1', '3@3']);
    const reloaded = await (await openLog()).load();
    expect(reloaded.entries.map((e) => `${e.index}@${e.term}`)).toEqual(['1@1', '2@1', '3@3']);
  });

  test('afterDurable runs once everything handed over before it is durable, in order, and at once when nothing is pending', async () => {
    const log = await openLog();
    const events: string[] = [];
    const writer = new LogWriter(
      log,
      () => performance.now(),
      (written) => events.push(`durable ${written[written.length - 1]!.index}`),
      (error) => {
        throw error;
      },
      () => events.push('released'),
    );
    writer.afterDurable(() => events.push('ack before any write'));
    writer.write(entries(1, 1));
    writer.afterDurable(() => events.push('ack 1'));
    writer.afterDurable(() => events.push('ack 1 again'));
    writer.write(entries(2, 3));
    writer.afterDurable(() => events.push('ack 3'));
    expect(events).toEqual(['ack before any write', 'released']);
    await writer.idle();
    // A write's callbacks run together, then `released`, before the write is reported.
    expect(events).toEqual(['ack before any write', 'released', 'ack 1', 'ack 1 again', 'released', 'durable 1', 'ack 3', 'released', 'durable 3']);
  });

  test('the next write is on its way before the report of the last one, and what the report hands over waits behind it', async () => {
    const log = await openLog();
    const events: string[] = [];
    let writer: LogWriter | undefined;
    let reports = 0;
    writer = new LogWriter(
      log,
      () => performance.now(),
      (written) => {
        events.push(`durable ${written.map((e) => e.index).join(',')}`);
        // As the Ready loop does: the report frees a Ready whose entries are handed over at once.
        if (++reports === 1) writer!.write(entries(4, 4));
      },
      (error) => {
        throw error;
      },
    );
    let idleResolved = false;
    writer.write(entries(1, 1));
    writer.write(entries(2, 3));
    writer.afterDurable(() => events.push(`ack 3 (idle: ${String(idleResolved)})`));
    const idle = writer.idle().then(() => (idleResolved = true));
    await idle;
    expect(events).toEqual(['durable 1', 'ack 3 (idle: false)', 'durable 2,3', 'durable 4']);
    const reloaded = await (await openLog()).load();
    expect(reloaded.entries.map((e) => e.index)).toEqual([1, 2, 3, 4]);
  });

  test('a hand-over larger than LOG_WRITE_BYTES_MAX goes to the disk in writes of at most that much, its acknowledgement after the last', async () => {
    const log = await openLog();
    const events: string[] = [];
    const writer = new LogWriter(log, () => performance.now(), (written) => events.push(`durable ${written.map((e) => e.index).join(',')}`), (error) => {
      throw error;
    });
    const entryBytes = Math.floor(LOG_WRITE_BYTES_MAX / 2.5);
    const large = entries(1, 5).map((entry) => ({ ...entry, data: new Uint8Array(entryBytes).fill(entry.index) }));
    writer.write(large);
    writer.afterDurable(() => events.push('ack 5'));
    writer.write(entries(6, 6));
    writer.afterDurable(() => events.push('ack 6'));
    await writer.idle();
    // Two entries fit one write; the one handed over later joins the rest, and both
    // acknowledgements wait for the write that holds entry 5.
    expect(events).toEqual(['durable 1,2', 'durable 3,4', 'ack 5', 'ack 6', 'durable 5,6']);
    const reloaded = await (await openLog()).load();
    expect(reloaded.entries.map((e) => [e.index, e.data.length, e.data[0]])).toEqual([...large.map((e) => [e.index, entryBytes, e.index]), [6, 2, 6]]);
  });

  test('a failed write is reported once, and idle() still resolves so the node can stop', async () => {
    const log = await openLog();
    const failures: unknown[] = [];
    const writer = new LogWriter(log, () => performance.now(), () => undefined, (error) => failures.push(error));
    // A gap: the log refuses entries that are not consecutive.
    writer.write([...entries(1, 1), ...entries(3, 3)]);
    await writer.idle();
    await new Promise((resolve) => setImmediate(resolve));
    expect(failures).toHaveLength(1);
    expect(String(failures[0])).toMatch(/not consecutive/);
    writer.write(entries(4, 4));
    await writer.idle();
    expect(failures).toHaveLength(1);
  });
});

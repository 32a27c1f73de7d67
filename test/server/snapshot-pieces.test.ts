/**
 * A snapshot file written a piece at a time, on real files: from the frozen views of a real
 * engine's files, while writes go on, it is byte for byte the file the whole-buffer encoding
 * gives, and no write of it is larger than snapshotWriteBytesMax; a file written whole (as
 * before) still loads; a write that fails halfway leaves the previous snapshot, and the node
 * restarts from it.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { CommandKind, encodeCommand } from '../../src/fsm/commands.ts';
import { encodeStateCopy, StateMachine } from '../../src/fsm/state-machine.ts';
import { LIMITS } from '../../src/limits.ts';
import { EntryType, MemoryStorage, type Entry } from '../../src/raft/index.ts';
import type { DurableFileWriter, DurableStorage } from '../../src/runtime.ts';
import { RaftLog } from '../../src/server/raft-log.ts';
import { decodeSnapshotFile, encodeSnapshotFile } from '../../src/server/raft-log-format.ts';
import { SnapshotWriter } from '../../src/server/snapshot-writer.ts';
import { openDirectoryStorage } from '../../runtimes/node/index.ts';
import { Engine } from '../../wasm/index.ts';
import { startTestNode, until, type TestNode } from './harness.ts';

const KiB = 1024;
const stillClock = { nowMs: () => 0, setTimeout: () => ({ cancel() {} }) };
const realTimers = {
  setTimeout(callback: () => void, delayMs: number) {
    const timer = setTimeout(callback, delayMs);
    return { cancel: () => clearTimeout(timer) };
  },
};

/** What was written through the atomic writers of `snapshot`, and a hook run before each write. */
interface SnapshotWrites {
  sizes: number[];
  beforeWrite?: (bytes: Uint8Array, writeNumber: number) => void | Promise<void>;
}

/** The real directory storage, with the writes of every snapshot file seen (and `beforeWrite` run first). */
function watchSnapshotWrites(storage: DurableStorage, writes: SnapshotWrites): DurableStorage {
  const openWriter = storage.openAtomicWriter!.bind(storage);
  return {
    read: (name) => storage.read(name),
    openReader: storage.openReader?.bind(storage),
    writeAtomic: (name, bytes) => storage.writeAtomic(name, bytes),
    append: (name, bytes) => storage.append(name, bytes),
    writeAt: storage.writeAt?.bind(storage),
    sync: (name) => storage.sync(name),
    truncate: (name, size) => storage.truncate(name, size),
    remove: (name) => storage.remove(name),
    list: () => storage.list(),
    async openAtomicWriter(name): Promise<DurableFileWriter> {
      const writer = await openWriter(name);
      if (name !== 'snapshot') return writer;
      let count = 0;
      return {
        async write(bytes) {
          await writes.beforeWrite?.(bytes, ++count);
          writes.sizes.push(bytes.length);
          await writer.write(bytes);
        },
        writeAt: (offset, bytes) => writer.writeAt(offset, bytes),
        commit: () => writer.commit(),
        abort: () => writer.abort(),
      };
    },
  };
}

function normal(index: number, data: Uint8Array): Entry {
  return { index, term: 1, type: EntryType.Normal, data };
}

async function machine(): Promise<StateMachine> {
  return new StateMachine({
    engine: await Engine.create(),
    clock: stillClock,
    busyTimeoutMs: 1000,
    databaseQueuedTasksMax: 100,
    proposalBytesMax: LIMITS.proposalBytesMax,
    walFramesMax: 100_000,
    compaction: { snapshotThresholdEntries: 1_000_000, trailingEntries: 2 },
    log: () => {},
  });
}

/** Runs `sql` on a leader-side machine and returns the FRAMES commands it captured. */
function capture(sm: StateMachine, name: string, sql: string): Uint8Array[] {
  const statement = sm.database(name).engine.prepare(sql)!;
  try {
    while (statement.step()) {
      // no rows wanted
    }
  } finally {
    statement.finalize();
  }
  const db = sm.database(name);
  const commands = db.engine.takeCaptured().map((tx) => encodeCommand({ kind: CommandKind.Frames, database: name, payload: tx.payload }));
  db.engine.confirm(commands.length);
  return commands;
}

const dirs: string[] = [];
function newDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'dqlite-wasm-snapshot-pieces-'));
  dirs.push(dir);
  return dir;
}

let open: TestNode | undefined;
afterEach(async () => {
  await open?.close();
  open = undefined;
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('a snapshot file written in pieces', () => {
  test('from frozen views, while writes go on, is the whole-buffer encoding byte for byte; no write exceeds snapshotWriteBytesMax', async () => {
    const leader = await machine();
    const commands = [...capture(leader, 'app', 'CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)')];
    // About 2.5 MiB of rows, in several transactions: a main file and WAL of ten and more 256 KiB chunks.
    for (let i = 0; i < 10; i++) commands.push(...capture(leader, 'app', `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30) INSERT INTO t (v) SELECT randomblob(8192) FROM n`));
    commands.push(...capture(leader, 'other', 'CREATE TABLE u (x)'));
    const later = capture(leader, 'app', 'UPDATE t SET v = randomblob(8192)');
    const follower = await machine();
    commands.forEach((command, i) => follower.apply(normal(i + 1, command), undefined));
    const index = commands.length;
    const memory = new MemoryStorage();
    memory.append(commands.map((command, i) => normal(i + 1, command)));

    // The same state, frozen twice: one copy encoded whole (as before), the other written in pieces.
    const reference = follower.snapshot();
    const copy = follower.snapshot();
    const meta = { index, term: 1, configuration: { members: [{ id: 1, address: 'a:1', role: 'voter' as const }] } };
    const data = encodeStateCopy(reference);
    reference.release();
    const expected = encodeSnapshotFile({ meta, data });
    expect(data.length).toBeGreaterThan(2 * 1024 * 1024);

    const pieceBytes = 64 * KiB;
    const writes: SnapshotWrites = { sizes: [] };
    const dir = newDir();
    const storage = await openDirectoryStorage(dir);
    const log = new RaftLog(watchSnapshotWrites(storage, writes), { snapshotWriteBytesMax: pieceBytes });
    await log.load();
    const outcomes: string[] = [];
    const writer = new SnapshotWriter({
      log,
      memory,
      clock: realTimers,
      snapshotBytesMax: LIMITS.snapshotBytesMax,
      stored: (at) => void outcomes.push(`stored ${at}`),
      skipped: (at, reason) => void outcomes.push(`skipped ${at}: ${reason}`),
      failed: (error) => void outcomes.push(`failed: ${String(error)}`),
    });
    let heldMax = 0;
    let applied = index;
    writes.beforeWrite = (_bytes, n) => {
      heldMax = Math.max(heldMax, writer.heldBytes);
      // Halfway, every row changes: the engine copies the chunks it writes, the frozen views keep theirs.
      if (n === 10) for (const command of later) follower.apply(normal(++applied, command), undefined);
    };
    writer.start({ copy, term: 1, configuration: meta.configuration, compactIndex: 0 });
    await writer.idle();
    expect(outcomes).toEqual([`stored ${index}`]);
    expect(applied).toBeGreaterThan(index);

    const file = new Uint8Array(readFileSync(join(dir, 'snapshot')));
    expect(file.length).toBe(expected.length);
    expect(Buffer.compare(file, expected)).toBe(0);
    // The header, then full pieces, then the rest: never more than one piece of the encoding at a time.
    expect(writes.sizes[0]).toBe(expected.length - data.length);
    expect(writes.sizes.slice(1).reduce((a, b) => a + b, 0)).toBe(data.length);
    expect(Math.max(...writes.sizes)).toBe(pieceBytes);
    expect(writes.sizes.length).toBe(1 + Math.ceil(data.length / pieceBytes));
    expect(heldMax).toBe(pieceBytes);
    expect(writer.heldBytes).toBe(0);
    // Only its metadata stays in memory; followers get its chunks read back from the file.
    expect(memory.snapshot().meta.index).toBe(index);
    expect(memory.snapshot().data.length).toBe(0);
    expect(memory.snapshotDataBytes()).toBe(data.length);
    expect(readdirSync(dir).filter((name) => name.startsWith('.tmp-'))).toEqual([]);
    await storage.close();

    // It reads back with the reader of whole files, as a restart reads it.
    const again = await openDirectoryStorage(dir);
    const loaded = await new RaftLog(again).load();
    expect(loaded.snapshot?.meta).toEqual(meta);
    expect(Buffer.compare(loaded.snapshot!.data, data)).toBe(0);
    await again.close();
  });

  test('a snapshot file written whole, as before, still loads', async () => {
    const dir = newDir();
    const storage = await openDirectoryStorage(dir);
    const data = new Uint8Array(300 * KiB).map((_, i) => (i * 13) & 0xff);
    const meta = { index: 9, term: 2, configuration: { members: [{ id: 1, address: 'a:1', role: 'voter' as const }] } };
    await storage.writeAtomic('snapshot', encodeSnapshotFile({ meta, data }));
    const loaded = await new RaftLog(storage).load();
    expect(loaded.snapshot?.meta).toEqual(meta);
    expect(Buffer.compare(loaded.snapshot!.data, data)).toBe(0);
    // And the log writes the same file in pieces.
    const other = await openDirectoryStorage(newDir());
    const log = new RaftLog(other, { snapshotWriteBytesMax: 4 * KiB });
    await log.load();
    await log.saveSnapshot({ meta, data }, 0);
    expect(Buffer.compare((await other.read('snapshot'))!, (await storage.read('snapshot'))!)).toBe(0);
    await storage.close();
    await other.close();
  });

  test('a write that fails halfway leaves the previous snapshot, and the node restarts from it', async () => {
    const pieceBytes = 16 * KiB;
    const writes: SnapshotWrites = { sizes: [] };
    let failAtWrite: number | undefined;
    writes.beforeWrite = (_bytes, n) => {
      if (failAtWrite !== undefined && n === failAtWrite) throw Object.assign(new Error('EIO: i/o error, write (injected)'), { code: 'EIO' });
    };
    const settings = { snapshotThresholdEntries: 8, snapshotTrailingEntries: 4, limits: { snapshotWriteBytesMax: pieceBytes } };
    const first = await startTestNode({ ...settings, wrapStorage: (storage) => watchSnapshotWrites(storage, writes) });
    open = first;
    await until('leadership', 10_000, () => first.node.isLeader());
    const db = await first.client('app');
    await db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)');
    let acknowledged = 0;
    while (first.node.status().snapshots === 0) {
      await db.exec('INSERT INTO t (v) VALUES (randomblob(20000))');
      acknowledged++;
    }
    const snapshotIndex = first.node.status().snapshotIndex;
    // The first snapshot went a piece at a time: many writes, none above the bound.
    expect(writes.sizes.length).toBeGreaterThan(10);
    expect(Math.max(...writes.sizes)).toBeLessThanOrEqual(pieceBytes);
    const previousFile = readFileSync(join(first.dir, 'snapshot'));

    // The next snapshot's sixth write fails: the node stops, as after any failed write.
    failAtWrite = 6;
    const stopped = first.node.closed.then(
      () => 'stopped without an error',
      (error: unknown) => String(error),
    );
    let refused = false;
    while (!refused) {
      try {
        await db.exec('INSERT INTO t (v) VALUES (randomblob(20000))');
        acknowledged++;
      } catch {
        refused = true;
      }
    }
    expect(await stopped).toMatch(/could not save a snapshot: .*EIO: i\/o error, write \(injected\)/);
    // The previous snapshot is there, whole; the temporary file is gone.
    expect(Buffer.compare(readFileSync(join(first.dir, 'snapshot')), previousFile)).toBe(0);
    expect(readdirSync(first.dir).filter((name) => name.startsWith('.tmp-'))).toEqual([]);
    const onDisk = decodeSnapshotFile(new Uint8Array(previousFile));
    if (typeof onDisk === 'string') throw new Error(onDisk);
    expect(onDisk.meta.index).toBe(snapshotIndex);
    await db.close().catch(() => {});
    const dir = first.dir;
    await first.close({ keepDir: true });
    open = undefined;

    open = await startTestNode({ ...settings, dir, bootstrap: false });
    dirs.push(dir);
    const restarted = open.node;
    expect(restarted.status().snapshotIndex).toBe(snapshotIndex);
    await until('leadership after the restart', 10_000, () => restarted.isLeader());
    const again = await open.client('app');
    const rows = (await again.query('SELECT count(*) AS n FROM t')).rows as { n: number }[];
    expect(rows[0]!.n).toBeGreaterThanOrEqual(acknowledged);
    await again.exec('INSERT INTO t (v) VALUES (randomblob(10))');
    await again.close();
  }, 60_000);
});

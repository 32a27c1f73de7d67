/**
 * The order of a Ready's work on a real Raft node and a real log on disk: a leader's own log write
 * is on its way before its appends leave, its entries count (are committed, applied) only once that
 * write is durable, and the proposals of one turn of the event loop go out as one Ready.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { openDirectoryStorage, type NodeDirectoryStorage } from '../../runtimes/node/storage.ts';
import { MemoryStorage, MessageType, RaftNode, type Entry, type Message } from '../../src/raft/index.ts';
import { RaftLog } from '../../src/server/raft-log.ts';
import { ReadyLoop, recoverRaftState } from '../../src/server/ready-loop.ts';
import { SnapshotWriter } from '../../src/server/snapshot-writer.ts';

let directory: string;
let storage: NodeDirectoryStorage | undefined;

beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'dqlite-wasm-ready-order-'));
});
afterEach(async () => {
  await storage?.close();
  await rm(directory, { recursive: true, force: true });
});

const timer = (handle: ReturnType<typeof setTimeout>) => ({ cancel: () => clearTimeout(handle) });

/** Lets the event loop run (disk writes finish) until `done` holds. */
async function until(what: string, done: () => boolean): Promise<void> {
  for (let turns = 0; !done(); turns++) {
    if (turns > 10_000) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** A RaftLog that notes when each append starts and ends in `events`. */
class NotingLog extends RaftLog {
  constructor(
    storage: NodeDirectoryStorage,
    private readonly events: string[],
  ) {
    super(storage, { diskSpace: { reserveBytes: 0 } });
  }

  override async append(entries: readonly Entry[]): Promise<void> {
    const range = `${entries[0]!.index}..${entries[entries.length - 1]!.index}`;
    this.events.push(`write ${range} starts`);
    await super.append(entries);
    this.events.push(`write ${range} durable`);
  }
}

/**
 * A ReadyLoop on node 1, leader of voters 1 and 2 (node 2 answers through `acknowledge`), its
 * log on disk, its empty entry of the new term committed and applied; `events` then starts empty.
 */
async function leaderLoop(afterIo?: (callback: () => void) => void) {
  const events: string[] = [];
  storage = await openDirectoryStorage(directory);
  const log = new NotingLog(storage, events);
  const memory = new MemoryStorage();
  await recoverRaftState(log, memory, {
    members: [
      { id: 1, address: 'a', role: 'voter' },
      { id: 2, address: 'b', role: 'voter' },
    ],
  });
  const raft = new RaftNode({ id: 1, storage: memory, electionTimeoutTicks: 10, heartbeatTicks: 1, random: () => 0.5, preVote: false, asyncStorageWrites: true });
  const failures: unknown[] = [];
  const loop = new ReadyLoop(
    raft,
    log,
    memory,
    new SnapshotWriter({ log, memory, clock: { setTimeout: (callback, delayMs) => timer(setTimeout(callback, delayMs)) }, snapshotBytesMax: 1 << 20, stored: () => undefined, skipped: () => undefined, failed: (error) => failures.push(error) }),
    {
      restore: () => undefined,
      stateChanged: () => undefined,
      configurationChanged: () => undefined,
      send: (messages: readonly Message[]) => {
        for (const m of messages) events.push(`send ${MessageType[m.type]}${m.entries.length > 0 ? ` ${m.entries[0]!.index}..${m.entries[m.entries.length - 1]!.index}` : ''}`);
      },
      apply: (entries) => {
        for (const entry of entries) events.push(`apply ${entry.index}`);
      },
      readStates: () => undefined,
      persisted: () => undefined,
      committed: () => undefined,
      appliedReady: () => undefined,
      fatal: (error) => failures.push(error),
    },
    () => performance.now(),
    () => Promise.resolve(),
    afterIo,
  );
  raft.campaign();
  loop.schedule();
  await until('the vote for itself', () => memory.hardState().vote === 1);
  raft.step({ type: MessageType.VoteResponse, from: 2, to: 1, term: raft.status().term, logTerm: 0, index: 0, commit: 0, reject: false, rejectHint: 0, context: 0, entries: [] });
  loop.schedule();
  await until('leadership', () => raft.status().state === 'leader');
  const acknowledge = (index: number): void => {
    raft.step({ type: MessageType.AppendResponse, from: 2, to: 1, term: raft.status().term, logTerm: 0, index, commit: 0, reject: false, rejectHint: 0, context: 0, entries: [] });
    loop.schedule();
  };
  // The follower has the leader's log up to its empty entry of the new term.
  const empty = raft.status().lastIndex;
  acknowledge(empty);
  await until('the empty entry applied', () => events.includes(`apply ${empty}`));
  events.length = 0;
  return { events, failures, raft, loop, acknowledge };
}

test("a leader's own write starts before its appends leave; its entries apply once that write is durable", async () => {
  const { events, failures, raft, loop, acknowledge } = await leaderLoop();
  expect(raft.propose(new Uint8Array([1, 2, 3]))).toMatchObject({ ok: true });
  const index = raft.status().lastIndex;
  loop.schedule();
  // The follower acknowledges at once, before the leader's own write is durable.
  acknowledge(index);
  await until('the entry applied', () => events.includes(`apply ${index}`));
  expect(failures).toEqual([]);
  // The commit goes to the follower (an empty append) before the entry is applied.
  expect(events).toEqual([`write ${index}..${index} starts`, `send Append ${index}..${index}`, `write ${index}..${index} durable`, 'send Append', `apply ${index}`]);
});

test('the proposals of one turn make one Ready: one write and one append per follower for them all', async () => {
  const { events, failures, raft, loop, acknowledge } = await leaderLoop((callback) => setImmediate(callback));
  expect(raft.propose(new Uint8Array([1]))).toMatchObject({ ok: true });
  loop.scheduleProposal();
  expect(raft.propose(new Uint8Array([2]))).toMatchObject({ ok: true });
  loop.scheduleProposal();
  const last = raft.status().lastIndex;
  expect(events).toEqual([]);
  await until('the entries written', () => events.includes(`write ${last - 1}..${last} durable`));
  acknowledge(last);
  await until('the entries applied', () => events.includes(`apply ${last}`));
  expect(failures).toEqual([]);
  expect(events).toEqual([`write ${last - 1}..${last} starts`, `send Append ${last - 1}..${last}`, `write ${last - 1}..${last} durable`, 'send Append', `apply ${last - 1}`, `apply ${last}`]);
});

import { describe, expect, test } from 'vitest';
import { CommandCodecError, CommandKind, encodeCommand } from '../../src/fsm/commands.ts';
import { ApplyError } from '../../src/fsm/errors.ts';
import type { Replicator } from '../../src/fsm/replicated-database.ts';
import { decodeSnapshot } from '../../src/fsm/snapshot-codec.ts';
import { encodeStateCopy, StateMachine, type StateMachineOptions } from '../../src/fsm/state-machine.ts';
import { LIMITS } from '../../src/limits.ts';
import { encodeConfChange, encodeConfiguration, EntryType, type Entry } from '../../src/raft/index.ts';
import { Engine } from '../../wasm/index.ts';

/** Timers that never fire: these tests apply entries directly and wait for nothing. */
const stillClock = { nowMs: () => 0, setTimeout: () => ({ cancel() {} }) };

async function machine(options: Partial<Pick<StateMachineOptions, 'engine' | 'keepTransactionOnRefusedProposal' | 'compaction'>> = {}): Promise<StateMachine> {
  return new StateMachine({
    engine: options.engine ?? (await Engine.create()),
    clock: stillClock,
    busyTimeoutMs: 1000,
    databaseQueuedTasksMax: 100,
    proposalBytesMax: LIMITS.proposalBytesMax,
    walFramesMax: 1000,
    compaction: { snapshotThresholdEntries: 4, trailingEntries: 2 },
    ...options,
    log: () => {},
  });
}

function normal(index: number, data: Uint8Array, term = 1): Entry {
  return { index, term, type: EntryType.Normal, data };
}

function run(sm: StateMachine, name: string, sql: string): void {
  const statement = sm.database(name).engine.prepare(sql)!;
  try {
    while (statement.step()) {
      // rows are not needed
    }
  } finally {
    statement.finalize();
  }
}

/** Runs `sql` on a leader-side machine and returns the FRAMES commands it captured. */
function capture(sm: StateMachine, name: string, sql: string): Uint8Array[] {
  run(sm, name, sql);
  const db = sm.database(name);
  const commands = db.engine.takeCaptured().map((tx) => encodeCommand({ kind: CommandKind.Frames, database: name, payload: tx.payload }));
  db.engine.confirm(commands.length);
  return commands;
}

describe('state machine', () => {
  test('a committed entry that cannot be decoded throws ApplyError naming the index, with the codec error as cause', async () => {
    const sm = await machine();
    sm.apply({ index: 1, term: 1, type: EntryType.Configuration, data: encodeConfiguration({ members: [{ id: 1, address: 'a:1', role: 'voter' }] }) }, undefined);
    const bad = new Uint8Array([CommandKind.Frames, 99, 0, 0]);
    let thrown: unknown;
    try {
      sm.apply(normal(2, bad), undefined);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ApplyError);
    const error = thrown as ApplyError;
    expect(error.index).toBe(2);
    expect(error.message).toMatch(/entry 2 of term 1, which is committed: the command cannot be decoded.*unknown command version 99/);
    expect(error.cause).toBeInstanceOf(CommandCodecError);
    // Never skipped: the applied index stays before the bad entry.
    expect(sm.appliedIndex).toBe(1);
  });

  test('a membership change or configuration that cannot be decoded stops the apply too', async () => {
    const sm = await machine();
    expect(() => sm.apply({ index: 1, term: 1, type: EntryType.Configuration, data: new Uint8Array([7]) }, undefined)).toThrow(
      /failed to apply entry 1 of term 1, which is committed: the configuration cannot be decoded/,
    );
    sm.apply({ index: 1, term: 1, type: EntryType.Configuration, data: encodeConfiguration({ members: [{ id: 2, address: 'a:1', role: 'voter' }] }) }, undefined);
    sm.apply({ index: 2, term: 1, type: EntryType.ConfChange, data: encodeConfChange({ type: 'remove', id: 9 }) }, undefined);
    expect(() => sm.apply({ index: 3, term: 1, type: EntryType.ConfChange, data: new Uint8Array([200, 1]) }, undefined)).toThrow(
      /failed to apply entry 3 of term 1, which is committed: the membership change cannot be decoded/,
    );
    expect(sm.appliedIndex).toBe(2);
  });

  test('frames a database refuses stop the apply with the engine error as cause', async () => {
    const sm = await machine();
    const garbage = encodeCommand({ kind: CommandKind.Frames, database: 'app', payload: new Uint8Array([1, 2, 3, 4, 5]) });
    expect(() => sm.apply(normal(1, garbage), undefined)).toThrow(/failed to apply entry 1 of term 1.*database app refused its frames/);
    expect(sm.appliedIndex).toBe(0);
  });

  test('applies FRAMES from another node, snapshots, and restores byte-identical databases', async () => {
    const leader = await machine();
    const commands = [
      ...capture(leader, 'app', 'CREATE TABLE t (x)'),
      ...capture(leader, 'app', "INSERT INTO t VALUES ('a'), ('b')"),
    ];
    const follower = await machine();
    commands.forEach((command, i) => follower.apply(normal(i + 1, command), undefined));
    expect(follower.appliedIndex).toBe(2);
    const copiedAt2 = follower.database('app').engine.snapshot();
    const copy = follower.snapshot();
    expect(copy.index).toBe(2);
    // The copy is consistent: later entries do not change it.
    follower.apply(normal(3, encodeCommand({ kind: CommandKind.Checkpoint, database: 'app' })), undefined);
    const restored = await machine();
    restored.restore(encodeStateCopy(copy), copy.index, 1);
    expect(restored.appliedIndex).toBe(2);
    expect(restored.snapshotIndex).toBe(2);
    // The copy's files are frozen views of the follower's: encoded, they are the files of index 2.
    const original = decodeSnapshot(encodeStateCopy(copy)).find((f) => f.name === 'app')!;
    copy.release();
    expect(original).toEqual({ name: 'app', main: copiedAt2.main, wal: copiedAt2.wal });
    expect(restored.database('app').engine.files()).toEqual({ main: original.main, wal: original.wal });
    const rows: unknown[] = [];
    const statement = restored.database('app').engine.prepare('SELECT x FROM t ORDER BY x')!;
    while (statement.step()) rows.push(statement.row()[0]);
    statement.finalize();
    expect(rows).toEqual(['a', 'b']);
  });

  test('a snapshot that cannot be decoded throws ApplyError and leaves the databases alone', async () => {
    const sm = await machine();
    expect(() => sm.restore(new Uint8Array([1, 2, 3]), 9, 2)).toThrow(/failed to apply entry 9 of term 2, which is committed: the snapshot cannot be decoded/);
    expect(sm.appliedIndex).toBe(0);
  });

  test('snapshots are due every snapshotThresholdEntries; compaction keeps trailingEntries', async () => {
    const sm = await machine();
    for (let i = 1; i <= 3; i++) sm.apply({ index: i, term: 1, type: EntryType.Barrier, data: new Uint8Array(0) }, undefined);
    expect(sm.snapshotDue()).toBe(false);
    sm.apply({ index: 4, term: 1, type: EntryType.Barrier, data: new Uint8Array(0) }, undefined);
    expect(sm.snapshotDue()).toBe(true);
    sm.snapshotStarted(4);
    expect(sm.snapshotDue()).toBe(false);
    expect(sm.compactionIndex(4)).toBe(2);
  });

  test('a snapshot is also due once the entries since the last one hold snapshotThresholdBytes and half the databases, however few they are', async () => {
    const leader = await machine();
    const thresholdBytes = 64 * 1024;
    const engine = await Engine.create();
    const follower = await machine({ engine, compaction: { snapshotThresholdEntries: 1000, trailingEntries: 10, snapshotThresholdBytes: thresholdBytes } });
    const commands = [
      ...capture(leader, 'app', 'CREATE TABLE t (x)'),
      ...Array.from({ length: 40 }, () => capture(leader, 'app', 'INSERT INTO t VALUES (randomblob(20000))')).flat(),
    ];
    let index = 0;
    let bytes = 0;
    const applyNext = (): void => {
      const command = commands[index]!;
      follower.apply(normal(++index, command), undefined);
      bytes += command.length;
    };
    // What the databases hold in memory (status.memory.databasesBytes).
    const databasesBytes = (): number => engine.filesBytes();
    while (bytes < thresholdBytes) {
      expect(follower.snapshotDue()).toBe(false);
      applyNext();
    }
    // Past the threshold, but less than half of what the databases hold: not yet.
    expect(bytes).toBeLessThan(databasesBytes() / 2);
    expect(follower.snapshotDue()).toBe(false);
    while (!follower.snapshotDue()) applyNext();
    expect(index).toBeLessThan(commands.length);
    expect(bytes).toBeGreaterThanOrEqual(databasesBytes() / 2);
    const copy = follower.snapshot();
    follower.snapshotStarted(copy.index);
    copy.release();
    // Counted again from the snapshot.
    expect(follower.snapshotDue()).toBe(false);
    applyNext();
    expect(follower.snapshotDue()).toBe(false);
  });
});

describe('a proposal refused mid-batch', () => {
  const refusing: Replicator = {
    propose() {
      throw new Error('not leader: the leader is elsewhere');
    },
  };

  test('drops the transactions the engine holds, so the next ones are confirmed by the right count', async () => {
    const sm = await machine();
    run(sm, 'app', 'CREATE TABLE t (x)');
    const db = sm.database('app');
    expect(() => db.proposeCaptured(refusing)).toThrow(/not leader/);
    expect(db.engine.pendingCount()).toBe(0);
    expect(db.pendingCount).toBe(0);
  });

  test('with keepTransactionOnRefusedProposal the engine keeps them (the bug the fault suite found)', async () => {
    const sm = await machine({ keepTransactionOnRefusedProposal: true });
    run(sm, 'app', 'CREATE TABLE t (x)');
    const db = sm.database('app');
    expect(() => db.proposeCaptured(refusing)).toThrow(/not leader/);
    expect(db.engine.pendingCount()).toBe(1);
    expect(db.pendingCount).toBe(0);
  });
});

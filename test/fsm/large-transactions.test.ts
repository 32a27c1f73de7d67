/**
 * Transactions larger than one proposal, on real SQLite: the leader's machine splits them into
 * TX_PART entries and a TX_COMMIT, replicas stage the parts outside the engine and apply the
 * transaction whole at the commit, and every way the commit can fail to come leaves nothing.
 */
import { describe, expect, test, vi } from 'vitest';
import { CommandKind, decodeCommand, encodeCommand, encodeTransaction } from '../../src/fsm/commands.ts';
import { ApplyError } from '../../src/fsm/errors.ts';
import { PARTS_IN_FLIGHT_MAX, type Replicator } from '../../src/fsm/replicated-database.ts';
import { encodeStateCopy, StateMachine } from '../../src/fsm/state-machine.ts';
import { encodeConfChange, EntryType, type Entry } from '../../src/raft/index.ts';
import { Engine } from '../../wasm/index.ts';

const PROPOSAL_BYTES_MAX = 64 * 1024;
const stillClock = { nowMs: () => 0, setTimeout: () => ({ cancel() {} }) };

/** The node's clock: real timers, so a gradual proposal takes real turns of the event loop. */
const timerClock = {
  nowMs: () => performance.now(),
  setTimeout: (callback: () => void, delayMs: number) => {
    const timer = setTimeout(callback, delayMs);
    return { cancel: () => clearTimeout(timer) };
  },
};

async function machine(options: { snapshotBetweenParts?: boolean; databaseBytesMax?: number; lines?: string[]; gradual?: boolean } = {}): Promise<StateMachine> {
  return new StateMachine({
    engine: await Engine.create(),
    clock: options.gradual ? timerClock : stillClock,
    ...(options.gradual && { proposePartsGradually: true }),
    busyTimeoutMs: 1000,
    databaseQueuedTasksMax: 100,
    proposalBytesMax: PROPOSAL_BYTES_MAX,
    walFramesMax: 100_000,
    compaction: { snapshotThresholdEntries: 2, trailingEntries: 1 },
    ...(options.snapshotBetweenParts && { snapshotBetweenParts: true }),
    ...(options.databaseBytesMax && { databaseBytesMax: options.databaseBytesMax }),
    log: (line) => options.lines?.push(line),
  });
}

/** A Raft log stand-in for the leader's proposals: consecutive indexes in one term. */
class RecordingLog implements Replicator {
  readonly entries: Entry[] = [];
  constructor(
    private nextIndex: number,
    public term: number,
  ) {}

  propose(data: Uint8Array): { index: number; term: number } {
    const entry: Entry = { index: this.nextIndex++, term: this.term, type: EntryType.Normal, data };
    this.entries.push(entry);
    return { index: entry.index, term: entry.term };
  }

  append(type: EntryType, data: Uint8Array, term = this.term): Entry {
    const entry: Entry = { index: this.nextIndex++, term, type, data };
    this.entries.push(entry);
    return entry;
  }
}

function exec(sm: StateMachine, name: string, sql: string): void {
  const statement = sm.database(name).engine.prepare(sql)!;
  try {
    while (statement.step()) {
      // no rows needed
    }
  } finally {
    statement.finalize();
  }
}

/** Every row of `statement`, which is finalized. */
function allRows(statement: { step(): boolean; row(): unknown[]; finalize(): void }): unknown[][] {
  const rows: unknown[][] = [];
  try {
    while (statement.step()) rows.push(statement.row());
  } finally {
    statement.finalize();
  }
  return rows;
}

/** Rows as the database's own connection (reopened on the WAL as it is now) reads them. */
function connectionRows(sm: StateMachine, name: string, sql: string): unknown[][] {
  return allRows(sm.database(name).engine.prepare(sql)!);
}

/** Rows of `sql` on the committed state (the read view clients read from). */
function committedRows(sm: StateMachine, name: string, sql: string): unknown[][] {
  const view = sm.database(name).engine.readView();
  view.catchUp();
  return allRows(view.prepare(sql)!);
}

function applyAll(sm: StateMachine, entries: Entry[]): void {
  for (const entry of entries) sm.apply(entry, undefined);
}

/** A leader with table t(x) committed and replicated to `followers`; returns its log. */
async function cluster(followers: number): Promise<{ leader: StateMachine; replicas: StateMachine[]; log: RecordingLog }> {
  const leader = await machine();
  const replicas = await Promise.all(Array.from({ length: followers }, () => machine()));
  const log = new RecordingLog(1, 1);
  exec(leader, 'app', 'CREATE TABLE t (x BLOB)');
  leader.database('app').proposeCaptured(log);
  for (const sm of [leader, ...replicas]) applyAll(sm, log.entries);
  return { leader, replicas, log };
}

/** Runs `sql` on the leader and proposes what it captured: the new log entries. */
function propose(leader: StateMachine, log: RecordingLog, sql: string): { before: number; entries: Entry[] } {
  const before = log.entries.length;
  exec(leader, 'app', sql);
  leader.database('app').proposeCaptured(log);
  return { before, entries: log.entries.slice(before) };
}

function kinds(entries: Entry[]): CommandKind[] {
  return entries.map((entry) => decodeCommand(entry.data).kind);
}

describe('a transaction larger than one proposal', () => {
  test('goes as parts and a commit, each within proposalBytesMax, and applies whole and byte-identical on every replica', async () => {
    const { leader, replicas, log } = await cluster(2);
    const { before, entries } = propose(leader, log, 'INSERT INTO t VALUES (randomblob(300000))');
    const parts = entries.slice(0, -1);
    expect(parts.length).toBeGreaterThanOrEqual(5);
    expect(kinds(entries)).toEqual([...parts.map(() => CommandKind.TransactionPart), CommandKind.TransactionCommit]);
    for (const entry of entries) expect(entry.data.length).toBeLessThanOrEqual(PROPOSAL_BYTES_MAX);

    const [follower] = replicas;
    const confirmedBefore = follower!.database('app').engine.snapshot();
    const walBytesBefore = confirmedBefore.wal.length;
    applyAll(follower!, parts);
    // Staged in the engine's WAL past the committed state, without its commit frame: the
    // committed files, the read view and a connection opened on the WAL now all see nothing of it.
    expect(follower!.stagedTransaction).toEqual({ database: 'app', parts: parts.length, staged: parts.length, bytes: expect.any(Number) });
    expect(follower!.database('app').engine.stagedBytes()).toBe(follower!.stagedTransaction!.bytes);
    expect(follower!.database('app').engine.files().wal.length).toBeGreaterThan(walBytesBefore + 300000);
    expect(follower!.database('app').engine.snapshot()).toEqual(confirmedBefore);
    expect(committedRows(follower!, 'app', 'SELECT count(*) FROM t')).toEqual([[0]]);
    expect(connectionRows(follower!, 'app', 'SELECT count(*) FROM t')).toEqual([[0]]);
    // The leader holds the frames as pending; its reads do not see them either.
    applyAll(leader, parts);
    expect(committedRows(leader, 'app', 'SELECT count(*) FROM t')).toEqual([[0]]);
    let committed = false;
    void leader.database('app').commitBarrier()!.then(() => (committed = true));

    applyAll(replicas[1]!, parts);
    for (const sm of [leader, ...replicas]) sm.apply(entries[entries.length - 1]!, undefined);
    await Promise.resolve();
    expect(committed).toBe(true);
    for (const sm of [leader, ...replicas]) {
      expect(sm.stagedTransaction).toBeUndefined();
      expect(committedRows(sm, 'app', 'SELECT count(*), length(x) FROM t')).toEqual([[1, 300000]]);
      expect(sm.database('app').engine.files()).toEqual(leader.database('app').engine.files());
    }
  });

  test('parts of a term followed by the next leader\'s first entry are dropped: nothing of them is applied', async () => {
    const { leader, replicas, log } = await cluster(1);
    const { before, entries } = propose(leader, log, 'INSERT INTO t VALUES (randomblob(200000))');
    // The old leader reached a quorum with two parts only, then a new leader took over.
    const follower = replicas[0]!;
    const lines: string[] = [];
    const witness = await machine({ lines });
    applyAll(witness, log.entries.slice(0, before));
    const survivors = entries.slice(0, 2);
    const next = new RecordingLog(survivors[1]!.index + 1, 2);
    const barrier = next.append(EntryType.Normal, encodeCommand({ kind: CommandKind.Barrier }));
    for (const sm of [follower, witness]) {
      applyAll(sm, [...survivors, barrier]);
      expect(sm.stagedTransaction).toBeUndefined();
      expect(sm.discardedTransactions).toBe(1);
      expect(committedRows(sm, 'app', 'SELECT count(*) FROM t')).toEqual([[0]]);
    }
    expect(lines.join('\n')).toMatch(/dropped 2 of \d+ parts .* of a transaction on database app .* came before its commit/);
    // The old leader, now a follower, lost its pending transaction and applies the same.
    leader.abortPending('this node is no longer the leader');
    applyAll(leader, [...survivors, barrier]);
    // The new leader writes on: every replica applies it on top of the state before the lost one.
    const newLeader = follower;
    exec(newLeader, 'app', "INSERT INTO t VALUES ('after')");
    newLeader.database('app').proposeCaptured(next);
    const frames = next.entries.slice(1);
    for (const sm of [newLeader, witness, leader]) applyAll(sm, frames);
    for (const sm of [witness, leader]) {
      expect(committedRows(sm, 'app', 'SELECT x FROM t')).toEqual([['after']]);
      expect(sm.database('app').engine.files()).toEqual(newLeader.database('app').engine.files());
    }
  });

  test('a leader that stepped down after its parts were applied still applies the commit a new leader commits', async () => {
    const { leader, replicas, log } = await cluster(1);
    const { before, entries } = propose(leader, log, 'INSERT INTO t VALUES (randomblob(150000))');
    applyAll(leader, entries.slice(0, -1));
    // Leadership lost before the commit was known to be committed: the engine drops the frames.
    leader.abortPending('this node is no longer the leader');
    expect(leader.database('app').engine.pendingCount()).toBe(0);
    // The new leader had the commit entry: it commits it (before its own first entry).
    for (const sm of [leader, replicas[0]!]) {
      if (sm !== leader) applyAll(sm, entries.slice(0, -1));
      sm.apply(entries[entries.length - 1]!, undefined);
      expect(committedRows(sm, 'app', 'SELECT length(x) FROM t')).toEqual([[150000]]);
    }
    expect(leader.database('app').engine.files()).toEqual(replicas[0]!.database('app').engine.files());
  });

  test('an abandoned transaction in the same term is dropped when the next entry is not its continuation', async () => {
    const { leader, replicas, log } = await cluster(1);
    const follower = replicas[0]!;
    const before = log.entries.length;
    exec(leader, 'app', 'INSERT INTO t VALUES (randomblob(200000))');
    // The proposal is refused after two parts (log full): the leader drops the transaction.
    let accepted = 0;
    const refusing: Replicator = {
      propose: (data) => {
        if (accepted++ === 2) throw new Error('cannot replicate: too many entries are waiting to commit');
        return log.propose(data);
      },
    };
    expect(() => leader.database('app').proposeCaptured(refusing)).toThrow(/too many entries/);
    expect(leader.database('app').engine.pendingCount()).toBe(0);
    exec(leader, 'app', "INSERT INTO t VALUES ('small')");
    leader.database('app').proposeCaptured(log);
    const entries = log.entries.slice(before);
    expect(kinds(entries)).toEqual([CommandKind.TransactionPart, CommandKind.TransactionPart, CommandKind.Frames]);
    for (const sm of [leader, follower]) {
      applyAll(sm, entries);
      expect(sm.discardedTransactions).toBe(1);
      expect(committedRows(sm, 'app', 'SELECT x FROM t')).toEqual([['small']]);
    }
    expect(follower.database('app').engine.files()).toEqual(leader.database('app').engine.files());
  });

  test('a commit whose parts are missing, or a part without its earlier ones, stops the apply', async () => {
    const { leader, replicas, log } = await cluster(1);
    const { before, entries } = propose(leader, log, 'INSERT INTO t VALUES (randomblob(200000))');
    const follower = replicas[0]!;
    const applied = follower.appliedIndex;
    // Entry `before + 1` (the first part) never applied here: the second part cannot be skipped past.
    const skipping = await machine();
    applyAll(skipping, log.entries.slice(0, before));
    const second = { ...entries[1]!, index: skipping.appliedIndex + 1 };
    expect(() => skipping.apply(second, undefined)).toThrow(ApplyError);
    expect(() => skipping.apply(second, undefined)).toThrow(/part 2 of \d+ of a transaction on database app arrived without its earlier parts/);
    const commit = { ...entries[entries.length - 1]!, index: applied + 1 };
    expect(() => follower.apply(commit, undefined)).toThrow(/the commit of a \d+-part transaction of \d+ bytes on database app came, but none of its parts are staged/);
    expect(follower.appliedIndex).toBe(applied);
  });

  test('no snapshot is taken while parts are staged; a restart from the snapshot before them replays them', async () => {
    const { leader, replicas, log } = await cluster(1);
    const follower = replicas[0]!;
    const copy = follower.snapshot();
    follower.snapshotStarted(copy.index);
    const { before, entries } = propose(leader, log, 'INSERT INTO t VALUES (randomblob(200000))');
    applyAll(follower, entries.slice(0, -1));
    expect(follower.appliedIndex - copy.index).toBeGreaterThan(2);
    expect(follower.snapshotDue()).toBe(false);
    expect(() => follower.snapshot()).toThrow(/invariant violated: a snapshot at \d+ would fall between the parts of a transaction and its commit/);
    follower.apply(entries[entries.length - 1]!, undefined);
    expect(follower.snapshotDue()).toBe(true);
    // Restart: the snapshot, then the log after it.
    const restarted = await machine();
    restarted.restore(encodeStateCopy(copy), copy.index, 1);
    applyAll(restarted, log.entries.slice(copy.index));
    expect(restarted.database('app').engine.files()).toEqual(follower.database('app').engine.files());
  });

  test('with snapshotBetweenParts a snapshot lands inside the transaction, and a node restarting from it stops', async () => {
    const leader = await machine();
    const buggy = await machine({ snapshotBetweenParts: true });
    const log = new RecordingLog(1, 1);
    exec(leader, 'app', 'CREATE TABLE t (x BLOB)');
    leader.database('app').proposeCaptured(log);
    exec(leader, 'app', 'INSERT INTO t VALUES (randomblob(200000))');
    leader.database('app').proposeCaptured(log);
    applyAll(buggy, log.entries.slice(0, 3));
    expect(buggy.snapshotDue()).toBe(true);
    const copy = buggy.snapshot();
    const restarted = await machine();
    restarted.restore(encodeStateCopy(copy), copy.index, 1);
    expect(() => applyAll(restarted, log.entries.slice(copy.index))).toThrow(ApplyError);
  });

  test('a part whose frames fail their checksum stops the apply at that part; the committed state is untouched and dropping the staged bytes restores the WAL', async () => {
    const { leader, replicas, log } = await cluster(1);
    const { entries } = propose(leader, log, 'INSERT INTO t VALUES (randomblob(300000))');
    const follower = replicas[0]!;
    const engine = follower.database('app').engine;
    const confirmed = engine.snapshot();
    const walBefore = engine.files().wal;
    applyAll(follower, entries.slice(0, 1));
    const corrupt = { ...entries[1]!, data: entries[1]!.data.slice() };
    corrupt.data[corrupt.data.length >> 1] ^= 0xff; // inside a frame wholly in this part: its checksum no longer matches
    let failure: unknown;
    try {
      follower.apply(corrupt, undefined);
    } catch (error) {
      failure = error;
    }
    expect(failure).toBeInstanceOf(ApplyError);
    expect(String(failure)).toMatch(new RegExp(`entry ${corrupt.index}.*database app refused a transaction part`));
    expect(String((failure as ApplyError).cause)).toMatch(/fails its checksum/);
    expect(follower.appliedIndex).toBe(corrupt.index - 1);
    expect(engine.snapshot()).toEqual(confirmed);
    expect(committedRows(follower, 'app', 'SELECT count(*) FROM t')).toEqual([[0]]);
    engine.discardStaged();
    expect(engine.stagedBytes()).toBeUndefined();
    expect(engine.files().wal).toEqual(walBefore);
  });

  test('a leader that steps down between its own parts applies the rest, and the commit, as another node\'s', async () => {
    const { leader, replicas, log } = await cluster(1);
    const { entries } = propose(leader, log, 'INSERT INTO t VALUES (randomblob(300000))');
    const parts = entries.slice(0, -1);
    expect(parts.length).toBeGreaterThan(3);
    // Two of its own parts applied (the engine holds them as pending), then leadership is lost.
    applyAll(leader, parts.slice(0, 2));
    leader.abortPending('this node is no longer the leader');
    expect(leader.database('app').engine.pendingCount()).toBe(0);
    // The next leader commits the rest: the kept parts go to the engine, the later ones follow.
    applyAll(leader, [...parts.slice(2), entries[entries.length - 1]!]);
    applyAll(replicas[0]!, entries);
    expect(committedRows(leader, 'app', 'SELECT length(x) FROM t')).toEqual([[300000]]);
    expect(leader.database('app').engine.files()).toEqual(replicas[0]!.database('app').engine.files());
  });

  test('on a node, the parts are proposed a turn at a time, at most PARTS_IN_FLIGHT_MAX ahead of the latest applied, while the database loop waits', async () => {
    const leader = await machine({ gradual: true });
    const follower = await machine();
    const log = new RecordingLog(1, 1);
    const db = leader.database('app');
    exec(leader, 'app', 'CREATE TABLE t (x BLOB)');
    db.proposeCaptured(log);
    expect(log.entries.length).toBe(1); // small: proposed at once, as always
    applyAll(leader, log.entries);
    applyAll(follower, log.entries);

    exec(leader, 'app', 'INSERT INTO t VALUES (randomblob(400000))');
    db.proposeCaptured(log);
    // Nothing proposed in the COMMIT's own turn, and the database's loop holds other statements back.
    expect(log.entries.length).toBe(1);
    expect(db.pendingCount).toBe(1);
    let otherRan = false;
    const other = db.loop.submit(1, () => (otherRan = true));
    await Promise.resolve();
    expect(otherRan).toBe(false);
    const barrier = db.commitBarrier()!;
    let committed = false;
    void barrier.then(() => (committed = true));
    // Apply what is proposed, one entry a turn, as a slow cluster would: the leader never has
    // more than PARTS_IN_FLIGHT_MAX parts proposed and not applied.
    let applied = 1;
    let inFlightMax = 0;
    await vi.waitFor(
      async () => {
        while (applied < log.entries.length) {
          inFlightMax = Math.max(inFlightMax, log.entries.length - applied);
          const entry = log.entries[applied++]!;
          leader.apply(entry, undefined);
          follower.apply(entry, undefined);
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
        expect(committed).toBe(true);
      },
      { timeout: 10_000, interval: 5 },
    );
    await other;
    expect(otherRan).toBe(true);
    const entries = log.entries.slice(1);
    expect(entries.length).toBeGreaterThan(6);
    expect(inFlightMax).toBe(PARTS_IN_FLIGHT_MAX);
    expect(entries.map((e) => e.index)).toEqual(entries.map((_, i) => 2 + i));
    expect(kinds(entries)).toEqual([...entries.slice(0, -1).map(() => CommandKind.TransactionPart), CommandKind.TransactionCommit]);
    expect(committedRows(follower, 'app', 'SELECT length(x) FROM t')).toEqual([[400000]]);
    expect(follower.database('app').engine.files()).toEqual(db.engine.files());
  });

  test('while one database proposes its parts, another database proposes nothing: its transaction follows the commit', async () => {
    const leader = await machine({ gradual: true });
    const follower = await machine();
    const log = new RecordingLog(1, 1);
    for (const name of ['big', 'small']) {
      exec(leader, name, 'CREATE TABLE t (x BLOB)');
      leader.database(name).proposeCaptured(log);
    }
    applyAll(leader, log.entries);
    applyAll(follower, log.entries);
    const before = log.entries.length;
    exec(leader, 'big', 'INSERT INTO t VALUES (randomblob(400000))');
    leader.database('big').proposeCaptured(log);
    await vi.waitFor(() => expect(log.entries.length).toBeGreaterThan(before));
    // A small write and a checkpoint on the other database while the parts go.
    exec(leader, 'small', "INSERT INTO t VALUES ('small')");
    leader.database('small').proposeCaptured(log);
    leader.database('small').maybeProposeCheckpoint(log, 0);
    let applied = before;
    await vi.waitFor(
      async () => {
        while (applied < log.entries.length) {
          const entry = log.entries[applied++]!;
          leader.apply(entry, undefined);
          follower.apply(entry, undefined);
        }
        await new Promise((resolve) => setTimeout(resolve, 1));
        expect(leader.database('small').pendingCount + leader.database('big').pendingCount).toBe(0);
      },
      { timeout: 10_000, interval: 5 },
    );
    const entries = log.entries.slice(before).map((entry) => decodeCommand(entry.data));
    const commitAt = entries.findIndex((c) => c.kind === CommandKind.TransactionCommit);
    expect(entries.slice(0, commitAt).every((c) => c.kind === CommandKind.TransactionPart && c.database === 'big')).toBe(true);
    expect(entries.slice(commitAt + 1).map((c) => c.kind)).toEqual([CommandKind.Frames]);
    expect(follower.discardedTransactions).toBe(0);
    for (const name of ['big', 'small']) expect(follower.database(name).engine.files()).toEqual(leader.database(name).engine.files());
    expect(committedRows(follower, 'small', 'SELECT x FROM t')).toEqual([['small']]);
  });

  test('a membership change between the parts leaves them staged; an entry of a later term drops them', async () => {
    const { leader, replicas, log } = await cluster(2);
    const { entries } = propose(leader, log, 'INSERT INTO t VALUES (randomblob(200000))');
    const parts = entries.slice(0, -1);
    const change = (index: number, term: number): Entry => ({ index, term, type: EntryType.ConfChange, data: encodeConfChange({ type: 'remove', id: 9 }) });
    // Same term: the change is applied (Raft tracks it) and the transaction goes on.
    const renumbered = [...parts.slice(0, 2), change(parts[2]!.index, 1), ...[...parts.slice(2), entries[entries.length - 1]!].map((e) => ({ ...e, index: e.index + 1 }))];
    applyAll(replicas[0]!, renumbered);
    expect(replicas[0]!.discardedTransactions).toBe(0);
    expect(committedRows(replicas[0]!, 'app', 'SELECT length(x) FROM t')).toEqual([[200000]]);
    // A later term's change after two parts: they are dropped, nothing applied.
    applyAll(replicas[1]!, [...parts.slice(0, 2), change(parts[2]!.index, 2)]);
    expect(replicas[1]!.stagedTransaction).toBeUndefined();
    expect(replicas[1]!.discardedTransactions).toBe(1);
    expect(committedRows(replicas[1]!, 'app', 'SELECT count(*) FROM t')).toEqual([[0]]);
  });

  test('a leadership loss while the parts are being proposed fails the write and proposes nothing more; replicas drop what came', async () => {
    const leader = await machine({ gradual: true });
    const follower = await machine();
    const log = new RecordingLog(1, 1);
    const db = leader.database('app');
    exec(leader, 'app', 'CREATE TABLE t (x BLOB)');
    db.proposeCaptured(log);
    applyAll(leader, log.entries);
    applyAll(follower, log.entries);
    exec(leader, 'app', 'INSERT INTO t VALUES (randomblob(400000))');
    db.proposeCaptured(log);
    const barrier = db.commitBarrier()!;
    // Nothing is applied: the leader stops after PARTS_IN_FLIGHT_MAX parts.
    await vi.waitFor(() => expect(log.entries.length).toBe(1 + PARTS_IN_FLIGHT_MAX));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(log.entries.length).toBe(1 + PARTS_IN_FLIGHT_MAX);
    leader.abortPending('this node is no longer the leader');
    await expect(barrier).rejects.toThrow(/no longer the leader/);
    // The loop runs again, the engine is back at the committed state, and nothing more is proposed.
    expect(await db.loop.submit(1, () => 'ran')).toBe('ran');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(log.entries.length).toBe(1 + PARTS_IN_FLIGHT_MAX);
    expect(db.engine.pendingCount()).toBe(0);
    expect(committedRows(leader, 'app', 'SELECT count(*) FROM t')).toEqual([[0]]);
    const next = new RecordingLog(log.entries.length + 1, 2);
    const barrierEntry = next.append(EntryType.Barrier, new Uint8Array(0));
    applyAll(follower, [...log.entries.slice(1), barrierEntry]);
    expect(follower.discardedTransactions).toBe(1);
    expect(committedRows(follower, 'app', 'SELECT count(*) FROM t')).toEqual([[0]]);
  });

  test('the codec refuses malformed parts and commits; small transactions stay one FRAMES entry', () => {
    const payload = new Uint8Array(1000).fill(7);
    expect(encodeTransaction('app', payload, 2000).map((c) => decodeCommand(c).kind)).toEqual([CommandKind.Frames]);
    const commands = encodeTransaction('app', payload, 300);
    const decoded = commands.map((c) => decodeCommand(c));
    expect(decoded.at(-1)).toEqual({ kind: CommandKind.TransactionCommit, database: 'app', parts: commands.length - 1, payloadBytes: 1000 });
    // Each part is exactly what encodeCommand makes of it (encodeTransaction writes parts in place).
    decoded.forEach((c, i) => expect(commands[i]).toEqual(encodeCommand(c)));
    expect(decoded.slice(0, -1).every((c) => c.kind === CommandKind.TransactionPart && c.parts === commands.length - 1)).toBe(true);
    const joined = decoded.flatMap((c) => (c.kind === CommandKind.TransactionPart ? [...c.bytes] : []));
    expect(new Uint8Array(joined)).toEqual(payload);
    const part = commands[0]!.slice();
    part[4 + 3 + 4] = 0; // parts = 0
    expect(() => decodeCommand(part)).toThrow(/TX_PART 0 of 0 is out of range/);
    expect(() => decodeCommand(commands.at(-1)!.subarray(0, 10))).toThrow(/TX_COMMIT carries/);
  });
});

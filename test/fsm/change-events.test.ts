/**
 * What changed travels with the log: the leader's FRAMES / TX_COMMIT entries carry the captured
 * changes, and every replica's state machine emits the same CommittedTransaction for them.
 */
import { describe, expect, test } from 'vitest';
import { decodeChanges, EncodedTransactionChanges, encodeChanges } from '../../src/fsm/change-codec.ts';
import { CommandKind, decodeCommand, encodeCommand, encodeTransaction } from '../../src/fsm/commands.ts';
import type { CommittedTransaction, TransactionChanges } from '../../src/fsm/commit-events.ts';
import type { Replicator } from '../../src/fsm/replicated-database.ts';
import { StateMachine } from '../../src/fsm/state-machine.ts';
import { LIMITS } from '../../src/limits.ts';
import { EntryType, type Entry } from '../../src/raft/index.ts';
import { Engine } from '../../wasm/index.ts';

const stillClock = { nowMs: () => 0, setTimeout: () => ({ cancel() {} }) };

async function machine(options: { changeSetBytesMax?: number; proposalBytesMax?: number } = {}): Promise<StateMachine> {
  return new StateMachine({
    engine: await Engine.create(),
    clock: stillClock,
    busyTimeoutMs: 1000,
    databaseQueuedTasksMax: 100,
    proposalBytesMax: options.proposalBytesMax ?? LIMITS.proposalBytesMax,
    walFramesMax: 100_000,
    compaction: { snapshotThresholdEntries: 1_000_000, trailingEntries: 2 },
    ...(options.changeSetBytesMax !== undefined && { changeSetBytesMax: options.changeSetBytesMax }),
    wallClockMs: () => 1_700_000_000_000,
    log: () => {},
  });
}

/** A leader and two followers applying the same log, recording what each emits. */
async function cluster(options: { changeSetBytesMax?: number; proposalBytesMax?: number } = {}) {
  const leader = await machine(options);
  const followers = [await machine(options), await machine(options)];
  const events = new Map<StateMachine, CommittedTransaction[]>();
  for (const sm of [leader, ...followers]) {
    const seen: CommittedTransaction[] = [];
    events.set(sm, seen);
    sm.commits.subscribe((event) => seen.push(event));
  }
  const log: Entry[] = [];
  const kinds: CommandKind[] = [];
  let lastIndex = 0;
  const replicator: Replicator = {
    propose(data) {
      const entry = { index: ++lastIndex, term: 1, type: EntryType.Normal, data };
      kinds.push(decodeCommand(data).kind);
      log.push(entry);
      return { index: entry.index, term: 1 };
    },
  };
  const write = (sql: string): void => {
    const db = leader.database('app');
    let rest = sql;
    for (;;) {
      const statement = db.engine.prepare(rest);
      if (!statement) break;
      try {
        while (statement.step()) {
          // rows are not needed
        }
      } finally {
        statement.finalize();
      }
      db.proposeCaptured(replicator);
      rest = statement.tail;
    }
    for (const entry of log.splice(0)) for (const sm of [leader, ...followers]) sm.apply(entry, sm === leader ? replicator : undefined);
  };
  return { leader, followers, events, write, kinds };
}

describe('changes in the log', () => {
  test('a write on the leader yields the same event, tables and rows, on every replica', async () => {
    const { leader, followers, events, write } = await cluster({ changeSetBytesMax: LIMITS.changeSetBytesMax });
    write("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a'); UPDATE t SET v = 'b' WHERE id = 1");
    const mine = events.get(leader)!;
    expect(mine.map((e) => e.changes?.tables)).toEqual([['sqlite_schema'], ['t'], ['t']]);
    expect(mine[2]).toEqual({
      database: 'app',
      index: 3,
      changes: { timeMs: 1_700_000_000_000, tables: ['t'], rows: [{ operation: 'update', table: 't', primaryKey: [1], values: [1, 'b'] }], rowsOmitted: false },
    });
    for (const follower of followers) expect(events.get(follower)).toEqual(mine);
  });

  test('a transaction in parts carries its changes in the TX_COMMIT', async () => {
    const { leader, followers, events, write, kinds } = await cluster({ changeSetBytesMax: 1 << 20, proposalBytesMax: 140 * 1024 });
    write('CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)');
    kinds.length = 0;
    // About 165 KiB of pages (more than a proposal) and 120 KiB of changes (less).
    write('WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40) INSERT INTO t(v) SELECT zeroblob(3000) FROM n');
    expect(kinds.filter((kind) => kind === CommandKind.TransactionPart).length).toBeGreaterThan(1);
    expect(kinds.at(-1)).toBe(CommandKind.TransactionCommit);
    const last = events.get(leader)!.at(-1)!;
    expect(last.changes?.rows).toHaveLength(40);
    expect(last.changes?.rows?.[39]).toEqual({ operation: 'insert', table: 't', primaryKey: [40], values: [40, new Uint8Array(3000)] });
    for (const follower of followers) expect(events.get(follower)!.at(-1)).toEqual(last);
  });

  test('above changeSetBytesMax only the table list travels', async () => {
    const { leader, followers, events, write } = await cluster({ changeSetBytesMax: 2000 });
    write('CREATE TABLE t(v); CREATE TABLE u(v)');
    write("BEGIN; INSERT INTO u VALUES (1); INSERT INTO t SELECT hex(zeroblob(1500)); COMMIT");
    const last = events.get(leader)!.at(-1)!;
    expect(last.changes).toEqual({ timeMs: 1_700_000_000_000, tables: ['t', 'u'], rowsOmitted: true });
    for (const follower of followers) expect(events.get(follower)!.at(-1)).toEqual(last);
  });

  test('with capture off the entries are the old format and events carry no changes', async () => {
    const { leader, events, write } = await cluster();
    write('CREATE TABLE t(v); INSERT INTO t VALUES (1)');
    expect(events.get(leader)!.map((e) => e.changes)).toEqual([undefined, undefined]);
  });
});

describe('command codec with changes', () => {
  const changes: TransactionChanges = {
    timeMs: 1234.5,
    tables: ['a', 'b'],
    rows: [
      { operation: 'insert', table: 'b', primaryKey: [2n ** 62n], values: [null, 1.5, 'é', new Uint8Array([9]), -3] },
      { operation: 'delete', table: 'a', primaryKey: ['k', 1] },
    ],
    rowsOmitted: false,
  };

  test('round trips, and an entry of the old format decodes with changes undefined', () => {
    expect(decodeChanges(encodeChanges(changes))).toEqual(changes);
    const payload = new Uint8Array([1, 2, 3]);
    const old = encodeCommand({ kind: CommandKind.Frames, database: 'db', payload });
    expect(old[1]).toBe(1);
    expect(decodeCommand(old)).toEqual({ kind: CommandKind.Frames, database: 'db', payload });
    const withChanges = encodeCommand({ kind: CommandKind.Frames, database: 'db', payload, changes });
    expect(decodeCommand(withChanges)).toEqual({ kind: CommandKind.Frames, database: 'db', payload, changes });
    // Nobody listening: the state machine skips decoding them, the payload is the same.
    expect(decodeCommand(withChanges, { skipChanges: true })).toEqual({ kind: CommandKind.Frames, database: 'db', payload });
    const commit = encodeCommand({ kind: CommandKind.TransactionCommit, database: 'db', parts: 2, payloadBytes: 10, changes });
    expect(decodeCommand(commit)).toEqual({ kind: CommandKind.TransactionCommit, database: 'db', parts: 2, payloadBytes: 10, changes });
    const commitOld = encodeCommand({ kind: CommandKind.TransactionCommit, database: 'db', parts: 2, payloadBytes: 10 });
    expect(decodeCommand(commitOld)).toEqual({ kind: CommandKind.TransactionCommit, database: 'db', parts: 2, payloadBytes: 10 });
  });

  test('a FRAMES entry read from a payload source is what encodeCommand makes of the whole payload', () => {
    const payload = new Uint8Array(5000).map((_, i) => (i * 7 + 3) & 0xff);
    // A source like the engine's captured transaction: read a range at a time, never whole.
    const source = {
      payloadBytes: payload.length,
      readPayload: (target: Uint8Array, targetOffset: number, offset: number, length: number) => target.set(payload.subarray(offset, offset + length), targetOffset),
    };
    for (const withChanges of [false, true]) {
      const expected = encodeCommand({ kind: CommandKind.Frames, database: 'dé', payload, ...(withChanges && { changes }) });
      const entries = encodeTransaction('dé', source, 1 << 20, withChanges ? changes : undefined);
      expect(entries).toHaveLength(1);
      expect(entries[0]).toEqual(expected);
      expect(decodeCommand(entries[0]!)).toEqual({ kind: CommandKind.Frames, database: 'dé', payload, ...(withChanges && { changes }) });
    }
  });

  test('damaged change bytes are a codec error, not a crash', () => {
    const bytes = encodeCommand({ kind: CommandKind.Frames, database: 'db', payload: new Uint8Array([1]), changes });
    const cut = bytes.slice();
    cut[4 + 2] = 0xff; // changes length beyond the command
    expect(() => decodeCommand(cut)).toThrow(/overrun/);
    expect(() => encodeTransaction('db', new Uint8Array(10), 1 << 20, changes)).not.toThrow();
  });

  test("the engine's change set is the bytes the codec writes for its decoded changes", async () => {
    const engine = await Engine.create({ changeCapture: { changeSetBytesMax: 4096 } });
    const db = engine.open('bytes');
    const statements = [
      'CREATE TABLE t(id INTEGER PRIMARY KEY, v); CREATE TABLE kv(k TEXT, n INTEGER, v, PRIMARY KEY (n, k)) WITHOUT ROWID',
      "INSERT INTO t VALUES (1, 'é'), (2, x'00ff'), (3, 1.5), (4, 2.0), (5, NULL), (9223372036854775807, -9007199254740993)",
      "BEGIN; INSERT INTO kv VALUES ('\uFEFFk', 1, 'v'); UPDATE t SET id = 6 WHERE id = 1; DELETE FROM t WHERE id = 2; DELETE FROM kv; COMMIT",
      'WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50) INSERT INTO t(v) SELECT hex(randomblob(100)) FROM n',
    ];
    for (const sql of statements) {
      let rest = sql;
      for (let statement = db.prepare(rest); statement; statement = db.prepare(rest)) {
        while (statement.step());
        statement.finalize();
        rest = statement.tail;
      }
      const captured = db.takeCaptured();
      db.confirm(captured.length);
      for (const tx of captured) {
        const encoded = new EncodedTransactionChanges(1234.5, tx.encodedChanges!);
        // encodeChanges answers a view into one buffer it reuses: copy before the next call.
        const generic = encodeChanges({ timeMs: 1234.5, ...tx.changes! }).slice();
        expect(encodeChanges(encoded)).toEqual(generic);
        expect(decodeChanges(generic)).toEqual({ timeMs: 1234.5, ...tx.changes! });
        expect({ tables: encoded.tables, rows: encoded.rows, rowsOmitted: encoded.rowsOmitted }).toEqual(tx.changes);
      }
    }
  });

  test('a text value that starts with U+FEFF keeps it', () => {
    const bom: TransactionChanges = { timeMs: 1, tables: ['\uFEFFt'], rows: [{ operation: 'insert', table: '\uFEFFt', primaryKey: [1], values: ['\uFEFFv'] }], rowsOmitted: false };
    expect(decodeChanges(encodeChanges(bom))).toEqual(bom);
  });
});

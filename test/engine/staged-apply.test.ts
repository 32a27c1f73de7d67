// A transaction applied a slice at a time (Database.stage, the parts of a large transaction)
// ends byte for byte where applying its whole payload ends, whatever the slices (a byte, cut
// inside the payload header, the WAL header or a frame); nothing of it is visible before
// commitStaged; a short or overlong payload is refused. A transaction larger than
// takeCaptured's copyBytesMax is read from the WAL on demand, and only while it is there.

import { beforeAll, describe, expect, test } from 'vitest';
import { Engine, EngineError, type Database } from '../../wasm/index.ts';
import { Random, assertSameFiles, run } from './helpers.ts';

/** Rows 1..n (the WASM build has no generate_series). */
const series = (n: number): string => `(WITH RECURSIVE c(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM c WHERE value < ${n}) SELECT value FROM c)`;

let engine: Engine;
let engine8k: Engine;
let counter = 0;

beforeAll(async () => {
  [engine, engine8k] = await Promise.all([Engine.create(), Engine.create({ pageSize: 8192 })]);
});

function open(on = engine): Database {
  return on.open(`staged-${++counter}`);
}

/** The payloads of `statements` run one after the other on a new leader (each one transaction). */
function captured(statements: string[], leader = open()): { leader: Database; payloads: Uint8Array[] } {
  const payloads: Uint8Array[] = [];
  for (const sql of statements) {
    run(leader, sql);
    const transactions = leader.takeCaptured();
    leader.confirm(transactions.length);
    payloads.push(...transactions.map((tx) => tx.payload));
  }
  return { leader, payloads };
}

/** `payload` cut at random points, a few of them only a byte or two long. */
function slices(payload: Uint8Array, random: Random): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < payload.length) {
    const length = random.int(4) === 0 ? 1 + random.int(3) : 1 + random.int(20_000);
    out.push(payload.subarray(at, Math.min(payload.length, at + length)));
    at += length;
  }
  return out;
}

describe('a transaction staged a slice at a time', () => {
  test('ends byte-identical with the whole payload applied, and is seen by nothing before its commit', () => {
    const { leader, payloads } = captured([
      'CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)',
      `INSERT INTO t SELECT value, randomblob(3000) FROM ${series(200)}`,
      'UPDATE t SET v = randomblob(500) WHERE id % 3 = 0',
    ]);
    const random = new Random(7);
    const whole = open();
    const staged = open();
    for (const payload of payloads) {
      whole.apply(payload);
      const before = staged.snapshot();
      const rowsBefore = run(staged, "SELECT count(*) FROM sqlite_schema WHERE name = 't'")[0]![0] === 1 ? run(staged, 'SELECT count(*) FROM t') : [];
      for (const slice of slices(payload, random)) staged.stage(slice);
      expect(staged.stagedBytes()).toBe(payload.length);
      // Not yet committed: the committed files, the read view and a connection opened now see nothing new.
      expect(staged.snapshot()).toEqual(before);
      if (rowsBefore.length > 0) expect(run(staged, 'SELECT count(*) FROM t')).toEqual(rowsBefore);
      staged.commitStaged();
      expect(staged.stagedBytes()).toBeUndefined();
    }
    assertSameFiles(whole, staged, 'staged vs whole');
    assertSameFiles(leader, staged, 'staged vs leader');
    expect(run(staged, 'SELECT count(*), sum(length(v)) FROM t')).toEqual(run(leader, 'SELECT count(*), sum(length(v)) FROM t'));
  });

  test('an empty replica of another page size takes the leader\'s, as apply does', () => {
    const { leader, payloads } = captured(['CREATE TABLE t (v)', "INSERT INTO t VALUES ('x')"], open(engine8k));
    const follower = open();
    for (const payload of payloads) {
      for (const slice of slices(payload, new Random(3))) follower.stage(slice);
      follower.commitStaged();
    }
    expect(follower.pageSize).toBe(8192);
    assertSameFiles(leader, follower, 'adopted page size');
  });

  test('a short payload is refused at commit, an overlong one as it comes; discarding leaves the WAL as it was', () => {
    const { payloads } = captured(['CREATE TABLE t (v)', `INSERT INTO t SELECT randomblob(5000) FROM ${series(10)}`]);
    const follower = open();
    follower.apply(payloads[0]!);
    const walBefore = follower.files().wal;
    const payload = payloads[1]!;
    follower.stage(payload.subarray(0, payload.length - 10));
    expect(() => follower.commitStaged()).toThrow(expect.objectContaining({ code: 'TRUNCATED' }) as EngineError);
    follower.discardStaged();
    expect(follower.files().wal).toEqual(walBefore);
    const overlong = new Uint8Array(payload.length + 1);
    overlong.set(payload);
    expect(() => follower.stage(overlong)).toThrow(/bytes after its last frame/);
    follower.discardStaged();
    expect(follower.files().wal).toEqual(walBefore);
    // Nothing staged blocks the replica: the real transaction applies.
    follower.apply(payload);
    expect(run(follower, 'SELECT count(*) FROM t')).toEqual([[10]]);
    // While a transaction is staged, a whole one cannot be applied, nor a checkpoint run.
    follower.stage(payload.subarray(0, 100));
    expect(() => follower.apply(payload)).toThrow(expect.objectContaining({ code: 'STAGED' }) as EngineError);
    expect(() => follower.checkpoint()).toThrow(expect.objectContaining({ code: 'STAGED' }) as EngineError);
    follower.discardStaged();
  });
});

describe('a transaction larger than copyBytesMax', () => {
  test('is read from the WAL on demand, byte for byte the payload, until it is aborted', () => {
    const leader = open();
    run(leader, 'CREATE TABLE t (v BLOB)');
    const created = leader.takeCaptured();
    leader.confirm(created.length);
    run(leader, `INSERT INTO t SELECT randomblob(4000) FROM ${series(50)}`);
    const [lazy] = leader.takeCaptured(64 * 1024);
    expect(lazy!.payloadBytes).toBeGreaterThan(64 * 1024);
    const pieces = new Uint8Array(lazy!.payloadBytes);
    for (let offset = 0; offset < pieces.length; offset += 7777) lazy!.readPayload(pieces, offset, offset, Math.min(7777, pieces.length - offset));
    expect(pieces).toEqual(lazy!.payload);
    const follower = open();
    for (const tx of created) follower.apply(tx.payload);
    follower.apply(pieces);
    expect(run(follower, 'SELECT count(*) FROM t')).toEqual([[50]]);
    leader.confirm(1);
    // One never copied (its `payload` never asked for) cannot be read once aborted.
    run(leader, `INSERT INTO t SELECT randomblob(4000) FROM ${series(50)}`);
    const [dropped] = leader.takeCaptured(64 * 1024);
    dropped!.readPayload(new Uint8Array(16), 0, 0, 16);
    leader.abort();
    expect(() => dropped!.readPayload(new Uint8Array(16), 0, 0, 16)).toThrow(expect.objectContaining({ code: 'NOT_PENDING' }) as EngineError);
    expect(run(leader, 'SELECT count(*) FROM t')).toEqual([[50]]);
  });
});

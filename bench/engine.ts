// Engine benchmark: 10,000 single-row transactions of 1 KiB, captured on a leader and applied to
// one follower, against the same workload on the package's plain `:memory:` database, same run.
// Run: npm run bench:engine   (or node --import ./scripts/ts-loader.mjs bench/engine.ts)
import sqlite3InitModule from '@sqlite.org/sqlite-wasm';
import { Engine } from '../wasm/index.ts';

const TRANSACTIONS = Number(process.env['BENCH_TRANSACTIONS'] ?? 10_000);
const ROW_BYTES = 1024;
const CHECKPOINT_FRAMES = 1000;
const ROUNDS = 3;

function rowBlob(i: number): Uint8Array {
  const blob = new Uint8Array(ROW_BYTES);
  for (let j = 0; j < ROW_BYTES; j++) blob[j] = (i * 31 + j) & 0xff;
  return blob;
}

interface PlainStatement {
  bind(values: unknown[]): unknown;
  stepReset(): unknown;
  finalize(): unknown;
}
interface PlainDb {
  exec(sql: string): unknown;
  prepare(sql: string): PlainStatement;
  close(): void;
}

async function plainMemory(blobs: Uint8Array[]): Promise<number> {
  const sqlite3 = await sqlite3InitModule();
  const db = new sqlite3.oo1.DB(':memory:') as unknown as PlainDb;
  db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)');
  const insert = db.prepare('INSERT INTO t(v) VALUES(?)');
  const started = performance.now();
  for (let i = 0; i < blobs.length; i++) {
    insert.bind([blobs[i]]);
    insert.stepReset();
  }
  const elapsedMs = performance.now() - started;
  insert.finalize();
  db.close();
  return elapsedMs;
}

async function engineCaptureApply(blobs: Uint8Array[]): Promise<{ elapsedMs: number; payloadBytes: number; checkpoints: number }> {
  const leaderEngine = await Engine.create();
  const followerEngine = await Engine.create();
  const leader = leaderEngine.open('bench');
  const follower = followerEngine.open('bench');
  const create = leader.prepare('CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)')!;
  create.step();
  create.finalize();
  for (const tx of leader.takeCaptured()) follower.apply(tx.payload);
  leader.confirm(leader.pendingCount());
  const insert = leader.prepare('INSERT INTO t(v) VALUES(?)')!;
  const values: Uint8Array[] = [new Uint8Array(0)];
  let payloadBytes = 0;
  let checkpoints = 0;
  const started = performance.now();
  for (let i = 0; i < blobs.length; i++) {
    values[0] = blobs[i]!;
    insert.bind(values);
    insert.step();
    const captured = leader.takeCaptured();
    for (let j = 0; j < captured.length; j++) {
      const payload = captured[j]!.payload;
      payloadBytes += payload.length;
      follower.apply(payload);
    }
    leader.confirm(captured.length);
    // The node checkpoints (a replicated command) once the WAL passes a threshold.
    if (leader.walFrameCount() >= CHECKPOINT_FRAMES) {
      insert.reset();
      leader.checkpoint();
      follower.checkpoint();
      checkpoints++;
    }
  }
  const elapsedMs = performance.now() - started;
  insert.finalize();
  leader.close();
  follower.close();
  return { elapsedMs, payloadBytes, checkpoints };
}

const blobs = Array.from({ length: TRANSACTIONS }, (_, i) => rowBlob(i));
console.log(`engine benchmark: ${TRANSACTIONS} single-row transactions of ${ROW_BYTES} B, ${ROUNDS} rounds (best of each)`);
let plainBestMs = Infinity;
let engineBestMs = Infinity;
for (let round = 1; round <= ROUNDS; round++) {
  const plainMs = await plainMemory(blobs);
  plainBestMs = Math.min(plainBestMs, plainMs);
  console.log(`round ${round}: plain :memory:          ${plainMs.toFixed(0)} ms (${((TRANSACTIONS / plainMs) * 1000).toFixed(0)} tx/s)`);
  const engine = await engineCaptureApply(blobs);
  engineBestMs = Math.min(engineBestMs, engine.elapsedMs);
  console.log(
    `round ${round}: engine capture+apply   ${engine.elapsedMs.toFixed(0)} ms (${((TRANSACTIONS / engine.elapsedMs) * 1000).toFixed(0)} tx/s, ` +
      `${(engine.payloadBytes / TRANSACTIONS).toFixed(0)} B/tx shipped, ${engine.checkpoints} checkpoints)`,
  );
}
console.log(`capture overhead: ${(engineBestMs / plainBestMs).toFixed(2)}×`);

/**
 * Measures how long a snapshot holds up the node: a single in-process node on real directory
 * storage with a ~48 MiB database takes a snapshot every 40 entries while one client writes
 * small rows one after another. Prints the write latencies (each write is one trip through the
 * Ready loop: append, fsync, apply), the longest Ready (no heartbeat or acknowledgement leaves
 * while one is being handled) and the longest event-loop block (nothing at all runs then).
 *   node --import ./scripts/ts-loader.mjs test/server/snapshot-stall.ts [--mib 48] [--writes 200]
 */
import { ClusterNode } from '../../src/server/node.ts';
import { startTestNode } from './harness.ts';

/** The longest time one Ready took, from ready() to advance(): heartbeats wait that long. */
let readyMaxMs = 0;
function timeReadies(owner: { prototype: object }, method: string): void {
  const proto = owner.prototype as Record<string, (this: unknown, ...args: unknown[]) => Promise<void>>;
  const original = proto[method]!;
  proto[method] = async function (this: unknown, ...args: unknown[]) {
    const started = performance.now();
    try {
      await original.apply(this, args);
    } finally {
      readyMaxMs = Math.max(readyMaxMs, performance.now() - started);
    }
  };
}
// The node before the refactor handled a Ready in ClusterNode.handleReady; after it, in ReadyLoop.handle.
if ('handleReady' in ClusterNode.prototype) timeReadies(ClusterNode, 'handleReady');
else timeReadies((await import('../../src/server/ready-loop.ts' as string)).ReadyLoop, 'handle');

const args = process.argv.slice(2);
const flag = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const mib = flag('mib', 48);
const writes = flag('writes', 200);

const test = await startTestNode({ snapshotThresholdEntries: 40, snapshotTrailingEntries: 100 });
try {
  const db = await test.client('stall');
  await db.exec('CREATE TABLE big (b BLOB)');
  await db.exec('CREATE TABLE small (k INTEGER PRIMARY KEY, v TEXT)');
  for (let i = 0; i < mib; i++) await db.exec('INSERT INTO big VALUES (randomblob(1048576))');
  const snapshotsBefore = test.node.status().snapshots;
  readyMaxMs = 0;

  let lastTick = performance.now();
  let blockedMaxMs = 0;
  const probe = setInterval(() => {
    const now = performance.now();
    blockedMaxMs = Math.max(blockedMaxMs, now - lastTick);
    lastTick = now;
  }, 1);
  const latencies: number[] = [];
  for (let i = 0; i < writes; i++) {
    const started = performance.now();
    await db.exec('INSERT INTO small (v) VALUES (?)', [`row ${i}`]);
    latencies.push(performance.now() - started);
  }
  clearInterval(probe);
  latencies.sort((a, b) => a - b);
  const at = (q: number): string => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!.toFixed(1);
  const snapshots = test.node.status().snapshots - snapshotsBefore;
  console.log(
    `database ${mib} MiB, ${writes} writes, ${snapshots} snapshots: write latency p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${at(1)} ms; longest Ready ${readyMaxMs.toFixed(1)} ms; event loop blocked at most ${blockedMaxMs.toFixed(1)} ms`,
  );
} finally {
  await test.close();
}

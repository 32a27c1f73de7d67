/**
 * Memory and disk of a 3-node cluster under the same write workload, real dqlite (Debian's
 * dqlite-demo) against dqlite-wasm, in one run and with the same client (ours):
 *   kvwrite: INSERT INTO model(key, value) VALUES(?, ?), a new 32-byte key and a 4 KiB value
 *            each time, so the database grows round after round.
 * It prints each node process's resident memory (VmRSS from /proc/PID/status), summed over the
 * three, when idle and after each round, each node's data directory size, and the ratios; for
 * dqlite-wasm also what the nodes say they hold (status.memory, docs/memory.md).
 * Rounds write the same number of rows to both (`--rows`, default 3000), or, with `--rows 0`, run
 * for `--seconds` each, as issue 22 measured (then each system writes what it manages).
 * Usage: npm run bench:memory -- [--rows 3000] [--seconds S] [--rounds 2] [--writers 8] [--value-bytes 4096]
 *                                [--source build|ts] [--settle-ms 3000] [--node-flags "--max-semi-space-size=2"]
 *                                [--large-mb 200 [--large-update-seconds 60] [--compare no]] [--malloc-tuned yes]
 * `--large-mb`: dqlite-wasm alone, a database of that size bulk-loaded and updated at random;
 * RSS per node against the database's size, then a follower killed, left behind by more than its
 * trailing log, and restarted: how much the leader's RSS grows while the follower catches up.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type Database } from '../runtimes/node/client.ts';
import { TestCluster, sleep, waitFor } from '../test/helpers/cluster.ts';
import { startDqliteDemoCluster, type DqliteDemoCluster } from '../test/helpers/dqlite-demo.ts';
import type { NodeMemory } from '../src/server/memory-usage.ts';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

/** Rows per round, the same for both systems (0: rounds are timed instead, as many rows as each manages). */
const ROWS = Number(flag('rows', '3000'));
/** Length of a timed round, and the cap on a round of ROWS. */
const SECONDS = Number(flag('seconds', ROWS > 0 ? '90' : '15'));
const ROUNDS = Number(flag('rounds', '2'));
const WRITERS = Number(flag('writers', '8'));
const VALUE_BYTES = Number(flag('value-bytes', '4096'));
/** Time for the nodes to settle (snapshots written, garbage collected) before a measurement. */
const SETTLE_MS = Number(flag('settle-ms', '3000'));
/** `build`: the nodes run the compiled package (what `npm install` users run); `ts`: the sources through the TypeScript loader (about 24 MiB more per node). */
const SOURCE = flag('source', 'build');
const MiB = 1024 * 1024;
/** The large-database row: a database of this many MiB, bulk-loaded, then updated at random (0: skipped). */
const LARGE_MB = Number(flag('large-mb', '0'));
/**
 * `yes`: our nodes run with glibc's MALLOC_ARENA_MAX=2 and MALLOC_MMAP_THRESHOLD_=131072 (fewer
 * arenas, and every 256 KiB chunk mapped on its own, so freed memory goes back to the system;
 * docs/memory.md). dqlite runs as it is either way.
 */
const MALLOC_TUNED = flag('malloc-tuned', 'no') === 'yes';
/** `no`: only the large-database row. */
const COMPARE = flag('compare', 'yes') !== 'no';
const LARGE_UPDATE_SECONDS = Number(flag('large-update-seconds', '60'));
/** Extra flags for our node processes (e.g. "--max-semi-space-size=2"; docs/memory.md). */
const NODE_FLAGS = flag('node-flags', '').split(' ').filter((f) => f !== '');

type System = 'dqlite' | 'dqlite-wasm';

interface Sample {
  label: string;
  rssBytes: number[];
  dirBytes: number[];
  rows: number;
  valueBytes: number;
  ops: number;
  errors: number;
  memory?: NodeMemory[];
}

/** VmRSS of process `pid`, in bytes. */
function rssBytes(pid: number | undefined): number {
  if (pid === undefined) return 0;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

/** Bytes of the files under `path` (apparent sizes, as `du -b`). */
function dirBytes(path: string): number {
  let total = 0;
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const full = join(path, entry.name);
    if (entry.isDirectory()) total += dirBytes(full);
    else if (entry.isFile()) total += statSync(full).size;
  }
  return total;
}

function key(writer: number, n: number): string {
  return `w${writer}-${String(n).padStart(12, '0')}`.padEnd(32, '.');
}

async function round(servers: string[], seconds: number): Promise<{ ops: number; errors: number }> {
  const value = new Uint8Array(VALUE_BYTES).map((_, i) => (i * 31 + 7) & 0xff);
  const clients: Database[] = await Promise.all(Array.from({ length: WRITERS }, () => connect({ servers, database: 'memory', timeoutMs: 30_000 })));
  const deadline = performance.now() + seconds * 1000;
  let ops = 0;
  let errors = 0;
  const base = Date.now() * 1000;
  await Promise.all(
    clients.map(async (client, w) => {
      let n = 0;
      // With ROWS, the writers stop once that many rows were written between them.
      while (performance.now() < deadline && (ROWS === 0 || ops < ROWS)) {
        try {
          await client.exec('INSERT OR REPLACE INTO model(key, value) VALUES(?, ?)', [key(w, base + n), value]);
          n++;
          ops++;
        } catch {
          // dqlite answers "database is locked" at once while another writer's transaction runs
          // (go-dqlite's driver retries it): retry the same row after a millisecond, as both systems get.
          errors++;
          await sleep(1);
        }
      }
    }),
  );
  await Promise.all(clients.map((c) => c.close()));
  return { ops, errors };
}

async function rows(servers: string[]): Promise<{ rows: number; valueBytes: number }> {
  const db = await connect({ servers, database: 'memory', timeoutMs: 30_000 });
  try {
    const result = await db.query('SELECT count(*) AS n, coalesce(sum(length(value)), 0) AS b FROM model');
    const row = result.rows[0] as { n: number; b: number };
    return { rows: Number(row.n), valueBytes: Number(row.b) };
  } finally {
    await db.close();
  }
}

interface Target {
  system: System;
  servers: string[];
  pids: () => (number | undefined)[];
  dirs: () => string[];
  memory?: () => Promise<NodeMemory[]>;
}

async function measure(target: Target, label: string, work: { ops: number; errors: number }): Promise<Sample> {
  await sleep(SETTLE_MS);
  const counted = await rows(target.servers);
  return {
    label,
    rssBytes: target.pids().map(rssBytes),
    dirBytes: target.dirs().map(dirBytes),
    ...counted,
    ...work,
    ...(target.memory && { memory: await target.memory() }),
  };
}

async function run(target: Target): Promise<Sample[]> {
  const setup = await connect({ servers: target.servers, database: 'memory', timeoutMs: 30_000 });
  await setup.exec('CREATE TABLE IF NOT EXISTS model (key TEXT PRIMARY KEY, value BLOB)');
  await setup.close();
  const samples = [await measure(target, 'idle', { ops: 0, errors: 0 })];
  console.log(`  ${target.system} ${line(samples[0]!)}`);
  for (let r = 1; r <= ROUNDS; r++) {
    process.stdout.write(`  ${target.system} round ${r} (${ROWS > 0 ? `${ROWS} rows, at most ${SECONDS} s` : `${SECONDS} s`}, ${WRITERS} writers)... `);
    const work = await round(target.servers, SECONDS);
    const sample = await measure(target, `after round ${r}`, work);
    samples.push(sample);
    console.log(line(sample));
  }
  return samples;
}

const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);
const mib = (bytes: number): string => (bytes / MiB).toFixed(0);

function line(s: Sample): string {
  return `${s.label}: RSS ${mib(sum(s.rssBytes))} MiB (${s.rssBytes.map(mib).join(' + ')}), data dirs ${s.dirBytes.map(mib).join(' / ')} MiB, ${s.rows} rows (${mib(s.valueBytes)} MiB of values), ${s.ops} ops, ${s.errors} errors`;
}

function memoryLine(memory: NodeMemory): string {
  return `log ${mib(memory.logBytes)}, db ${mib(memory.databasesBytes)}, snapshot ${mib(memory.snapshotBytes)}, wasm ${mib(memory.wasmBytes)}, js heap ${memory.jsHeapBytes === null ? '?' : mib(memory.jsHeapBytes)}`;
}

/** Random 4 KiB updates of rows 1..rows by 8 writers for `seconds`, or until `count` updates. */
async function updates(servers: string[], rows: number, seconds: number, count = Infinity): Promise<number> {
  const clients = await Promise.all(Array.from({ length: WRITERS }, () => connect({ servers, database: 'large', timeoutMs: 60_000 })));
  const deadline = performance.now() + seconds * 1000;
  let done = 0;
  await Promise.all(
    clients.map(async (client) => {
      while (performance.now() < deadline && done < count) {
        try {
          await client.exec('UPDATE big SET v = randomblob(4096) WHERE id = ?', [1 + Math.floor(Math.random() * rows)]);
          done++;
        } catch {
          await sleep(1);
        }
      }
    }),
  );
  await Promise.all(clients.map((c) => c.close()));
  return done;
}

async function largeDatabase(): Promise<void> {
  console.log(`\nlarge database: ${LARGE_MB} MiB bulk-loaded, then ${LARGE_UPDATE_SECONDS} s of random 4 KiB updates (dqlite-wasm, 3 nodes)`);
  const cluster = await TestCluster.start({ nodes: 3, nodeFlags: NODE_FLAGS, ...(SOURCE === 'build' && { entry: ['dist/bin/cli.js'] }) });
  const pid = (i: number): number | undefined => cluster.nodes[i]!.process?.pid;
  try {
    const servers = cluster.addresses;
    const db = await connect({ servers, database: 'large', timeoutMs: 120_000 });
    await db.exec('CREATE TABLE big (id INTEGER PRIMARY KEY, v BLOB)');
    const rows = Math.floor((LARGE_MB * MiB) / 4096);
    const batch = 1024;
    const started = performance.now();
    for (let first = 1; first <= rows; first += batch) {
      const last = Math.min(rows, first + batch - 1);
      await db.exec('WITH RECURSIVE c(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM c WHERE x < ?) INSERT INTO big SELECT x, randomblob(4096) FROM c', [first, last]);
      if ((last / batch) % 10 === 0) process.stdout.write(`  loaded ${last} of ${rows} rows (${mib(last * 4096)} MiB)\n`);
    }
    await db.close();
    console.log(`  loaded ${rows} rows in ${((performance.now() - started) / 1000).toFixed(0)} s`);
    // The peak of each node's RSS while it is updated (snapshots of the whole database included).
    const peaks = [0, 1, 2].map((i) => rssBytes(pid(i)));
    const sampler = setInterval(() => peaks.forEach((peak, i) => (peaks[i] = Math.max(peak, rssBytes(pid(i))))), 250);
    const updated = await updates(servers, rows, LARGE_UPDATE_SECONDS);
    clearInterval(sampler);
    // Measured between snapshots: none in flight on any node.
    await waitFor('no snapshot in flight', 120_000, async () =>
      (await Promise.all(cluster.nodes.map((n) => cluster.status(n.index)))).every((s) => s.memory.snapshotBytes === 0) ? true : undefined,
    );
    await sleep(SETTLE_MS);
    const statuses = await Promise.all(cluster.nodes.map((n) => cluster.status(n.index)));
    console.log(`  ${updated} updates; per node, between snapshots (peak while updated):`);
    for (const [i, status] of statuses.entries()) {
      const rss = rssBytes(pid(i));
      const dbBytes = status.memory.databasesBytes;
      console.log(
        `    node ${i + 1} (${status.state}): RSS ${mib(rss)} MiB = ${(rss / dbBytes).toFixed(2)}× its databases (${mib(dbBytes)} MiB; target < 2.5×), ` +
          `peak ${mib(peaks[i]!)} MiB = ${(peaks[i]! / dbBytes).toFixed(2)}×, data dir ${mib(dirBytes(cluster.nodes[i]!.dir))} MiB; ${memoryLine(status.memory)}`,
      );
    }

    // A follower misses more than the trailing log: it must catch up by snapshot.
    const leader = await cluster.waitForLeader();
    const follower = (leader + 1) % 3;
    await cluster.kill(follower);
    const missed = await updates(servers, rows, 600, 6000);
    await sleep(SETTLE_MS);
    const before = rssBytes(pid(leader));
    const leaderStatus = await cluster.status(leader);
    console.log(`  node ${follower + 1} killed; ${missed} updates later the leader (node ${leader + 1}) holds RSS ${mib(before)} MiB, snapshot at ${leaderStatus.snapshotIndex}, log from then kept ${mib(leaderStatus.memory.logBytes)} MiB`);
    cluster.spawn(follower);
    const catchUpStarted = performance.now();
    let peak = before;
    const heapBefore = leaderStatus.memory.jsHeapBytes ?? 0;
    let heapPeak = heapBefore;
    let snapshotPartPeak = 0;
    await waitFor('the follower to catch up', 600_000, async () => {
      peak = Math.max(peak, rssBytes(pid(leader)));
      const [l, f] = await Promise.all([cluster.status(leader), cluster.status(follower).catch(() => undefined)]);
      heapPeak = Math.max(heapPeak, l.memory.jsHeapBytes ?? 0);
      snapshotPartPeak = Math.max(snapshotPartPeak, l.memory.snapshotBytes);
      return f && f.appliedIndex >= l.commitIndex - 1 ? true : undefined;
    });
    const installed = cluster.nodes[follower]!.output.join('').includes('installed a snapshot');
    console.log(
      `  node ${follower + 1} caught up in ${((performance.now() - catchUpStarted) / 1000).toFixed(0)} s (${installed ? 'by snapshot' : 'from the log'}); ` +
        `leader RSS peak ${mib(peak)} MiB, growth ${mib(peak - before)} MiB (snapshot chunk ${mib(1 * MiB)} MiB; target: growth ≤ one chunk budget); ` +
        `leader heap and array buffers peak ${mib(heapPeak)} MiB (+${mib(heapPeak - heapBefore)}), its snapshot part peak ${mib(snapshotPartPeak)} MiB`,
    );
  } finally {
    await cluster.destroy();
  }
}

/** Our node processes inherit this process's environment. */
function tuneMalloc(): void {
  if (!MALLOC_TUNED) return;
  process.env.MALLOC_ARENA_MAX = '2';
  process.env.MALLOC_MMAP_THRESHOLD_ = '131072';
  console.log('our nodes run with MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072');
}

async function main(): Promise<void> {
  if (!COMPARE) {
    tuneMalloc();
    if (SOURCE === 'build') execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
    await largeDatabase();
    return;
  }
  execFileSync('bash', ['scripts/ensure-deps.sh', 'go-dqlite'], { stdio: 'inherit' });
  console.log(`memory benchmark: kvwrite, ${VALUE_BYTES}-byte values, ${WRITERS} writers, ${ROUNDS} rounds of ${ROWS > 0 ? `${ROWS} rows` : `${SECONDS} s`}, 3 nodes per system (ours from ${SOURCE === 'build' ? 'the compiled build' : 'the TypeScript sources'})`);
  let dqlite: DqliteDemoCluster | undefined;
  let ours: TestCluster | undefined;
  const results = new Map<System, Sample[]>();
  try {
    console.log('starting a 3-node dqlite-demo cluster...');
    dqlite = await startDqliteDemoCluster({ size: 3 });
    const demo = dqlite;
    // dqlite-demo keeps each node's files in a directory named after its address.
    results.set(
      'dqlite',
      await run({
        system: 'dqlite',
        servers: demo.addresses,
        pids: () => demo.nodes.map((n) => n.process?.pid),
        dirs: () => demo.addresses.map((a) => join(demo.dataDir, a)),
      }),
    );
    await demo.stop();
    dqlite = undefined;

    console.log('starting a 3-node dqlite-wasm cluster...');
    tuneMalloc();
    if (SOURCE === 'build') {
      console.log('building the package (tsc -p tsconfig.build.json)...');
      execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
    }
    ours = await TestCluster.start({ nodes: 3, nodeFlags: NODE_FLAGS, ...(SOURCE === 'build' && { entry: ['dist/bin/cli.js'] }) });
    const cluster = ours;
    results.set(
      'dqlite-wasm',
      await run({
        system: 'dqlite-wasm',
        servers: cluster.addresses,
        pids: () => cluster.nodes.map((n) => n.process?.pid),
        dirs: () => cluster.nodes.map((n) => n.dir),
        memory: () => Promise.all(cluster.nodes.map(async (n) => (await cluster.status(n.index)).memory)),
      }),
    );
  } finally {
    await dqlite?.stop();
    await ours?.destroy();
  }

  const theirs = results.get('dqlite')!;
  const mine = results.get('dqlite-wasm')!;
  console.log(`\n${'stage'.padEnd(16)} ${'dqlite RSS'.padStart(11)} ${'ours RSS'.padStart(9)} ${'ratio'.padStart(6)}   ${'dqlite dir'.padStart(11)} ${'ours dir'.padStart(9)} ${'ratio'.padStart(6)}   rows (dqlite / ours)`);
  for (let i = 0; i < mine.length; i++) {
    const a = theirs[i]!;
    const b = mine[i]!;
    const dirA = Math.max(...a.dirBytes);
    const dirB = Math.max(...b.dirBytes);
    console.log(
      [
        b.label.padEnd(16),
        `${mib(sum(a.rssBytes))} MiB`.padStart(11),
        `${mib(sum(b.rssBytes))} MiB`.padStart(9),
        `${(sum(b.rssBytes) / sum(a.rssBytes)).toFixed(2)}×`.padStart(6),
        `  ${`${mib(dirA)} MiB`.padStart(11)}`,
        `${mib(dirB)} MiB`.padStart(9),
        `${dirA === 0 ? '-' : (dirB / dirA).toFixed(2) + '×'}`.padStart(6),
        `  ${a.rows} / ${b.rows}`,
      ].join(' '),
    );
  }
  console.log('\ndqlite-wasm nodes, what each says it holds (MiB):');
  for (const s of mine) {
    for (const [i, memory] of (s.memory ?? []).entries()) console.log(`  ${s.label.padEnd(16)} node ${i + 1}: ${memoryLine(memory)}`);
  }
  const last = mine[mine.length - 1]!;
  const idle = mine[0]!;
  console.log('\ntargets (issue 22):');
  console.log(`  RSS after the workload ≤ 1.5× dqlite's: ${(sum(last.rssBytes) / sum(theirs[theirs.length - 1]!.rssBytes)).toFixed(2)}×`);
  console.log(`  an idle node ≤ 70 MiB: ${idle.rssBytes.map(mib).join(', ')} MiB`);
  console.log(`  one node's data dir ≤ 1.5× dqlite's: ${(Math.max(...last.dirBytes) / Math.max(...theirs[theirs.length - 1]!.dirBytes)).toFixed(2)}×`);
  if (LARGE_MB > 0) await largeDatabase();
}

await main();
process.exit(0);

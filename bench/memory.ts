/**
 * Memory and disk of a 3-node cluster under the same write workload, real dqlite (Debian's
 * dqlite-demo) against dqlite-wasm, in one run and with the same client (ours):
 *   kvwrite: INSERT INTO model(key, value) VALUES(?, ?), a new 32-byte key and a 4 KiB value
 *            each time, so the database grows round after round.
 * It prints each node process's resident memory (VmRSS from /proc/PID/status), summed over the
 * three, when idle and after each round, each node's data directory size, and the ratios; for
 * dqlite-wasm also what the nodes say they hold (status.memory, docs/memory.md).
 * Rounds write the same number of rows to both (`--rows`, default 3000), or, with `--rows 0`, run
 * for `--seconds` each (then each system writes what it manages).
 * Usage: npm run bench:memory -- [--rows 3000] [--seconds S] [--rounds 2] [--writers 8] [--value-bytes 4096]
 *                                [--source installed|build|ts] [--settle-ms 3000] [--idle-settle-ms 30000] [--node-flags "--max-semi-space-size=2"]
 *                                [--large-mb 200 [--large-update-seconds 60] [--catch-up no] [--trace FILE] [--compare no]] [--malloc-tuned command|yes|no]
 *                                [--idle-only yes [--first-statement no] [--runs 2] [--write-seconds 10]] [--build no]
 * `--idle-only yes`: dqlite-wasm alone, only the idle row: a 3-node cluster, one CREATE TABLE
 * (none with `--first-statement no`), `--idle-settle-ms` of quiet, then each node's RSS and
 * where it is (/proc/PID/smaps); `--runs` clusters one after another, and the median over all
 * their nodes. `--write-seconds`: then a timed round of kvwrite on each cluster (rows written: what a
 * setting costs writes, measured beside what it saves). `--build no`: use dist/ as it is.
 * `--large-mb`: dqlite-wasm alone, a database of that size bulk-loaded and updated at random;
 * RSS per node against the database's size, and at each node's peak what it held by part
 * (status.memory) and by mapping (/proc/PID/smaps); then (unless `--catch-up no`) a follower
 * killed, left behind by more than its trailing log, and restarted: how much the leader's RSS
 * grows while the follower catches up, from where it stood idle (`--idle-settle-ms` after the
 * writes, its quiet collection done).
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, type Database } from '../runtimes/node/client.ts';
import { TestCluster, sleep, waitFor, type ClusterOptions } from '../test/helpers/cluster.ts';
import { startDqliteDemoCluster, type DqliteDemoCluster } from '../test/helpers/dqlite-demo.ts';
import type { NodeMemory } from '../src/server/memory-usage.ts';
import { ALLOCATOR_ENV_DEFAULTS } from '../bin/allocator.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

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
/**
 * Time an idle cluster runs before it is measured: a node started 3 s ago still holds some of
 * its start-up (10 MiB more than 30 s later, measured), which a node left running has given back.
 */
const IDLE_SETTLE_MS = Number(flag('idle-settle-ms', '30000'));
/**
 * What our nodes run. `installed` (default): what an installed package's users run, the
 * `dqlite-wasm` command (bin/dqlite-wasm, through node_modules/.bin) of a package made of this
 * checkout's package.json, bin/dqlite-wasm and compiled dist/, so the launcher's allocator
 * settings included. `build`: `node dist/bin/cli.js`, the compiled build without the launcher.
 * `ts`: the sources through the TypeScript loader (about 24 MiB more per node).
 */
const SOURCE = flag('source', 'installed');
const SOURCES = ['installed', 'build', 'ts'];
if (!SOURCES.includes(SOURCE)) throw new Error(`--source must be one of ${SOURCES.join(', ')}, not "${SOURCE}"`);
const MiB = 1024 * 1024;
/** The large-database row: a database of this many MiB, bulk-loaded, then updated at random (0: skipped). */
const LARGE_MB = Number(flag('large-mb', '0'));
/**
 * glibc's allocator settings of our nodes (MALLOC_ARENA_MAX=2, MALLOC_MMAP_THRESHOLD_=32768:
 * fewer arenas, and every allocation of 32 KiB or more mapped on its own, so freed memory goes
 * back to the system; docs/memory.md). `command` (default): what the command gives them (`installed`: set by
 * the launcher on Linux; `build` and `ts`: glibc's defaults); `yes`: set in their environment;
 * `no`: glibc's defaults (DQLITE_WASM_TUNE_MALLOC=0 for the launcher). dqlite runs as it is.
 */
const MALLOC_TUNED = flag('malloc-tuned', 'command');
if (!['command', 'yes', 'no'].includes(MALLOC_TUNED)) throw new Error(`--malloc-tuned must be command, yes or no, not "${MALLOC_TUNED}"`);
/** `no`: only the large-database row. */
const COMPARE = flag('compare', 'yes') !== 'no';
const LARGE_UPDATE_SECONDS = Number(flag('large-update-seconds', '60'));
/** A file to which the large-database row appends, every 250 ms of the updates, each node's RSS and status.memory (JSON lines). */
const LARGE_TRACE = flag('trace', '');
/** `no`: the large-database row ends after the updates, without a follower catching up by snapshot. */
const LARGE_CATCH_UP = flag('catch-up', 'yes') !== 'no';
/** Catch-ups by snapshot, one after the other (each a follower killed, left behind and restarted). */
const LARGE_CATCH_UPS = Number(flag('catch-ups', '2'));
/** Extra flags for our node processes (e.g. "--max-semi-space-size=2"; docs/memory.md). */
const NODE_FLAGS = flag('node-flags', '').split(' ').filter((f) => f !== '');
/** `yes`: only the idle row of dqlite-wasm, `RUNS` times (see the usage above). */
const IDLE_ONLY = flag('idle-only', 'no') === 'yes';
/** `no`: the idle-only run sends no statement before its wait. */
const FIRST_STATEMENT = flag('first-statement', 'yes') !== 'no';
const RUNS = Number(flag('runs', '2'));
/** The idle-only run's timed write round after its idle row (0: none). */
const WRITE_SECONDS = Number(flag('write-seconds', '0'));
/** `no`: dist/ is used as it is (it must be built). */
const BUILD = flag('build', 'yes') !== 'no';

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

/** CPU time process `pid` has used so far, user and system, in ms (/proc/PID/stat). */
function cpuTimes(pid: number | undefined): { userMs: number; systemMs: number } {
  if (pid === undefined) return { userMs: 0, systemMs: 0 };
  // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th, in ticks of 10 ms.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return { userMs: Number(fields[11]) * 10, systemMs: Number(fields[12]) * 10 };
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

async function round(servers: string[], seconds: number, rowsMax = ROWS): Promise<{ ops: number; errors: number }> {
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
      while (performance.now() < deadline && (rowsMax === 0 || ops < rowsMax)) {
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

/** A round of `seconds` that writes as many rows as it manages. */
const timedRound = (servers: string[], seconds: number): Promise<{ ops: number; errors: number }> => round(servers, seconds, 0);

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

async function measure(target: Target, label: string, work: { ops: number; errors: number }, settleMs = SETTLE_MS): Promise<Sample> {
  await sleep(settleMs);
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
  const samples = [await measure(target, 'idle', { ops: 0, errors: 0 }, IDLE_SETTLE_MS)];
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
  const cluster = await TestCluster.start({ nodes: 3, ...ourNodes() });
  const pid = (i: number): number | undefined => cluster.nodes[i]!.process?.pid;
  describeOurNodes([0, 1, 2].map(pid));
  try {
    const servers = cluster.addresses;
    const db = await connect({ servers, database: 'large', timeoutMs: 120_000 });
    await db.exec('CREATE TABLE big (id INTEGER PRIMARY KEY, v BLOB)');
    const rows = Math.floor((LARGE_MB * MiB) / 4096);
    const batch = 1024;
    const started = performance.now();
    const loading = peakSampler(cluster, 'load');
    for (let first = 1; first <= rows; first += batch) {
      const last = Math.min(rows, first + batch - 1);
      await db.exec('WITH RECURSIVE c(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM c WHERE x < ?) INSERT INTO big SELECT x, randomblob(4096) FROM c', [first, last]);
      if ((last / batch) % 10 === 0) process.stdout.write(`  loaded ${last} of ${rows} rows (${mib(last * 4096)} MiB)\n`);
    }
    await db.close();
    loading.stop();
    console.log(`  loaded ${rows} rows in ${((performance.now() - started) / 1000).toFixed(0)} s; peak RSS while loaded ${loading.peaks.map(mib).join(' / ')} MiB`);
    loading.print();
    const updating = peakSampler(cluster, 'update');
    const updated = await updates(servers, rows, LARGE_UPDATE_SECONDS);
    updating.stop();
    const peaks = updating.peaks;
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
    updating.print();
    if (!LARGE_CATCH_UP) return;

    for (let catchUp = 1; catchUp <= LARGE_CATCH_UPS; catchUp++) {
      // A follower misses more than the trailing log: it must catch up by snapshot.
      const leader = await cluster.waitForLeader();
      const follower = (leader + 1) % 3;
      await cluster.kill(follower);
      const missed = await updates(servers, rows, 600, 6000);
      // Measured as an idle leader stands: its last snapshot stored, and the collection a node asks
      // for once its applied index stood still (10–20 s after the writes) done. 3 s after the
      // writes the updates' garbage was still there, and whether it went during the catch-up or
      // not decided much of the growth measured.
      await waitFor('no snapshot in flight on the leader', 120_000, async () => ((await cluster.status(leader)).memory.snapshotBytes === 0 ? true : undefined));
      await sleep(Math.max(SETTLE_MS, IDLE_SETTLE_MS));
      const before = rssBytes(pid(leader));
      const leaderStatus = await cluster.status(leader);
      console.log(
        `  catch-up ${catchUp}: node ${follower + 1} killed; ${missed} updates and ${(Math.max(SETTLE_MS, IDLE_SETTLE_MS) / 1000).toFixed(0)} s later the leader (node ${leader + 1}) holds RSS ${mib(before)} MiB, ` +
          `snapshot at ${leaderStatus.snapshotIndex}, log from then kept ${mib(leaderStatus.memory.logBytes)} MiB, js heap and array buffers ${mib(leaderStatus.memory.jsHeapBytes ?? 0)} MiB`,
      );
      cluster.spawn(follower);
      const catchUpStarted = performance.now();
      let peak = before;
      const heapBefore = leaderStatus.memory.jsHeapBytes ?? 0;
      let heapPeak = heapBefore;
      let snapshotPartPeak = 0;
      const residentOfLeader = (): Record<string, number> => (pid(leader) === undefined ? {} : residentByMapping(pid(leader)!));
      const mappingsBefore = residentOfLeader();
      let mappingsAtPeak = mappingsBefore;
      const regionsOfLeader = (): Map<string, number> => (pid(leader) === undefined ? new Map() : residentByRegion(pid(leader)!));
      const regionsBefore = regionsOfLeader();
      let regionsAtPeak = regionsBefore;
      // The leader's RSS is read from /proc at every poll; its status (an HTTP request it answers,
      // whose garbage grows its young generation too) once a second: the catch-up is measured, not
      // the benchmark's questions. The leader takes no writes meanwhile, so its commit index moves
      // only by what it appends itself.
      let leaderCommit = leaderStatus.commitIndex;
      let polls = 0;
      await waitFor('the follower to catch up', 600_000, async () => {
        const rss = rssBytes(pid(leader));
        if (rss > peak) {
          peak = rss;
          mappingsAtPeak = residentOfLeader();
          regionsAtPeak = regionsOfLeader();
        }
        const f = await cluster.status(follower).catch(() => undefined);
        const caughtUp = f !== undefined && f.appliedIndex >= leaderCommit - 1;
        if (polls++ % 10 === 0 || caughtUp) {
          const l = await cluster.status(leader);
          leaderCommit = l.commitIndex;
          heapPeak = Math.max(heapPeak, l.memory.jsHeapBytes ?? 0);
          snapshotPartPeak = Math.max(snapshotPartPeak, l.memory.snapshotBytes);
          if (LARGE_TRACE) {
            const record = { phase: 'catch-up', t: Math.round(performance.now() - catchUpStarted), node: leader + 1, rss, followerApplied: f?.appliedIndex, ...l.memory };
            appendFileSync(LARGE_TRACE, `${JSON.stringify(record)}\n`);
          }
        }
        return f && f.appliedIndex >= leaderCommit - 1 ? true : undefined;
      });
      const installed = cluster.nodes[follower]!.output.join('').includes('installed a snapshot');
      const after = rssBytes(pid(leader));
      const growthBy = (kind: string): string => `${kind} ${(((mappingsAtPeak[kind] ?? 0) - (mappingsBefore[kind] ?? 0)) / MiB).toFixed(1)}`;
      console.log(
        `  catch-up ${catchUp}: node ${follower + 1} caught up in ${((performance.now() - catchUpStarted) / 1000).toFixed(0)} s (${installed ? 'by snapshot' : 'from the log'}); ` +
          `leader RSS peak ${mib(peak)} MiB, growth ${((peak - before) / MiB).toFixed(1)} MiB (snapshot chunk ${mib(1 * MiB)} MiB; target: growth ≤ one chunk budget); ` +
          `leader heap and array buffers peak ${mib(heapPeak)} MiB (+${((heapPeak - heapBefore) / MiB).toFixed(1)}), its snapshot part peak ${mib(snapshotPartPeak)} MiB; leader RSS once caught up ${mib(after)} MiB; ` +
          `growth by mapping at the peak (MiB): ${Object.keys(mappingsBefore).map(growthBy).join(', ')}`,
      );
      console.log(`    the mappings that changed most at the peak: ${regionsChanged(regionsBefore, regionsAtPeak, 6)}`);
    }
  } finally {
    await cluster.destroy();
  }
}

interface PeakSample {
  rss: number;
  memory: NodeMemory;
  mappings: Record<string, number>;
}

/**
 * Samples each node's RSS every 250 ms until `stop()`: its peak, and what the node held at it, by
 * part (status.memory) and by mapping (/proc/PID/smaps), sampled again whenever RSS grew by 4 MiB
 * or more; with `--trace`, every sample as a JSON line.
 */
function peakSampler(cluster: TestCluster, phase: string): { peaks: number[]; stop(): void; print(): void } {
  const pid = (i: number): number | undefined => cluster.nodes[i]!.process?.pid;
  const peaks = [0, 1, 2].map((i) => rssBytes(pid(i)));
  const atPeak: (PeakSample | undefined)[] = [undefined, undefined, undefined];
  const sampling = [false, false, false];
  const tracing = [false, false, false];
  const started = performance.now();
  const sampler = setInterval(() => {
    for (const i of [0, 1, 2]) {
      if (LARGE_TRACE && !tracing[i]) {
        tracing[i] = true;
        const t = Math.round(performance.now() - started);
        void cluster
          .status(i)
          .then((status) => {
            const record = { phase, t, node: i + 1, state: status.state, rss: rssBytes(pid(i)), snapshots: status.snapshots, checkpoints: status.checkpoints, ...status.memory };
            appendFileSync(LARGE_TRACE, `${JSON.stringify(record)}\n`);
          })
          .catch(() => undefined)
          .finally(() => (tracing[i] = false));
      }
      const rss = rssBytes(pid(i));
      peaks[i] = Math.max(peaks[i]!, rss);
      if (sampling[i] || rss < (atPeak[i]?.rss ?? 0) + 4 * MiB) continue;
      sampling[i] = true;
      const mappings = pid(i) === undefined ? {} : residentByMapping(pid(i)!);
      void cluster
        .status(i)
        .then((status) => (atPeak[i] = { rss, memory: status.memory, mappings }))
        .catch(() => undefined)
        .finally(() => (sampling[i] = false));
    }
  }, 250);
  return {
    peaks,
    stop: () => clearInterval(sampler),
    print: () => {
      console.log(`  at each node's peak of the ${phase} (sampled when RSS grew by 4 MiB or more; MiB):`);
      for (const [i, sample] of atPeak.entries()) {
        if (!sample) continue;
        const m = sample.mappings;
        console.log(
          `    node ${i + 1}: RSS ${mib(sample.rss)}: ${memoryLine(sample.memory)}; ` +
            `mappings: ${Object.entries(m).map(([name, bytes]) => `${name} ${mib(bytes)}`).join(', ')}`,
        );
      }
    },
  };
}

/**
 * A package made of this checkout, laid out as `npm install` lays it out (package.json, bin/,
 * dist/, and the command linked from node_modules/.bin); its command's path. Removed at exit.
 */
function installedCommand(): string {
  const project = mkdtempSync(join(tmpdir(), 'dqlite-wasm-bench-package-'));
  process.on('exit', () => rmSync(project, { recursive: true, force: true }));
  const pkg = join(project, 'node_modules', 'dqlite-wasm');
  mkdirSync(join(pkg, 'bin'), { recursive: true });
  copyFileSync(join(ROOT, 'package.json'), join(pkg, 'package.json'));
  // A copy, not a link: Node.js resolves a linked entry to the checkout, and there the command runs the TypeScript sources.
  copyFileSync(join(ROOT, 'bin', 'dqlite-wasm'), join(pkg, 'bin', 'dqlite-wasm'));
  symlinkSync(join(ROOT, 'dist'), join(pkg, 'dist'));
  mkdirSync(join(project, 'node_modules', '.bin'));
  symlinkSync('../dqlite-wasm/bin/dqlite-wasm', join(project, 'node_modules', '.bin', 'dqlite-wasm'));
  return join(project, 'node_modules', '.bin', 'dqlite-wasm');
}

let ourNodeOptions: ClusterOptions | undefined;

/** How our nodes start, per SOURCE and MALLOC_TUNED (they inherit this process's environment); builds once. */
function ourNodes(): ClusterOptions {
  if (ourNodeOptions) return ourNodeOptions;
  if (SOURCE !== 'ts' && BUILD) {
    console.log('building the package (tsc -p tsconfig.build.json)...');
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
  }
  if (MALLOC_TUNED === 'yes') Object.assign(process.env, ALLOCATOR_ENV_DEFAULTS);
  if (MALLOC_TUNED === 'no') {
    for (const name of Object.keys(ALLOCATOR_ENV_DEFAULTS)) delete process.env[name];
    process.env['DQLITE_WASM_TUNE_MALLOC'] = '0';
  }
  if (SOURCE === 'installed') {
    // The command takes no Node.js flags: they go where Node.js reads them.
    if (NODE_FLAGS.length > 0) process.env['NODE_OPTIONS'] = [process.env['NODE_OPTIONS'] ?? '', ...NODE_FLAGS].join(' ').trim();
    ourNodeOptions = { command: installedCommand(), entry: [] };
  } else {
    ourNodeOptions = { nodeFlags: NODE_FLAGS, ...(SOURCE === 'build' && { entry: ['dist/bin/cli.js'] }) };
  }
  return ourNodeOptions;
}

const SOURCE_NAMES: Record<string, string> = {
  installed: 'the dqlite-wasm command of the installed package',
  build: 'node dist/bin/cli.js',
  ts: 'the TypeScript sources through the loader',
};

/**
 * Checks that what is measured is Node.js itself (not a launcher's shell) and says what our
 * nodes run with, from the kernel's view of their environment.
 */
function describeOurNodes(pids: (number | undefined)[]): void {
  for (const pid of pids) {
    if (pid === undefined) continue;
    const exe = readlinkSync(`/proc/${pid}/exe`);
    if (!/\/node[^/]*$/.test(exe)) throw new Error(`node process ${pid} is ${exe}, not Node.js: its RSS would not be the node's`);
  }
  const environ = readFileSync(`/proc/${pids[0]}/environ`, 'utf8').split('\0');
  const allocator = Object.keys(ALLOCATOR_ENV_DEFAULTS).map((name) => environ.find((entry) => entry.startsWith(`${name}=`)) ?? `${name} unset`);
  console.log(`  our nodes run ${SOURCE_NAMES[SOURCE]}, allocator: ${allocator.join(' ')} (/proc/PID/environ)`);
}

/** RSS of an idle node and its parts: the JS heap (log, databases, snapshot within it), the WASM memory, and the rest (Node.js itself, allocator surplus). */
function idleLine(rss: number, memory: NodeMemory | undefined): string {
  if (!memory) return `${mib(rss)} MiB`;
  const heap = memory.jsHeapBytes ?? 0;
  return `${mib(rss)} MiB (js heap ${mib(heap)}, wasm ${mib(memory.wasmBytes)}, rest ${mib(rss - heap - memory.wasmBytes)})`;
}

/**
 * Resident bytes of process `pid` by kind of mapping (/proc/PID/smaps): the `node` binary's file
 * pages, glibc's heap, other anonymous memory (V8's heap, array buffers mapped on their own, the
 * WASM memory, thread stacks, glibc's other arenas), shared libraries and other files.
 */
/** Resident KiB of each mapping of `pid`, by its start address, size and name. */
function residentByRegion(pid: number): Map<string, number> {
  const regions = new Map<string, number>();
  let key = '';
  for (const lineText of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const mapping = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \d+\s*(.*)$/.exec(lineText);
    if (mapping) {
      key = `${mapping[1]} (${((parseInt(mapping[2]!, 16) - parseInt(mapping[1]!, 16)) / 1024).toFixed(0)} KiB${mapping[3] ? ` ${mapping[3]}` : ''})`;
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(lineText);
    if (rss) regions.set(key, Number(rss[1]));
  }
  return regions;
}

/** The `count` mappings whose resident KiB changed most from `before` to `after`. */
function regionsChanged(before: Map<string, number>, after: Map<string, number>, count: number): string {
  const changes: [string, number][] = [];
  for (const [region, kib] of after) changes.push([region, kib - (before.get(region) ?? 0)]);
  for (const [region, kib] of before) if (!after.has(region)) changes.push([`${region}, unmapped`, -kib]);
  changes.sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
  return changes.slice(0, count).filter(([, kib]) => kib !== 0).map(([region, kib]) => `${region} ${kib > 0 ? '+' : ''}${kib} KiB`).join(', ');
}

function residentByMapping(pid: number): Record<string, number> {
  const parts: Record<string, number> = { node: 0, 'glibc heap': 0, anonymous: 0, libraries: 0, 'other files': 0 };
  let kind = 'anonymous';
  for (const lineText of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const mapping = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(lineText);
    if (mapping) {
      const name = mapping[1]!;
      if (name === '') kind = 'anonymous';
      else if (name === '[heap]') kind = 'glibc heap';
      else if (name.startsWith('[')) kind = 'anonymous';
      else if (/\/node[^/]*$/.test(name)) kind = 'node';
      else if (/\.so(\.|$)/.test(name)) kind = 'libraries';
      else kind = 'other files';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(lineText);
    if (rss) parts[kind]! += Number(rss[1]) * 1024;
  }
  return parts;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

/** The idle row alone, RUNS times: each node's RSS and its parts, and the median over every node. */
async function idleOnly(): Promise<void> {
  const nodes = ourNodes();
  console.log(`idle: 3 dqlite-wasm nodes, ${FIRST_STATEMENT ? 'one CREATE TABLE' : 'no statement'}, ${IDLE_SETTLE_MS / 1000} s quiet, ${RUNS} runs`);
  const all: number[] = [];
  const written: number[] = [];
  for (let run = 1; run <= RUNS; run++) {
    const cluster = await TestCluster.start({ nodes: 3, ...nodes });
    try {
      const pids = cluster.nodes.map((n) => n.process?.pid);
      describeOurNodes(pids);
      if (FIRST_STATEMENT) {
        const setup = await connect({ servers: cluster.addresses, database: 'memory', timeoutMs: 30_000 });
        await setup.exec('CREATE TABLE IF NOT EXISTS model (key TEXT PRIMARY KEY, value BLOB)');
        await setup.close();
      }
      await sleep(IDLE_SETTLE_MS);
      const memory = await Promise.all(cluster.nodes.map(async (n) => (await cluster.status(n.index)).memory));
      for (const [i, pid] of pids.entries()) {
        const rss = rssBytes(pid);
        all.push(rss);
        const parts = Object.entries(residentByMapping(pid!)).map(([name, bytes]) => `${name} ${(bytes / MiB).toFixed(1)}`);
        console.log(`  run ${run} node ${i + 1}: ${idleLine(rss, memory[i])}; resident by mapping (MiB): ${parts.join(', ')}`);
      }
      if (WRITE_SECONDS > 0) {
        if (!FIRST_STATEMENT) throw new Error('--write-seconds needs the first statement (the table)');
        const cpuBefore = pids.map(cpuTimes);
        const work = await timedRound(cluster.addresses, WRITE_SECONDS);
        const cpu = pids.map((pid, i) => {
          const after = cpuTimes(pid);
          return { userMs: after.userMs - cpuBefore[i]!.userMs, systemMs: after.systemMs - cpuBefore[i]!.systemMs };
        });
        written.push(work.ops);
        const perRow = (ms: number): string => (ms / Math.max(1, work.ops)).toFixed(2);
        console.log(
          `  run ${run}: ${work.ops} rows in ${WRITE_SECONDS} s (${WRITERS} writers, ${VALUE_BYTES}-byte values), ${work.errors} errors; ` +
            `CPU ms per row, user + system, of the 3 nodes: ${perRow(sum(cpu.map((c) => c.userMs)))} + ${perRow(sum(cpu.map((c) => c.systemMs)))} (a figure other processes' load moves less than rows)`,
        );
      }
    } finally {
      await cluster.destroy();
    }
  }
  console.log(`  per node: ${all.map(mib).join(', ')} MiB; median ${mib(median(all))}, max ${mib(Math.max(...all))} (target ≤ 70)`);
  if (written.length > 0) console.log(`  rows written per run: ${written.join(', ')}`);
}

async function main(): Promise<void> {
  if (IDLE_ONLY) {
    await idleOnly();
    return;
  }
  if (!COMPARE) {
    await largeDatabase();
    return;
  }
  execFileSync('bash', ['scripts/ensure-deps.sh', 'go-dqlite'], { stdio: 'inherit' });
  console.log(`memory benchmark: kvwrite, ${VALUE_BYTES}-byte values, ${WRITERS} writers, ${ROUNDS} rounds of ${ROWS > 0 ? `${ROWS} rows` : `${SECONDS} s`}, 3 nodes per system (ours: ${SOURCE_NAMES[SOURCE]})`);
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

    const nodes = ourNodes();
    console.log('starting a 3-node dqlite-wasm cluster...');
    ours = await TestCluster.start({ nodes: 3, ...nodes });
    const cluster = ours;
    describeOurNodes(cluster.nodes.map((n) => n.process?.pid));
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
  console.log('\ntargets (docs/memory.md):');
  console.log(`  RSS after the workload ≤ 1.5× dqlite's: ${(sum(last.rssBytes) / sum(theirs[theirs.length - 1]!.rssBytes)).toFixed(2)}×`);
  console.log(`  an idle node ≤ 70 MiB: ${idle.rssBytes.map((rss, i) => `node ${i + 1} ${idleLine(rss, idle.memory?.[i])}`).join(', ')}`);
  console.log(`  one node's data dir ≤ 1.5× dqlite's: ${(Math.max(...last.dirBytes) / Math.max(...theirs[theirs.length - 1]!.dirBytes)).toFixed(2)}×`);
  if (LARGE_MB > 0) await largeDatabase();
}

await main();
process.exit(0);

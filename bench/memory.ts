/**
 * Memory and disk of a 3-node cluster under the same write workload, real dqlite (Debian's
 * dqlite-demo) against dqlite-wasm, in one run and with the same client (ours):
 *   kvwrite: INSERT INTO model(key, value) VALUES(?, ?), a new 32-byte key and a 4 KiB value
 *            each time, so the database grows round after round.
 * It prints each node process's resident memory (VmRSS from /proc/PID/status), summed over the
 * three, when idle and after each round, each node's data directory size, and the ratios; for
 * dqlite-wasm also what the nodes say they hold (status.memory, docs/memory.md).
 * Usage: npm run bench:memory -- [--seconds 15] [--rounds 2] [--writers 8] [--value-bytes 4096]
 *                                [--source build|ts] [--settle-ms 3000]
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type Database } from '../runtimes/node/client.ts';
import { TestCluster, sleep } from '../test/helpers/cluster.ts';
import { startDqliteDemoCluster, type DqliteDemoCluster } from '../test/helpers/dqlite-demo.ts';
import type { NodeMemory } from '../src/server/memory-usage.ts';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const SECONDS = Number(flag('seconds', '15'));
const ROUNDS = Number(flag('rounds', '2'));
const WRITERS = Number(flag('writers', '8'));
const VALUE_BYTES = Number(flag('value-bytes', '4096'));
/** Time for the nodes to settle (snapshots written, garbage collected) before a measurement. */
const SETTLE_MS = Number(flag('settle-ms', '3000'));
/** `build`: the nodes run the compiled package (what `npm install` users run); `ts`: the sources through the TypeScript loader (about 24 MiB more per node). */
const SOURCE = flag('source', 'build');
const MiB = 1024 * 1024;

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
      while (performance.now() < deadline) {
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
    process.stdout.write(`  ${target.system} round ${r} (${SECONDS} s, ${WRITERS} writers)... `);
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

async function main(): Promise<void> {
  execFileSync('bash', ['scripts/ensure-deps.sh', 'go-dqlite'], { stdio: 'inherit' });
  console.log(`memory benchmark: kvwrite, ${VALUE_BYTES}-byte values, ${WRITERS} writers, ${ROUNDS} × ${SECONDS} s, 3 nodes per system (ours from ${SOURCE === 'build' ? 'the compiled build' : 'the TypeScript sources'})`);
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
    if (SOURCE === 'build') {
      console.log('building the package (tsc -p tsconfig.build.json)...');
      execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
    }
    ours = await TestCluster.start({ nodes: 3, ...(SOURCE === 'build' && { entry: ['dist/bin/cli.js'] }) });
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
}

await main();
process.exit(0);

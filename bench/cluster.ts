/**
 * go-dqlite's benchmark workloads against a real 3-node dqlite cluster (Debian's dqlite-demo)
 * and against a 3-node dqlite-wasm cluster, on this machine, with the same client, in one run.
 *   kvwrite:     INSERT OR REPLACE INTO model(key, value) VALUES(?, ?)   32-byte keys, 1 KiB values
 *   kvreadwrite: half of the operations SELECT value FROM model WHERE key = ?
 *   kvreadwrite any:<level>: dqlite-wasm only, each worker reading on a different node (its
 *     nearest: readFrom 'any') at that consistency level, writes still to the leader
 * For each dqlite-wasm row it prints the leader's latency anatomy: the time of each stage of a
 * write (execute, persist, quorum, apply, answer) from its /metrics before and after the row.
 * It also prints the CPU time each node of either system spent per successful operation of the
 * row (user + system, from /proc): a figure the load of other processes moves less than ops/s.
 * Each row first runs its workload unmeasured for --warmup-seconds (same for both systems), so the
 * row measures a warmed-up server (our nodes' JIT-compiled code, either system's page cache and
 * connections), not its first seconds; `--warmup-seconds 0` measures from a cold start.
 * Usage: npm run bench -- [--seconds S] [--warmup-seconds W] [--writers 1,8] [--workloads kvwrite,kvreadwrite]
 *                         [--spread linearizable,lease,session,stale | --spread none]
 *                         [--systems dqlite,dqlite-wasm] [--cpu-prof DIR (profiles of our nodes)]
 *                         [--node-flags "--trace-gc ..." (our nodes' Node.js flags; their output is shown)]
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, DqliteError, type Database, type ReadConsistency } from '../runtimes/node/client.ts';
import { TestCluster } from '../test/helpers/cluster.ts';
import { startDqliteDemoCluster, type DqliteDemoCluster } from '../test/helpers/dqlite-demo.ts';
import { anatomyTable, scrapeAnatomy } from './write-anatomy.ts';

type Workload = 'kvwrite' | 'kvreadwrite';

interface Result {
  system: 'dqlite' | 'dqlite-wasm';
  workload: Workload;
  /** Reads spread over every node at this level (dqlite-wasm only). */
  spread: ReadConsistency | undefined;
  writers: number;
  ops: number;
  errors: number;
  errorKinds: Map<string, number>;
  seconds: number;
  latenciesMs: number[];
  /** dqlite-wasm: where the leader's write time went (write-anatomy.ts). */
  anatomy?: string;
  /** CPU ms per operation of each node (dqlite-wasm: the leader marked). */
  cpuPerOp?: string;
}

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const SECONDS = Number(flag('seconds', '5'));
const WARMUP_SECONDS = Number(flag('warmup-seconds', '3'));
const WRITERS = flag('writers', '1,8').split(',').map(Number);
const WORKLOADS = flag('workloads', 'kvwrite,kvreadwrite').split(',') as Workload[];
const SPREAD = flag('spread', 'linearizable,lease,session,stale')
  .split(',')
  .filter((level) => level !== 'none' && level !== '') as ReadConsistency[];
const SYSTEMS = flag('systems', 'dqlite,dqlite-wasm').split(',');
const CPU_PROFILE_DIR = flag('cpu-prof', '');
/** Extra Node.js flags for our node processes, space-separated (e.g. "--trace-gc"). */
const NODE_FLAGS = flag('node-flags', '').split(' ').filter((f) => f !== '');
const KEYS = 1000;

function key(i: number): string {
  return `key-${String(i).padStart(28, '0')}`; // 32 bytes
}

const VALUE = new Uint8Array(1024).map((_, i) => (i * 31 + 7) & 0xff);

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** A row's clients, connected and warmed up; `measure` runs the measured part and closes them. */
interface PreparedWorkload {
  measure(): Promise<Result>;
}

async function prepareWorkload(
  system: Result['system'],
  servers: string[],
  workload: Workload,
  writers: number,
  spread?: ReadConsistency,
): Promise<PreparedWorkload> {
  const database = `bench_${workload}_${writers}${spread ? `_${spread}` : ''}`;
  const setup = await connect({ servers, database, timeoutMs: 30_000 });
  await setup.exec('CREATE TABLE IF NOT EXISTS model (key TEXT PRIMARY KEY, value BLOB)');
  for (let i = 0; i < 100; i++) await setup.exec('INSERT OR REPLACE INTO model(key, value) VALUES(?, ?)', [key(i), VALUE]);
  await setup.close();

  const clients: Database[] = await Promise.all(
    Array.from({ length: writers }, (_, w) =>
      spread
        ? // Worker w reads on node w mod n: its "nearest".
          connect({ servers: [...servers.slice(w % servers.length), ...servers.slice(0, w % servers.length)], database, timeoutMs: 30_000, readFrom: 'any', consistency: spread })
        : connect({ servers, database, timeoutMs: 30_000 }),
    ),
  );
  const run = async (seconds: number, result: Result | undefined): Promise<void> => {
    const deadline = performance.now() + seconds * 1000;
    await Promise.all(
      clients.map(async (client, w) => {
        let n = 0;
        while (performance.now() < deadline) {
          const k = key((w * 7919 + n++ * 104729) % KEYS);
          const read = workload === 'kvreadwrite' && n % 2 === 0;
          const started = performance.now();
          try {
            if (read) await client.query('SELECT value FROM model WHERE key = ?', [k]);
            else await client.exec('INSERT OR REPLACE INTO model(key, value) VALUES(?, ?)', [k, VALUE]);
            if (!result) continue;
            result.ops++;
            result.latenciesMs.push(performance.now() - started);
          } catch (error) {
            if (!result) continue;
            result.errors++;
            const kind = error instanceof DqliteError ? `${error.code} ${error.message.slice(0, 40)}` : (error as Error).name;
            result.errorKinds.set(kind, (result.errorKinds.get(kind) ?? 0) + 1);
          }
        }
      }),
    );
  };
  await run(WARMUP_SECONDS, undefined);
  return {
    async measure(): Promise<Result> {
      const result: Result = { system, workload, spread, writers, ops: 0, errors: 0, errorKinds: new Map(), seconds: SECONDS, latenciesMs: [] };
      try {
        await run(SECONDS, result);
      } finally {
        await Promise.all(clients.map((c) => c.close()));
      }
      return result;
    },
  };
}

function row(r: Result): string {
  const sorted = [...r.latenciesMs].sort((a, b) => a - b);
  return [
    r.system.padEnd(12),
    (r.spread ? `${r.workload} any:${r.spread}` : r.workload).padEnd(30),
    String(r.writers).padStart(7),
    (r.ops / r.seconds).toFixed(0).padStart(9),
    percentile(sorted, 50).toFixed(2).padStart(8),
    percentile(sorted, 99).toFixed(2).padStart(8),
    String(r.errors).padStart(7),
  ].join(' ');
}

/** CPU ms (user + system) of a /proc stat file: the process's, or one thread's. */
function statCpuMs(path: string): number {
  // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
  const fields = readFileSync(path, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** CPU ms a process has used so far, in all and on its main (JavaScript) thread; undefined where /proc has none. */
function cpuMs(pid: number | undefined): { all: number; main: number } | undefined {
  if (pid === undefined) return undefined;
  try {
    return { all: statCpuMs(`/proc/${pid}/stat`), main: statCpuMs(`/proc/${pid}/task/${pid}/stat`) };
  } catch {
    return undefined;
  }
}

/** CPU ms per operation of each process in `pids` between two readings, the leader (if known) marked, and their sum. */
function cpuPerOpLine(pids: (number | undefined)[], leaderIndex: number | undefined, before: ReturnType<typeof cpuMs>[], ops: number, withMainThread: boolean): string {
  const after = pids.map(cpuMs);
  let total = 0;
  const perNode = pids.map((_, i) => {
    const [b, a] = [before[i], after[i]];
    const all = a && b ? (a.all - b.all) / ops : NaN;
    const main = a && b ? (a.main - b.main) / ops : NaN;
    total += all;
    return `node ${i + 1}${i === leaderIndex ? ' (leader)' : ''} ${all.toFixed(3)}${withMainThread ? ` (main thread ${main.toFixed(3)})` : ''}`;
  });
  return `    CPU ms per operation: ${perNode.join(', ')}; all nodes ${total.toFixed(3)}`;
}

/**
 * Runs a row and reads each node's CPU time around it; on our cluster also the leader's latency
 * anatomy and our nodes' main (JavaScript) thread share (dqlite-demo's threads are Go's and libuv's).
 */
async function measured(cluster: TestCluster | DqliteDemoCluster | undefined, label: string, prepare: () => Promise<PreparedWorkload>): Promise<Result> {
  const pids = cluster ? cluster.nodes.map((n) => n.process?.pid) : [];
  const prepared = await prepare();
  if (!(cluster instanceof TestCluster)) {
    const cpuBefore = pids.map(cpuMs);
    const result = await prepared.measure();
    if (cluster) result.cpuPerOp = cpuPerOpLine(pids, undefined, cpuBefore, Math.max(1, result.ops), false);
    return result;
  }
  const leaderIndex = await cluster.waitForLeader();
  const leader = cluster.nodes[leaderIndex]!.address;
  const before = await scrapeAnatomy(leader);
  const cpuBefore = pids.map(cpuMs);
  const result = await prepared.measure();
  result.cpuPerOp = cpuPerOpLine(pids, leaderIndex, cpuBefore, Math.max(1, result.ops), true);
  result.anatomy = anatomyTable(label, before, await scrapeAnatomy(leader));
  return result;
}

async function main(): Promise<void> {
  execFileSync('bash', ['scripts/ensure-deps.sh', 'go-dqlite'], { stdio: 'inherit' });
  console.log(`cluster benchmark: ${WORKLOADS.join(', ')} × writers ${WRITERS.join(', ')}, ${SECONDS} s each after ${WARMUP_SECONDS} s of warm-up, 3 nodes per system`);
  let dqlite: DqliteDemoCluster | undefined;
  let ours: TestCluster | undefined;
  const results: Result[] = [];
  try {
    if (SYSTEMS.includes('dqlite')) {
      console.log('starting a 3-node dqlite-demo cluster...');
      dqlite = await startDqliteDemoCluster({ size: 3 });
    }
    if (SYSTEMS.includes('dqlite-wasm')) {
      console.log('starting a 3-node dqlite-wasm cluster...');
      ours = await TestCluster.start({ nodes: 3, nodeFlags: [...NODE_FLAGS, ...(CPU_PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', CPU_PROFILE_DIR] : [])], verbose: NODE_FLAGS.length > 0 });
    }
    for (const workload of WORKLOADS) {
      for (const writers of WRITERS) {
        const systems: [Result['system'], TestCluster | DqliteDemoCluster | undefined][] = [
          ['dqlite', dqlite],
          ['dqlite-wasm', ours],
        ];
        for (const [system, cluster] of systems) {
          if (!cluster) continue;
          const servers = cluster.addresses;
          process.stdout.write(`  ${system} ${workload} ${writers} writer(s)... `);
          const r = await measured(cluster, `${workload} ${writers}`, () => prepareWorkload(system, [...servers], workload, writers));
          results.push(r);
          console.log(`${(r.ops / r.seconds).toFixed(0)} ops/s, ${r.errors} errors`);
        }
        if (workload !== 'kvreadwrite' || !ours) continue;
        for (const level of SPREAD) {
          process.stdout.write(`  dqlite-wasm ${workload} any:${level} ${writers} worker(s)... `);
          const r = await measured(ours, `${workload} any:${level} ${writers}`, () => prepareWorkload('dqlite-wasm', [...ours!.addresses], workload, writers, level));
          results.push(r);
          console.log(`${(r.ops / r.seconds).toFixed(0)} ops/s, ${r.errors} errors`);
        }
      }
    }
  } finally {
    await dqlite?.stop();
    if (ours && CPU_PROFILE_DIR) {
      // A profile is written when the process exits on its own: stop each node gracefully.
      for (let i = 0; i < ours.nodes.length; i++) await ours.kill(i, 'SIGTERM');
    }
    await ours?.destroy();
  }

  console.log(`\nsystem       ${'workload'.padEnd(30)} writers     ops/s   p50 ms   p99 ms  errors`);
  for (const r of results) console.log(row(r));
  console.log('\nratios (dqlite-wasm / dqlite), successful ops/s:');
  for (const workload of WORKLOADS) {
    for (const writers of WRITERS) {
      const b = results.find((r) => r.system === 'dqlite' && r.workload === workload && r.writers === writers);
      if (!b) continue;
      for (const a of results.filter((r) => r.system === 'dqlite-wasm' && r.workload === workload && r.writers === writers)) {
        const ratio = b.ops === 0 ? Infinity : a.ops / b.ops;
        const label = a.spread ? `${workload} any:${a.spread}` : workload;
        console.log(`  ${label} ${writers} writer(s): ${ratio.toFixed(2)}× (errors: ours ${a.errors}, dqlite ${b.errors})`);
      }
    }
  }
  console.log('\nCPU per operation (user + system, from /proc, successful operations):');
  for (const r of results) if (r.cpuPerOp) console.log(`  ${r.system} ${r.spread ? `${r.workload} any:${r.spread}` : r.workload} ${r.writers}:\n${r.cpuPerOp}`);
  for (const r of results) if (r.anatomy) console.log(`\n${r.anatomy}`);
  const kinds = results.filter((r) => r.errors > 0);
  if (kinds.length > 0) {
    console.log('\nerrors by kind:');
    for (const r of kinds) for (const [kind, n] of r.errorKinds) console.log(`  ${r.system} ${r.workload} ${r.writers}: ${n} × ${kind}`);
  }
}

await main();
process.exit(0);

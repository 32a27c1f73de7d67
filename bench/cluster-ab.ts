/**
 * kvwrite on two 3-node dqlite-wasm clusters at once, one running this tree's code and one an
 * earlier commit's (`--base REF`, exported with git archive into a temporary directory), each
 * driven by its own writers: both see the same load from the rest of the machine, so their CPU
 * per write compares even where the machine's noise moves ops/s by ±50% between runs. Per row and
 * node it prints the CPU per write (user + system from /proc, and the JavaScript thread's), the
 * peer messages sent and received per write and the log writes per write (from /metrics).
 * Usage: node --import ./scripts/ts-loader.mjs bench/cluster-ab.ts --base REF
 *          [--writers 8] [--seconds 5] [--rounds 3]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function flag(name: string, fallback: string | undefined): string {
  const i = process.argv.indexOf(`--${name}`);
  const value = i >= 0 ? process.argv[i + 1] : fallback;
  if (value === undefined) throw new Error(`usage: bench/cluster-ab.ts --base REF [--writers 8] [--seconds 5] [--rounds 3] (missing --${name})`);
  return value;
}

const BASE = flag('base', undefined);
const WRITERS = Number(flag('writers', '8'));
const SECONDS = Number(flag('seconds', '5'));
const ROUNDS = Number(flag('rounds', '3'));
const KEYS = 1000;
const VALUE = new Uint8Array(1024).map((_, i) => (i * 31 + 7) & 0xff);
const key = (i: number): string => `key-${String(i).padStart(28, '0')}`;

/** CPU ms (user + system) of a /proc stat file: the process's, or one thread's. */
function statCpuMs(path: string): number {
  const fields = readFileSync(path, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

function cpuMs(pid: number): { all: number; main: number } {
  return { all: statCpuMs(`/proc/${pid}/stat`), main: statCpuMs(`/proc/${pid}/task/${pid}/stat`) };
}

const COUNTERS = [
  'dqlite_wasm_peer_messages_total{direction="sent"}',
  'dqlite_wasm_peer_messages_total{direction="received"}',
  'dqlite_wasm_raft_log_write_seconds_count',
  'dqlite_wasm_raft_log_write_seconds_sum',
  'dqlite_wasm_raft_log_write_entries_sum',
];

async function counters(address: string): Promise<number[]> {
  const text = await (await fetch(`http://${address}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const space = line.lastIndexOf(' ');
    if (space > 0) values.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return COUNTERS.map((name) => values.get(name) ?? 0);
}

interface Row {
  opsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  leader: number;
  /** Per node, per write: CPU ms in all and on the main thread, then COUNTERS' deltas. */
  nodes: { cpu: number; main: number; counters: number[] }[];
}

interface Cluster {
  nodes: { process: { pid?: number } | undefined }[];
  addresses: string[];
  waitForLeader(): Promise<number>;
  destroy(): Promise<void>;
}

interface Client {
  exec(sql: string, params: unknown[]): Promise<unknown>;
  close(): Promise<void>;
}

/** One row on the cluster of the tree at `root`: its own cluster, its own client module. */
async function runRow(root: string): Promise<Row> {
  const { TestCluster } = (await import(join(root, 'test/helpers/cluster.ts'))) as { TestCluster: { start(options: { nodes: number }): Promise<Cluster> } };
  const { connect } = (await import(join(root, 'runtimes/node/client.ts'))) as { connect(options: { servers: string[]; database: string; timeoutMs: number }): Promise<Client> };
  const cluster = await TestCluster.start({ nodes: 3 });
  try {
    const leader = await cluster.waitForLeader();
    const servers = cluster.addresses;
    const database = 'bench_ab';
    const setup = await connect({ servers, database, timeoutMs: 30_000 });
    await setup.exec('CREATE TABLE IF NOT EXISTS model (key TEXT PRIMARY KEY, value BLOB)', []);
    await setup.close();
    const clients = await Promise.all(Array.from({ length: WRITERS }, () => connect({ servers, database, timeoutMs: 30_000 })));
    const drive = async (seconds: number, latenciesMs: number[]): Promise<void> => {
      const deadline = performance.now() + seconds * 1000;
      await Promise.all(
        clients.map(async (client, w) => {
          for (let n = 0; performance.now() < deadline; n++) {
            const started = performance.now();
            await client.exec('INSERT OR REPLACE INTO model(key, value) VALUES(?, ?)', [key((w * 7919 + n * 104729) % KEYS), VALUE]);
            latenciesMs.push(performance.now() - started);
          }
        }),
      );
    };
    await drive(1, []); // warm-up
    const pids = cluster.nodes.map((n) => n.process!.pid!);
    const countersBefore = await Promise.all(servers.map(counters));
    const cpuBefore = pids.map(cpuMs);
    const latenciesMs: number[] = [];
    await drive(SECONDS, latenciesMs);
    const cpuAfter = pids.map(cpuMs);
    const countersAfter = await Promise.all(servers.map(counters));
    await Promise.all(clients.map((c) => c.close()));
    const writes = Math.max(1, latenciesMs.length);
    latenciesMs.sort((a, b) => a - b);
    return {
      opsPerSecond: latenciesMs.length / SECONDS,
      p50Ms: latenciesMs[Math.floor(latenciesMs.length / 2)] ?? NaN,
      p99Ms: latenciesMs[Math.floor(latenciesMs.length * 0.99)] ?? NaN,
      leader,
      nodes: pids.map((_, i) => ({
        cpu: (cpuAfter[i]!.all - cpuBefore[i]!.all) / writes,
        main: (cpuAfter[i]!.main - cpuBefore[i]!.main) / writes,
        counters: countersAfter[i]!.map((v, c) => (v - countersBefore[i]![c]!) / writes),
      })),
    };
  } finally {
    await cluster.destroy();
  }
}

function describe(label: string, row: Row): string {
  const lines = [`  ${label}: ${row.opsPerSecond.toFixed(0)} writes/s, p50 ${row.p50Ms.toFixed(2)} ms, p99 ${row.p99Ms.toFixed(2)} ms`];
  row.nodes.forEach((n, i) => {
    const [sent, received, logWrites, logSeconds, logEntries] = n.counters as [number, number, number, number, number];
    lines.push(
      `    node ${i + 1}${i === row.leader ? ' (leader)' : '         '} CPU ${n.cpu.toFixed(3)} ms (main thread ${n.main.toFixed(3)}), ` +
        `messages sent ${sent.toFixed(2)} received ${received.toFixed(2)}, log writes ${logWrites.toFixed(2)} ` +
        `(${(logEntries / logWrites).toFixed(1)} entries, ${((1000 * logSeconds) / logWrites).toFixed(2)} ms)`,
    );
  });
  return lines.join('\n');
}

const baseRoot = mkdtempSync(join(tmpdir(), 'dqlite-wasm-ab-'));
try {
  const archive = execFileSync('git', ['archive', BASE], { cwd: ROOT, maxBuffer: 1 << 30 });
  execFileSync('tar', ['-x', '-C', baseRoot], { input: archive });
  symlinkSync(join(ROOT, 'node_modules'), join(baseRoot, 'node_modules'));
  const base = `base (${BASE})`;
  console.log(`kvwrite × ${WRITERS} writers, ${SECONDS} s, ${ROUNDS} rounds: this tree and ${BASE}, both clusters at once; per write:`);
  const rows: { label: string; row: Row }[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const [ours, theirs] = await Promise.all([runRow(ROOT), runRow(baseRoot)]);
    console.log(`round ${round} (load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')})`);
    console.log(describe(base, theirs));
    console.log(describe('this tree', ours));
    rows.push({ label: base, row: theirs }, { label: 'this tree', row: ours });
  }
  for (const label of [base, 'this tree']) {
    const mine = rows.filter((r) => r.label === label).map((r) => r.row);
    const mean = (f: (r: Row) => number): number => mine.reduce((sum, r) => sum + f(r), 0) / mine.length;
    const followers = (r: Row): number => (r.nodes.reduce((sum, n) => sum + n.cpu, 0) - r.nodes[r.leader]!.cpu) / (r.nodes.length - 1);
    console.log(
      `mean ${label}: ${mean((r) => r.opsPerSecond).toFixed(0)} writes/s, CPU per write: leader ${mean((r) => r.nodes[r.leader]!.cpu).toFixed(3)} ms, ` +
        `followers ${mean(followers).toFixed(3)} ms each`,
    );
  }
} finally {
  rmSync(baseRoot, { recursive: true, force: true });
}
process.exit(0);

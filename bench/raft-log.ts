/**
 * The Raft log's durable append alone, as each node of a 3-node cluster on one machine does it:
 * three logs in three directories appending at once, one 10 KiB entry per append (a kvwrite
 * transaction at 8 KiB pages), each append durable before the next. Preallocated segments
 * written in place (the default where the storage offers DurableStorage.writeAt) against plain
 * appends, in alternated rounds; prints the append latency and the process CPU per append.
 * Run: npm run bench:log   Env: BENCH_APPENDS (per log per round, default 1000), BENCH_ROUNDS (3).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDirectoryStorage } from '../runtimes/node/storage.ts';
import { EntryType } from '../src/raft/index.ts';
import { RaftLog } from '../src/server/raft-log.ts';

const APPENDS = Number(process.env['BENCH_APPENDS'] ?? 1000);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const LOGS = 3;
const DATA = new Uint8Array(10 * 1024).map((_, i) => (i * 131 + 7) & 0xff);

interface Round {
  latenciesMs: number[];
  cpuMsPerAppend: number;
}

async function appendLoop(directory: string, preallocateBytes: number | undefined, latenciesMs: number[]): Promise<void> {
  const storage = await openDirectoryStorage(directory);
  const log = new RaftLog(storage, { diskSpace: { reserveBytes: 0 }, preallocateBytes });
  await log.load();
  for (let index = 1; index <= APPENDS; index++) {
    const startedMs = performance.now();
    await log.append([{ index, term: 1, type: EntryType.Normal, data: DATA }]);
    latenciesMs.push(performance.now() - startedMs);
  }
  await storage.close();
}

async function round(preallocated: boolean): Promise<Round> {
  const root = await mkdtemp(join(tmpdir(), 'dqlite-wasm-bench-log-'));
  const latenciesMs: number[] = [];
  const cpuBefore = process.cpuUsage();
  try {
    await Promise.all(Array.from({ length: LOGS }, (_, i) => appendLoop(join(root, `log${i + 1}`), preallocated ? undefined : 0, latenciesMs)));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  const cpu = process.cpuUsage(cpuBefore);
  return { latenciesMs, cpuMsPerAppend: (cpu.user + cpu.system) / 1000 / (LOGS * APPENDS) };
}

function summary(label: string, rounds: Round[]): string {
  const all = rounds.flatMap((r) => r.latenciesMs).sort((a, b) => a - b);
  const at = (p: number): string => all[Math.min(all.length - 1, Math.floor(p * all.length))]!.toFixed(3);
  const mean = all.reduce((sum, ms) => sum + ms, 0) / all.length;
  const cpu = rounds.reduce((sum, r) => sum + r.cpuMsPerAppend, 0) / rounds.length;
  return `${label.padEnd(22)} mean ${mean.toFixed(3)} ms  p50 ${at(0.5)}  p99 ${at(0.99)}  CPU ${cpu.toFixed(3)} ms per append`;
}

console.log(`raft log append: ${LOGS} logs at once, ${APPENDS} appends of ${DATA.length} bytes each per round, ${ROUNDS} rounds per mode, alternated`);
const preallocated: Round[] = [];
const appended: Round[] = [];
for (let r = 0; r < ROUNDS; r++) {
  preallocated.push(await round(true));
  appended.push(await round(false));
  process.stdout.write(`  round ${r + 1}/${ROUNDS} done\n`);
}
console.log(summary('preallocated, in place', preallocated));
console.log(summary('appended', appended));

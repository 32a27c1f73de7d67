/**
 * `npm run import:large [-- --mib 200]`: imports a large SQLite file (made by Debian's sqlite3:
 * rows of 1 KiB random blobs) into a fresh 3-node cluster with `dqlite-wasm import`, then prints
 * the time, each node's peak resident memory (VmHWM from /proc) and its growth over the idle
 * node, and checks that every node holds the same rows. It also checks that the leader stayed
 * in place: the leader and term before the import are those after it, once every node applied
 * it and the checkpoint that follows, and no node started an election meanwhile; the run fails
 * otherwise. It then waits (`--settle-s`, 10 s) and prints each node's RSS with what its
 * /status counts (log, databases, WASM memory). `--timeline`: every node's RSS and /status parts
 * every 250 ms; `--smaps`: each sample also splits the node's RSS by mapping;
 * `--heap-snapshot-at-log-mib N`: the leader writes a V8 heap snapshot once its log holds N MiB.
 * The nodes get the allocator settings of the `dqlite-wasm` command
 * (`--untuned-malloc`: glibc's defaults). Linux only (reads /proc).
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestCluster, waitFor } from '../test/helpers/cluster.ts';
import type { NodeMemory } from '../src/server/memory-usage.ts';
import { withAllocatorDefaults } from '../bin/allocator.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MiB = 2 ** 20;

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
}

function statusField(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) * 1024 : NaN;
}

/** Checkpoints the node has applied (its /status `checkpoints`). */
function checkpoints(status: object): number {
  return Number((status as { checkpoints?: number }).checkpoints ?? 0);
}

/**
 * A process's resident memory by mapping (`/proc/PID/smaps`), in MiB: the `node` binary's
 * pages, glibc's heap, shared libraries, each WebAssembly memory (an anonymous reservation of
 * 1 GiB or more: the engine's, the scratch stage's), and the other anonymous maps by size (the
 * allocator maps every allocation of 32 KiB or more on its own: array buffers, V8's pages).
 */
function residentByMapping(pid: number): string {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return '';
  }
  const sums = new Map<string, number>();
  const wasm: number[] = [];
  let category = '';
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) {
      const bytes = parseInt(head[2]!, 16) - parseInt(head[1]!, 16);
      const name = head[3]!;
      if (/\/node$/.test(name)) category = 'bin';
      else if (name === '[heap]') category = 'glibc';
      else if (name.startsWith('/')) category = 'libs';
      else if (name.startsWith('[')) category = 'other';
      else if (bytes >= 2 ** 30) category = 'wasm';
      else if (bytes >= MiB) category = 'anon≥1M';
      else category = 'anon<1M';
      if (category === 'wasm') wasm.push(0);
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (!rss) continue;
    const bytes = Number(rss[1]) * 1024;
    if (category === 'wasm') wasm[wasm.length - 1]! += bytes;
    else sums.set(category, (sums.get(category) ?? 0) + bytes);
  }
  const parts = [...sums].filter(([, bytes]) => bytes >= MiB).map(([name, bytes]) => `${name} ${(bytes / MiB).toFixed(0)}`);
  return [...parts, `wasm ${wasm.filter((bytes) => bytes > 0).map((bytes) => (bytes / MiB).toFixed(0)).join('+')}`].join(' ');
}

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(0)} MiB`;
}

async function query(address: string, sql: string): Promise<unknown[][]> {
  const response = await fetch(`http://${address}/db/query?level=none&q=${encodeURIComponent(sql)}`);
  const body = (await response.json()) as { results: { values?: unknown[][]; error?: string }[] };
  if (body.results[0]?.error) throw new Error(body.results[0].error);
  return body.results[0]?.values ?? [];
}

async function main(): Promise<void> {
  const targetMiB = flag('--mib', 200);
  const rows = Math.round((targetMiB * MiB) / 1390); // 1 KiB blob, its note and index entry: ~1390 bytes of file a row
  const tickMs = flag('--tick-ms', 0);
  const commitTimeoutMs = flag('--commit-timeout-ms', 0);
  const dir = mkdtempSync(join(tmpdir(), 'dqlite-wasm-import-large-'));
  const file = join(dir, 'large.sqlite');
  console.log(`making ${file}: ${rows} rows of 1 KiB (sqlite3)...`);
  execFileSync('sqlite3', [
    file,
    `PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; CREATE TABLE blobs (id INTEGER PRIMARY KEY, note TEXT, data BLOB);
     WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < ${rows})
     INSERT INTO blobs SELECT n, 'row ' || n, randomblob(1024) FROM c;
     CREATE INDEX blobs_note ON blobs(note);`,
  ]);
  const fileBytes = statSync(file).size;
  const expected = execFileSync('sqlite3', [file, 'SELECT count(*), sum(length(data)) FROM blobs'], { encoding: 'utf8' }).trim();
  console.log(`file: ${mib(fileBytes)} (${fileBytes} bytes), rows|blob bytes: ${expected}`);

  // The nodes get the allocator settings the `dqlite-wasm` command gives them (bin/allocator.ts):
  // they are spawned as `node bin/dqlite-wasm`, which skips the launcher's shell lines, and
  // without them glibc keeps freed chunks resident (docs/memory.md). --untuned-malloc: without.
  if (!process.argv.includes('--untuned-malloc')) Object.assign(process.env, withAllocatorDefaults(process.env, process.platform));
  console.log(`allocator: ${['MALLOC_ARENA_MAX', 'MALLOC_MMAP_THRESHOLD_'].map((name) => `${name}=${process.env[name] ?? '(glibc default)'}`).join(' ')}`);
  // --cpu-prof: each node writes a CPU profile into ./import-large-profiles when it stops.
  const profile = process.argv.includes('--cpu-prof');
  // --heap-snapshot-at-log-mib N: the leader writes a V8 heap snapshot into ./import-large-profiles
  // once its log holds N MiB (during the COMMIT), to see what its JS heap and array buffers hold.
  const snapshotAtLogMiB = flag('--heap-snapshot-at-log-mib', 0);
  let snapshotTaken = false;
  const cluster = await TestCluster.start({
    nodes: 3,
    verbose: process.argv.includes('--verbose'),
    extraArgs: [
      ...(tickMs > 0 ? ['--tick-ms', String(tickMs)] : []),
      ...(commitTimeoutMs > 0 ? ['--commit-timeout-ms', String(commitTimeoutMs)] : []),
    ],
    ...((profile || snapshotAtLogMiB > 0) && {
      nodeFlags: [
        ...(profile ? ['--cpu-prof', '--cpu-prof-dir', join(ROOT, 'import-large-profiles')] : []),
        ...(snapshotAtLogMiB > 0 ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${join(ROOT, 'import-large-profiles')}`] : []),
      ],
    }),
  });
  let sampler: ReturnType<typeof setInterval> | undefined;
  try {
    const leader = await cluster.waitForLeader();
    const before = await cluster.status(leader);
    const checkpointsBefore = await Promise.all(cluster.nodes.map((_, i) => cluster.status(i).then(checkpoints)));
    const outputBefore = cluster.nodes.map((n) => n.output.length);
    const pids = cluster.nodes.map((n) => n.process!.pid!);
    const idle = pids.map((pid) => statusField(pid, 'VmRSS'));
    const started = Date.now();
    // --timeline: every node's resident memory every 250 ms, to see which copies overlap, with
    // the parts its /status reports (log, databases, snapshot, JS heap with its array buffers)
    // when the node answers within the sample's turn.
    const timeline: string[] = [];
    const parts: string[] = pids.map(() => '');
    const sampleParts = (i: number): void => {
      void cluster
        .status(i)
        .then((s) => {
          const m = (s as { memory?: NodeMemory }).memory;
          if (m && i === leader && snapshotAtLogMiB > 0 && !snapshotTaken && m.logBytes >= snapshotAtLogMiB * MiB) {
            snapshotTaken = true;
            process.kill(pids[i]!, 'SIGUSR2');
          }
          parts[i] = m ? `log ${mib(m.logBytes)} db ${mib(m.databasesBytes)} snap ${mib(m.snapshotBytes)} js ${m.jsHeapBytes === null ? '?' : mib(m.jsHeapBytes)}` : '';
        })
        .catch(() => {
          parts[i] = 'busy';
        });
    };
    // --smaps: each sample also splits the node's RSS by mapping (residentByMapping).
    const byMapping = process.argv.includes('--smaps');
    sampler = process.argv.includes('--timeline')
      ? setInterval(() => {
          timeline.push(
            `${((Date.now() - started) / 1000).toFixed(2)}s ${pids.map((pid, i) => `${mib(statusField(pid, 'VmRSS'))} (${parts[i]}${byMapping ? `; ${residentByMapping(pid)}` : ''})`).join(' / ')}`,
          );
          pids.forEach((_, i) => sampleParts(i));
        }, 250)
      : undefined;
    const args = [join(ROOT, 'bin/dqlite-wasm'), 'import', '-s', cluster.addresses[leader]!, 'main', file];
    const result = await new Promise<{ code: number; stderr: string; stdout: string }>((resolve) => {
      execFile(process.execPath, args, { cwd: ROOT, maxBuffer: 64 * MiB }, (error, stdout, stderr) =>
        resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
    const importedMs = Date.now() - started;
    if (sampler && result.code !== 0) console.log(`resident memory:\n  ${timeline.join('\n  ')}`);
    if (result.code !== 0) throw new Error(`import failed (${result.code}): ${result.stderr}${result.stdout}`);
    process.stdout.write(result.stderr.split('\n').slice(-4).join('\n'));
    console.log(result.stdout.trim());
    const leaderStatus = await cluster.status(leader);
    await waitFor('every node to apply the import', 600_000, async () => {
      const applied = await Promise.all(cluster.nodes.map((_, i) => cluster.status(i).then((s) => s.appliedIndex)));
      return applied.every((index) => index >= leaderStatus.commitIndex) ? true : undefined;
    });
    const appliedMs = Date.now() - started;
    // A WAL this long is checkpointed right after: part of the import's cost, and of the risk.
    await waitFor('every node to checkpoint the import', 600_000, async () => {
      const counts = await Promise.all(cluster.nodes.map((_, i) => cluster.status(i).then(checkpoints)));
      return counts.every((count, i) => count > checkpointsBefore[i]!) ? true : undefined;
    });
    const checkpointedMs = Date.now() - started;
    if (sampler) {
      clearInterval(sampler);
      console.log(`resident memory (${pids.map((_, i) => (i === leader ? 'leader' : 'follower')).join(' / ')}):\n  ${timeline.join('\n  ')}`);
    }
    console.log(
      `\nimport of ${mib(fileBytes)}: answered in ${(importedMs / 1000).toFixed(1)} s (${(fileBytes / MiB / (importedMs / 1000)).toFixed(1)} MiB/s), applied on every node in ${(appliedMs / 1000).toFixed(1)} s, checkpointed on every node in ${(checkpointedMs / 1000).toFixed(1)} s`,
    );
    const peaks = pids.map((pid) => statusField(pid, 'VmHWM'));
    // What a node still holds once the import settled: its snapshot written, the log compacted,
    // garbage collected (--settle-s, default 10 s after every node checkpointed).
    const settleMs = flag('--settle-s', 10) * 1000;
    await new Promise((resolve) => setTimeout(resolve, settleMs));
    const settled = await Promise.all(cluster.nodes.map((_, i) => cluster.status(i)));
    console.log(`node      role      idle RSS   peak RSS (VmHWM)   peak − idle   peak ÷ file   RSS ${settleMs / 1000} s after   what /status counts then`);
    pids.forEach((pid, i) => {
      const peak = peaks[i]!;
      const role = i === leader ? 'leader' : 'follower';
      const m = (settled[i] as { memory?: NodeMemory }).memory;
      const counted = m ? `log ${mib(m.logBytes)}, databases ${mib(m.databasesBytes)}, snapshot ${mib(m.snapshotBytes)}, wasm ${mib(m.wasmBytes)}` : '';
      console.log(
        `node ${i + 1}    ${role.padEnd(8)}  ${mib(idle[i]!).padStart(8)}   ${mib(peak).padStart(16)}   ${mib(peak - idle[i]!).padStart(11)}   ${(peak / fileBytes).toFixed(2).padStart(11)}   ${mib(statusField(pid, 'VmRSS')).padStart(11)}   ${counted}`,
      );
    });
    for (const address of cluster.addresses) {
      const [[count, bytes]] = (await query(address, 'SELECT count(*), sum(length(data)) FROM blobs')) as [[number, number]];
      if (`${count}|${bytes}` !== expected) throw new Error(`${address} holds ${count}|${bytes}, the file ${expected}`);
    }
    console.log(`every node holds ${expected} (rows|blob bytes), as the file does`);
    const after = await Promise.all(cluster.nodes.map((_, i) => cluster.status(i)));
    const elections = cluster.nodes.flatMap((n, i) => n.output.slice(outputBefore[i]).join('').split('\n').filter((line) => /state (pre)?candidate/.test(line)));
    console.log(`leader before: node ${leader + 1} (id ${before.leaderId}), term ${before.term}`);
    console.log(`leader after:  ${after.map((s, i) => `node ${i + 1} sees ${s.leaderId === before.leaderId ? `node ${leader + 1}` : `id ${s.leaderId}`} in term ${s.term}`).join('; ')}`);
    console.log(`elections started during the import: ${elections.length}${elections.length > 0 ? `\n  ${elections.join('\n  ')}` : ''}`);
    if (elections.length > 0 || after.some((s) => s.leaderId !== before.leaderId || s.term !== before.term)) {
      throw new Error(`the leader changed during the import: node ${leader + 1} (id ${before.leaderId}) led term ${before.term} before it`);
    }
  } catch (error) {
    clearInterval(sampler);
    console.error(cluster.dumpOutput());
    throw error;
  } finally {
    if (profile) for (let i = 0; i < cluster.nodes.length; i++) await cluster.kill(i, 'SIGINT');
    await cluster.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();

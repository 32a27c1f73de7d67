/**
 * Reads per second while writes run, on a 3-node dqlite-wasm cluster: one writer commits
 * continuously (INSERT OR REPLACE of 1 KiB values), and `--readers` clients read point rows for
 * `--seconds`, on the leader (linearizable, lease) and on a follower (linearizable, session,
 * stale), each level in turn.
 * Usage: node --import ./scripts/ts-loader.mjs bench/reads.ts [--seconds 4] [--readers 4]
 */
import { connect, type Database, type ReadConsistency } from '../runtimes/node/client.ts';
import { TestCluster } from '../test/helpers/cluster.ts';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const SECONDS = Number(flag('seconds', '4'));
const READERS = Number(flag('readers', '4'));
const KEYS = 100;
const VALUE = new Uint8Array(1024).fill(7);

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<void> {
  const cluster = await TestCluster.start({ nodes: 3 });
  try {
    const leader = await cluster.waitForLeader();
    const follower = [0, 1, 2].find((i) => i !== leader)!;
    const writer = await connect({ servers: cluster.addresses, database: 'reads', timeoutMs: 30_000 });
    await writer.exec('CREATE TABLE IF NOT EXISTS kv (k INTEGER PRIMARY KEY, v BLOB)');
    for (let k = 0; k < KEYS; k++) await writer.exec('INSERT OR REPLACE INTO kv VALUES (?, ?)', [k, VALUE]);
    console.log(`reads while one writer commits, ${READERS} readers, ${SECONDS} s per row, 3 nodes`);
    console.log('where     level          reads/s   p50 ms   p99 ms   writes/s');
    const cases: [string, number, ReadConsistency][] = [
      ['leader', leader, 'linearizable'],
      ['leader', leader, 'lease'],
      ['follower', follower, 'linearizable'],
      ['follower', follower, 'session'],
      ['follower', follower, 'stale'],
    ];
    for (const [where, node, consistency] of cases) {
      const readers: Database[] = await Promise.all(
        Array.from({ length: READERS }, () =>
          connect({ servers: [cluster.addresses[node]!], database: 'reads', timeoutMs: 30_000, readFrom: 'any', consistency }),
        ),
      );
      const deadline = performance.now() + SECONDS * 1000;
      let writes = 0;
      const latencies: number[] = [];
      await Promise.all([
        (async () => {
          for (let n = 0; performance.now() < deadline; n++) {
            await writer.exec('INSERT OR REPLACE INTO kv VALUES (?, ?)', [n % KEYS, VALUE]);
            writes++;
          }
        })(),
        ...readers.map(async (reader, r) => {
          for (let n = 0; performance.now() < deadline; n++) {
            const started = performance.now();
            await reader.query('SELECT v FROM kv WHERE k = ?', [(r * 31 + n) % KEYS]);
            latencies.push(performance.now() - started);
          }
        }),
      ]);
      await Promise.all(readers.map((r) => r.close()));
      latencies.sort((a, b) => a - b);
      console.log(
        [
          where.padEnd(9),
          consistency.padEnd(13),
          (latencies.length / SECONDS).toFixed(0).padStart(8),
          percentile(latencies, 50).toFixed(2).padStart(8),
          percentile(latencies, 99).toFixed(2).padStart(8),
          (writes / SECONDS).toFixed(0).padStart(10),
        ].join(' '),
      );
    }
    await writer.close();
  } finally {
    await cluster.destroy();
  }
}

await main();
process.exit(0);

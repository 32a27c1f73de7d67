/**
 * 1-writer kvwrite (INSERT OR REPLACE, 32-byte keys, 1 KiB values, as go-dqlite's benchmark)
 * against a 3-member Node-only cluster and a Node + Deno + Chromium cluster, in one run, same
 * client, same machine; prints both and their ratio. The Node member leads in both (it bootstraps).
 * Usage: node --import ./scripts/ts-loader.mjs bench/mixed-cluster.ts [--seconds S]
 */
import { connect } from '../runtimes/node/client.ts';
import { chromiumAvailable, findDeno, MixedCluster, type MemberKind } from '../test/browser/mixed-cluster.ts';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const SECONDS = Number(flag('seconds', '5'));
const KEYS = 1000;
const VALUE = new Uint8Array(1024).map((_, i) => (i * 31 + 7) & 0xff);
const key = (i: number): string => `key-${String(i).padStart(28, '0')}`;

interface Outcome {
  label: string;
  ops: number;
  errors: number;
  latenciesMs: number[];
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function measure(label: string, kinds: MemberKind[]): Promise<Outcome> {
  const cluster = await MixedCluster.start(kinds);
  try {
    const db = await connect({ servers: cluster.listeningAddresses, database: 'bench_kvwrite', timeoutMs: 30_000 });
    await db.exec('CREATE TABLE IF NOT EXISTS model (key TEXT PRIMARY KEY, value BLOB)');
    for (let i = 0; i < 100; i++) await db.exec('INSERT OR REPLACE INTO model(key, value) VALUES(?, ?)', [key(i), VALUE]);
    const outcome: Outcome = { label, ops: 0, errors: 0, latenciesMs: [] };
    const deadline = performance.now() + SECONDS * 1000;
    for (let n = 0; performance.now() < deadline; n++) {
      const started = performance.now();
      try {
        await db.exec('INSERT OR REPLACE INTO model(key, value) VALUES(?, ?)', [key((n * 104729) % KEYS), VALUE]);
        outcome.ops++;
        outcome.latenciesMs.push(performance.now() - started);
      } catch {
        outcome.errors++;
      }
    }
    await db.close();
    return outcome;
  } finally {
    await cluster.destroy();
  }
}

function line(o: Outcome): string {
  const sorted = [...o.latenciesMs].sort((a, b) => a - b);
  return `${o.label.padEnd(24)} ${(o.ops / SECONDS).toFixed(0).padStart(8)} ${percentile(sorted, 50).toFixed(2).padStart(8)} ${percentile(sorted, 99).toFixed(2).padStart(8)} ${String(o.errors).padStart(7)}`;
}

async function main(): Promise<void> {
  if (!chromiumAvailable() || !findDeno()) {
    console.log('mixed-cluster benchmark skipped: needs /usr/bin/chromium (bash scripts/ensure-deps.sh chromium) and deno (npm install)');
    return;
  }
  console.log(`mixed-cluster benchmark: kvwrite, 1 writer, ${SECONDS} s each, 3 voters per cluster`);
  const nodeOnly = await measure('node+node+node', ['node', 'node', 'node']);
  const mixed = await measure('node+deno+chromium', ['node', 'deno', 'browser']);
  console.log(`\n${'cluster'.padEnd(24)} ${'ops/s'.padStart(8)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'errors'.padStart(7)}`);
  console.log(line(nodeOnly));
  console.log(line(mixed));
  const ratio = mixed.ops / Math.max(1, nodeOnly.ops);
  console.log(`\nratio (mixed / node-only throughput): ${ratio.toFixed(2)}×`);
}

await main();

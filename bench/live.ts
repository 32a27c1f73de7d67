/**
 * Live queries on a 3-node dqlite-wasm cluster (real processes):
 * 1. write throughput (`--writers` clients inserting rows through the leader for `--seconds`)
 *    with no live query, then with `--subscribers` live queries on one node (a follower, then
 *    the leader), each a query of its own (`... WHERE grp = ?`, a different parameter each), so
 *    nothing is shared and every commit re-runs all of them (the worst case until commits say
 *    which tables they changed); then all subscribers on one query (shared evaluation). Each
 *    row is set against a baseline without subscribers measured right before it (the machine's
 *    load moves between minutes more than live queries do);
 * 2. the delay from a write on the leader to the follower's live result showing it (p50/p99),
 *    one write at a time, with and without the subscribers.
 * Usage: node --import ./scripts/ts-loader.mjs bench/live.ts [--seconds 4] [--writers 4] [--subscribers 1000] [--samples 200]
 */
import { connect, type Database } from '../runtimes/node/client.ts';
import { TestCluster } from '../test/helpers/cluster.ts';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const SECONDS = Number(flag('seconds', '4'));
const WRITERS = Number(flag('writers', '4'));
const SUBSCRIBERS = Number(flag('subscribers', '1000'));
const SAMPLES = Number(flag('samples', '200'));

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface LiveStatus {
  liveQueries?: { subscriptions: number; queries: number; evaluations: number };
}

async function evaluations(cluster: TestCluster, node: number): Promise<number> {
  return ((await cluster.status(node)) as unknown as LiveStatus).liveQueries?.evaluations ?? 0;
}

async function writeFor(writers: Database[], seconds: number, counter: { next: number }): Promise<number> {
  const deadline = performance.now() + seconds * 1000;
  let writes = 0;
  await Promise.all(
    writers.map(async (writer) => {
      while (performance.now() < deadline) {
        const n = counter.next++;
        await writer.exec('INSERT INTO items (grp, payload) VALUES (?, ?)', [n % SUBSCRIBERS, 'x'.repeat(100)]);
        writes++;
      }
    }),
  );
  return writes / seconds;
}

/** Subscribes `count` live queries on `address`; resolves once each has its first result. */
async function subscribe(address: string, count: number, distinct: boolean): Promise<{ stops: (() => void)[]; databases: Database[] }> {
  const databases: Database[] = [];
  const stops: (() => void)[] = [];
  // A few Databases, each holding many subscriptions (each subscription has its own connection).
  for (let d = 0; d < 10; d++) databases.push(await connect({ servers: [address], database: 'live', readFrom: 'any', timeoutMs: 60_000 }));
  for (let i = 0; i < count; i += 100) {
    await Promise.all(
      Array.from({ length: Math.min(100, count - i) }, (_, j) =>
        new Promise<void>((resolve, reject) => {
          const grp = distinct ? i + j : 0;
          const stop = databases[grp % databases.length]!.live('SELECT count(*) AS n, max(id) AS top FROM items WHERE grp = ?', [grp], { consistency: 'session' }).onChange(
            () => resolve(),
            reject,
          );
          stops.push(stop);
        }),
      ),
    );
  }
  return { stops, databases };
}

/** Sequential writes on the leader; for each, the time until the follower's live result shows it. */
async function delays(writer: Database, follower: Database, samples: number): Promise<number[]> {
  const waiting = new Map<number, { startedMs: number; resolve(ms: number): void }>();
  let lastSeen = 0;
  const stop = follower.live('SELECT max(id) AS top FROM items', [], { consistency: 'session' }).onChange((result) => {
    const top = Number(result.rows[0]?.['top'] ?? 0);
    lastSeen = Math.max(lastSeen, top);
    for (const [id, wait] of waiting) {
      if (id <= top) {
        waiting.delete(id);
        wait.resolve(performance.now() - wait.startedMs);
      }
    }
  });
  const out: number[] = [];
  try {
    for (let s = 0; s < samples; s++) {
      const startedMs = performance.now();
      const seen = new Promise<number>((resolve) => {
        void writer.exec('INSERT INTO items (grp, payload) VALUES (-1, ?)', ['delay']).then((result) => {
          const id = Number(result.lastInsertId);
          if (id <= lastSeen) resolve(performance.now() - startedMs);
          else waiting.set(id, { startedMs, resolve });
        });
      });
      out.push(await seen);
    }
  } finally {
    stop();
  }
  return out.sort((a, b) => a - b);
}

async function main(): Promise<void> {
  const cluster = await TestCluster.start({ nodes: 3 });
  try {
    const leader = await cluster.waitForLeader();
    const follower = [0, 1, 2].find((i) => i !== leader)!;
    const writers = await Promise.all(Array.from({ length: WRITERS }, () => connect({ servers: cluster.addresses, database: 'live', timeoutMs: 60_000 })));
    await writers[0]!.exec('CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, grp INTEGER, payload TEXT); CREATE INDEX IF NOT EXISTS items_grp ON items (grp)');
    const followerReader = await connect({ servers: [cluster.addresses[follower]!], database: 'live', readFrom: 'any', timeoutMs: 60_000 });
    const counter = { next: 0 };
    console.log(`live queries: ${WRITERS} writers through the leader, ${SECONDS} s per measure, 3 nodes; ${SUBSCRIBERS} subscribers on one node,`);
    console.log('each a query of its own (distinct) or all one query (same); each row against a baseline without subscribers measured just before it');
    console.log('subscribers                 writes/s  baseline   ratio   evaluations/s   follower delay p50 ms   p99 ms   baseline p50   p99');
    const cases = [
      ['follower', follower, true],
      ['leader', leader, true],
      ['leader', leader, false],
    ] as const;
    for (const [where, node, distinct] of cases) {
      const baseline = await writeFor(writers, SECONDS, counter);
      const baselineDelays = await delays(writers[0]!, followerReader, SAMPLES);
      const started = performance.now();
      const subscribed = await subscribe(cluster.addresses[node]!, SUBSCRIBERS, distinct);
      process.stderr.write(`subscribed ${SUBSCRIBERS} on the ${where} in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
      const before = await evaluations(cluster, node);
      const perSecond = await writeFor(writers, SECONDS, counter);
      const evaluated = ((await evaluations(cluster, node)) - before) / SECONDS;
      const sorted = await delays(writers[0]!, followerReader, SAMPLES);
      console.log(
        [
          `${SUBSCRIBERS} ${distinct ? 'distinct' : 'same'}, ${where}`.padEnd(26),
          perSecond.toFixed(0).padStart(9),
          baseline.toFixed(0).padStart(9),
          `${(perSecond / baseline).toFixed(2)}×`.padStart(7),
          evaluated.toFixed(0).padStart(15),
          percentile(sorted, 50).toFixed(2).padStart(23),
          percentile(sorted, 99).toFixed(2).padStart(8),
          percentile(baselineDelays, 50).toFixed(2).padStart(14),
          percentile(baselineDelays, 99).toFixed(2).padStart(7),
        ].join(' '),
      );
      for (const stop of subscribed.stops) stop();
      await Promise.all(subscribed.databases.map((db) => db.close()));
    }
    await followerReader.close();
    await Promise.all(writers.map((w) => w.close()));
  } finally {
    await cluster.destroy();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

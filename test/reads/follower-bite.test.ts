/**
 * The follower test of levels.test.ts can fail: with the test-only switch that serves follower
 * reads at linearizable without asking the leader for its read index, a follower misses writes
 * the leader acknowledged a moment earlier.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { connect, type Database } from '../../runtimes/node/client.ts';
import { TestCluster, waitFor } from '../helpers/cluster.ts';

let cluster: TestCluster;
const opened: Database[] = [];

beforeAll(async () => {
  cluster = await TestCluster.start({ nodes: 3, extraArgs: ['--unsafe-for-testing', 'follower-reads-without-read-index'] });
}, 120_000);

afterAll(async () => {
  for (const db of opened) await db.close();
  await cluster?.destroy();
});

test('without the read index, a follower at linearizable serves stale reads', async () => {
  const leader = await cluster.waitForLeader();
  const follower = [0, 1, 2].find((i) => i !== leader)!;
  const writer = await connect({ servers: cluster.addresses, database: 'bite', timeoutMs: 20_000 });
  opened.push(writer);
  const reader = await connect({ servers: [cluster.addresses[follower]!], database: 'bite', timeoutMs: 20_000, readFrom: 'any', consistency: 'linearizable' });
  opened.push(reader);
  await writer.exec('CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)');
  await writer.exec("INSERT INTO kv VALUES ('lin', -1)");
  await waitFor('the follower to hold the row', 10_000, async () =>
    (await reader.query("SELECT v FROM kv WHERE k = 'lin'")).rows.length === 1 ? true : undefined,
  );
  let stale = 0;
  // A follower usually lags the leader's acknowledgement by a heartbeat; on a loaded machine it
  // can keep up for a while, so try until one read is stale (bounded).
  for (let i = 0; i < 300 && stale === 0; i++) {
    await writer.exec("UPDATE kv SET v = ? WHERE k = 'lin'", [i]);
    const { rows } = await reader.query("SELECT v FROM kv WHERE k = 'lin'");
    if (rows[0]!['v'] !== i) stale++;
  }
  expect(stale).toBeGreaterThan(0);
});

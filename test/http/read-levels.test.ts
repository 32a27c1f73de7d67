/**
 * rqlite's `?level=` on real processes, mapped onto the node's read levels: `none` and
 * `linearizable` are answered by the node asked (a follower too), `weak` and `strong` by the
 * leader. A follower cut off from every other node still answers `none`, within `freshness`
 * when one is given, and never answers `linearizable`.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TestCluster } from '../helpers/cluster.ts';

interface Answer {
  status: number;
  headers: Headers;
  json: { results?: Record<string, unknown>[]; error?: string };
}

async function call(address: string, path: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(`http://${address}${path}`, { redirect: 'manual', signal: AbortSignal.timeout(60_000), ...init });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: text ? (JSON.parse(text) as Answer['json']) : {} };
}

const query = (address: string, options: string, sql: string): Promise<Answer> =>
  call(address, `/db/query?${options}&q=${encodeURIComponent(sql)}`);

describe('HTTP read levels on followers', () => {
  let cluster: TestCluster;
  let leader: number;
  let follower: number;

  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 3 });
    leader = await cluster.waitForLeader();
    follower = (leader + 1) % 3;
  }, 120_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  test('a follower answers none and linearizable itself; weak and strong go to the leader', async () => {
    const at = cluster.addresses[follower]!;
    const written = await call(at, '/db/execute', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(['CREATE TABLE lv (v INTEGER)', 'INSERT INTO lv VALUES (7)']),
    });
    expect(written.status).toBe(200);
    // Linearizable on the follower: the read index covers the write it just forwarded.
    const linearizable = await query(at, 'level=linearizable&redirect', 'SELECT v FROM lv');
    expect(linearizable.status).toBe(200);
    expect(linearizable.json.results![0]!['values']).toEqual([[7]]);
    // ?redirect sends only what the leader answers: none is answered here.
    const none = await query(at, 'level=none&redirect', 'SELECT count(*) FROM lv');
    expect(none.status).toBe(200);
    for (const level of ['weak', 'strong']) {
      const redirected = await query(at, `level=${level}&redirect`, 'SELECT 1');
      expect(redirected.status).toBe(301);
      expect(redirected.headers.get('location')).toContain(cluster.addresses[leader]!);
    }
    // Without ?redirect, weak (the default) is forwarded to the leader and answered.
    const weak = await query(at, 'level=weak', 'SELECT v FROM lv');
    expect(weak.json.results![0]!['values']).toEqual([[7]]);
  });

  test('cut off from the others, a follower answers none, refuses beyond freshness, never answers linearizable', async () => {
    const at = cluster.addresses[follower]!;
    const none = await query(at, 'level=none', 'SELECT v FROM lv');
    expect(none.json.results![0]!['values']).toEqual([[7]]);
    await cluster.kill(leader);
    await cluster.kill((leader + 2) % 3);
    // No bound: its last committed state, as rqlite's none.
    const alone = await query(at, 'level=none', 'SELECT v FROM lv');
    expect(alone.status).toBe(200);
    expect(alone.json.results![0]!['values']).toEqual([[7]]);
    // A bound it cannot meet any more: refused, naming the bound.
    const tooOld = await query(at, 'level=none&freshness=1ns', 'SELECT v FROM lv');
    expect(tooOld.json.results![0]!['error']).toMatch(/maxStalenessMs=1\b/);
    expect(tooOld.json.results![0]!['values']).toBeUndefined();
    // Linearizable needs the leader's read index: after the retry bound, an error and no rows.
    const linearizable = await query(at, 'level=linearizable', 'SELECT v FROM lv');
    expect(JSON.stringify(linearizable.json)).toMatch(/leader/i);
    expect(linearizable.json.results?.[0]?.['values']).toBeUndefined();
  }, 60_000);
});

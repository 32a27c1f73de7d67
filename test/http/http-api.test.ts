/**
 * The rqlite-compatible HTTP API on a real 3-node cluster: rqlite-js (the rqlite project's own
 * JavaScript client, from npm) and plain fetch requests for every endpoint and error case.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import rqlite from 'rqlite-js';
import { TestCluster } from '../helpers/cluster.ts';

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: unknown;
}

async function call(address: string, path: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(`http://${address}${path}`, { redirect: 'manual', signal: AbortSignal.timeout(30_000), ...init });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

function post(address: string, path: string, body: unknown): Promise<Answer> {
  return call(address, path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

type Results = { results: Record<string, unknown>[]; time?: number };

describe('rqlite HTTP API on a dqlite-wasm cluster', () => {
  let cluster: TestCluster;
  let leader: string;
  let follower: string;

  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 3 });
    const index = await cluster.waitForLeader();
    leader = cluster.addresses[index]!;
    follower = cluster.addresses[(index + 1) % 3]!;
  }, 120_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  test('rqlite-js: execute, named parameters, a transaction, and a query at every level', async () => {
    const client = new rqlite.DataApiClient(`http://${follower}`);
    const created = await client.execute('CREATE TABLE js (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)');
    expect(created.hasError()).toBe(false);
    const inserted = await client.execute([
      ['INSERT INTO js(name, age) VALUES(?, ?)', 'fiona', 20],
      ['INSERT INTO js(name, age) VALUES(:name, :age)', { name: 'declan', age: 30 }],
    ]);
    expect(inserted.hasError()).toBe(false);
    expect(inserted.get(1).getLastInsertId()).toBe(2);
    expect(inserted.get(1).getRowsAffected()).toBe(1);

    // One statement fails: with a transaction, neither row is kept.
    const failed = await client.execute(['INSERT INTO js(name, age) VALUES(\'kept?\', 1)', 'INSERT INTO missing VALUES(1)'], { transaction: true });
    expect(failed.hasError()).toBe(true);
    expect(failed.getFirstError().toString()).toContain('no such table: missing');

    for (const level of ['none', 'weak', 'strong', 'linearizable'] as const) {
      const rows = await client.query('SELECT name, age FROM js ORDER BY id', { level });
      expect(rows.hasError()).toBe(false);
      expect(rows.toArray()).toEqual([
        { name: 'fiona', age: 20 },
        { name: 'declan', age: 30 },
      ]);
    }
    const named = await client.query([['SELECT name FROM js WHERE age > :min', { min: 25 }]], { level: 'strong' });
    expect(named.toArray()).toEqual([{ name: 'declan' }]);
  });

  test('/db/execute: results in order, an SQL error in its statement, later statements still run, timings', async () => {
    const answer = await post(leader, '/db/execute?timings', [
      'CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB)',
      ["INSERT INTO foo(name, score, data) VALUES(?, ?, X'00FF10')", 'fiona', 1.5],
      'INSERT INTO nonsense',
      ['INSERT INTO foo(name, score) VALUES(:name, :score)', { name: 'declan', score: 2 }],
      'INSERT INTO foo(id, name) VALUES(9007199254740993, \'big\')',
    ]);
    expect(answer.status).toBe(200);
    const body = answer.json as Results;
    expect(body.time).toBeGreaterThan(0);
    expect(body.results[0]).toEqual({ time: expect.any(Number) });
    expect(body.results[1]).toMatchObject({ last_insert_id: 1, rows_affected: 1 });
    expect(body.results[2]!['error']).toMatch(/syntax error|incomplete input/);
    expect(body.results[3]).toMatchObject({ last_insert_id: 2, rows_affected: 1 });
    expect(body.results[4]!['time']).toBeGreaterThanOrEqual(0);
    // Integers beyond 2^53 stay exact in the JSON text.
    expect(answer.text).toContain('"last_insert_id":9007199254740993');
  });

  test('/db/query: GET and POST, types, empty results, associative rows, blobs as base64', async () => {
    const get = await call(leader, `/db/query?q=${encodeURIComponent('SELECT id, name, score, data FROM foo WHERE id < 3 ORDER BY id')}`);
    expect(get.status).toBe(200);
    expect((get.json as Results).results[0]).toEqual({
      columns: ['id', 'name', 'score', 'data'],
      types: ['integer', 'text', 'real', 'blob'],
      values: [
        [1, 'fiona', 1.5, 'AP8Q'],
        [2, 'declan', 2, null],
      ],
    });
    const posted = await post(follower, '/db/query?associative&level=strong', [['SELECT name FROM foo WHERE id = ?', 2], 'SELECT name FROM foo WHERE 0']);
    expect((posted.json as Results).results).toEqual([
      { types: { name: 'text' }, rows: [{ name: 'declan' }] },
      { types: { name: '' }, rows: [] },
    ]);
    const empty = await post(leader, '/db/query', ['SELECT id FROM foo WHERE 0']);
    expect((empty.json as Results).results[0]).toEqual({ columns: ['id'], types: [''] });
    const big = await call(leader, `/db/query?q=${encodeURIComponent('SELECT id FROM foo WHERE name = \'big\'')}`);
    expect(big.text).toContain('[[9007199254740993]]');
  });

  test('/db/query refuses writes per statement; /db/request mixes reads and writes', async () => {
    const refused = await post(leader, '/db/query', ['INSERT INTO foo(name) VALUES(\'no\')']);
    expect((refused.json as Results).results[0]!['error']).toMatch(/attempt to change database via query operation/);
    const mixed = await post(follower, '/db/request', [
      'SELECT count(*) AS n FROM foo',
      ['INSERT INTO foo(name) VALUES(?)', 'via request'],
      ['INSERT INTO foo(name) VALUES(?) RETURNING id', 'returning'],
      'SELECT count(*) AS n FROM foo',
    ]);
    const results = (mixed.json as Results).results;
    expect(results[0]).toEqual({ columns: ['n'], types: ['integer'], values: [[3]] });
    expect(results[1]).toMatchObject({ rows_affected: 1 });
    expect(results[2]).toMatchObject({ columns: ['id'], types: ['integer'] });
    expect(mixed.text).toContain('"values":[[9007199254740995]]');
    expect(results[3]).toEqual({ columns: ['n'], types: ['integer'], values: [[5]] });
  });

  test('?transaction: all or nothing; without it an error does not undo the others', async () => {
    await post(leader, '/db/execute', ['CREATE TABLE tx (v TEXT UNIQUE)']);
    const atomic = await post(follower, '/db/execute?transaction', [['INSERT INTO tx VALUES(?)', 'a'], ['INSERT INTO tx VALUES(?)', 'a']]);
    expect((atomic.json as Results).results[1]!['error']).toMatch(/UNIQUE constraint failed/);
    let count = await post(leader, '/db/query', ['SELECT count(*) FROM tx']);
    expect((count.json as Results).results[0]!['values']).toEqual([[0]]);
    await post(follower, '/db/execute', [['INSERT INTO tx VALUES(?)', 'a'], ['INSERT INTO tx VALUES(?)', 'a'], ['INSERT INTO tx VALUES(?)', 'b']]);
    count = await post(leader, '/db/query', ['SELECT count(*) FROM tx']);
    expect((count.json as Results).results[0]!['values']).toEqual([[2]]);
  });

  test('a write on a follower is forwarded; with ?redirect it answers 301 to the leader', async () => {
    const forwarded = await post(follower, '/db/execute', [['INSERT INTO foo(name) VALUES(?)', 'forwarded']]);
    expect(forwarded.status).toBe(200);
    const seen = await post(leader, '/db/query', ['SELECT count(*) FROM foo WHERE name = \'forwarded\'']);
    expect((seen.json as Results).results[0]!['values']).toEqual([[1]]);
    const redirected = await post(follower, '/db/execute?redirect&timings', ['INSERT INTO foo(name) VALUES(\'redirected\')']);
    expect(redirected.status).toBe(301);
    expect(redirected.headers.get('location')).toBe(`http://${leader}/db/execute?redirect&timings`);
    const onLeader = await post(leader, '/db/execute?redirect', ['INSERT INTO foo(name) VALUES(\'on the leader\')']);
    expect(onLeader.status).toBe(200);
  });

  test('databases are chosen with ?db; an unknown one answers 404', async () => {
    await post(follower, '/db/execute?db=second', ['CREATE TABLE s (x)', 'INSERT INTO s VALUES (42)']);
    const read = await call(leader, `/db/query?db=second&q=${encodeURIComponent('SELECT x FROM s')}`);
    expect((read.json as Results).results[0]!['values']).toEqual([[42]]);
    const main = await call(leader, `/db/query?q=${encodeURIComponent('SELECT x FROM s')}`);
    expect((main.json as Results).results[0]!['error']).toMatch(/no such table: s/);
    const unknown = await call(leader, `/db/query?db=never-written&q=${encodeURIComponent('SELECT 1')}`);
    expect(unknown.status).toBe(404);
    expect((unknown.json as { error: string }).error).toMatch(/unknown database never-written/);
    expect((await call(leader, '/db/backup?db=never-written')).status).toBe(404);
  });

  test('bad requests get a clear 400, 404, 405 or 413 and the node keeps serving', async () => {
    const malformed = await post(leader, '/db/execute', '["SELECT 1"');
    expect(malformed.status).toBe(400);
    expect((malformed.json as { error: string }).error).toMatch(/not valid JSON/);
    expect((await post(leader, '/db/execute', { sql: 'SELECT 1' })).status).toBe(400);
    expect((await post(leader, '/db/execute', [])).status).toBe(400);
    expect((await post(leader, '/db/execute', [['SELECT ?', { nested: true }, 2]])).status).toBe(400);
    const badLevel = await call(leader, '/db/query?level=eventual&q=SELECT%201');
    expect(badLevel.status).toBe(400);
    expect((badLevel.json as { error: string }).error).toMatch(/level=eventual/);
    expect((await call(leader, '/db/query?level=none&freshness=soon&q=SELECT%201')).status).toBe(400);
    expect((await call(leader, '/db/query?level=none&freshness=1s&q=SELECT%201')).status).toBe(200);
    expect((await call(leader, '/db/query')).status).toBe(400);
    expect((await call(leader, '/db/execute?db=x-wal', { method: 'POST', body: '["SELECT 1"]' })).status).toBe(400);
    expect((await call(leader, '/db/nothing')).status).toBe(404);
    const method = await call(leader, '/db/execute');
    expect(method.status).toBe(405);
    expect(method.headers.get('allow')).toBe('POST');
    const huge = await post(leader, '/db/execute', JSON.stringify([`SELECT '${'x'.repeat(17 * 2 ** 20)}'`]));
    expect(huge.status).toBe(413);
    expect((huge.json as { error: string }).error).toMatch(/larger than 16777216 bytes, the limit for \/db\/execute/);
    expect((await call(leader, '/health')).status).toBe(200);
    const after = await post(leader, '/db/query', ['SELECT count(*) FROM tx']);
    expect((after.json as Results).results[0]!['values']).toEqual([[2]]);
  });

  test('many concurrent requests through a follower share a bounded set of connections and all land', async () => {
    await post(leader, '/db/execute', ['CREATE TABLE burst (i INTEGER)']);
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => post(follower, '/db/execute', [['INSERT INTO burst VALUES (?)', i]])));
    expect(answers.filter((a) => a.status !== 200 || a.text.includes('error'))).toEqual([]);
    const total = await post(leader, '/db/query', ['SELECT count(*), sum(i) FROM burst']);
    expect((total.json as Results).results[0]!['values']).toEqual([[200, 19900]]);
  });

  test('/nodes, /readyz and the node status endpoints', async () => {
    const nodes = (await call(follower, '/nodes')).json as Record<string, { addr: string; voter: boolean; leader: boolean; api_addr: string }>;
    const entries = Object.values(nodes);
    expect(entries.map((n) => n.addr).sort()).toEqual([...cluster.addresses].sort());
    expect(entries.filter((n) => n.leader).map((n) => n.addr)).toEqual([leader]);
    expect(entries.every((n) => n.voter && n.api_addr === `http://${n.addr}`)).toBe(true);
    const v2 = (await call(follower, '/nodes?ver=2')).json as { nodes: unknown[] };
    expect(v2.nodes).toHaveLength(3);
    const ready = await call(follower, '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.text).toContain('[+]leader ok');
    expect((await call(follower, '/status')).json).toMatchObject({ leaderAddress: leader });
  });
});

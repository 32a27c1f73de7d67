/**
 * `GET /metrics` of a real node is Prometheus text that `promtool check metrics` accepts, and its
 * numbers follow what the node did; the JSON status lives on at `GET /status`.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connect } from '../../runtimes/node/client.ts';
import { TestCluster } from '../helpers/cluster.ts';

function promtoolCheck(text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, output }));
    child.stdin.end(text);
  });
}

/** `name{labels} value` lines into a map keyed by `name{labels}` as written. */
function samples(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    values.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return values;
}

function sample(values: Map<string, number>, key: string): number {
  const value = values.get(key);
  if (value === undefined) throw new Error(`no sample ${key} in /metrics`);
  return value;
}

describe('Prometheus metrics', () => {
  let cluster: TestCluster;
  const writes = 20;

  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 3 });
    const db = await connect({ servers: cluster.addresses, database: 'metered', timeoutMs: 20_000 });
    try {
      await db.exec('CREATE TABLE t (x INTEGER)');
      for (let i = 0; i < writes; i++) await db.exec('INSERT INTO t VALUES (?)', [i]);
      await db.exec('INSERT INTO missing VALUES (1)').catch(() => undefined);
      await db.query('SELECT count(*) FROM t');
    } finally {
      await db.close();
    }
  }, 120_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  test('promtool check metrics passes on a leader and a follower', async () => {
    const leader = await cluster.waitForLeader();
    for (const index of [leader, (leader + 1) % 3]) {
      const response = await fetch(`http://${cluster.addresses[index]}/metrics`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
      const text = await response.text();
      const checked = await promtoolCheck(text);
      expect(checked.output).toBe('');
      expect(checked.code).toBe(0);
    }
  });

  test('the numbers follow the node: Raft indexes, requests, latencies, WAL, peers, bytes', async () => {
    const leader = await cluster.waitForLeader();
    const address = cluster.addresses[leader]!;
    const values = samples(await (await fetch(`http://${address}/metrics`)).text());
    const status = await cluster.status(leader);

    expect(sample(values, 'dqlite_wasm_raft_term')).toBe(status.term);
    expect(sample(values, 'dqlite_wasm_raft_leader')).toBe(1);
    expect(sample(values, 'dqlite_wasm_raft_commit_index')).toBeLessThanOrEqual(status.commitIndex);
    expect(sample(values, 'dqlite_wasm_raft_commit_index')).toBeGreaterThanOrEqual(writes);
    expect(sample(values, 'dqlite_wasm_raft_applied_index')).toBeLessThanOrEqual(sample(values, 'dqlite_wasm_raft_commit_index'));
    expect(sample(values, 'dqlite_wasm_raft_last_index')).toBeGreaterThanOrEqual(sample(values, 'dqlite_wasm_raft_commit_index'));
    expect(sample(values, 'dqlite_wasm_raft_members{role="voter"}')).toBe(3);
    expect(sample(values, 'dqlite_wasm_peers_reachable')).toBe(2);

    const okWrites = [...values].filter(([key]) => /^dqlite_wasm_requests_total\{type="(exec|exec_sql|exec_sql_bookmarked)",result="ok"\}$/.test(key));
    expect(okWrites.reduce((sum, [, value]) => sum + value, 0)).toBeGreaterThanOrEqual(writes + 1);
    const failed = [...values].filter(([key]) => /^dqlite_wasm_requests_total\{type="\w+",result="error"\}$/.test(key));
    expect(failed.reduce((sum, [, value]) => sum + value, 0)).toBeGreaterThanOrEqual(1);
    expect(sample(values, 'dqlite_wasm_commit_latency_seconds_count')).toBeGreaterThanOrEqual(writes + 1);
    expect(sample(values, 'dqlite_wasm_commit_latency_seconds_bucket{le="+Inf"}')).toBe(sample(values, 'dqlite_wasm_commit_latency_seconds_count'));
    expect(sample(values, 'dqlite_wasm_apply_latency_seconds_count')).toBeGreaterThan(0);
    expect(sample(values, 'dqlite_wasm_wal_frames{database="metered"}')).toBeGreaterThan(0);
    expect(sample(values, 'dqlite_wasm_bytes_sent_total{channel="peer"}')).toBeGreaterThan(writes * 100);
    expect(sample(values, 'dqlite_wasm_bytes_received_total{channel="peer"}')).toBeGreaterThan(0);
    expect(sample(values, 'dqlite_wasm_bytes_received_total{channel="client"}')).toBeGreaterThan(0);

    // Memory by part: the log holds the writes' entries, the database its pages, the engine its heap.
    expect(sample(values, 'dqlite_wasm_memory_bytes{part="log"}')).toBeGreaterThan(writes * 100);
    expect(sample(values, 'dqlite_wasm_memory_bytes{part="databases"}')).toBeGreaterThan(0);
    expect(sample(values, 'dqlite_wasm_memory_bytes{part="wasm"}')).toBeGreaterThan(1024 * 1024);
    expect(sample(values, 'dqlite_wasm_memory_bytes{part="js_heap"}')).toBeGreaterThan(sample(values, 'dqlite_wasm_memory_bytes{part="databases"}'));
    expect(status.memory.logBytes).toBeGreaterThan(writes * 100);
    expect(status.memory.wasmBytes).toBe(sample(values, 'dqlite_wasm_memory_bytes{part="wasm"}'));

    // A follower applied the same entries.
    const follower = samples(await (await fetch(`http://${cluster.addresses[(leader + 1) % 3]}/metrics`)).text());
    expect(sample(follower, 'dqlite_wasm_raft_leader')).toBe(0);
    expect(sample(follower, 'dqlite_wasm_applied_entries_total')).toBeGreaterThanOrEqual(writes);
  });

  test('/status answers the JSON status, /health stays, unknown paths say where to look', async () => {
    const address = cluster.addresses[0]!;
    const status = await fetch(`http://${address}/status`);
    expect(status.headers.get('content-type')).toBe('application/json');
    const json = (await status.json()) as { term: number; members: unknown[] };
    expect(json.members).toHaveLength(3);
    expect((await fetch(`http://${address}/health`)).status).toBe(200);
    const missing = await fetch(`http://${address}/nothing`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toContain('/status or /metrics');
  });
});

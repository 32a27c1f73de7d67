/**
 * The change feed on real node processes: a consumer process killed (-9) and restarted from its
 * last bookmark receives every transaction exactly once, across a leader killed in between;
 * every replica gives the same events; a snapshot boundary is reported as a gap (from the log,
 * and live when a follower installs the leader's snapshot); the HTTP API's
 * /db/changes works with a plain HTTP client as server-sent events; a node started with
 * --change-capture off gives transactions without rows, and a bad value starts nothing.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { afterAll, describe, expect, test } from 'vitest';
import { connect } from '../../runtimes/node/client.ts';
import { TestCluster, waitFor } from '../helpers/cluster.ts';

interface Consumer {
  process: ChildProcess;
  lines: Record<string, unknown>[];
  exited: Promise<void>;
}

const ROOT = new URL('../..', import.meta.url).pathname;

function startConsumer(servers: string[], database: string, since?: number): Consumer {
  const args = ['--import', './scripts/ts-loader.mjs', 'test/live/feed-consumer.ts', servers.join(','), database, ...(since === undefined ? [] : [String(since)])];
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  let partial = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    partial += chunk.toString();
    const complete = partial.split('\n');
    partial = complete.pop()!;
    for (const line of complete) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
  });
  let errors = '';
  child.stderr!.on('data', (chunk: Buffer) => (errors += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  child.on('exit', (code, signal) => {
    if (code !== 0 && signal !== 'SIGKILL' && errors) process.stderr.write(`consumer exited ${code ?? signal}: ${errors}\n`);
  });
  return { process: child, lines, exited };
}

/** The inserted values in a consumer's transaction lines, with their indexes. */
function inserted(lines: Record<string, unknown>[]): { index: number; value: number }[] {
  const out: { index: number; value: number }[] = [];
  for (const line of lines) {
    if (line['type'] !== 'transaction') continue;
    for (const row of (line['rows'] as { operation: string; table: string; values?: unknown[] }[] | undefined) ?? []) {
      if (row.operation === 'insert' && row.table === 'events') out.push({ index: line['index'] as number, value: row.values![1] as number });
    }
  }
  return out;
}

describe('change feed on real processes', () => {
  let cluster: TestCluster | undefined;
  afterAll(async () => {
    await cluster?.destroy();
  });

  test('a consumer killed and restarted from its bookmark gets every transaction once, across a leader change', { timeout: 180_000 }, async () => {
    cluster = await TestCluster.start({ nodes: 3 });
    const leader = await cluster.waitForLeader();
    const followers = [0, 1, 2].filter((i) => i !== leader);
    const writer = await connect({ servers: cluster.addresses, database: 'feed', timeoutMs: 30_000 });
    await writer.exec('CREATE TABLE events(id INTEGER PRIMARY KEY, n INTEGER)');
    let next = 0;
    const write = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i++, next++) await writer.exec('INSERT INTO events(n) VALUES (?)', [next]);
    };

    // The consumer reads from a follower, its own node; the other follower also feeds a witness.
    const first = startConsumer([cluster.addresses[followers[0]!]!], 'feed');
    const witness = startConsumer([cluster.addresses[followers[1]!]!], 'feed');
    await waitFor('the consumers to subscribe', 30_000, async () => (first.lines.length > 0 && witness.lines.length > 0 ? true : undefined));
    await write(15);
    await waitFor('the first consumer to receive some transactions', 30_000, async () => (inserted(first.lines).length >= 5 ? true : undefined));
    first.process.kill('SIGKILL');
    await first.exited;
    const received = inserted(first.lines);
    const bookmark = received.at(-1)!.index;

    await write(10);
    await cluster.kill(leader);
    await cluster.waitForLeader(30_000, [leader]);
    await write(10);

    // Restarted from its bookmark, on the follower that was not its own (any replica serves it).
    const second = startConsumer([cluster.addresses[followers[1]!]!, cluster.addresses[followers[0]!]!], 'feed', bookmark);
    await waitFor('the restarted consumer to catch up', 60_000, async () => (inserted(second.lines).at(-1)?.value === next - 1 ? true : undefined));
    const all = [...received, ...inserted(second.lines)];
    expect(all.map((r) => r.value)).toEqual(Array.from({ length: next }, (_, i) => i));
    const indexes = all.map((r) => r.index);
    expect(indexes).toEqual([...indexes].sort((a, b) => a - b));
    expect(new Set(indexes).size).toBe(indexes.length);

    // The witness on the other replica saw the same transactions at the same indexes.
    await waitFor('the witness to see every write', 60_000, async () => (inserted(witness.lines).length === next ? true : undefined));
    expect(inserted(witness.lines)).toEqual(all);
    second.process.kill('SIGKILL');
    witness.process.kill('SIGKILL');
    await Promise.all([second.exited, witness.exited]);
    await writer.close();
  });

  test('a follower that installs the leader\'s snapshot while a feed is open reports the gap, then goes on', { timeout: 180_000 }, async () => {
    await cluster?.destroy();
    cluster = await TestCluster.start({ nodes: 3, extraArgs: ['--snapshot-threshold', '16', '--snapshot-trailing', '2'] });
    const leader = await cluster.waitForLeader();
    const follower = [0, 1, 2].find((i) => i !== leader)!;
    const writer = await connect({ servers: cluster.addresses, database: 'feed', timeoutMs: 30_000 });
    await writer.exec('CREATE TABLE events(id INTEGER PRIMARY KEY, n INTEGER)');
    const consumer = startConsumer([cluster.addresses[follower]!], 'feed');
    await waitFor('the consumer to subscribe', 30_000, async () => (consumer.lines.length > 0 ? true : undefined));
    // Paused (its connections stay open), the follower falls behind the leader's compacted log:
    // past the 256 appends the leader keeps in flight to it, then the leader must send a snapshot.
    cluster.nodes[follower]!.process!.kill('SIGSTOP');
    try {
      for (let i = 0; i < 320; i++) await writer.exec('INSERT INTO events(n) VALUES (?)', [i]);
      await waitFor('the leader to compact its log', 30_000, async () => ((await cluster!.status(leader)) as unknown as { snapshotIndex: number }).snapshotIndex > 300 ? true : undefined);
    } finally {
      cluster.nodes[follower]!.process!.kill('SIGCONT');
    }
    await waitFor('the gap', 30_000, async () => (consumer.lines.some((l) => l['type'] === 'gap') ? true : undefined)).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}; the consumer got ${JSON.stringify(consumer.lines.slice(0, 5))} ... ${consumer.lines.length} lines\n${cluster!.dumpOutput()}`);
    });
    const gap = consumer.lines.find((l) => l['type'] === 'gap')!;
    expect(String(gap['message'])).toMatch(/snapshot from the leader replaced database feed/);
    await writer.exec('INSERT INTO events(n) VALUES (?)', [1000]);
    await waitFor('the write after the gap', 30_000, async () => (inserted(consumer.lines).some((r) => r.value === 1000) ? true : undefined));
    const after = consumer.lines.slice(consumer.lines.indexOf(gap) + 1).filter((l) => l['type'] === 'transaction');
    expect((after[0]!['index'] as number) > (gap['firstAvailableIndex'] as number) - 1).toBe(true);
    consumer.process.kill('SIGKILL');
    await consumer.exited;
    await writer.close();
  });

  test('SSE with a plain HTTP client: a snapshot boundary is a gap event, then live transactions', { timeout: 120_000 }, async () => {
    await cluster?.destroy();
    cluster = await TestCluster.start({ nodes: 1, extraArgs: ['--snapshot-threshold', '16', '--snapshot-trailing', '2'] });
    const db = await connect({ servers: cluster.addresses, database: 'sse', timeoutMs: 30_000 });
    await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
    for (let i = 0; i < 40; i++) await db.exec('INSERT INTO t(v) VALUES (?)', [`v${i}`]);
    await waitFor('a snapshot', 30_000, async () => ((await cluster!.status(0)) as unknown as { snapshotIndex: number }).snapshotIndex > 2 ? true : undefined);

    const [host, port] = cluster.addresses[0]!.split(':');
    const events: { event: string; id?: string; data: Record<string, unknown> }[] = [];
    let headers: Record<string, unknown> = {};
    const request = httpRequest({ host, port: Number(port), path: '/db/changes?db=sse&since=1', method: 'GET' }, (response) => {
      headers = response.headers;
      let buffer = '';
      response.on('data', (chunk: Buffer) => {
        buffer += chunk.toString();
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const fields: Record<string, string> = {};
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const colon = line.indexOf(':');
            fields[line.slice(0, colon)] = line.slice(colon + 1).trimStart();
          }
          if (fields['data']) events.push({ event: fields['event'] ?? 'message', ...(fields['id'] !== undefined && { id: fields['id'] }), data: JSON.parse(fields['data']) as Record<string, unknown> });
        }
      });
    });
    request.end();
    try {
      await waitFor('the gap and the transactions still in the log', 30_000, async () => (events.length >= 2 ? true : undefined));
      expect(headers['content-type']).toMatch(/^text\/event-stream/);
      const gap = events[0]!;
      expect(gap.event).toBe('gap');
      expect(gap.data['since']).toBe(1);
      expect(gap.data['firstAvailableIndex']).toBeGreaterThan(2);
      expect(String(gap.data['message'])).toMatch(/not available/);
      const firstTransaction = events[1]!;
      expect(firstTransaction.event).toBe('transaction');
      expect(Number(firstTransaction.id)).toBeGreaterThanOrEqual(gap.data['firstAvailableIndex'] as number);

      const before = events.length;
      await db.exec("INSERT INTO t(v) VALUES ('live')");
      await waitFor('the live transaction', 30_000, async () => (events.slice(before).some((e) => e.event === 'transaction') ? true : undefined));
      const live = events.slice(before).find((e) => e.event === 'transaction')!;
      expect(live.data['tables']).toEqual(['t']);
      expect(live.data['rows']).toEqual([{ operation: 'insert', table: 't', primaryKey: [41], values: [41, 'live'] }]);
      expect(live.id).toBe(String(live.data['index']));
    } finally {
      request.destroy();
      await db.close();
    }
    // Bad parameters are a 400 with a message, and the node keeps serving.
    const bad = await fetch(`http://${cluster.addresses[0]}/db/changes?db=sse&since=abc`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/since=abc is not a log index/);
    expect((await fetch(`http://${cluster.addresses[0]}/status`)).status).toBe(200);
  });

  test('--change-capture off: transactions come without rows; a bad value is a usage error', { timeout: 120_000 }, async () => {
    await cluster?.destroy();
    cluster = await TestCluster.start({ nodes: 1, extraArgs: ['--change-capture', 'off'] });
    const db = await connect({ servers: cluster.addresses, database: 'off', timeoutMs: 30_000 });
    try {
      await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
      const before = (await cluster.status(0)).appliedIndex;
      await db.exec("INSERT INTO t VALUES (1, 'a')");
      const feed = db.changes({ since: before });
      const event = (await feed.next()).value;
      feed.close();
      expect(event).toMatchObject({ type: 'transaction', database: 'off', rowsOmitted: true });
      expect(event && event.type === 'transaction' && event.rows).toBeUndefined();
      expect(event && event.type === 'transaction' && event.tables).toBeUndefined();
    } finally {
      await db.close();
    }

    const outcome = await new Promise<{ code: unknown; output: string }>((resolve) => {
      execFile(process.execPath, ['--import', './scripts/ts-loader.mjs', 'bin/cli.ts', 'start', '--address', '127.0.0.1:0', '--dir', '/nonexistent/never-made', '--change-capture', 'maybe'], { cwd: ROOT, timeout: 30_000 }, (error, stdout, stderr) =>
        resolve({ code: error ? (error as { code?: unknown }).code : 0, output: stdout + stderr }),
      );
    });
    expect(outcome.code).not.toBe(0);
    expect(outcome.output).toMatch(/--change-capture must be on or off, got "maybe"/);
  });
});

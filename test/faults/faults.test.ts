/**
 * The fault-injection suite, short version: the checkers on hand-made histories (each problem
 * class caught, valid histories accepted), the fault proxy on real sockets, one short run against
 * a real 3-node cluster under every fault kind, and the proof that it bites: with the test-only
 * switch that acknowledges writes before Raft commits them, isolating the leader loses
 * acknowledged writes and the checkers say so.
 */
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { checkBank } from './bank-checker.ts';
import type { MicroOp, Op, OpBody } from './history.ts';
import { checkRegister, checkRegisterHistory, type RegisterInput, type TimedOp } from './linearizability.ts';
import { checkListAppend } from './list-append-checker.ts';
import { FaultCluster } from './fault-cluster.ts';
import { reservePort } from '../helpers/ports.ts';
import { checkSessionReads } from './session-checker.ts';
import { FaultNetwork } from './proxy.ts';
import { runFaults, type RunResult } from './run.ts';

const OUT_ROOT = join(tmpdir(), 'dqlite-wasm-faults');

function timed(id: number, input: RegisterInput, invokeMs: number, completeMs: number): TimedOp {
  return { id, input, invokeMs, completeMs };
}

describe('register linearizability (WGL search)', () => {
  test('accepts concurrent operations that have a linearization', () => {
    const ops = [
      timed(1, { f: 'write', value: 1 }, 0, 10),
      timed(2, { f: 'write', value: 2 }, 5, 20),
      // Overlaps write 2: may see either value.
      timed(3, { f: 'read', value: 1 }, 12, 25),
      timed(4, { f: 'read', value: 2 }, 26, 30),
      timed(5, { f: 'cas', expected: 2, value: 3, applied: true }, 31, 35),
      timed(6, { f: 'cas', expected: 2, value: 4, applied: false }, 36, 40),
      timed(7, { f: 'read', value: 3 }, 41, 45),
    ];
    expect(checkRegister(ops, null)).toEqual({ ok: true });
  });

  test('rejects a stale read: a value overwritten before the read began', () => {
    const ops = [
      timed(1, { f: 'write', value: 1 }, 0, 10),
      timed(2, { f: 'write', value: 2 }, 11, 20),
      timed(3, { f: 'read', value: 1 }, 21, 30),
    ];
    const verdict = checkRegister(ops, null);
    expect(verdict.ok).toBe(false);
    expect(verdict.ok === false && verdict.reason).toMatch(/read → 1/);
  });

  test('rejects a lost acknowledged write and a CAS that succeeded on the wrong value', () => {
    expect(checkRegister([timed(1, { f: 'write', value: 7 }, 0, 5), timed(2, { f: 'read', value: null }, 6, 9)], null).ok).toBe(false);
    const cas = [timed(1, { f: 'write', value: 1 }, 0, 5), timed(2, { f: 'cas', expected: 2, value: 3, applied: true }, 6, 9)];
    expect(checkRegister(cas, null).ok).toBe(false);
  });

  test('an indeterminate write may take effect at any later time, or never', () => {
    const unknown = timed(1, { f: 'write', value: 5 }, 0, Infinity);
    expect(checkRegister([unknown, timed(2, { f: 'read', value: null }, 10, 20), timed(3, { f: 'read', value: 5 }, 30, 40)], null).ok).toBe(true);
    expect(checkRegister([unknown, timed(2, { f: 'read', value: null }, 10, 20)], null).ok).toBe(true);
    // Once seen, it cannot be unseen.
    const flipFlop = [unknown, timed(2, { f: 'read', value: 5 }, 10, 20), timed(3, { f: 'read', value: null }, 30, 40)];
    expect(checkRegister(flipFlop, null).ok).toBe(false);
  });

  test('gives up with "unknown" instead of searching forever', () => {
    const ops: TimedOp[] = [];
    for (let i = 0; i < 40; i++) ops.push(timed(i, { f: 'write', value: i }, 0, Infinity));
    ops.push(timed(100, { f: 'read', value: -1 }, 1, 2));
    expect(checkRegister(ops, null, 1000).ok).toBe('unknown');
  });

  test('checks each key of a recorded history on its own; failed operations constrain nothing', () => {
    let index = 0;
    const op = (body: OpBody, status: Op['status'], invokeMs: number, completeMs: number): Op => ({ ...body, index: index++, client: 0, status, invokeMs, completeMs });
    const history: Op[] = [
      op({ workload: 'register', f: 'write', key: 1, value: 1 }, 'ok', 0, 5),
      op({ workload: 'register', f: 'write', key: 2, value: 2 }, 'fail', 0, 5),
      op({ workload: 'register', f: 'read', key: 2, value: null }, 'ok', 6, 8),
      op({ workload: 'register', f: 'read', key: 1, value: 1 }, 'ok', 6, 8),
    ];
    expect(checkRegisterHistory(history)).toEqual({ ok: true, keys: 2, problems: [] });
    history.push(op({ workload: 'register', f: 'read', key: 1, value: null }, 'ok', 9, 10));
    const report = checkRegisterHistory(history);
    expect(report.ok).toBe(false);
    expect(report.problems[0]).toMatch(/^register key 1:/);
  });
});

describe('session checker', () => {
  let index = 0;
  const op = (client: number, body: OpBody, status: Op['status'], invokeMs: number, completeMs: number): Op => ({ ...body, index: index++, client, status, invokeMs, completeMs });

  test('accepts reads that lag other clients but not the session, and catches stale, phantom and backward reads', () => {
    const history: Op[] = [
      op(0, { workload: 'register', f: 'write', key: 1, value: 1 }, 'ok', 0, 5),
      op(1, { workload: 'register', f: 'write', key: 1, value: 2 }, 'ok', 6, 10),
      // Session client 1 reads its own write; session client 2 may still see the older value.
      op(1, { workload: 'register', f: 'read', key: 1, value: 2 }, 'ok', 11, 12),
      op(2, { workload: 'register', f: 'read', key: 1, value: 1 }, 'ok', 11, 12),
    ];
    const sessions = new Set([1, 2]);
    expect(checkSessionReads(history, sessions)).toEqual({ ok: true, reads: 2, problems: [] });
    // Client 1 goes back to the value older than its own write.
    history.push(op(1, { workload: 'register', f: 'read', key: 1, value: 1 }, 'ok', 13, 14));
    // Client 2 read 2, then 1 again: monotonic reads broken.
    history.push(op(2, { workload: 'register', f: 'read', key: 1, value: 2 }, 'ok', 13, 14));
    history.push(op(2, { workload: 'register', f: 'read', key: 1, value: 1 }, 'ok', 15, 16));
    history.push(op(2, { workload: 'register', f: 'read', key: 1, value: 99 }, 'ok', 17, 18));
    const report = checkSessionReads(history, sessions);
    expect(report.ok).toBe(false);
    expect(report.problems).toHaveLength(3);
    expect(report.problems.join('\n')).toMatch(/stale session read: client 1 read 1/);
    expect(report.problems.join('\n')).toMatch(/stale session read: client 2 read 1/);
    expect(report.problems.join('\n')).toMatch(/no write wrote/);
  });
});

describe('list-append checker', () => {
  let index = 0;
  const txn = (micro: MicroOp[], status: Op['status'], invokeMs: number, completeMs: number): Op => ({
    workload: 'list-append',
    f: 'txn',
    micro,
    index: index++,
    client: 0,
    status,
    invokeMs,
    completeMs: status === 'info' ? Infinity : completeMs,
  });
  const valid = (): Op[] => [
    txn([{ f: 'append', key: 1, value: 1 }], 'ok', 0, 5),
    txn([{ f: 'append', key: 1, value: 2 }, { f: 'read', key: 1, value: [1, 2] }], 'ok', 6, 10),
    txn([{ f: 'append', key: 1, value: 3 }], 'info', 11, 15),
    txn([{ f: 'append', key: 1, value: 4 }], 'fail', 11, 15),
    txn([{ f: 'read', key: 1, value: [1, 2] }], 'ok', 12, 20),
  ];

  test('accepts a valid history, with an indeterminate append either way', () => {
    expect(checkListAppend(valid(), new Map([[1, [1, 2]]])).ok).toBe(true);
    expect(checkListAppend(valid(), new Map([[1, [1, 2, 3]]])).ok).toBe(true);
  });

  test('catches a lost acknowledged append', () => {
    const report = checkListAppend(valid(), new Map([[1, [1]]]));
    expect(report.ok).toBe(false);
    expect(report.problems.join('\n')).toMatch(/append of 2 .* missing from the final list/);
  });

  test('catches duplicates, reads of failed appends, and reads of values that vanished', () => {
    const history = valid();
    history.push(txn([{ f: 'read', key: 1, value: [1, 2, 2] }], 'ok', 30, 31));
    history.push(txn([{ f: 'read', key: 1, value: [1, 2, 4] }], 'ok', 32, 33));
    history.push(txn([{ f: 'read', key: 1, value: [1, 2, 3] }], 'ok', 34, 35));
    const problems = checkListAppend(history, new Map([[1, [1, 2]]])).problems.join('\n');
    expect(problems).toMatch(/holds 2 twice/);
    expect(problems).toMatch(/holds 4 from txn #\d+, which failed/);
    expect(problems).toMatch(/\[1,2,3\] is not a prefix of the final list/);
  });

  test('catches stale reads in real time', () => {
    const history = valid();
    history.push(txn([{ f: 'read', key: 1, value: [1] }], 'ok', 40, 41));
    const problems = checkListAppend(history, new Map([[1, [1, 2]]])).problems.join('\n');
    expect(problems).toMatch(/misses 2, acknowledged at 10\.0 ms \(stale read\)/);
    expect(problems).toMatch(/sees 1 values after read in txn #\d+ completed with 2/);
  });
});

describe('bank checker', () => {
  const read = (balances: number[], index: number): Op => ({ workload: 'bank', f: 'read', balances, index, client: 0, status: 'ok', invokeMs: index, completeMs: index + 1 });

  test('accepts constant totals and catches a changed total, a missing account and a negative balance', () => {
    expect(checkBank([read([10, 20], 0), read([25, 5], 1)], 2, 30, [15, 15]).ok).toBe(true);
    const problems = checkBank([read([10, 21], 0), read([30], 1), read([40, -10], 2)], 2, 30, [15, 15]).problems.join('\n');
    expect(problems).toMatch(/total of 31, expected 30/);
    expect(problems).toMatch(/saw 1 accounts, expected 2/);
    expect(problems).toMatch(/negative balance/);
    expect(checkBank([], 2, 30, undefined).ok).toBe(false);
  });
});

describe('fault proxy on real sockets', () => {
  const network = new FaultNetwork();
  let target: Server;
  const accepted: Socket[] = [];

  afterAll(async () => {
    await network.close();
    for (const socket of accepted) socket.destroy();
    target?.close();
  });

  async function echoTarget(): Promise<number> {
    target = createServer((socket) => {
      accepted.push(socket);
      socket.on('data', (chunk) => socket.write(chunk));
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', () => resolve()));
    return (target.address() as { port: number }).port;
  }

  /** Opens a connection through the proxy, sends `first`, and collects what comes back. */
  function open(port: number, first: string): { socket: Socket; received: () => string; closed: Promise<void> } {
    const socket = netConnect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (chunk) => (text += chunk.toString()));
    socket.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.write(first);
    return { socket, received: () => text, closed };
  }

  async function until(what: string, predicate: () => boolean): Promise<void> {
    const deadline = Date.now() + 5000;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  test('passes peer and client traffic, cuts and refuses a partitioned pair, black-holes one direction', async () => {
    const proxyPort = await network.addProxy(0, `127.0.0.1:${await echoTarget()}`);
    const peer = open(proxyPort, 'GET /raft?from=1&to=2 HTTP/1.1\r\n\r\n');
    await until('the echo of the request line', () => peer.received().includes('GET /raft'));
    const client = open(proxyPort, '\x01hello');
    await until('the client echo', () => client.received() === '\x01hello');

    network.partition([1], [2]);
    await peer.closed;
    const refused = open(proxyPort, 'GET /raft?from=2&to=1 HTTP/1.1\r\n\r\n');
    await refused.closed;
    expect(refused.received()).toBe('');
    client.socket.write(' again');
    await until('client traffic during the partition', () => client.received() === '\x01hello again');

    network.heal();
    network.block(2, 1);
    // Echo server: 1→2 bytes arrive, the 2→1 echo is black-holed.
    const oneWay = open(proxyPort, 'GET /raft?from=1&to=2 HTTP/1.1\r\n\r\n');
    await until('the one-way connection to reach the target', () => accepted.length >= 3);
    expect(network.stats.refused).toBe(1);
    network.heal();
    await oneWay.closed;
    expect(oneWay.received()).toBe('');
    client.socket.destroy();
  });

  test('a slow link delays bytes but keeps their order, also when the delay changes midway', async () => {
    const proxyPort = await network.addProxy(0, `127.0.0.1:${(target.address() as { port: number }).port}`);
    network.slow(3, 4, 80);
    const peer = open(proxyPort, 'GET /raft?from=3&to=4 HTTP/1.1\r\n\r\n');
    await until('the request line echo', () => peer.received().includes('\r\n\r\n'));
    const sentAtMs = Date.now();
    for (let i = 0; i < 20; i++) {
      if (i === 10) network.slow(3, 4, 1);
      peer.socket.write(`<${i}>`);
      await new Promise((r) => setImmediate(r));
    }
    const expected = Array.from({ length: 20 }, (_, i) => `<${i}>`).join('');
    await until('all chunks echoed', () => peer.received().endsWith(expected));
    expect(Date.now() - sentAtMs).toBeGreaterThanOrEqual(70);
    network.heal();
    peer.socket.destroy();
  });

  test('a proxy pointed at a new target sends new connections there', async () => {
    const first = (target.address() as { port: number }).port;
    const other = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.end('other target\n');
    });
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', () => resolve()));
    try {
      const proxyPort = await network.addProxy(0, `127.0.0.1:${first}`);
      const before = open(proxyPort, '\x01ping');
      await until('the echo', () => before.received() === '\x01ping');
      network.retarget(proxyPort, `127.0.0.1:${(other.address() as { port: number }).port}`);
      const after = open(proxyPort, '\x01ping');
      await until('the new target to answer', () => after.received() === 'other target\n');
      before.socket.destroy();
      after.socket.destroy();
    } finally {
      other.close();
    }
  });
});

describe('fault injection against a real cluster', () => {
  function explain(result: RunResult): string {
    const lines = [`seed ${result.seed}, folder ${result.folder ?? '(removed)'}${result.error ? `, error: ${result.error}` : ''}`];
    for (const [name, verdict] of Object.entries(result.verdicts)) lines.push(`${name}: ${verdict.ok} ${verdict.problems.slice(0, 5).join(' | ')}`);
    lines.push(...(result.replicas?.problems ?? []).map((problem) => `replicas: ${problem}`));
    lines.push(...result.logAlerts.map((line) => `node log: ${line}`));
    lines.push(...result.faults.map((f) => `${f.kind}: ${f.detail}`));
    return lines.join('\n');
  }

  test('a 3-node cluster under every kind of fault keeps every acknowledged write and stays linearizable', async () => {
    const result = await runFaults({ seed: 20261127, nodes: 3, seconds: 25, outRoot: OUT_ROOT, faultMsMin: 1000, faultMsMax: 3000, quietMsMin: 300, quietMsMax: 1000 });
    expect(result.passed, explain(result)).toBe(true);
    expect(result.ok).toBeGreaterThan(100);
    expect(result.faults.length).toBeGreaterThanOrEqual(3);
    for (const verdict of Object.values(result.verdicts)) expect(verdict.ok).toBe(true);
    expect(result.replicas?.ok, explain(result)).toBe(true);
  }, 150_000);

  test('it bites: acknowledging writes before commit loses writes when the leader is isolated, and the checkers catch it', async () => {
    const result = await runFaults({
      seed: 9,
      nodes: 3,
      seconds: 12,
      outRoot: OUT_ROOT,
      faults: ['partition-leader'],
      extraArgs: ['--unsafe-for-testing', 'ack-before-commit'],
      faultMsMin: 2500,
      faultMsMax: 3500,
      quietMsMin: 500,
      quietMsMax: 1000,
    });
    expect(result.error, explain(result)).toBeUndefined();
    expect(result.passed, explain(result)).toBe(false);
    const caught = [result.verdicts.register.ok, result.verdicts['list-append'].ok].filter((ok) => ok === false);
    expect(caught.length, explain(result)).toBeGreaterThanOrEqual(1);
    expect(result.verdicts['list-append'].problems.join('\n') + result.verdicts.register.problems.join('\n')).toMatch(/lost write|no linearization|stale read/);
    expect(result.folder).toBeDefined();
    rmSync(result.folder!, { recursive: true, force: true });
  }, 120_000);

  test('it bites: follower reads without the read index are stale under faults, and the register checker catches it', async () => {
    const result = await runFaults({
      seed: 11,
      nodes: 3,
      seconds: 14,
      outRoot: OUT_ROOT,
      faults: ['pause', 'partition-halves'],
      extraArgs: ['--unsafe-for-testing', 'follower-reads-without-read-index'],
      followerReadClients: 4,
      faultMsMin: 2000,
      faultMsMax: 3000,
      quietMsMin: 300,
      quietMsMax: 600,
    });
    expect(result.error, explain(result)).toBeUndefined();
    expect(result.verdicts.register.ok, explain(result)).toBe(false);
    expect(result.verdicts.register.problems.join('\n')).toMatch(/no linearization|stale read/);
    expect(result.folder).toBeDefined();
    rmSync(result.folder!, { recursive: true, force: true });
  }, 120_000);
  test('a node whose port was taken while it was down restarts on another port behind the same proxy', async () => {
    const root = join(OUT_ROOT, `port-taken-${process.pid}`);
    const cluster = await FaultCluster.start({ nodes: 3, root });
    const squatter = createServer();
    try {
      const victim = 2;
      const before = cluster.nodes[victim]!.privateAddress;
      await cluster.kill(victim);
      await new Promise<void>((resolve, reject) => {
        squatter.once('error', reject);
        squatter.listen(Number(before.split(':')[1]), '127.0.0.1', () => resolve());
      });
      cluster.spawn(victim);
      await waitForCondition('the node to come back on a new port', 30_000, async () => {
        if (cluster.nodes[victim]!.privateAddress === before) return false;
        const status = await cluster.status(victim).catch(() => undefined);
        return status !== undefined && status.leaderId !== 0;
      });
      expect(cluster.nodes[victim]!.address).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(readFileSync(cluster.nodes[victim]!.logPath, 'utf8')).toMatch(/was in use: restarting on/);
    } finally {
      squatter.close();
      await cluster.destroy();
      rmSync(root, { recursive: true, force: true });
    }
  }, 90_000);
});

async function waitForCondition(what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('node ports for the fault cluster', () => {
  test('come from outside the ephemeral range, are distinct, and are reserved until released', () => {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number) as [number, number];
    const ports = Array.from({ length: 40 }, () => reservePort());
    try {
      expect(new Set(ports.map((p) => p.port)).size).toBe(ports.length);
      for (const { port } of ports) {
        expect(port < low || port > high, `port ${port} is outside ${low}-${high}`).toBe(true);
        const file = join(tmpdir(), 'dqlite-wasm-port-reservations', String(port));
        expect(readFileSync(file, 'utf8').trim()).toBe(String(process.pid));
      }
    } finally {
      for (const port of ports) port.release();
    }
    for (const { port } of ports) expect(existsSync(join(tmpdir(), 'dqlite-wasm-port-reservations', String(port)))).toBe(false);
  });
});

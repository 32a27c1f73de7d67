/**
 * The test-only switches that undo fixes of bugs the fault suite found, each at the place of its
 * fix; the whole-cluster simulator turns them on by these names. A single node restarting on a
 * log with entries gives a deterministic window: it leads (its new term's barrier is in its log)
 * before it applied the entries of earlier terms. (keepTransactionOnRefusedProposal: test/fsm/.)
 */
import { AdminPolicy } from '../../src/server/admin-policy.ts';
import { NodeMetrics } from '../../src/server/metrics.ts';
import { rmSync } from 'node:fs';
import { afterEach, describe, expect, test } from 'vitest';
import { StateMachine } from '../../src/fsm/state-machine.ts';
import { LIMITS } from '../../src/limits.ts';
import { encodeRequest, encodeVersion } from '../../src/protocol/index.ts';
import { defaultCompactionPolicy } from '../../src/raft/index.ts';
import { Gateway } from '../../src/server/gateway.ts';
import type { GatewayHost } from '../../src/server/gateway-host.ts';
import type { ClusterNode } from '../../src/server/node.ts';
import { nodeClock } from '../../runtimes/node/index.ts';
import { Engine } from '../../wasm/index.ts';
import { parseUnsafeSwitches, type UnsafeSwitches } from '../../src/server/node-options.ts';
import { startTestNode, streamPair, until, type TestNode } from './harness.ts';

let open: TestNode | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await open?.close();
  open = undefined;
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A data directory whose log holds a few committed entries of term 1's leader. */
async function directoryWithLog(): Promise<string> {
  const first = await startTestNode();
  await until('leadership', 10_000, () => first.node.isLeader());
  const db = await first.client('app');
  await db.exec('CREATE TABLE t (x)');
  await db.exec('INSERT INTO t VALUES (1)');
  await first.close({ keepDir: true });
  dirs.push(first.dir);
  return first.dir;
}

/** Restarts on `dir`; `atElection` runs right after the node became leader, before it applied anything. */
async function restartAndCatchElection(dir: string, unsafe: UnsafeSwitches, atElection: (node: ClusterNode) => void): Promise<TestNode> {
  const holder: { node?: ClusterNode } = {};
  let caught = false;
  const started = await startTestNode({
    dir,
    bootstrap: false,
    unsafeForTesting: unsafe,
    log: (line) => {
      if (caught || !line.startsWith('state leader')) return;
      caught = true;
      // The line is written just before the state changes; the Ready's apply comes later.
      queueMicrotask(() => atElection(holder.node!));
    },
  });
  holder.node = started.node;
  await until('the election', 10_000, () => caught);
  return started;
}

describe('statementsBeforeTermApplied', () => {
  for (const on of [false, true]) {
    test(`${on ? 'on: statements may run' : 'off: no statement runs'} before a new leader applied earlier terms`, async () => {
      const dir = await directoryWithLog();
      let outcome = '';
      open = await restartAndCatchElection(dir, on ? { statementsBeforeTermApplied: true } : {}, (node) => {
        try {
          node.requireReadyLeader();
          outcome = `ran at applied index ${node.status().appliedIndex}`;
        } catch (error) {
          outcome = (error as Error).message;
        }
      });
      if (on) expect(outcome).toBe('ran at applied index 0');
      else expect(outcome).toMatch(/^not leader: this node was just elected and is still applying entries 1\.\.\d+$/);
    });
  }
});

describe('runRequestsOfDepartedClients', () => {
  /**
   * A gateway on a real state machine (real engine, real database loop); its host answers as a
   * freshly elected leader would, except that `leaderReady` resolves when the test says so.
   */
  async function gatewayWithSlowElection(unsafe: UnsafeSwitches) {
    const sm = new StateMachine({
      engine: await Engine.create(),
      clock: nodeClock,
      busyTimeoutMs: 1000,
      databaseQueuedTasksMax: 100,
      proposalBytesMax: LIMITS.proposalBytesMax,
      walFramesMax: 1000,
      compaction: defaultCompactionPolicy,
      log: () => {},
    });
    let ready!: () => void;
    const leaderReady = new Promise<void>((resolve) => (ready = resolve));
    let waiting = 0;
    const refuse = (): never => {
      throw new Error('not used here');
    };
    const host: GatewayHost = {
      limits: LIMITS,
      metrics: new NodeMetrics(() => nodeClock.nowMs()),
      adminPolicy: new AdminPolicy(),
      requireLeader: () => {},
      proveMember: refuse,
      unsafe,
      leader: () => ({ id: 1, address: '127.0.0.1:1' }),
      members: () => [],
      database: (name) => sm.database(name),
      existingDatabase: (name) => sm.existingDatabase(name),
      leaderReady: () => {
        waiting++;
        return leaderReady;
      },
      requireReadyLeader: () => {},
      propose: refuse,
      writeSettled: async () => {},
      readSettled: async () => {},
      defaultReadLevel: { consistency: 'linearizable', bookmark: 0, maxStalenessMs: 0 },
      admitRead: () => leaderReady,
      appliedIndex: () => 0,
      isLeader: () => true,
      addMember: refuse,
      assignRole: refuse,
      removeMember: refuse,
      transferLeadership: refuse,
      describe: () => ({ failureDomain: 0n, weight: 0n }),
      setWeight: () => {},
    };
    const [client, server] = streamPair('departing-client', 'node');
    let serverClosed = false;
    server.onClose(() => (serverClosed = true));
    new Gateway(host, server, 1, () => {});
    return { sm, client, ready, waiting: () => waiting, serverClosed: () => serverClosed };
  }

  for (const on of [false, true]) {
    test(`${on ? 'on: a departed client’s BEGIN runs and holds the database' : 'off: a departed client’s request runs nothing'}`, async () => {
      const t = await gatewayWithSlowElection(on ? { runRequestsOfDepartedClients: true } : {});
      t.client.write(encodeVersion());
      t.client.write(encodeRequest({ type: 'open', name: 'app', flags: 0, vfs: '' }));
      // IMMEDIATE: a plain BEGIN is only a mark until the first write and holds nothing.
      t.client.write(encodeRequest({ type: 'exec_sql', db: 0, sql: 'BEGIN IMMEDIATE', params: [] }));
      await until('the request to wait for the leader', 5000, () => t.waiting() === 1);
      t.client.close();
      await until('the gateway to see the client leave', 5000, () => t.serverClosed());
      t.ready();
      const db = t.sm.database('app');
      // A task queued after the departed client's request runs after it (the loop is FIFO); the
      // open transaction of the departed client would make it wait instead.
      let probed = false;
      setImmediate(() => void db.loop.submit(2, () => (probed = true)).catch(() => {}));
      await until('the departed request to have had its turn', 5000, () => probed || db.loop.transactionOwner !== undefined);
      expect(db.engine.inTransaction()).toBe(on);
      expect(db.loop.transactionOwner !== undefined).toBe(on);
    });
  }
});

describe('--unsafe-for-testing names', () => {
  test('every switch by its kebab-case name; an unknown one is refused with the list', () => {
    expect(
      parseUnsafeSwitches(
        'ack-before-commit,reads-without-barrier,keep-transaction-on-refused-proposal,statements-before-term-applied,run-requests-of-departed-clients',
      ),
    ).toEqual({
      ackBeforeCommit: true,
      readsWithoutBarrier: true,
      keepTransactionOnRefusedProposal: true,
      statementsBeforeTermApplied: true,
      runRequestsOfDepartedClients: true,
    });
    expect(() => parseUnsafeSwitches('ack-before-commit,skip-fsync')).toThrow(
      /unknown --unsafe-for-testing switch "skip-fsync" \(ack-before-commit, reads-without-barrier, keep-transaction-on-refused-proposal/,
    );
  });
});

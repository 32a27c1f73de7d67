/**
 * Peer-channel fuzzing against real node processes. A peer with the right cluster key sends
 * thousands of garbage, truncated, lying and oversized messages (fast-check, fixed seed) to every
 * node of a 3-node cluster. Every message that cannot be valid gets the connection closed with a
 * log line; afterwards every node is still running and serving, and membership, leader, term and
 * commit index are exactly as before.
 */
import { LIMITS } from '../../src/limits.ts';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connect } from '../../runtimes/node/client.ts';
import { dialWebSocket } from '../../runtimes/node/index.ts';
import { encodeMessage, MessageType, type Message } from '../../src/raft/index.ts';
import type { MessageChannel } from '../../src/runtime.ts';
import { CLUSTER_KEY_HEADER, encodeData, encodeHello } from '../../src/transport/index.ts';
import { TestCluster, type NodeStatusView } from '../helpers/cluster.ts';

const SEED = 1616;
const INPUTS = 3000;
const WORKERS = 4;
/** Not a member: what it sends must never count for anything. */
const FUZZER_ID = 4242;
/** Above the listener's WebSocket message bound, which is the limits table's peer message bound. */
const OVERSIZED_BYTES = LIMITS.peerMessageBytesMax + 1024;

type Input =
  /** Sent instead of a hello. Never valid: the node must close. */
  | { kind: 'before-hello'; bytes: Uint8Array }
  /** Any bytes after the hello: usually malformed, occasionally a valid ping. */
  | { kind: 'raw'; bytes: Uint8Array }
  /** A well-formed envelope whose payload can never be a Raft message addressed from us to the target. */
  | { kind: 'bad-payload'; make: (targetId: number, memberIds: number[]) => Uint8Array }
  /** An envelope that lies about its sender, hops too far, or a second hello. */
  | { kind: 'bad-envelope'; make: (targetId: number, memberIds: number[]) => Uint8Array }
  /** Garbage relayed through the target to another member: dropped there, the relay link stays. */
  | { kind: 'relayed'; make: (targetId: number, memberIds: number[]) => Uint8Array };

const bytes = (maxLength: number) => fc.uint8Array({ maxLength });
const safe = fc.integer({ min: 0, max: 2 ** 40 });

const raftMessage = fc.record({
  type: fc.constantFrom(...(Object.values(MessageType).filter((v) => typeof v === 'number') as MessageType[])),
  term: safe,
  logTerm: safe,
  index: safe,
  commit: safe,
  reject: fc.boolean(),
  rejectHint: safe,
  context: safe,
});

function encodeRaft(fields: Omit<Message, 'from' | 'to' | 'entries'>, from: number, to: number): Uint8Array {
  return encodeMessage({ ...fields, from, to, entries: [] });
}

const input: fc.Arbitrary<Input> = fc.oneof(
  bytes(300).map((b): Input => ({ kind: 'before-hello', bytes: b })),
  bytes(300).map((b): Input => ({ kind: 'raw', bytes: b })),
  // Random payloads whose first byte is not the Raft codec's version 1.
  bytes(300)
    .filter((b) => b.length === 0 || b[0] !== 1)
    .map((payload): Input => ({ kind: 'bad-payload', make: (to) => encodeData({ hops: 0, from: FUZZER_ID, to, payload }) })),
  // Strict prefixes of a real Raft message.
  fc.tuple(raftMessage, fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })).map(
    ([fields, cut]): Input => ({
      kind: 'bad-payload',
      make: (to) => {
        const whole = encodeRaft(fields, FUZZER_ID, to);
        return encodeData({ hops: 0, from: FUZZER_ID, to, payload: whole.subarray(0, Math.floor(cut * whole.length)) });
      },
    }),
  ),
  // A real Raft message with trailing bytes.
  fc.tuple(raftMessage, fc.uint8Array({ minLength: 1, maxLength: 16 })).map(
    ([fields, tail]): Input => ({
      kind: 'bad-payload',
      make: (to) => encodeData({ hops: 0, from: FUZZER_ID, to, payload: new Uint8Array([...encodeRaft(fields, FUZZER_ID, to), ...tail]) }),
    }),
  ),
  // A well-formed Raft message that claims a member wrote it, or another recipient.
  fc.tuple(raftMessage, fc.nat(), fc.boolean()).map(
    ([fields, pick, wrongRecipient]): Input => ({
      kind: 'bad-payload',
      make: (to, members) => {
        const payload = wrongRecipient
          ? encodeRaft(fields, FUZZER_ID, to + 1)
          : encodeRaft(fields, members[pick % members.length]!, to);
        return encodeData({ hops: 0, from: FUZZER_ID, to, payload });
      },
    }),
  ),
  // Envelopes that lie: another sender, too many hops, a second hello.
  fc.tuple(fc.nat(), bytes(64), fc.integer({ min: 0, max: 2 })).map(
    ([pick, payload, variant]): Input => ({
      kind: 'bad-envelope',
      make: (to, members) => {
        if (variant === 0) return encodeData({ hops: 0, from: members[pick % members.length]!, to, payload });
        if (variant === 1) {
          const frame = encodeData({ hops: 0, from: FUZZER_ID, to, payload });
          frame[1] = 2 + (pick % 254);
          return frame;
        }
        return encodeHello({ nodeId: FUZZER_ID, address: '', clusterKey: 'whatever' });
      },
    }),
  ),
  bytes(200).map(
    (payload): Input => ({
      kind: 'relayed',
      make: (to, members) => encodeData({ hops: 0, from: FUZZER_ID, to: members.find((id) => id !== to)!, payload }),
    }),
  ),
);

interface PeerSession {
  channel: MessageChannel;
  closed: Promise<void>;
  isClosed(): boolean;
}

async function openSession(address: string, key: string, sendHello: boolean): Promise<PeerSession> {
  const channel = await dialWebSocket(`ws://${address}/raft?from=${FUZZER_ID}`, { headers: { [CLUSTER_KEY_HEADER]: key }, timeoutMs: 5000 });
  let isClosed = false;
  let answered!: () => void;
  const helloAnswered = new Promise<void>((resolve) => (answered = resolve));
  const closed = new Promise<void>((resolve) =>
    channel.onClose(() => {
      isClosed = true;
      answered();
      resolve();
    }),
  );
  channel.onMessage((message) => {
    if (message[0] === 0xd1) answered();
  });
  if (sendHello) {
    channel.send(encodeHello({ nodeId: FUZZER_ID, address: '', clusterKey: key }));
    await helloAnswered;
    if (isClosed) throw new Error(`${address} closed the connection after a correct hello`);
  }
  return { channel, closed, isClosed: () => isClosed };
}

function withinMs<T>(promise: Promise<T>, timeoutMs: number): Promise<boolean> {
  return Promise.race([promise.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), timeoutMs))]);
}

function stable(status: NodeStatusView) {
  return { members: status.members, leaderId: status.leaderId, term: status.term, commitIndex: status.commitIndex };
}

describe('peer channel fuzzing against real nodes', () => {
  let cluster: TestCluster;

  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 3 });
    const db = await connect({ servers: cluster.addresses, database: 'fuzzed', timeoutMs: 20_000 });
    try {
      await db.exec('CREATE TABLE t (x INTEGER)');
      await db.exec('INSERT INTO t VALUES (1)');
    } finally {
      await db.close();
    }
  }, 120_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  test(`${INPUTS} garbage, truncated and lying inputs, then oversized ones: every node serving, state unchanged`, async () => {
    const before = await Promise.all([0, 1, 2].map((i) => cluster.status(i)));
    const memberIds = before[0]!.members.map((m) => m.id);
    const inputs = fc.sample(input, { numRuns: INPUTS, seed: SEED });
    const stillOpenAfterInvalid: string[] = [];
    let closedByNode = 0;

    const worker = async (offset: number): Promise<void> => {
      for (let i = offset; i < inputs.length; i += WORKERS) {
        const item = inputs[i]!;
        const targetIndex = i % 3;
        const address = cluster.addresses[targetIndex]!;
        const targetId = before[targetIndex]!.id;
        const session = await openSession(address, cluster.clusterKey, item.kind !== 'before-hello');
        const message =
          item.kind === 'before-hello' || item.kind === 'raw' ? item.bytes : item.make(targetId, memberIds);
        session.channel.send(message);
        const mustClose = item.kind === 'before-hello' || item.kind === 'bad-payload' || item.kind === 'bad-envelope';
        if (mustClose) {
          if (await withinMs(session.closed, 5000)) closedByNode++;
          else stillOpenAfterInvalid.push(`input ${i} (${item.kind}) to node ${targetIndex + 1}: ${Buffer.from(message).toString('hex').slice(0, 80)}`);
        }
        if (!session.isClosed()) session.channel.close();
      }
    };
    await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));

    for (let i = 0; i < 3; i++) {
      const session = await openSession(cluster.addresses[i]!, cluster.clusterKey, true);
      session.channel.send(new Uint8Array(OVERSIZED_BYTES));
      expect(await withinMs(session.closed, 10_000), `node ${i + 1} closes an oversized message`).toBe(true);
    }

    expect(stillOpenAfterInvalid, `seed ${SEED}`).toEqual([]);
    expect(closedByNode).toBeGreaterThan(INPUTS / 2);
    for (let i = 0; i < 3; i++) expect(cluster.isRunning(i), `node ${i + 1} is running`).toBe(true);
    const after = await Promise.all([0, 1, 2].map((i) => cluster.status(i)));
    for (let i = 0; i < 3; i++) expect(stable(after[i]!), `node ${i + 1}`).toEqual(stable(before[i]!));
    const output = cluster.nodes.map((n) => n.output.join('')).join('');
    expect(output).toMatch(/closing connection: malformed peer message/);
    expect(output).toMatch(/closing connection: unusable message from node 4242: malformed Raft message/);
    expect(output).toMatch(/closing connection: unusable message from node 4242: a message from node 4242 claims/);
    expect(output).toMatch(/peer 4242: connection to node 4242 failed: .*[Mm]ax payload size exceeded/);

    // Serving: a write through every node's address, and the peers still talk (it commits).
    const db = await connect({ servers: cluster.addresses, database: 'fuzzed', timeoutMs: 20_000 });
    try {
      await db.exec('INSERT INTO t VALUES (2)');
      expect(Number((await db.query('SELECT count(*) AS n FROM t')).rows[0]!['n'])).toBe(2);
    } finally {
      await db.close();
    }
    for (const address of cluster.addresses) expect((await fetch(`http://${address}/health`)).status).toBe(200);
  }, 240_000);
});

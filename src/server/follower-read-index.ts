/**
 * Linearizable reads on a follower: the follower asks the leader for a read index over the peer
 * transport, the leader confirms its leadership with a ReadIndex round and answers the index,
 * the follower serves the read once it applied that far. The Raft core has no ReadIndex
 * forwarding, so these are messages beside Raft's own, on the same authenticated channels.
 *
 * Requests share rounds as on the leader: a read arriving while a request is in flight cannot
 * use it (it was asked before the read arrived) and joins the next one.
 *
 *   READ_INDEX_REQUEST  [0xA1][requestId u64]
 *   READ_INDEX_ANSWER   [0xA2][requestId u64][index u64][status u8]   status 0 ok, 1 not leader
 *
 * Raft messages begin with their codec's version byte (1): the first byte tells them apart.
 */
import { deferred, type Deferred } from '../fsm/deferred.ts';
import { notLeader } from '../fsm/errors.ts';
import type { NodeId } from '../raft/index.ts';
import type { Clock } from '../runtime.ts';

export const READ_INDEX_REQUEST = 0xa1;
export const READ_INDEX_ANSWER = 0xa2;
const REQUEST_BYTES = 9;
const ANSWER_BYTES = 18;
const STATUS_OK = 0;
const STATUS_NOT_LEADER = 1;

export type ReadIndexMessage =
  | { kind: 'request'; requestId: number }
  | { kind: 'answer'; requestId: number; index: number; ok: boolean };

export function isReadIndexMessage(bytes: Uint8Array): boolean {
  return bytes.length > 0 && (bytes[0] === READ_INDEX_REQUEST || bytes[0] === READ_INDEX_ANSWER);
}

export function encodeReadIndexMessage(message: ReadIndexMessage): Uint8Array {
  const bytes = new Uint8Array(message.kind === 'request' ? REQUEST_BYTES : ANSWER_BYTES);
  const view = new DataView(bytes.buffer);
  bytes[0] = message.kind === 'request' ? READ_INDEX_REQUEST : READ_INDEX_ANSWER;
  view.setBigUint64(1, BigInt(message.requestId), true);
  if (message.kind === 'answer') {
    view.setBigUint64(9, BigInt(message.index), true);
    bytes[17] = message.ok ? STATUS_OK : STATUS_NOT_LEADER;
  }
  return bytes;
}

/** Decodes a read-index message; throws a RangeError naming what is wrong. */
export function decodeReadIndexMessage(bytes: Uint8Array): ReadIndexMessage {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const kind = bytes[0];
  const expected = kind === READ_INDEX_REQUEST ? REQUEST_BYTES : kind === READ_INDEX_ANSWER ? ANSWER_BYTES : 0;
  if (expected === 0) throw new RangeError(`not a read-index message (first byte ${kind})`);
  if (bytes.length !== expected) throw new RangeError(`read-index message of ${bytes.length} bytes, expected ${expected}`);
  const requestId = safeNumber(view.getBigUint64(1, true), 'request id');
  if (kind === READ_INDEX_REQUEST) return { kind: 'request', requestId };
  const index = safeNumber(view.getBigUint64(9, true), 'index');
  const status = bytes[17];
  if (status !== STATUS_OK && status !== STATUS_NOT_LEADER) throw new RangeError(`read-index answer with unknown status ${status}`);
  return { kind: 'answer', requestId, index, ok: status === STATUS_OK };
}

function safeNumber(value: bigint, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`read-index ${what} ${value} is beyond 2^53`);
  return Number(value);
}

export interface FollowerReadIndexHost {
  leaderId(): NodeId;
  leaderAddress(): string | undefined;
  isLeader(): boolean;
  send(to: NodeId, bytes: Uint8Array): void;
  /** Leader side: a ReadIndex round started now; resolves with its index once applied. */
  leaderReadIndex(): Promise<number>;
  log(line: string): void;
}

interface Asked {
  to: NodeId;
  done: Deferred<number>;
  timer: { cancel(): void };
}

export class FollowerReadIndex {
  private nextRequestId = 1;
  private readonly asked = new Map<number, Asked>();
  private inFlight: Promise<number> | undefined;
  private next: Promise<number> | undefined;

  constructor(
    private readonly host: FollowerReadIndexHost,
    private readonly clock: Pick<Clock, 'setTimeout'>,
    /** A leader that does not answer within this long is treated as gone (an election timeout). */
    private readonly answerTimeoutMs: number,
  ) {}

  /** The leader's read index, from a request sent after this call. */
  readIndex(): Promise<number> {
    const inFlight = this.inFlight;
    if (!inFlight) return this.start();
    // The request in flight was sent before this read arrived: it cannot serve it.
    this.next ??= inFlight.then(noop, noop).then(() => {
      this.next = undefined;
      return this.start();
    });
    return this.next;
  }

  /** A read-index message from peer `from`. */
  receive(from: NodeId, bytes: Uint8Array): void {
    let message: ReadIndexMessage;
    try {
      message = decodeReadIndexMessage(bytes);
    } catch (error) {
      // Thrown to the transport, which closes the connection that carried it and logs why, as
      // for a malformed Raft message: a peer speaking nonsense is cut off.
      throw new Error(`malformed read-index message from node ${from}: ${(error as Error).message}`);
    }
    if (message.kind === 'request') {
      this.answer(from, message.requestId);
      return;
    }
    const asked = this.asked.get(message.requestId);
    if (!asked || asked.to !== from) return;
    this.settle(message.requestId, asked);
    if (message.ok) asked.done.resolve(message.index);
    else asked.done.reject(notLeader(this.host.leaderAddress(), `node ${from} is no longer the leader`));
  }

  /** Leadership changed: a request to the old leader gets no answer worth waiting for. */
  leaderChanged(): void {
    for (const [id, asked] of this.asked) {
      if (asked.to === this.host.leaderId()) continue;
      this.settle(id, asked);
      asked.done.reject(notLeader(this.host.leaderAddress(), 'the leader changed while this read waited for its read index'));
    }
  }

  /** The node stops: nothing will answer. */
  rejectAll(): void {
    for (const [id, asked] of this.asked) {
      this.settle(id, asked);
      asked.done.reject(notLeader(undefined, 'the node is stopping'));
    }
  }

  private settle(id: number, asked: Asked): void {
    this.asked.delete(id);
    asked.timer.cancel();
  }

  private start(): Promise<number> {
    const leader = this.host.leaderId();
    if (leader === 0 || this.host.isLeader()) {
      return Promise.reject(notLeader(undefined, 'no leader is known to confirm a linearizable read; retry shortly'));
    }
    const requestId = this.nextRequestId++;
    const done = deferred<number>();
    const timer = this.clock.setTimeout(() => {
      const asked = this.asked.get(requestId);
      if (!asked) return;
      this.settle(requestId, asked);
      done.reject(notLeader(undefined, `leader ${leader} did not confirm a read index within ${this.answerTimeoutMs} ms`));
    }, this.answerTimeoutMs);
    this.asked.set(requestId, { to: leader, done, timer });
    this.host.send(leader, encodeReadIndexMessage({ kind: 'request', requestId }));
    const round: Promise<number> = done.promise.finally(() => {
      if (this.inFlight === round) this.inFlight = undefined;
    });
    this.inFlight = round;
    return round;
  }

  private answer(to: NodeId, requestId: number): void {
    const refuse = (): void => this.host.send(to, encodeReadIndexMessage({ kind: 'answer', requestId, index: 0, ok: false }));
    if (!this.host.isLeader()) {
      refuse();
      return;
    }
    this.host.leaderReadIndex().then(
      (index) => this.host.send(to, encodeReadIndexMessage({ kind: 'answer', requestId, index, ok: true })),
      refuse,
    );
  }
}

function noop(): void {}

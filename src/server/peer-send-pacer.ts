/**
 * Paces a leader's large frames to each peer: at most `largeInFlightMax` of them handed to the
 * transport and not yet written, the rest kept as messages (their entries are the log's own, so a
 * waiting message costs no frame) until one is written. Without it a leader that hands a follower
 * catching up every append it may have in flight (up to `appendInflightBytesMax`) frames each one
 * at once, in a buffer of its own until the socket wrote it: megabytes of RSS for the time of a
 * catch-up, where one buffer, reused, does (docs/memory.md).
 *
 * Appends and snapshot chunks to a peer leave in the order the core made them: once one waits, the
 * others to that peer wait behind it. Everything else (heartbeats, votes, responses) goes at once:
 * they carry no entries, and a heartbeat's commit index is one the peer already acknowledged, so
 * it may overtake the appends.
 */
import { MessageType, type Message, type NodeId } from '../raft/index.ts';

/** Messages kept waiting for one peer: beyond them new ones are dropped, as a full socket would (Raft resends). */
export const PACED_MESSAGES_MAX = 1024;

interface PeerQueue {
  /** Large frames sent to this peer and not yet written (or dropped). */
  inFlight: number;
  waiting: { message: Message; large: boolean }[];
  /** `drain` is running for this peer. */
  draining: boolean;
}

export interface PeerSendPacerHost {
  /** Whether `message` goes out in a large frame, one that is paced. */
  isLarge(message: Message): boolean;
  /**
   * Frames and sends `message` (`large` as isLarge said); `written` is called once, when the
   * transport no longer holds the frame (written, dropped, or handed to a channel that cannot tell
   * when it wrote it).
   */
  transmit(message: Message, large: boolean, written: () => void): void;
}

export class PeerSendPacer {
  private readonly peers = new Map<NodeId, PeerQueue>();

  constructor(
    private readonly host: PeerSendPacerHost,
    private readonly largeInFlightMax = 1,
  ) {
    if (!Number.isSafeInteger(largeInFlightMax) || largeInFlightMax < 1) throw new RangeError(`at least one large frame must be allowed in flight, not ${largeInFlightMax}`);
  }

  send(message: Message): void {
    const large = this.host.isLarge(message);
    const ordered = message.type === MessageType.Append || message.type === MessageType.Snapshot;
    const queue = this.queueOf(message.to);
    if ((ordered && queue.waiting.length > 0) || (large && queue.inFlight >= this.largeInFlightMax)) {
      if (queue.waiting.length >= PACED_MESSAGES_MAX) return;
      queue.waiting.push({ message, large });
      return;
    }
    this.transmit(queue, message, large);
  }

  /** The node stops: what waits is dropped (frames in flight still call back, harmlessly). */
  clear(): void {
    for (const queue of this.peers.values()) queue.waiting.length = 0;
  }

  private queueOf(peer: NodeId): PeerQueue {
    let queue = this.peers.get(peer);
    if (!queue) {
      queue = { inFlight: 0, waiting: [], draining: false };
      this.peers.set(peer, queue);
    }
    return queue;
  }

  private transmit(queue: PeerQueue, message: Message, large: boolean): void {
    if (!large) {
      this.host.transmit(message, false, () => undefined);
      return;
    }
    queue.inFlight++;
    let done = false;
    this.host.transmit(message, true, () => {
      if (done) throw new Error('a paced frame was reported written twice');
      done = true;
      queue.inFlight--;
      if (queue.inFlight < 0) throw new Error('more paced frames were reported written than were sent');
      this.drain(queue);
    });
  }

  /** Sends what waits for `queue`'s peer, in order, while its large frames may go. */
  private drain(queue: PeerQueue): void {
    // A frame reported written while being sent (a drop; a channel that cannot tell) lands here
    // from inside transmit: the loop already running goes on, in order.
    if (queue.draining) return;
    queue.draining = true;
    try {
      while (queue.waiting.length > 0) {
        const next = queue.waiting[0]!;
        if (next.large && queue.inFlight >= this.largeInFlightMax) break;
        queue.waiting.shift();
        this.transmit(queue, next.message, next.large);
      }
    } finally {
      queue.draining = false;
    }
  }
}

/**
 * How long a peer connection may stay silent before the node closes it. Heartbeats come every
 * tick, so the idle timeout must outlast several election timeouts: with a slow tick
 * (`--tick-ms 1000`) a fixed 5000 ms dropped a busy follower's healthy connection.
 */
import { PEER_IDLE_TIMEOUT_MS_DEFAULT } from '../transport/index.ts';

/** Never shorter than the transport's own default. */
export const PEER_IDLE_TIMEOUT_MS_MIN = PEER_IDLE_TIMEOUT_MS_DEFAULT;
const ELECTION_TIMEOUTS_PER_IDLE_TIMEOUT = 3;

export function peerIdleTimeoutMs(tickMs: number, electionTimeoutTicks: number): number {
  return Math.max(PEER_IDLE_TIMEOUT_MS_MIN, ELECTION_TIMEOUTS_PER_IDLE_TIMEOUT * electionTimeoutTicks * tickMs);
}

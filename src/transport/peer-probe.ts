/**
 * Proof that the node at an address holds the cluster key, before it becomes a member: dial its
 * peer WebSocket, exchange hellos, check that it answered with the expected node id and the
 * cluster's key, and hang up. A node started with a wrong key refuses our hello (or answers with
 * its own key), so it is never added: a member that cannot talk to its peers would only cost the
 * cluster its quorum.
 */
import type { Clock, DialWebSocket } from '../runtime.ts';
import { constantTimeEqual, decodeFrame, encodeHello } from './envelope.ts';
import { CLUSTER_KEY_HEADER, PEER_WEBSOCKET_PATH } from './peer-transport.ts';

export interface PeerProbeOptions {
  selfId: number;
  selfAddress: string;
  clusterKey: string;
  dialWebSocket: DialWebSocket;
  clock: Clock;
  secure: boolean;
  timeoutMs: number;
}

/** Bound on the answer to our hello: a hello is at most a few kilobytes. */
const PROBE_ANSWER_BYTES_MAX = 4096;

/** Resolves when `address` proved the key as node `id`; rejects with a reason a person can act on. */
export async function probePeer(options: PeerProbeOptions, id: number, address: string): Promise<void> {
  const url = `${options.secure ? 'wss' : 'ws'}://${address}${PEER_WEBSOCKET_PATH}?from=${options.selfId}&to=${id}&probe=1`;
  let channel;
  try {
    channel = await options.dialWebSocket(url, { headers: { [CLUSTER_KEY_HEADER]: options.clusterKey }, timeoutMs: options.timeoutMs });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const status = (error as { httpStatus?: unknown } | undefined)?.httpStatus;
    if (status === 401 || /\bHTTP 401\b/.test(message)) {
      throw new Error(`node ${id} at ${address} refused the peer hello (${message}): it was not started with this cluster's key`);
    }
    throw new Error(`cannot reach node ${id} at ${address}: ${message}`);
  }
  const opened = channel;
  await new Promise<void>((resolve, reject) => {
    let settled = false;
    const finish = (error?: Error): void => {
      if (settled) return;
      settled = true;
      timer.cancel();
      // A probe that succeeded hangs up normally (no reason, close code 1000), so the probed
      // node does not log the end of a successful check as a failed connection.
      opened.close(error ? 'probe failed' : undefined);
      if (error) reject(error);
      else resolve();
    };
    const timer = options.clock.setTimeout(
      () => finish(new Error(`node ${id} at ${address} did not answer the peer hello within ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );
    opened.onClose((error) =>
      finish(
        new Error(
          `node ${id} at ${address} refused the peer hello (${error?.message ?? 'connection closed'}): ` +
            'it was not started with this cluster\'s key',
        ),
      ),
    );
    opened.onMessage((message) => {
      const decoded = decodeFrame(message, PROBE_ANSWER_BYTES_MAX);
      if (!decoded.ok || decoded.frame.kind !== 'hello') {
        finish(new Error(`node ${id} at ${address} answered the peer hello with something else`));
        return;
      }
      const hello = decoded.frame;
      if (!constantTimeEqual(hello.clusterKey, options.clusterKey)) {
        finish(new Error(`node ${id} at ${address} holds a different cluster key`));
      } else if (hello.nodeId !== id) {
        finish(new Error(`the node at ${address} is node ${hello.nodeId}, not node ${id}`));
      } else {
        finish();
      }
    });
    // It saw our key in the upgrade request: a node that hangs up before our hello could even be
    // sent refused it, the same answer as a close right after the hello (which one a refusing
    // node's close looks like is only a matter of timing).
    if (!opened.send(encodeHello({ nodeId: options.selfId, address: options.selfAddress, clusterKey: options.clusterKey }))) {
      finish(new Error(`node ${id} at ${address} refused the peer hello (it closed the connection before the hello was sent): it was not started with this cluster's key`));
    }
  });
}

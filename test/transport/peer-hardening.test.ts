/**
 * The transport's side of peer-input hardening and of proving members: a payload the node cannot
 * use closes the direct connection that carried it (with a log line), and `proveMember` tells a
 * holder of the cluster key from a node with another key, another id, or no connection.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { DialWebSocket } from '../../src/runtime.ts';
import { dialWebSocket } from '../../runtimes/node/index.ts';
import { encode, startNode, startPeerPair, type TestNode } from './helpers.ts';

const nodes: TestNode[] = [];
async function node(...args: Parameters<typeof startNode>): Promise<TestNode> {
  const started = await startNode(...args);
  nodes.push(started);
  return started;
}
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((started) => started.stop()));
});

describe('peer input hardening', () => {
  it('closes the connection whose payload the handler refuses, logs why, and recovers', async () => {
    const [a, b] = await startPeerPair(node);
    b.transport.onMessage((_from, payload) => {
      if (payload[0] === 0xff) throw new Error('not a Raft message');
    });
    a.transport.send(2, encode('before'));
    await expect.poll(() => b.received.length).toBe(1);
    a.transport.send(2, new Uint8Array([0xff, 1, 2]));
    await expect.poll(() => b.transport.stats().closedMalformed).toBe(1);
    expect(b.logs.some((event) => event.level === 'warn' && /closing connection: unusable message from node 1: not a Raft message/.test(event.message))).toBe(true);
    // a redials (it wants the link); the new connection is as good as the old one.
    await expect.poll(() => a.transport.stats().dialsStarted).toBeGreaterThanOrEqual(2);
    await expect
      .poll(() => {
        a.transport.send(2, encode('after'));
        return b.received.some((message) => message.text === 'after');
      })
      .toBe(true);
  });
});

describe('proveMember', () => {
  it('resolves for a holder of the key, rejects another key, another id, or no address and no connection', async () => {
    const leader = await node(1);
    const member = await node(2);
    const stranger = await node(3, { clusterKey: 'some-other-cluster' });
    await leader.transport.proveMember(2, member.address);
    // The probe hung up: it is not a connection the leader keeps.
    await expect.poll(() => member.transport.reachablePeers()).toEqual([]);
    await expect(leader.transport.proveMember(3, stranger.address)).rejects.toThrow(/node 3 at .* refused the peer hello/);
    await expect(leader.transport.proveMember(9, member.address)).rejects.toThrow(/is node 2, not node 9/);
    await expect(leader.transport.proveMember(4, '127.0.0.1:1')).rejects.toThrow(/cannot reach node 4/);
    await expect(leader.transport.proveMember(5, '')).rejects.toThrow(/no address and no open peer connection/);
  });

  it('a node with another key that hangs up before the hello could be sent is reported as refusing the key', async () => {
    // The stranger refuses as soon as the upgrade is done. The dial hands over its channel in
    // the state `ws` is in between the stranger's close frame and the 'close' event (CLOSING:
    // send returns false, the close is reported a moment later), as happened on loaded machines.
    const closedBeforeHello: DialWebSocket = async (url, options) => {
      const channel = await dialWebSocket(url, options);
      await new Promise<void>((resolve) => channel.onClose(() => resolve()));
      return {
        remoteAddress: channel.remoteAddress,
        send: () => false,
        onMessage: (handler) => channel.onMessage(handler),
        onClose: (handler) => void setTimeout(() => channel.onClose(handler), 20),
        close: (reason) => channel.close(reason),
      };
    };
    const leader = await node(1, { dial: closedBeforeHello });
    const stranger = await node(3, { clusterKey: 'some-other-cluster', precheckUpgrade: false });
    await expect(leader.transport.proveMember(3, stranger.address)).rejects.toThrow(/node 3 at .* refused the peer hello .*not started with this cluster's key/);
  });

  it('accepts a node without an address once it connected with the key', async () => {
    const leader = await node(1);
    const browser = await node(7, { listening: false });
    const proof = leader.transport.proveMember(7, '');
    browser.transport.setPeers([{ id: 1, address: leader.address }]);
    await proof;
    expect(leader.transport.reachablePeers()).toEqual([7]);
  });
});

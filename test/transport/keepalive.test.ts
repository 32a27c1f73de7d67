import { afterEach, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import { dialWebSocket } from '../../runtimes/node/index.ts';
import { CLUSTER_KEY_HEADER, encodeHello } from '../../src/transport/index.ts';
import { encode, startNode, type TestNode } from './helpers.ts';

const nodes: TestNode[] = [];
const sockets: Socket[] = [];
async function node(...args: Parameters<typeof startNode>): Promise<TestNode> {
  const started = await startNode(...args);
  nodes.push(started);
  return started;
}
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(nodes.splice(0).map((started) => started.stop()));
});

/**
 * A peer that completes the WebSocket upgrade and the hello by hand on a raw socket, then stops
 * reading: the transport's writes pile up in its send buffer.
 */
async function stalledPeer(target: TestNode, peerId: number): Promise<Socket> {
  const [host, port] = target.address.split(':');
  const socket = await new Promise<Socket>((resolve, reject) => {
    const opened = connect(Number(port), host!, () => resolve(opened));
    opened.once('error', reject);
  });
  sockets.push(socket);
  socket.write(
    `GET /raft HTTP/1.1\r\nHost: ${target.address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${CLUSTER_KEY_HEADER}: cluster-secret\r\n\r\n`,
  );
  await new Promise<void>((resolve) => {
    let head = '';
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1');
      if (head.includes('\r\n\r\n')) {
        socket.off('data', onData);
        resolve();
      }
    };
    socket.on('data', onData);
  });
  expect(socket.readyState).toBe('open');
  const hello = encodeHello({ nodeId: peerId, address: '', clusterKey: 'cluster-secret' });
  // A client frame: FIN + binary opcode, masked with an all-zero key (so the payload is as is).
  socket.write(Buffer.concat([Buffer.from([0x82, 0x80 | hello.byteLength, 0, 0, 0, 0]), hello]));
  socket.pause();
  return socket;
}

describe('PeerTransport liveness and send bounds', () => {
  it('keeps an idle connection open with pings', async () => {
    const options = { transport: { keepaliveIntervalMs: 30, idleTimeoutMs: 150 } };
    const a = await node(1, options);
    const b = await node(2, options);
    a.transport.setPeers([{ id: 2, address: b.address }]);
    b.transport.setPeers([{ id: 1, address: a.address }]);
    a.transport.send(2, encode('first'));
    await expect.poll(() => b.received.length).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(a.transport.stats()).toMatchObject({ closedIdle: 0, dialsStarted: 1 });
    expect(b.transport.stats().closedIdle).toBe(0);
    expect(a.transport.reachablePeers()).toEqual([2]);
  });

  it('closes a connection on which nothing arrives, with a reason', async () => {
    const a = await node(1, { transport: { keepaliveIntervalMs: 30, idleTimeoutMs: 150 } });
    const silent = await dialWebSocket(`ws://${a.address}/raft`, { headers: { [CLUSTER_KEY_HEADER]: 'cluster-secret' } });
    const closed = new Promise<string>((resolve) => silent.onClose((error) => resolve(error?.message ?? '')));
    silent.send(encodeHello({ nodeId: 5, address: '', clusterKey: 'cluster-secret' }));
    await expect.poll(() => a.transport.reachablePeers()).toEqual([5]);
    expect(await closed).toMatch(/nothing received for 150 ms/);
    expect(a.transport.stats().closedIdle).toBe(1);
    expect(a.transport.reachablePeers()).toEqual([]);
  });

  it('does not blame peers for a stall of its own event loop', async () => {
    const options = { transport: { keepaliveIntervalMs: 30, idleTimeoutMs: 150 } };
    const a = await node(1, options);
    const b = await node(2, options);
    a.transport.setPeers([{ id: 2, address: b.address }]);
    b.transport.setPeers([{ id: 1, address: a.address }]);
    a.transport.send(2, encode('first'));
    await expect.poll(() => b.received.length).toBe(1);
    // Both transports share this process: block it for longer than the idle timeout.
    const blockUntil = performance.now() + 400;
    while (performance.now() < blockUntil) {
      // busy: no timers, no socket reads
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(a.transport.stats().closedIdle + b.transport.stats().closedIdle).toBe(0);
    expect(a.transport.reachablePeers()).toEqual([2]);
  });

  it('drops messages for a peer that stopped reading once its send buffer is full', async () => {
    const a = await node(1, { transport: { sendBufferBytesMax: 1024 * 1024, idleTimeoutMs: 60_000 } });
    await stalledPeer(a, 7);
    await expect.poll(() => a.transport.reachablePeers()).toEqual([7]);
    const payload = new Uint8Array(60 * 1024);
    for (let index = 0; index < 600; index++) {
      a.transport.send(7, payload);
      // Let the socket hand what it can to the kernel, as a running node would between sends.
      if (index % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    const stats = a.transport.stats();
    expect(stats.droppedQueueFull).toBeGreaterThan(0);
    expect(stats.messagesSent + stats.droppedQueueFull).toBe(600);
  });
});

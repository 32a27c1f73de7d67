import { afterEach, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { dialWebSocket, nodeClock } from '../../runtimes/node/index.ts';
import { CLUSTER_KEY_HEADER, encodeData, encodeHello, PEER_FRAME_HEADROOM_BYTES, PeerTransport, PeerTransportError } from '../../src/transport/index.ts';
import type { DialWebSocket, MessageChannel } from '../../src/runtime.ts';
import { dialWithoutHeaders, encode, startNode, startPeerPair, type TestNode } from './helpers.ts';

const nodes: TestNode[] = [];
async function node(...args: Parameters<typeof startNode>): Promise<TestNode> {
  const started = await startNode(...args);
  nodes.push(started);
  return started;
}
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((started) => started.stop()));
});

function texts(target: TestNode, from?: number): string[] {
  return target.received.filter((message) => from === undefined || message.from === from).map((message) => message.text);
}

/** Opens a raw peer WebSocket to `target` with the right key, for speaking nonsense. */
async function rawPeer(target: TestNode, key = 'cluster-secret'): Promise<{ channel: MessageChannel; closed: Promise<string> }> {
  const channel = await dialWebSocket(`ws://${target.address}/raft`, { headers: { [CLUSTER_KEY_HEADER]: key } });
  const closed = new Promise<string>((resolve) => channel.onClose((error) => resolve(error?.message ?? 'closed')));
  return { channel, closed };
}

describe('PeerTransport over the real listener', () => {
  it('delivers messages in order both ways over one connection', async () => {
    const [a, b] = await startPeerPair(node);
    const sent = Array.from({ length: 300 }, (_, index) => `m${index}`);
    for (const text of sent) a.transport.send(2, encode(text));
    await expect.poll(() => b.received.length).toBe(300);
    expect(texts(b, 1)).toEqual(sent);

    for (let index = 0; index < 50; index++) b.transport.send(1, encode(`r${index}`));
    await expect.poll(() => a.received.length).toBe(50);
    expect(texts(a, 2)).toEqual(Array.from({ length: 50 }, (_, index) => `r${index}`));
    // b answered on the connection a opened: it never dialed.
    expect(b.transport.stats().dialsStarted).toBe(0);
    expect(a.transport.stats()).toMatchObject({ dialsStarted: 1, messagesSent: 300, messagesReceived: 50 });
    expect(a.transport.reachablePeers()).toEqual([2]);
    expect(b.transport.reachablePeers()).toEqual([1]);
  });

  it('sends payloads framed in place by their producer like copied ones, in order with them', async () => {
    const [a, b] = await startPeerPair(node);
    const framed = (text: string): Uint8Array => {
      const payload = encode(text);
      const frame = new Uint8Array(PEER_FRAME_HEADROOM_BYTES + payload.length);
      frame.set(payload, PEER_FRAME_HEADROOM_BYTES);
      return frame;
    };
    const sent = Array.from({ length: 40 }, (_, index) => `f${index}`);
    sent.forEach((text, index) => (index % 2 === 0 ? a.transport.sendFramed(2, framed(text)) : a.transport.send(2, encode(text))));
    await expect.poll(() => b.received.length).toBe(40);
    expect(texts(b, 1)).toEqual(sent);
    expect(a.transport.stats()).toMatchObject({ messagesSent: 40 });
    // Too short to hold the header: a caller's bug, not a network condition.
    expect(() => a.transport.sendFramed(2, new Uint8Array(PEER_FRAME_HEADROOM_BYTES - 1))).toThrow(RangeError);
    a.transport.close();
    a.transport.sendFramed(2, framed('late'));
    expect(a.transport.stats().droppedClosed).toBe(1);
  });

  it('hands a framed payload back to its producer once the socket wrote it, and at once when it drops it', async () => {
    const [a, b] = await startPeerPair(node);
    const framed = (text: string): Uint8Array => {
      const payload = encode(text.padEnd(40_000, '.'));
      const frame = new Uint8Array(PEER_FRAME_HEADROOM_BYTES + payload.length);
      frame.set(payload, PEER_FRAME_HEADROOM_BYTES);
      return frame;
    };
    const releasedBy = { a: 0, b: 0 };
    // The first ones wait for the dial (as many as the connect queue holds); all go over a's
    // outbound connection, b answers on its inbound one.
    for (let index = 0; index < 5; index++) a.transport.sendFramed(2, framed(`a${index}`), () => releasedBy.a++);
    expect(releasedBy.a).toBe(0);
    await expect.poll(() => b.received.length).toBe(5);
    for (let index = 5; index < 20; index++) a.transport.sendFramed(2, framed(`a${index}`), () => releasedBy.a++);
    await expect.poll(() => b.received.length).toBe(20);
    await expect.poll(() => releasedBy.a).toBe(20);
    for (let index = 0; index < 20; index++) b.transport.sendFramed(1, framed(`b${index}`), () => releasedBy.b++);
    // Not before the socket wrote it: ws calls back after the write, never inside send.
    expect(releasedBy.b).toBe(0);
    await expect.poll(() => a.received.length).toBe(20);
    await expect.poll(() => releasedBy.b).toBe(20);
    expect(texts(b, 1).map((text) => text.replace(/\.+$/, ''))).toEqual(Array.from({ length: 20 }, (_, index) => `a${index}`));

    let dropped = 0;
    a.transport.sendFramed(2, new Uint8Array(PEER_FRAME_HEADROOM_BYTES + 70_000), () => dropped++);
    expect(dropped).toBe(1);
    expect(a.transport.stats().droppedOversized).toBe(1);
    a.transport.close();
    a.transport.sendFramed(2, framed('late'), () => dropped++);
    expect(dropped).toBe(2);
    // Each frame was handed back once.
    expect(releasedBy).toEqual({ a: 20, b: 20 });
  });

  it('tells the producer its buffer is not coming back when the channel cannot tell when it wrote a frame', async () => {
    // As Deno's and the browser's WebSockets: send takes the bytes and never calls back.
    const silent: DialWebSocket = async (url, options) => {
      const channel = await dialWebSocket(url, options);
      return { remoteAddress: channel.remoteAddress, send: (message) => channel.send(message), onMessage: (handler) => channel.onMessage(handler), onClose: (handler) => channel.onClose(handler), close: (reason) => channel.close(reason) };
    };
    const b = await node(2);
    const a = await node(1, { dial: silent });
    a.transport.setPeers([{ id: 2, address: b.address }]);
    b.transport.setPeers([{ id: 1, address: a.address }]);
    const framed = (text: string): Uint8Array => {
      const payload = encode(text);
      const frame = new Uint8Array(PEER_FRAME_HEADROOM_BYTES + payload.length);
      frame.set(payload, PEER_FRAME_HEADROOM_BYTES);
      return frame;
    };
    const heard: boolean[] = [];
    a.transport.sendFramed(2, framed('first'), (reusable) => heard.push(reusable));
    await expect.poll(() => b.received.length).toBe(1);
    // Sent on the open connection: heard of at once, as not reusable.
    a.transport.sendFramed(2, framed('second'), (reusable) => heard.push(reusable));
    expect(heard).toEqual([false, false]);
    // A reporting channel (Node.js's) hands it back as reusable, once written.
    const fromB: boolean[] = [];
    b.transport.sendFramed(1, framed('back'), (reusable) => fromB.push(reusable));
    expect(fromB).toEqual([]);
    await expect.poll(() => fromB).toEqual([true]);
    await expect.poll(() => texts(b, 1)).toEqual(['first', 'second']);
  });

  it('refuses a peer with the wrong cluster key, in the upgrade header and in the hello', async () => {
    const a = await node(1);
    const intruder = await node(3, { clusterKey: 'wrong-secret' });
    const browserIntruder = await node(4, { clusterKey: 'wrong-secret', listening: false, dial: dialWithoutHeaders });
    intruder.transport.setPeers([{ id: 1, address: a.address }]);
    browserIntruder.transport.setPeers([{ id: 1, address: a.address }]); // dials eagerly
    intruder.transport.send(1, encode('let me in'));
    // Both keep retrying with backoff; each attempt is refused and counted.
    await expect.poll(() => a.transport.stats().refusedBadKey).toBeGreaterThanOrEqual(2);
    await expect.poll(() => a.logs.some((event) => event.message === 'refused a peer upgrade: wrong cluster key')).toBe(true);
    await expect
      .poll(() => a.logs.some((event) => event.message.includes('refused a peer claiming to be node 4: wrong cluster key')))
      .toBe(true);
    await expect.poll(() => intruder.transport.stats().dialsFailed).toBeGreaterThan(0);
    await expect.poll(() => browserIntruder.transport.stats().dialsFailed).toBeGreaterThan(0);
    expect(a.received).toEqual([]);
    expect(a.transport.reachablePeers()).toEqual([]);
    expect(intruder.transport.reachablePeers()).toEqual([]);
    expect(browserIntruder.transport.reachablePeers()).toEqual([]);
  });

  it('refuses a wrong key header after the upgrade too, closing with the reason', async () => {
    const a = await node(1, { precheckUpgrade: false });
    const peer = await rawPeer(a, 'wrong-secret');
    expect(await peer.closed).toMatch(/1008: wrong cluster key/);
    expect(a.transport.stats().refusedBadKey).toBe(1);
  });

  it('refuses a listener that answers with another node id', async () => {
    const a = await node(1);
    const b = await node(2);
    // a believes node 5 lives at b's address.
    a.transport.setPeers([{ id: 5, address: b.address }]);
    a.transport.send(5, encode('hello 5'));
    await expect.poll(() => a.transport.stats().refusedHandshake).toBeGreaterThan(0);
    expect(b.received).toEqual([]);
    expect(a.transport.reachablePeers()).toEqual([]);
  });

  it('reconnects after the peer restarts on the same address', async () => {
    const a = await node(1);
    let b = await node(2);
    const peers = (address: string) => [
      { id: 1, address: a.address },
      { id: 2, address },
    ];
    a.transport.setPeers(peers(b.address));
    a.transport.send(2, encode('before'));
    await expect.poll(() => texts(b)).toEqual(['before']);

    const port = b.listener!.port;
    await b.stop();
    nodes.splice(nodes.indexOf(b), 1);
    await expect.poll(() => a.transport.reachablePeers()).toEqual([]);
    // Sends while b is down are dropped, not queued forever, and never throw.
    for (let index = 0; index < 5; index++) a.transport.send(2, encode(`lost${index}`));

    b = await node(2, { port });
    b.transport.setPeers(peers(b.address));
    await expect
      .poll(() => {
        a.transport.send(2, encode('after'));
        return texts(b).includes('after');
      })
      .toBe(true);
    expect(a.transport.reachablePeers()).toEqual([2]);
    expect(a.transport.stats().droppedUnreachable).toBeGreaterThan(0);
  });

  it('drops instead of blocking: unreachable peers, full queues, oversized payloads, after close', async () => {
    const a = await node(1, { transport: { queueMessagesMax: 100 } });
    const b = await node(2);
    // Nothing listens on port 1 of loopback.
    a.transport.setPeers([
      { id: 2, address: b.address },
      { id: 3, address: '127.0.0.1:1' },
    ]);
    a.transport.send(3, encode('nobody'));
    await expect.poll(() => a.transport.stats().dialsFailed).toBeGreaterThan(0);
    expect(a.transport.stats().droppedUnreachable).toBeGreaterThan(0);

    for (let index = 0; index < 150; index++) a.transport.send(2, encode(`q${index}`));
    a.transport.send(2, new Uint8Array(64 * 1024));
    await expect.poll(() => b.received.length).toBe(100);
    expect(texts(b)).toEqual(Array.from({ length: 100 }, (_, index) => `q${index}`));
    expect(a.transport.stats()).toMatchObject({ droppedQueueFull: 50, droppedOversized: 1 });

    a.transport.close();
    a.transport.send(2, encode('late'));
    expect(a.transport.stats().droppedClosed).toBe(1);
  });

  it('closes connections that speak nonsense and keeps serving good peers', async () => {
    const a = await node(1, { transport: { handshakeTimeoutMs: 300 } });
    const good = await node(2);
    const peers = [
      { id: 1, address: a.address },
      { id: 2, address: good.address },
    ];
    good.transport.setPeers(peers);

    // Random bytes instead of a hello.
    const random = await rawPeer(a);
    random.channel.send(new Uint8Array(randomBytes(200)));
    expect(await random.closed).toMatch(/1008.*malformed peer message|expected a hello/);

    // A valid hello, then an oversized message.
    const oversized = await rawPeer(a);
    oversized.channel.send(encodeHello({ nodeId: 9, address: '', clusterKey: 'cluster-secret' }));
    oversized.channel.send(encodeData({ from: 9, to: 1, hops: 0, payload: new Uint8Array(70 * 1024) }));
    expect(await oversized.closed).toMatch(/exceeds the limit/);

    // A valid hello, then an envelope claiming another sender.
    const spoof = await rawPeer(a);
    spoof.channel.send(encodeHello({ nodeId: 9, address: '', clusterKey: 'cluster-secret' }));
    spoof.channel.send(encodeData({ from: 2, to: 1, hops: 0, payload: encode('forged') }));
    expect(await spoof.closed).toMatch(/claims sender 2/);

    // Data before any hello, and a peer that never says hello.
    const noHello = await rawPeer(a);
    noHello.channel.send(encodeData({ from: 9, to: 1, hops: 0, payload: encode('x') }));
    expect(await noHello.closed).toMatch(/expected a hello/);
    const silent = await rawPeer(a);
    expect(await silent.closed).toMatch(/no hello within 300 ms/);

    // HTTP garbage and random bytes on the raw port.
    const [host, port] = a.address.split(':');
    for (const junk of [Buffer.from('GET /raft HTTP/1.1\r\nHost: x\r\nUpgrade: nonsense\r\n\r\n'), Buffer.from('XX\x00\x01\r\n\r\n')]) {
      await new Promise<void>((resolve) => {
        const socket = connect(Number(port), host!, () => socket.write(junk));
        socket.on('data', () => undefined);
        socket.on('error', () => resolve());
        socket.on('close', () => resolve());
        setTimeout(() => socket.destroy(), 2000).unref();
      });
    }

    expect(a.transport.stats().closedMalformed).toBe(4);
    expect(a.transport.stats().refusedHandshake).toBe(1);
    expect(a.received).toEqual([]);
    good.transport.send(1, encode('still here'));
    await expect.poll(() => texts(a)).toEqual(['still here']);
  });

  it('relays between two nodes that cannot listen, through a listening node, at most one hop', async () => {
    const hub = await node(1);
    const left = await node(2, { listening: false });
    const right = await node(3, { listening: false });
    const peers = [
      { id: 1, address: hub.address },
      { id: 2, address: '' },
      { id: 3, address: '' },
    ];
    for (const member of [hub, left, right]) member.transport.setPeers(peers);
    // Non-listening nodes dial the listening ones eagerly: the hub can reach them without a send.
    await expect.poll(() => hub.transport.reachablePeers()).toEqual([2, 3]);

    for (let index = 0; index < 20; index++) left.transport.send(3, encode(`l${index}`));
    right.transport.send(2, encode('back'));
    hub.transport.send(2, encode('from hub'));
    await expect.poll(() => texts(right, 2)).toEqual(Array.from({ length: 20 }, (_, index) => `l${index}`));
    await expect.poll(() => texts(left)).toEqual(expect.arrayContaining(['back', 'from hub']));
    expect(left.received.find((message) => message.text === 'back')?.from).toBe(3);
    expect(hub.transport.stats().messagesRelayed).toBe(21);
    expect(hub.received).toEqual([]);

    // An envelope already relayed once is not relayed again.
    const raw = await dialWebSocket(`ws://${hub.address}/raft`, { headers: { [CLUSTER_KEY_HEADER]: 'cluster-secret' } });
    raw.send(encodeHello({ nodeId: 8, address: '127.0.0.1:9', clusterKey: 'cluster-secret' }));
    raw.send(encodeData({ from: 7, to: 3, hops: 1, payload: encode('second hop') }));
    await expect.poll(() => hub.transport.stats().droppedHopLimit).toBe(1);
    raw.close();
    expect(texts(right)).not.toContain('second hop');
  });

  it('rejects invalid options with a clear error', () => {
    const base = { selfAddress: '', clusterKey: 'k', dialWebSocket, clock: nodeClock, maxMessageBytes: 1024 };
    expect(() => new PeerTransport({ ...base, selfId: 0 })).toThrow(PeerTransportError);
    expect(() => new PeerTransport({ ...base, selfId: 1, clusterKey: '' })).toThrow(/clusterKey/);
    expect(() => new PeerTransport({ ...base, selfId: 1, maxMessageBytes: 10 })).toThrow(/maxMessageBytes/);
  });
});

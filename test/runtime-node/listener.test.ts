import { afterEach, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import type { ByteStream, MessageChannel } from '../../src/runtime.ts';
import { dialWebSocket, listen, WebSocketDialError, type Listener, type UpgradeRequest } from '../../runtimes/node/index.ts';

const listeners: Listener[] = [];
afterEach(async () => {
  await Promise.all(listeners.splice(0).map((listener) => listener.close()));
});

function rawConnect(address: string): Promise<Socket> {
  const [host, port] = address.split(':');
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), host!, () => resolve(socket));
    socket.once('error', reject);
  });
}

function readAll(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    let output = '';
    socket.on('data', (chunk: Buffer) => (output += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(output));
  });
}

async function startListener(overrides: Partial<Parameters<typeof listen>[0]> = {}): Promise<{
  listener: Listener;
  streams: ByteStream[];
  webSockets: { channel: MessageChannel; request: UpgradeRequest }[];
}> {
  const streams: ByteStream[] = [];
  const webSockets: { channel: MessageChannel; request: UpgradeRequest }[] = [];
  const listener = await listen({
    host: '127.0.0.1',
    port: 0,
    onStream: (stream) => {
      streams.push(stream);
      // Echo server: proves the first (sniffed) chunk and later chunks arrive in order.
      stream.onData((chunk) => stream.write(chunk));
    },
    onWebSocket: (channel, request) => {
      webSockets.push({ channel, request });
      channel.onMessage((message) => channel.send(message));
    },
    onHttp: (request) =>
      request.path === '/health' ? { status: 200, body: 'ok\n' } : { status: 404, body: `no ${request.path}\n` },
    checkUpgrade: (request) => (request.path === '/raft' || request.path === '/dqlite' ? undefined : { status: 404, reason: 'unknown path' }),
    ...overrides,
  });
  listeners.push(listener);
  return { listener, streams, webSockets };
}

describe('listen (one port)', () => {
  it('picks a free port and hands non-HTTP connections over as byte streams, first byte included', async () => {
    const { listener, streams } = await startListener();
    expect(listener.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(listener.port).toBeGreaterThan(0);
    const socket = await rawConnect(listener.address);
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.write(Buffer.from([0x01, 0x00, 0x00, 0x00]));
    await new Promise((resolve) => setTimeout(resolve, 20));
    socket.write(Buffer.from([0x05, 0x06]));
    await expect.poll(() => Buffer.concat(received).length).toBe(6);
    expect([...Buffer.concat(received)]).toEqual([1, 0, 0, 0, 5, 6]);
    expect(streams).toHaveLength(1);
    expect(streams[0]!.remoteAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    const closed = new Promise<void>((resolve) => streams[0]!.onClose(() => resolve()));
    socket.destroy();
    await closed;
    expect(streams[0]!.write(new Uint8Array([1]))).toBe(false);
  });

  it('answers plain HTTP through onHttp on the same port', async () => {
    const { listener } = await startListener();
    const health = await fetch(`http://${listener.address}/health`);
    expect(health.status).toBe(200);
    expect(await health.text()).toBe('ok\n');
    const other = await fetch(`http://${listener.address}/metrics?x=1`);
    expect(other.status).toBe(404);
    expect(await other.text()).toBe('no /metrics\n');
  });

  it('upgrades WebSockets on accepted paths with headers passed through, and refuses others with an HTTP status', async () => {
    const { listener, webSockets } = await startListener();
    const channel = await dialWebSocket(`ws://${listener.address}/raft?v=1`, { headers: { 'x-dqlite-cluster-key': 'secret' } });
    const echoed = new Promise<Uint8Array>((resolve) => channel.onMessage(resolve));
    expect(channel.send(new Uint8Array([9, 8, 7]))).toBe(true);
    expect([...(await echoed)]).toEqual([9, 8, 7]);
    expect(webSockets[0]!.request).toMatchObject({ path: '/raft', query: 'v=1' });
    expect(webSockets[0]!.request.headers['x-dqlite-cluster-key']).toBe('secret');

    const refused = await dialWebSocket(`ws://${listener.address}/elsewhere`).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(WebSocketDialError);
    expect(refused).toMatchObject({ httpStatus: 404 });

    // A reason given on close reaches the other side.
    const closedWith = new Promise<Error | undefined>((resolve) => channel.onClose(resolve));
    webSockets[0]!.channel.close('wrong cluster key');
    expect((await closedWith)?.message).toContain('wrong cluster key');
  });

  it('closes HTTP garbage, oversized WebSocket messages and silent connections, and keeps serving', async () => {
    const { listener, webSockets } = await startListener({ webSocketMessageBytesMax: 1024, firstByteTimeoutMs: 200 });
    const garbage = await rawConnect(listener.address);
    const garbageAnswer = readAll(garbage);
    garbage.write('GARBAGE \x00\x01\x02 nonsense\r\n\r\n');
    expect(await garbageAnswer).toMatch(/^HTTP\/1\.1 400/);

    const silent = await rawConnect(listener.address);
    await readAll(silent); // resolves when the server gives up on it

    const channel = await dialWebSocket(`ws://${listener.address}/dqlite`);
    const closed = new Promise<Error | undefined>((resolve) => channel.onClose(resolve));
    channel.send(new Uint8Array(2048));
    expect((await closed)?.message).toMatch(/1009/);
    expect(webSockets).toHaveLength(1);

    const health = await fetch(`http://${listener.address}/health`);
    expect(health.status).toBe(200);
  });

  it('refuses connections beyond connectionsMax', async () => {
    const { listener, streams } = await startListener({ connectionsMax: 2 });
    const first = await rawConnect(listener.address);
    const second = await rawConnect(listener.address);
    first.write(Buffer.from([0x01]));
    second.write(Buffer.from([0x01]));
    await expect.poll(() => streams.length).toBe(2);
    const third = await rawConnect(listener.address);
    await readAll(third); // closed by the server
    expect(streams).toHaveLength(2);
    first.destroy();
    second.destroy();
  });

  it('close() drops open connections and frees the port', async () => {
    const { listener } = await startListener();
    const socket = await rawConnect(listener.address);
    const ended = readAll(socket);
    socket.write(Buffer.from([0x01]));
    const channel = await dialWebSocket(`ws://${listener.address}/raft`);
    const channelClosed = new Promise<void>((resolve) => channel.onClose(() => resolve()));
    await listener.close();
    await ended;
    await channelClosed;
    await expect(rawConnect(listener.address)).rejects.toThrow(/ECONNREFUSED/);
  });
});

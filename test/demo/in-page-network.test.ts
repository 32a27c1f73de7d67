/**
 * The in-page network on Node's own MessageChannel (the same API the browser has): connections,
 * refusals, partitions, slow links, crashes, and the real PeerTransport running over it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { InPageBroker, InPageEndpoint, InPageNetworkError, type AcceptedConnection } from '../../demo/in-page-network.ts';
import type { Clock, MessageChannel as Channel } from '../../src/runtime.ts';
import { PeerTransport } from '../../src/transport/index.ts';

const ports: MessagePort[] = [];

function attach(broker: InPageBroker, address: string): InPageEndpoint {
  const channel = new MessageChannel();
  ports.push(channel.port1, channel.port2);
  broker.attach(address, channel.port1);
  return new InPageEndpoint(channel.port2, address);
}

function nextMessage(channel: Channel): Promise<Uint8Array> {
  return new Promise((resolve) => channel.onMessage(resolve));
}

function accepted(endpoint: InPageEndpoint): Promise<AcceptedConnection> {
  return new Promise((resolve) => endpoint.onAccept(resolve));
}

function closed(channel: Channel): Promise<Error | undefined> {
  return new Promise((resolve) => channel.onClose(resolve));
}

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);

afterEach(() => {
  for (const port of ports.splice(0)) port.close();
});

describe('in-page network', () => {
  it('connects a dialer to the endpoint at the URL host, with path and headers, both ways', async () => {
    const broker = new InPageBroker();
    const a = attach(broker, 'node-1');
    const b = attach(broker, 'node-2');
    const incoming = accepted(b);
    const dialed = await a.dialWebSocket('ws://node-2/raft?from=1&to=2', { headers: { 'x-key': 'k' } });
    const server = await incoming;
    expect(server.path).toBe('/raft');
    expect(server.headers).toEqual({ 'x-key': 'k' });
    expect(server.channel.remoteAddress).toBe('node-1');
    expect(dialed.remoteAddress).toBe('node-2');

    const source = new Uint8Array([9, 1, 2, 3, 9]).subarray(1, 4);
    const toServer = nextMessage(server.channel);
    expect(dialed.send(source)).toBe(true);
    expect(await toServer).toEqual(bytes(1, 2, 3));
    expect(source).toEqual(bytes(1, 2, 3)); // The sender's bytes are not taken away.
    const toClient = nextMessage(dialed);
    server.channel.send(bytes(4, 5));
    expect(await toClient).toEqual(bytes(4, 5));

    const serverClosed = closed(server.channel);
    dialed.close('done');
    expect((await serverClosed)?.message).toMatch(/done/);
    expect(dialed.send(bytes(1))).toBe(false);
  });

  it('refuses dials to nobody, and to an endpoint that does not accept yet', async () => {
    const broker = new InPageBroker();
    const a = attach(broker, 'node-1');
    attach(broker, 'node-2');
    await expect(a.dialWebSocket('ws://node-9/raft')).rejects.toMatchObject({ code: 'REFUSED', message: /nothing listens at node-9/ });
    await expect(a.dialWebSocket('not a url')).rejects.toBeInstanceOf(InPageNetworkError);
    const early = await a.dialWebSocket('ws://node-2/raft');
    const why = await closed(early);
    expect(why?.message).toMatch(/not accepting connections yet/);
  });

  it('an isolated endpoint loses messages and cannot be dialed until healed; the console is never cut', async () => {
    const broker = new InPageBroker({ alwaysReachable: ['console'] });
    const a = attach(broker, 'node-1');
    const b = attach(broker, 'node-2');
    const page = attach(broker, 'console');
    const incoming = accepted(b);
    const dialed = await a.dialWebSocket('ws://node-2/raft');
    const server = await incoming;
    const received: number[] = [];
    let arrived: (() => void) | undefined;
    server.channel.onMessage((m) => {
      received.push(m[0]!);
      arrived?.();
    });

    broker.isolate('node-2');
    expect(broker.isIsolated('node-2')).toBe(true);
    dialed.send(bytes(1));
    await expect(a.dialWebSocket('ws://node-2/raft')).rejects.toMatchObject({ code: 'UNREACHABLE', message: /partition/ });
    b.onAccept(() => {});
    const fromConsole = await page.dialWebSocket('ws://node-2/dqlite');
    expect(fromConsole.remoteAddress).toBe('node-2');

    broker.heal('node-2');
    const second = new Promise<void>((resolve) => (arrived = resolve));
    dialed.send(bytes(2));
    await second;
    expect(received).toEqual([2]);
    expect(broker.stats.messagesDropped).toBe(1);
  });

  it('a slow link delivers late but in order', async () => {
    const broker = new InPageBroker();
    const a = attach(broker, 'node-1');
    const b = attach(broker, 'node-2');
    const incoming = accepted(b);
    const dialed = await a.dialWebSocket('ws://node-2/raft');
    const server = await incoming;
    broker.setDelay('node-2', 'node-1', 80);
    expect(broker.impairedLinks()).toEqual([{ a: 'node-1', b: 'node-2', blocked: false, delayMs: 80 }]);
    const got: number[] = [];
    const all = new Promise<void>((resolve) =>
      server.channel.onMessage((m) => {
        got.push(m[0]!);
        if (got.length === 20) resolve();
      }),
    );
    const started = performance.now();
    for (let i = 0; i < 20; i++) dialed.send(bytes(i));
    await all;
    expect(performance.now() - started).toBeGreaterThanOrEqual(75);
    expect(got).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(() => broker.setDelay('node-1', 'node-2', -1)).toThrow(RangeError);
  });

  it('a detached endpoint (a terminated worker) closes its peers’ connections', async () => {
    const broker = new InPageBroker();
    const a = attach(broker, 'node-1');
    const b = attach(broker, 'node-2');
    b.onAccept(() => {});
    const dialed = await a.dialWebSocket('ws://node-2/raft');
    const gone = closed(dialed);
    broker.detach('node-2', 'node-2 crashed');
    expect((await gone)?.message).toMatch(/crashed/);
    await expect(a.dialWebSocket('ws://node-2/raft')).rejects.toMatchObject({ code: 'REFUSED' });
    const again = attach(broker, 'node-2');
    again.onAccept(() => {});
    await expect(a.dialWebSocket('ws://node-2/raft')).resolves.toBeDefined();
  });

  it('carries the unchanged PeerTransport between two nodes', async () => {
    const broker = new InPageBroker();
    const clock: Clock = {
      nowMs: () => performance.now(),
      setTimeout: (callback, delayMs) => {
        const t = setTimeout(callback, delayMs);
        return { cancel: () => clearTimeout(t) };
      },
      setInterval: (callback, periodMs) => {
        const t = setInterval(callback, periodMs);
        return { cancel: () => clearInterval(t) };
      },
    };
    const transports = [1, 2].map((id) => {
      const endpoint = attach(broker, `node-${id}`);
      const transport = new PeerTransport({
        selfId: id,
        selfAddress: `node-${id}`,
        clusterKey: 'secret',
        dialWebSocket: endpoint.dialWebSocket,
        clock,
        maxMessageBytes: 64 * 1024,
      });
      endpoint.onAccept(({ channel, headers }) => transport.acceptConnection(channel, headers));
      return transport;
    });
    transports[0]!.setPeers([{ id: 2, address: 'node-2' }]);
    transports[1]!.setPeers([{ id: 1, address: 'node-1' }]);
    const atTwo = new Promise<[number, Uint8Array]>((resolve) => transports[1]!.onMessage((from, payload) => resolve([from, payload])));
    const atOne = new Promise<[number, Uint8Array]>((resolve) => transports[0]!.onMessage((from, payload) => resolve([from, payload])));
    transports[0]!.send(2, bytes(42));
    expect(await atTwo).toEqual([1, bytes(42)]);
    transports[1]!.send(1, bytes(43));
    expect(await atOne).toEqual([2, bytes(43)]);
    for (const t of transports) t.close();
  });
});

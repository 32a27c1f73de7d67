import { connect as netConnect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { dialWebSocket } from '../../runtimes/node/websocket.ts';
import { connect, dialOverWebSocket } from '../../src/client/index.ts';
import { type ScriptedCluster, startScriptedCluster } from './scripted-server.ts';

let cluster: ScriptedCluster | undefined;
let wss: WebSocketServer | undefined;
afterEach(async () => {
  await new Promise<void>((resolve) => (wss ? wss.close(() => resolve()) : resolve()));
  await cluster?.close();
  wss = undefined;
  cluster = undefined;
});

describe('the client over a WebSocket instead of TCP', () => {
  it('runs the same protocol through a WebSocket-to-TCP bridge', async () => {
    cluster = await startScriptedCluster(1);
    const target = cluster.nodes[0]!;
    const [host, port] = target.address.split(':') as [string, string];
    // A bridge like a node's WebSocket endpoint: binary messages in, raw protocol bytes out.
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    wss = server;
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    server.on('connection', (socket) => {
      const tcp = netConnect({ host, port: Number(port) });
      socket.on('message', (data: Buffer) => tcp.write(data));
      tcp.on('data', (chunk) => socket.send(chunk));
      socket.on('close', () => tcp.destroy());
      tcp.on('close', () => socket.close());
    });
    const wsPort = (server.address() as { port: number }).port;
    const dial = dialOverWebSocket(dialWebSocket, () => `ws://127.0.0.1:${wsPort}/`);
    const db = await connect({ servers: [target.address], database: 'x', dial, timeoutMs: 3_000 });
    expect((await db.query('SELECT 1')).rows).toEqual([{ node: target.address }]);
    expect(target.requests.map((r) => r.type)).toEqual(['leader', 'client', 'cluster', 'open', 'query_sql']);
    await db.close();
  });
});

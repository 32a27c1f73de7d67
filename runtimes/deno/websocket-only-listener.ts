/**
 * For hosts that offer only HTTP (Deno Deploy-style): `Deno.serve` with WebSocket upgrades for
 * Raft peers and dqlite clients, plain HTTP for health and metrics. No raw TCP.
 */
import type { MessageChannel } from '../../src/runtime.ts';
import { messageChannelFromStandardWebSocket } from '../browser/websocket.ts';

export interface WebSocketOnlyRequest {
  method: string;
  path: string;
  /** The query string without `?`, or ''. */
  query: string;
  headers: Record<string, string>;
  remoteAddress: string;
  /** The request body, chunk by chunk (HTTP API writes). */
  body?: AsyncIterable<Uint8Array>;
}

export interface WebSocketOnlyResponse {
  status: number;
  headers?: Record<string, string>;
  body: string | Uint8Array;
  /** Streamed after `body` (server-sent events, `/db/changes`); ended when the client goes. */
  stream?: AsyncIterable<string>;
}

export interface WebSocketOnlyListenOptions {
  host: string;
  port: number;
  /** A refusal (status and reason) for an upgrade that must not complete. */
  checkUpgrade(request: WebSocketOnlyRequest): { status: number; reason: string } | undefined;
  onWebSocket(channel: MessageChannel, request: WebSocketOnlyRequest): void;
  onHttp(request: WebSocketOnlyRequest): WebSocketOnlyResponse | Promise<WebSocketOnlyResponse>;
  webSocketMessageBytesMax?: number;
}

export interface WebSocketOnlyListener {
  readonly address: string;
  close(): Promise<void>;
}

export function listenWebSocketOnly(options: WebSocketOnlyListenOptions): Promise<WebSocketOnlyListener> {
  const sockets = new Set<WebSocket>();
  return new Promise((resolve, reject) => {
    let server: Deno.HttpServer<Deno.NetAddr>;
    try {
      server = Deno.serve(
        {
          hostname: options.host,
          port: options.port,
          onListen: (addr) => {
            const host = addr.hostname.includes(':') ? `[${addr.hostname}]` : addr.hostname;
            resolve({
              address: `${host}:${addr.port}`,
              close: async () => {
                for (const socket of sockets) socket.close();
                await server.shutdown();
              },
            });
          },
          onError: (error) => new Response(`internal error: ${(error as Error).message}\n`, { status: 500 }),
        },
        async (request, info) => {
          const url = new URL(request.url);
          const headers: Record<string, string> = {};
          request.headers.forEach((value, name) => (headers[name.toLowerCase()] = value));
          const remote = info.remoteAddr;
          const described: WebSocketOnlyRequest = {
            method: request.method,
            path: url.pathname,
            query: url.search.replace(/^\?/, ''),
            headers,
            remoteAddress: `${remote.hostname}:${remote.port}`,
            ...(request.body && { body: request.body }),
          };
          if ((headers['upgrade'] ?? '').toLowerCase() === 'websocket') {
            const refusal = options.checkUpgrade(described);
            if (refusal) return new Response(`${refusal.reason}\n`, { status: refusal.status });
            const { socket, response } = Deno.upgradeWebSocket(request);
            sockets.add(socket);
            socket.addEventListener('close', () => sockets.delete(socket));
            const channel = messageChannelFromStandardWebSocket(socket, described.remoteAddress, options.webSocketMessageBytesMax);
            // Handed over once open: a peer's first send (its hello) must not be refused.
            socket.addEventListener('open', () => {
              try {
                options.onWebSocket(channel, described);
              } catch (error) {
                channel.close(`server error: ${(error as Error).message}`);
              }
            });
            return response;
          }
          const answer = await options.onHttp(described);
          if (answer.stream) return new Response(readableOf(answer.stream), { status: answer.status, headers: answer.headers ?? {} });
          return new Response(answer.body as BodyInit, { status: answer.status, headers: answer.headers ?? { 'content-type': 'text/plain; charset=utf-8' } });
        },
      );
    } catch (error) {
      reject(error);
    }
  });
}

/** A streamed answer as a web ReadableStream: pulled as the client reads, ended when it goes. */
function readableOf(stream: AsyncIterable<string>): ReadableStream<Uint8Array> {
  const iterator = stream[Symbol.asyncIterator]();
  const encoder = new TextEncoder();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await iterator.next();
      if (next.done) controller.close();
      else controller.enqueue(encoder.encode(next.value));
    },
    async cancel() {
      await iterator.return?.();
    },
  });
}

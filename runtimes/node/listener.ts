import { createServer as createNetServer, type Socket, type AddressInfo } from 'node:net';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { httpDate } from './http-date.ts';
import type { TLSSocket } from 'node:tls';
import { WebSocketServer } from 'ws';
import type { ByteStream, MessageChannel } from '../../src/runtime.ts';
import { byteStreamFromSocket } from './socket-stream.ts';
import { serverTlsOptions, type TlsSettings } from './tls.ts';
import { unwrapTls } from './tls-unwrap.ts';
import { refusePlaintextDqlite } from './plaintext-refusal.ts';
import { messageChannelFromWebSocket } from './websocket.ts';

/** Header values as Node gives them, names lower-cased. */
export type RequestHeaders = Record<string, string | string[] | undefined>;

/** How a connection reached us. */
export interface ConnectionInfo {
  readonly remoteAddress: string;
  /** True when it came through mutual TLS: the other side presented a certificate of our CA. */
  readonly secure: boolean;
  /** True when it came through TLS, verified certificate or not (see `tlsWebSocketsWithoutCertificate`). */
  readonly encrypted: boolean;
  /** Subject of the verified client certificate (`CN=…`), when `secure`. */
  readonly peerCertificateSubject?: string;
}

export interface UpgradeRequest {
  /** Path without the query string, e.g. `/raft`. */
  readonly path: string;
  /** The query string without `?`, or ''. */
  readonly query: string;
  readonly headers: RequestHeaders;
  readonly remoteAddress: string;
  readonly connection: ConnectionInfo;
}

export interface HttpRequest {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly headers: RequestHeaders;
  readonly remoteAddress: string;
  /** The request body as it arrives; what the handler does not read is discarded. */
  readonly body: AsyncIterable<Uint8Array>;
  readonly connection: ConnectionInfo;
}

export interface HttpResponse {
  status: number;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  /** Streamed after `body` (server-sent events): no content-length; ended when the client goes. */
  stream?: AsyncIterable<string>;
}

/** Why an upgrade is refused; sent as the HTTP status line and body. */
export interface UpgradeRejection {
  status: number;
  reason: string;
}

export interface ListenOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** A connection that does not start with an ASCII letter: the dqlite protocol over TCP. */
  onStream(stream: ByteStream, connection: ConnectionInfo): void;
  /** An accepted WebSocket. Close the channel to reject it after the upgrade. */
  onWebSocket(channel: MessageChannel, request: UpgradeRequest): void;
  /**
   * Checked before the upgrade completes: return a rejection to answer with an HTTP error
   * instead (e.g. 404 for an unknown path, 401 for a missing key). Default: accept all.
   */
  checkUpgrade?(request: UpgradeRequest): UpgradeRejection | undefined;
  /** Plain HTTP requests (`GET /health`, `GET /metrics`, ...). Default: 404 for everything. */
  onHttp?(request: HttpRequest): HttpResponse | Promise<HttpResponse>;
  /** Bound on one received WebSocket message; larger ones close the socket (code 1009). */
  webSocketMessageBytesMax?: number;
  /** A connection that sends nothing for this long is closed before its protocol is known. */
  firstByteTimeoutMs?: number;
  /** Connections beyond this many open ones are refused (closed on accept). Default 4096. */
  connectionsMax?: number;
  /**
   * Serve everything through mutual TLS (a first byte 0x16 is a ClientHello: unwrap it, then
   * sniff again); connections without TLS are refused.
   */
  tls?: TlsSettings;
  /**
   * With `tls`: a TLS connection without a client certificate may still upgrade to a WebSocket
   * (browsers seldom hold one, and an https page may open only wss://); the WebSocket's own
   * authentication applies (the cluster key for peers). Its raw dqlite and plain HTTP requests
   * stay refused. Default false: every connection presents a certificate of the CA.
   */
  tlsWebSocketsWithoutCertificate?: boolean;
  /** TLS handshakes that failed (no certificate, another CA, garbage), for the log. */
  onTlsError?(remoteAddress: string, error: Error): void;
}

export interface Listener {
  /** `host:port` actually bound (the real port when 0 was asked for). */
  readonly address: string;
  readonly port: number;
  /** Stops accepting and closes every connection this listener accepted. */
  close(): Promise<void>;
}

export const WEBSOCKET_MESSAGE_BYTES_MAX_DEFAULT = 16 * 1024 * 1024;
const FIRST_BYTE_TIMEOUT_MS_DEFAULT = 10_000;
const CONNECTIONS_MAX_DEFAULT = 4096;
/** Bound on the request line plus headers of plain HTTP and upgrade requests. */
const HTTP_HEADER_BYTES_MAX = 16 * 1024;

/** First byte of a TLS record carrying a handshake message (the ClientHello). */
const TLS_HANDSHAKE_RECORD = 0x16;

function isAsciiLetter(byte: number): boolean {
  return (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a);
}

function splitTarget(target: string | undefined): { path: string; query: string } {
  const raw = target ?? '/';
  const mark = raw.indexOf('?');
  return mark < 0 ? { path: raw, query: '' } : { path: raw.slice(0, mark), query: raw.slice(mark + 1) };
}

/** TLS sockets over a replaying Duplex have no address of their own: the raw socket's. */
const tlsRemotes = new WeakMap<Socket, string>();

function remoteOf(socket: Socket): string {
  const tlsRemote = tlsRemotes.get(socket);
  if (tlsRemote) return tlsRemote;
  return `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`;
}

function connectionOf(socket: Socket): ConnectionInfo {
  const remoteAddress = remoteOf(socket);
  const tlsSocket = socket as Partial<TLSSocket>;
  const encrypted = tlsSocket.encrypted === true;
  if (!encrypted || tlsSocket.authorized !== true) return { remoteAddress, secure: false, encrypted };
  const subject = tlsSocket.getPeerCertificate?.()?.subject;
  const peerCertificateSubject = subject ? Object.entries(subject).map(([k, v]) => `${k}=${String(v)}`).join(', ') : undefined;
  return { remoteAddress, secure: true, encrypted, ...(peerCertificateSubject && { peerCertificateSubject }) };
}

const PLAINTEXT_REFUSAL_BODY = 'this node serves only TLS: use https:// or wss:// and a certificate of the cluster CA\n';
const PLAINTEXT_REFUSAL =
  'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n' +
  `Content-Length: ${Buffer.byteLength(PLAINTEXT_REFUSAL_BODY)}\r\n\r\n${PLAINTEXT_REFUSAL_BODY}`;

/**
 * One port for everything: the first byte of each connection decides. An ASCII letter starts
 * an HTTP request (plain, or a WebSocket upgrade); anything else (a dqlite client sends 0x01
 * first) is handed over as a raw byte stream.
 */
export async function listen(options: ListenOptions): Promise<Listener> {
  const firstByteTimeoutMs = options.firstByteTimeoutMs ?? FIRST_BYTE_TIMEOUT_MS_DEFAULT;
  const sockets = new Set<Socket>();

  const webSockets = new WebSocketServer({
    noServer: true,
    maxPayload: options.webSocketMessageBytesMax ?? WEBSOCKET_MESSAGE_BYTES_MAX_DEFAULT,
    perMessageDeflate: false,
  });

  const httpServer = createHttpServer({ maxHeaderSize: HTTP_HEADER_BYTES_MAX }, (request, response) => {
    // Our own Date header: Node.js's would load ICU's time zone data into the node (http-date.ts).
    response.sendDate = false;
    response.setHeader('date', httpDate(Date.now()));
    if (options.tls && !connectionOf(request.socket).secure) {
      request.resume();
      response.writeHead(403, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
      response.end('a client certificate of the cluster CA is required for HTTP requests; without one, only WebSockets are served\n');
      return;
    }
    void answerHttp(options, request, response);
  });
  httpServer.on('clientError', (_error, socket) => {
    // Garbage that starts with a letter lands here: answer briefly if possible, then drop it.
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    socket.destroy();
  });
  httpServer.on('upgrade', (request: IncomingMessage, socket: Socket, head: Buffer) => {
    const { path, query } = splitTarget(request.url);
    const connection = connectionOf(socket);
    const upgrade: UpgradeRequest = { path, query, headers: request.headers, remoteAddress: connection.remoteAddress, connection };
    let rejection: UpgradeRejection | undefined;
    try {
      rejection = options.checkUpgrade?.(upgrade);
    } catch (error) {
      rejection = { status: 500, reason: `upgrade check failed: ${(error as Error).message}` };
    }
    if (rejection) {
      const body = Buffer.from(`${rejection.reason}\n`, 'utf8');
      const head = Buffer.from(
        `HTTP/1.1 ${rejection.status} ${statusText(rejection.status)}\r\nConnection: close\r\n` +
          `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.byteLength}\r\n\r\n`,
        'latin1',
      );
      socket.end(Buffer.concat([head, body]));
      return;
    }
    webSockets.handleUpgrade(request, socket, head, (webSocket) => {
      const channel = messageChannelFromWebSocket(webSocket, upgrade.remoteAddress);
      try {
        options.onWebSocket(channel, upgrade);
      } catch (error) {
        channel.close(`server error: ${(error as Error).message}`);
      }
    });
  });

  /**
   * Hands a connection to its protocol by its first (decrypted) byte. `verified`: through TLS
   * with a certificate of the CA; `encrypted`: through TLS without one.
   */
  const route = (socket: Socket, chunk: Buffer, transport: 'plain' | 'encrypted' | 'verified'): void => {
    const secure = transport === 'verified';
    if (isAsciiLetter(chunk[0]!)) {
      if (options.tls && transport === 'plain') {
        socket.end(PLAINTEXT_REFUSAL);
        return;
      }
      socket.pause();
      socket.unshift(chunk);
      httpServer.emit('connection', socket);
      socket.resume();
      return;
    }
    if (options.tls && !secure) {
      if (transport === 'plain') refusePlaintextDqlite(socket, chunk);
      else socket.destroy();
      return;
    }
    socket.pause();
    const stream = byteStreamFromSocket(socket, new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    try {
      options.onStream(stream, connectionOf(socket));
    } catch {
      socket.destroy();
      return;
    }
    socket.resume();
  };

  const tlsOptions = options.tls
    ? { ...serverTlsOptions(options.tls), rejectUnauthorized: options.tlsWebSocketsWithoutCertificate !== true }
    : undefined;

  // Small request/response messages: Nagle's algorithm would hold them back waiting for ACKs.
  const netServer = createNetServer({ pauseOnConnect: false, noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    // Errors (resets) end the socket; without a listener they would crash the process.
    socket.on('error', () => socket.destroy());
    socket.setTimeout(firstByteTimeoutMs, () => socket.destroy());
    socket.once('data', (chunk: Buffer) => {
      socket.setTimeout(0);
      if (tlsOptions && chunk[0] === TLS_HANDSHAKE_RECORD) {
        const remote = remoteOf(socket);
        unwrapTls(socket, chunk, {
          tlsOptions,
          handshakeTimeoutMs: firstByteTimeoutMs,
          onError: (error) => options.onTlsError?.(remote, error),
          onSecure: (tlsSocket) => {
            tlsRemotes.set(tlsSocket, remote);
            tlsSocket.setTimeout(firstByteTimeoutMs, () => tlsSocket.destroy());
            tlsSocket.once('data', (decrypted: Buffer) => {
              tlsSocket.setTimeout(0);
              route(tlsSocket, decrypted, tlsSocket.authorized ? 'verified' : 'encrypted');
            });
          },
        });
        return;
      }
      route(socket, chunk, 'plain');
    });
  });

  netServer.maxConnections = options.connectionsMax ?? CONNECTIONS_MAX_DEFAULT;

  await new Promise<void>((resolve, reject) => {
    netServer.once('error', reject);
    netServer.listen(options.port, options.host, () => {
      netServer.off('error', reject);
      resolve();
    });
  });
  const bound = netServer.address() as AddressInfo;
  const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;

  let closing: Promise<void> | undefined;
  return {
    address: `${host}:${bound.port}`,
    port: bound.port,
    close(): Promise<void> {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => netServer.close(() => resolve()));
        for (const client of webSockets.clients) client.terminate();
        for (const socket of sockets) socket.destroy();
        await stopped;
        await new Promise<void>((resolve) => webSockets.close(() => resolve()));
        httpServer.close();
      })();
      return closing;
    },
  };
}

async function answerHttp(options: ListenOptions, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const { path, query } = splitTarget(request.url);
  let answer: HttpResponse;
  try {
    answer = options.onHttp
      ? await options.onHttp({
          method: request.method ?? 'GET',
          path,
          query,
          headers: request.headers,
          remoteAddress: remoteOf(request.socket),
          body: request,
          connection: connectionOf(request.socket),
        })
      : { status: 404, body: 'not found\n' };
  } catch (error) {
    answer = { status: 500, body: `internal error: ${(error as Error).message}\n` };
  }
  request.resume();
  if (response.destroyed) return;
  const body = answer.body ?? '';
  if (answer.stream) return streamHttp(answer.stream, answer, response);
  response.writeHead(answer.status, {
    'content-length': String(typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength),
    ...(typeof body === 'string' && !answer.headers?.['content-type'] ? { 'content-type': 'text/plain; charset=utf-8' } : {}),
    ...answer.headers,
  });
  response.end(body);
}

async function streamHttp(stream: AsyncIterable<string>, answer: HttpResponse, response: ServerResponse): Promise<void> {
  response.writeHead(answer.status, { ...answer.headers });
  response.flushHeaders();
  const iterator = stream[Symbol.asyncIterator]();
  response.on('close', () => void iterator.return?.());
  try {
    for (;;) {
      const next = await iterator.next();
      if (next.done || response.destroyed) break;
      if (!response.write(next.value)) await new Promise<void>((resolve) => response.once('drain', resolve).once('close', resolve));
    }
  } catch (error) {
    response.write(`event: error\ndata: ${JSON.stringify({ error: (error as Error).message })}\n\n`);
  } finally {
    await iterator.return?.();
    response.end();
  }
}

function statusText(status: number): string {
  const texts: Record<number, string> = {
    400: 'Bad Request',
    401: 'Unauthorized',
    403: 'Forbidden',
    404: 'Not Found',
    500: 'Internal Server Error',
    503: 'Service Unavailable',
  };
  return texts[status] ?? 'Error';
}

import WebSocket from 'ws';
import type { DialWebSocket, MessageChannel } from '../../src/runtime.ts';
import { clientTlsOptions, type TlsSettings } from './tls.ts';

/** WebSocket close reasons are limited to 123 bytes of UTF-8. */
const CLOSE_REASON_BYTES_MAX = 123;
/** Policy violation: the close code used when we close a channel with a reason. */
const CLOSE_CODE_POLICY = 1008;
const CLOSE_CODE_NORMAL = 1000;
/** Default bound on one received message for dialed sockets (ws' own default is 100 MiB). */
export const DIAL_MESSAGE_BYTES_MAX = 64 * 1024 * 1024;
const DIAL_TIMEOUT_MS_DEFAULT = 10_000;

export class WebSocketDialError extends Error {
  readonly code = 'WEBSOCKET_DIAL_FAILED';
  constructor(
    message: string,
    /** The HTTP status when the server refused the upgrade. */
    readonly httpStatus?: number,
  ) {
    super(message);
    this.name = 'WebSocketDialError';
  }
}

/** Wraps an open `ws` socket; binary and text messages are both delivered as bytes. */
export function messageChannelFromWebSocket(socket: WebSocket, remoteAddress: string): MessageChannel {
  let messageHandler: ((message: Uint8Array) => void) | undefined;
  // Every handler hears the close (the gateway cleans up, the node forgets the gateway).
  const closeHandlers: ((error?: Error) => void)[] = [];
  const pendingMessages: Uint8Array[] = [];
  let closed = socket.readyState === WebSocket.CLOSED;
  let closeError: Error | undefined;
  let closeHandlersCalled = 0;

  const reportClose = (): void => {
    if (!closed) return;
    while (closeHandlersCalled < closeHandlers.length) closeHandlers[closeHandlersCalled++]!(closeError);
  };

  socket.binaryType = 'nodebuffer';
  socket.on('message', (data: WebSocket.RawData) => {
    const bytes = toBytes(data);
    if (messageHandler) messageHandler(bytes);
    else pendingMessages.push(bytes);
  });
  socket.on('error', (error) => {
    closeError ??= error;
  });
  socket.on('close', (code, reason) => {
    if (!closeError && code !== CLOSE_CODE_NORMAL && code !== 1005) {
      closeError = new Error(`closed by ${remoteAddress} with code ${code}${reason.length > 0 ? `: ${reason.toString('utf8')}` : ''}`);
    }
    closed = true;
    reportClose();
  });

  return {
    remoteAddress,
    reportsWrites: true,
    get bufferedBytes(): number {
      return socket.bufferedAmount;
    },
    send(message: Uint8Array, released?: () => void): boolean {
      if (closed || socket.readyState !== WebSocket.OPEN) return false;
      // ws writes the bytes as they are (no masking, see zeroMask) and calls back once the socket wrote them.
      if (released) socket.send(message, { binary: true }, () => released());
      else socket.send(message, { binary: true });
      return true;
    },
    onMessage(handler: (message: Uint8Array) => void): void {
      messageHandler = handler;
      for (const message of pendingMessages.splice(0)) handler(message);
    },
    onClose(handler: (error?: Error) => void): void {
      closeHandlers.push(handler);
      reportClose();
    },
    close(reason?: string): void {
      if (socket.readyState === WebSocket.CLOSED) return;
      if (socket.readyState === WebSocket.CONNECTING) {
        socket.terminate();
        return;
      }
      if (reason === undefined) socket.close(CLOSE_CODE_NORMAL);
      else socket.close(CLOSE_CODE_POLICY, truncateUtf8(reason, CLOSE_REASON_BYTES_MAX));
      // The closing handshake needs the peer; do not wait for an unresponsive one forever.
      const timer = setTimeout(() => socket.terminate(), 5_000);
      timer.unref();
      socket.once('close', () => clearTimeout(timer));
    },
  };
}

function toBytes(data: WebSocket.RawData): Uint8Array {
  if (Array.isArray(data)) {
    const joined = Buffer.concat(data);
    return new Uint8Array(joined.buffer, joined.byteOffset, joined.byteLength);
  }
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function truncateUtf8(text: string, bytesMax: number): string {
  const encoded = Buffer.from(text, 'utf8');
  if (encoded.byteLength <= bytesMax) return text;
  // Cutting may split a character; the decoder replaces the fragment, so trim it off.
  return encoded.subarray(0, bytesMax - 3).toString('utf8').replace(/\uFFFD$/, '');
}

function zeroMask(mask: Uint8Array): void {
  mask.fill(0);
}

/** Dials with `ws`, sending `headers` in the upgrade request. */
export const dialWebSocket: DialWebSocket = (url, options) => dialWith(url, options, undefined);

/** A dialer whose `wss://` connections present our certificate and verify the server's (mutual TLS). */
export function webSocketDialer(tls: TlsSettings | undefined): DialWebSocket {
  return tls ? (url, options) => dialWith(url, options, tls) : dialWebSocket;
}

function dialWith(url: string, options: Parameters<DialWebSocket>[1], tls: TlsSettings | undefined): Promise<MessageChannel> {
  const timeoutMs = options?.timeoutMs ?? DIAL_TIMEOUT_MS_DEFAULT;
  return new Promise<MessageChannel>((resolve, reject) => {
    let settled = false;
    let tlsOptions = {};
    if (tls && url.startsWith('wss:')) {
      const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
      tlsOptions = clientTlsOptions(tls, host);
    }
    const socket = new WebSocket(url, options?.protocols ?? [], {
      ...tlsOptions,
      headers: options?.headers ?? {},
      handshakeTimeout: timeoutMs,
      maxPayload: DIAL_MESSAGE_BYTES_MAX,
      perMessageDeflate: false,
      // Masking protects caching proxies from content a browser page chose; this dialer is a
      // node talking to its peers (authenticated by the cluster key), and XOR-ing every byte of
      // every log entry cost the leader ~5% of its CPU. A zero key makes ws skip it.
      generateMask: zeroMask,
    });
    const fail = (error: WebSocketDialError): void => {
      if (settled) return;
      settled = true;
      socket.terminate();
      reject(error);
    };
    socket.once('unexpected-response', (_request, response) => {
      const status = response.statusCode ?? 0;
      response.resume();
      fail(new WebSocketDialError(`${url} refused the WebSocket upgrade: HTTP ${status} ${response.statusMessage ?? ''}`.trim(), status));
    });
    socket.once('error', (error) => fail(new WebSocketDialError(`cannot open a WebSocket to ${url}: ${error.message}`)));
    socket.once('open', () => {
      if (settled) return;
      settled = true;
      socket.removeAllListeners('error');
      const address = new URL(url).host;
      resolve(messageChannelFromWebSocket(socket, address));
    });
  });
}

/**
 * The standard (WHATWG) WebSocket as a `MessageChannel`: what browsers and Deno offer natively.
 * It cannot send upgrade headers from a browser, so peers authenticate with the hello message
 * the transport sends first (see src/transport).
 */
import type { DialWebSocket, MessageChannel } from '../../src/runtime.ts';

/** Default bound on one received message; larger ones close the socket (code 1009). */
export const STANDARD_WEBSOCKET_MESSAGE_BYTES_MAX = 64 * 1024 * 1024;
const DIAL_TIMEOUT_MS_DEFAULT = 10_000;
/** WebSocket close reasons are limited to 123 bytes of UTF-8. */
const CLOSE_REASON_BYTES_MAX = 123;
const CLOSE_CODE_NORMAL = 1000;
// The standard WebSocket's close() accepts only 1000 and 3000-4999 (anything else throws
// InvalidAccessError): the protocol's 1008 and 1009 in the application range.
const CLOSE_CODE_POLICY = 4008;
const CLOSE_CODE_TOO_BIG = 4009;

export class StandardWebSocketDialError extends Error {
  readonly code = 'WEBSOCKET_DIAL_FAILED';
  constructor(message: string) {
    super(message);
    this.name = 'StandardWebSocketDialError';
  }
}

/** Wraps an open (or opening) standard WebSocket. Messages that arrive before `onMessage` are kept. */
export function messageChannelFromStandardWebSocket(
  socket: WebSocket,
  remoteAddress: string,
  messageBytesMax: number = STANDARD_WEBSOCKET_MESSAGE_BYTES_MAX,
): MessageChannel {
  let messageHandler: ((message: Uint8Array) => void) | undefined;
  // Every handler hears the close (the gateway cleans up, the node forgets the gateway).
  const closeHandlers: ((error?: Error) => void)[] = [];
  const pending: Uint8Array[] = [];
  let closed = socket.readyState === WebSocket.CLOSED || socket.readyState === WebSocket.CLOSING;
  let closeError: Error | undefined;
  let closeHandlersCalled = 0;
  const encoder = new TextEncoder();

  const reportClose = (): void => {
    if (!closed) return;
    while (closeHandlersCalled < closeHandlers.length) closeHandlers[closeHandlersCalled++]!(closeError);
  };

  socket.binaryType = 'arraybuffer';
  socket.addEventListener('message', (event: MessageEvent) => {
    const data: unknown = event.data;
    const bytes =
      data instanceof ArrayBuffer ? new Uint8Array(data) : typeof data === 'string' ? encoder.encode(data) : undefined;
    if (!bytes) return;
    if (bytes.byteLength > messageBytesMax) {
      closeError ??= new Error(`a ${bytes.byteLength}-byte message from ${remoteAddress} is above the ${messageBytesMax}-byte bound`);
      socket.close(CLOSE_CODE_TOO_BIG, 'message too big');
      return;
    }
    if (messageHandler) messageHandler(bytes);
    else pending.push(bytes);
  });
  socket.addEventListener('error', () => {
    closeError ??= new Error(`WebSocket to ${remoteAddress} failed`);
  });
  socket.addEventListener('close', (event: CloseEvent) => {
    if (!closeError && event.code !== CLOSE_CODE_NORMAL && event.code !== 1005) {
      closeError = new Error(`closed by ${remoteAddress} with code ${event.code}${event.reason ? `: ${event.reason}` : ''}`);
    }
    closed = true;
    reportClose();
  });

  return {
    remoteAddress,
    get bufferedBytes(): number {
      return socket.bufferedAmount;
    },
    send(message: Uint8Array): boolean {
      if (closed || socket.readyState !== WebSocket.OPEN) return false;
      socket.send(message);
      return true;
    },
    onMessage(handler: (message: Uint8Array) => void): void {
      messageHandler = handler;
      for (const message of pending.splice(0)) handler(message);
    },
    onClose(handler: (error?: Error) => void): void {
      closeHandlers.push(handler);
      reportClose();
    },
    close(reason?: string): void {
      if (socket.readyState === WebSocket.CLOSED || socket.readyState === WebSocket.CLOSING) return;
      if (reason === undefined) socket.close(CLOSE_CODE_NORMAL);
      else socket.close(CLOSE_CODE_POLICY, truncateUtf8(reason, CLOSE_REASON_BYTES_MAX));
    },
  };
}

function truncateUtf8(text: string, bytesMax: number): string {
  let result = text;
  const encoder = new TextEncoder();
  while (encoder.encode(result).byteLength > bytesMax) result = result.slice(0, -1);
  return result;
}

/**
 * Dials with the standard WebSocket. `headers` cannot be sent by browsers and are ignored: the
 * peer transport's hello carries the cluster key instead.
 */
export const dialStandardWebSocket: DialWebSocket = (url, options) => {
  const timeoutMs = options?.timeoutMs ?? DIAL_TIMEOUT_MS_DEFAULT;
  return new Promise<MessageChannel>((resolve, reject) => {
    let settled = false;
    let socket: WebSocket;
    try {
      socket = new WebSocket(url, options?.protocols ?? []);
    } catch (error) {
      reject(new StandardWebSocketDialError(`cannot open a WebSocket to ${url}: ${(error as Error).message}`));
      return;
    }
    socket.binaryType = 'arraybuffer';
    const host = new URL(url).host;
    // Created now so that no message that arrives right after `open` is missed.
    const channel = messageChannelFromStandardWebSocket(socket, host);
    const timer = setTimeout(() => fail(`no answer within ${timeoutMs} ms`), timeoutMs);
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try {
        socket.close();
      } catch {
        // already closing
      }
      reject(new StandardWebSocketDialError(`cannot open a WebSocket to ${url}: ${why}`));
    };
    socket.addEventListener('open', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(channel);
    });
    socket.addEventListener('close', (event: CloseEvent) => fail(`closed before it opened (code ${event.code})`));
  });
};

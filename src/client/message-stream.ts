import type { ByteStream, DialStream, DialWebSocket, MessageChannel } from '../runtime.ts';

/**
 * The dqlite byte stream carried over a message channel (a WebSocket with binary messages):
 * each write is one message; message boundaries carry no meaning on the receiving side.
 */
export function byteStreamOverMessages(channel: MessageChannel): ByteStream {
  return {
    remoteAddress: channel.remoteAddress,
    write: (bytes) => channel.send(bytes),
    onData: (handler) => channel.onMessage(handler),
    onClose: (handler) => channel.onClose(handler),
    close: () => channel.close(),
  };
}

/**
 * A DialStream that reaches each dqlite address through a WebSocket, for hosts without TCP
 * (browsers). `urlFor` maps a node address ("host:port") to its WebSocket URL.
 */
export function dialOverWebSocket(dialWebSocket: DialWebSocket, urlFor: (address: string) => string): DialStream {
  return async (address, options) => {
    const channel = await dialWebSocket(urlFor(address), options?.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs });
    return byteStreamOverMessages(channel);
  };
}

/**
 * Browsers cannot open raw TCP: they carry the dqlite protocol over a WebSocket. This presents
 * such a message channel as the byte stream the gateway reads (message boundaries carry no meaning).
 */
import type { ByteStream, MessageChannel } from '../runtime.ts';

export function byteStreamFromChannel(channel: MessageChannel): ByteStream {
  return {
    write: (bytes) => channel.send(bytes),
    onData: (handler) => channel.onMessage(handler),
    onClose: (handler) => channel.onClose(handler),
    close: () => channel.close(),
    get remoteAddress() {
      return channel.remoteAddress;
    },
  };
}

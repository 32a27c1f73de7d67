/**
 * A byte stream over a `MessagePort`: how a page's `Database` reaches the node in its Web
 * Worker without a socket. Each message is a chunk of bytes (transferred, not copied), or
 * `null`: the other side closed.
 */
import type { ByteStream } from '../../src/runtime.ts';

export function byteStreamFromPort(port: MessagePort, remoteAddress: string): ByteStream {
  const dataHandlers: ((chunk: Uint8Array) => void)[] = [];
  const closeHandlers: ((error?: Error) => void)[] = [];
  let closed = false;
  const finish = (): void => {
    if (closed) return;
    closed = true;
    port.close();
    for (const handler of closeHandlers.splice(0)) handler();
  };
  port.onmessage = (event: MessageEvent<Uint8Array | null>) => {
    if (event.data === null) return finish();
    for (const handler of dataHandlers) handler(event.data);
  };
  port.start();
  return {
    write(bytes) {
      if (closed) return false;
      const copy = bytes.slice();
      port.postMessage(copy, [copy.buffer]);
      return true;
    },
    onData: (handler) => void dataHandlers.push(handler),
    onClose(handler) {
      if (closed) queueMicrotask(() => handler());
      else closeHandlers.push(handler);
    },
    close() {
      if (!closed) port.postMessage(null);
      finish();
    },
    remoteAddress,
  };
}

import type { Socket } from 'node:net';
import type { ByteStream } from '../../src/runtime.ts';

/**
 * A `net.Socket` as a `ByteStream`. Chunks that arrive before `onData` is set (including
 * `initialChunk`, bytes already read while sniffing the protocol) are kept and handed over then.
 */
export function byteStreamFromSocket(socket: Socket, initialChunk?: Uint8Array): ByteStream {
  let dataHandler: ((chunk: Uint8Array) => void) | undefined;
  // Every handler hears the close (the gateway cleans up, the node forgets the gateway).
  const closeHandlers: ((error?: Error) => void)[] = [];
  const pendingChunks: Uint8Array[] = initialChunk && initialChunk.byteLength > 0 ? [initialChunk] : [];
  let closed = false;
  let closeError: Error | undefined;
  let closeHandlersCalled = 0;

  const reportClose = (): void => {
    if (!closed) return;
    while (closeHandlersCalled < closeHandlers.length) closeHandlers[closeHandlersCalled++]!(closeError);
  };

  socket.on('data', (chunk: Buffer) => {
    const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (dataHandler) dataHandler(bytes);
    else pendingChunks.push(bytes);
  });
  socket.on('error', (error) => {
    closeError ??= error;
  });
  socket.on('close', () => {
    closed = true;
    reportClose();
  });

  const remoteAddress = `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`;
  return {
    remoteAddress,
    write(bytes: Uint8Array): boolean {
      if (closed || socket.destroyed || !socket.writable) return false;
      socket.write(bytes);
      return true;
    },
    onData(handler: (chunk: Uint8Array) => void): void {
      dataHandler = handler;
      for (const chunk of pendingChunks.splice(0)) handler(chunk);
    },
    onClose(handler: (error?: Error) => void): void {
      closeHandlers.push(handler);
      reportClose();
    },
    close(): void {
      socket.end();
      // A peer that never reads must not keep the socket half-open forever.
      socket.setTimeout(5_000, () => socket.destroy());
    },
  };
}

/**
 * Two connected in-memory byte streams: what one side writes, the other receives, in order, on
 * a later microtask (never inside `write`, so neither side re-enters the other). Lets the HTTP
 * API talk to its own node's gateway with the dqlite client, exactly as a TCP client would.
 */
import type { ByteStream } from '../runtime.ts';

interface End {
  dataHandlers: ((chunk: Uint8Array) => void)[];
  closeHandlers: ((error?: Error) => void)[];
}

export function byteStreamPair(nameA: string, nameB: string): [ByteStream, ByteStream] {
  const ends: [End, End] = [
    { dataHandlers: [], closeHandlers: [] },
    { dataHandlers: [], closeHandlers: [] },
  ];
  let closed = false;
  const closeBoth = (): void => {
    if (closed) return;
    closed = true;
    queueMicrotask(() => {
      for (const end of ends) for (const handler of end.closeHandlers) handler();
    });
  };
  const side = (self: End, peer: End, remoteAddress: string): ByteStream => ({
    write(bytes: Uint8Array): boolean {
      if (closed) return false;
      // The writer may reuse its buffer once write returns.
      const copy = bytes.slice();
      queueMicrotask(() => {
        if (closed) return;
        for (const handler of peer.dataHandlers) handler(copy);
      });
      return true;
    },
    onData(handler) {
      self.dataHandlers.push(handler);
    },
    onClose(handler) {
      self.closeHandlers.push(handler);
    },
    close: closeBoth,
    remoteAddress,
  });
  return [side(ends[0], ends[1], nameB), side(ends[1], ends[0], nameA)];
}

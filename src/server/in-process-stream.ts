/**
 * Two connected in-memory byte streams: what a client in the node's own process uses instead of
 * a socket, so the node's real gateway serves it. Bytes are delivered in order on a later
 * microtask (never inside `write`, as a socket would not either) and kept until the other side
 * listens; closing either end closes both.
 */
import type { ByteStream } from '../runtime.ts';

interface End {
  handlers: ((chunk: Uint8Array) => void)[];
  closeHandlers: ((error?: Error) => void)[];
  pending: Uint8Array[];
  closed: boolean;
}

function makeEnd(): End {
  return { handlers: [], closeHandlers: [], pending: [], closed: false };
}

export function inProcessStreamPair(options: { label: string; authenticated: boolean }): [client: ByteStream, server: ByteStream] {
  const ends: [End, End] = [makeEnd(), makeEnd()];
  const closeBoth = (): void => {
    for (const end of ends) {
      if (end.closed) continue;
      end.closed = true;
      const handlers = end.closeHandlers.splice(0);
      queueMicrotask(() => {
        for (const handler of handlers) handler();
      });
    }
  };
  const deliver = (to: End): void => {
    if (to.handlers.length === 0 || to.closed) return;
    for (const chunk of to.pending.splice(0)) for (const handler of to.handlers) handler(chunk);
  };
  const stream = (self: End, other: End, remoteAddress: string, authenticated: boolean): ByteStream => ({
    write(bytes) {
      if (self.closed) return false;
      // The caller may reuse its buffer once write returns.
      other.pending.push(bytes.slice());
      queueMicrotask(() => deliver(other));
      return true;
    },
    onData(handler) {
      self.handlers.push(handler);
      queueMicrotask(() => deliver(self));
    },
    onClose(handler) {
      if (self.closed) queueMicrotask(() => handler());
      else self.closeHandlers.push(handler);
    },
    close: closeBoth,
    remoteAddress,
    authenticated,
  });
  return [stream(ends[0], ends[1], options.label, false), stream(ends[1], ends[0], `in-process client (${options.label})`, options.authenticated)];
}

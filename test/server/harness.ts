/**
 * In-process nodes for tests: a real ClusterNode with a real engine, on real directory storage
 * in a temporary folder, reached by our client over an in-memory byte stream (the same dqlite
 * protocol bytes a socket would carry).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type Database } from '../../src/client/index.ts';
import type { ByteStream, DurableStorage, MessageChannel } from '../../src/runtime.ts';
import { ClusterNode, type NodeOptions } from '../../src/server/node.ts';
import { Engine } from '../../wasm/index.ts';
import { nodeRuntime, openDirectoryStorage } from '../../runtimes/node/index.ts';

/** Two connected ends of an in-memory byte stream; writes arrive asynchronously, in order. */
export function streamPair(leftAddress: string, rightAddress: string): [ByteStream, ByteStream] {
  const make = (remoteAddress: string) => {
    const data: ((chunk: Uint8Array) => void)[] = [];
    const closes: ((error?: Error) => void)[] = [];
    let closed = false;
    let peer!: { deliver(chunk: Uint8Array): void; end(): void };
    const end = (): void => {
      if (closed) return;
      closed = true;
      queueMicrotask(() => closes.forEach((h) => h()));
    };
    const stream: ByteStream = {
      write(bytes) {
        if (closed) return false;
        const copy = bytes.slice();
        setImmediate(() => peer.deliver(copy));
        return true;
      },
      onData: (handler) => void data.push(handler),
      onClose: (handler) => void closes.push(handler),
      close() {
        end();
        setImmediate(() => peer.end());
      },
      remoteAddress,
    };
    const side = {
      deliver(chunk: Uint8Array) {
        if (!closed) data.forEach((h) => h(chunk));
      },
      end,
    };
    return { stream, side, connect(other: typeof side) { peer = other; } };
  };
  const left = make(rightAddress);
  const right = make(leftAddress);
  left.connect(right.side);
  right.connect(left.side);
  return [left.stream, right.stream];
}

/**
 * Two connected message channels (peers' WebSockets in a test), over streamPair: each send
 * arrives whole, later, in order, as streamPair delivers each write as one chunk.
 */
export function channelPair(leftAddress: string, rightAddress: string): [MessageChannel, MessageChannel] {
  const asChannel = (stream: ByteStream): MessageChannel => ({
    send: (message) => stream.write(message),
    onMessage: (handler) => stream.onData(handler),
    onClose: (handler) => stream.onClose(handler),
    close: () => stream.close(),
    remoteAddress: stream.remoteAddress,
  });
  const [left, right] = streamPair(leftAddress, rightAddress);
  return [asChannel(left), asChannel(right)];
}

export interface TestNode {
  node: ClusterNode;
  dir: string;
  storage: DurableStorage;
  /** A client of database `name` on this node. */
  client(name: string): Promise<Database>;
  /** Stops the node and closes its storage; removes the directory unless `keepDir`. */
  close(options?: { keepDir?: boolean }): Promise<void>;
}

export const TEST_ADDRESS = '127.0.0.1:1';

/** A bootstrapped single-voter node; `wrapStorage` may stand between the node and its files. */
export async function startTestNode(
  options: Partial<NodeOptions> & { wrapStorage?: (storage: DurableStorage) => DurableStorage; dir?: string } = {},
): Promise<TestNode> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'dqlite-wasm-node-'));
  const base = await openDirectoryStorage(dir);
  const storage = options.wrapStorage ? options.wrapStorage(base) : base;
  const { wrapStorage: _wrap, dir: _dir, ...nodeOptions } = options;
  const node = await ClusterNode.start({
    id: 7,
    address: TEST_ADDRESS,
    runtime: nodeRuntime(),
    storage,
    engine: await Engine.create(),
    clusterKey: 'test',
    bootstrap: true,
    tickMs: 20,
    ...nodeOptions,
  });
  const clients: Database[] = [];
  let clientCount = 0;
  return {
    node,
    dir,
    storage,
    async client(name) {
      const db = await connect({
        servers: [TEST_ADDRESS],
        database: name,
        timeoutMs: 10_000,
        dial: async () => {
          const [clientSide, serverSide] = streamPair(`client-${++clientCount}`, TEST_ADDRESS);
          node.acceptClient(serverSide);
          return clientSide;
        },
      });
      clients.push(db);
      return db;
    },
    async close(closeOptions = {}) {
      for (const db of clients) await db.close().catch(() => {});
      await node.stop();
      await base.close?.();
      if (!closeOptions.keepDir && !options.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Waits until `probe` holds, polling on the real clock; for in-process nodes on a real runtime. */
export async function until(what: string, timeoutMs: number, probe: () => boolean): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!probe()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
